//! Check digits of Japanese identifiers. A valid check digit turns a bare run of digits into an identifier without
//! any label around it; an invalid one is still an identifier when a label says so (a typo is still personal data).

/// 個人番号 (My Number): 12 digits, the last a check digit over the first 11 (総務省令 第5条).
pub fn my_number_valid(digits: &str) -> bool {
    let d: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    if d.len() != 12 || digits.chars().any(|c| !c.is_ascii_digit()) {
        return false;
    }
    // P_n is the n-th digit counted from the right, excluding the check digit; Q_n = n+1 (n ≤ 6), n−5 (n ≥ 7).
    let sum: u32 = (1..=11)
        .map(|n| {
            let p = d[11 - n];
            let q = if n <= 6 { n + 1 } else { n - 5 } as u32;
            p * q
        })
        .sum();
    let r = sum % 11;
    let check = if r <= 1 { 0 } else { 11 - r };
    d[11] == check
}

/// 保険者番号: 8 digits (6 for 国民健康保険); the last is a Luhn-style check digit over the others.
pub fn insurer_number_valid(digits: &str) -> bool {
    let d: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(d.len() == 8 || d.len() == 6) || digits.chars().any(|c| !c.is_ascii_digit()) {
        return false;
    }
    let (body, check) = d.split_at(d.len() - 1);
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let p = if i % 2 == 0 { x * 2 } else { x };
            p / 10 + p % 10
        })
        .sum();
    (10 - sum % 10) % 10 == check[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn my_number_table() {
        // 12345678901 → check 8 (computed by hand from the 総務省令 formula).
        for (s, ok) in [
            ("123456789018", true),
            ("123456789017", false),
            ("000000000000", true),
            ("12345678901", false),
            ("12345678901a", false),
        ] {
            assert_eq!(my_number_valid(s), ok, "{s}");
        }
    }

    #[test]
    fn insurer_table() {
        // 0613 (協会けんぽ) 001 → check: body 0,6,1,3,0,0,1 → from the right ×2,×1…: 2,0,0,3,2,6,0 → 13 → 7.
        for (s, ok) in [
            ("06130017", true),
            ("06130018", false),
            ("13800", false),
            // 国保 6 digits: 13,800 → body 1,3,8,0,0 → 0,0,16→7,3,2 → 12 → 8.
            ("138008", true),
            ("138009", false),
        ] {
            assert_eq!(insurer_number_valid(s), ok, "{s}");
        }
    }
}
