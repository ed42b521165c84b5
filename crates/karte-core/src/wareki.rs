//! Calendar dates in 和暦 (令和6年4月1日, R6.4.1, 令和元年) and 西暦, as ISO 8601 values.

use crate::normalize::CharIndex;
use regex::Regex;
use std::sync::LazyLock;

/// A date found in normalised text: char range and ISO value (`YYYY-MM-DD`, or `YYYY-MM` without a day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateMatch {
    pub start: usize,
    pub end: usize,
    pub iso: String,
    pub year: u32,
}

fn era_base(era: &str) -> Option<u32> {
    Some(match era {
        "明治" | "M" => 1867,
        "大正" | "T" => 1911,
        "昭和" | "S" => 1925,
        "平成" | "H" => 1988,
        "令和" | "R" => 2018,
        _ => return None,
    })
}

static KANJI_ERA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(明治|大正|昭和|平成|令和)\s*(元|\d{1,2})\s*年(?:\s*(\d{1,2})\s*月(?:\s*(\d{1,2})\s*日)?)?").unwrap()
});
static ABBR_ERA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^A-Za-z])([MTSHR])(\d{1,2})[./](\d{1,2})[./](\d{1,2})").unwrap()
});
static SEIREKI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"((?:19|20)\d{2})\s*(?:年(?:\s*(\d{1,2})\s*月(?:\s*(\d{1,2})\s*日)?)?|[/-](\d{1,2})[/-](\d{1,2}))").unwrap()
});

fn iso(y: u32, m: Option<u32>, d: Option<u32>) -> Option<String> {
    match (m, d) {
        (Some(m), Some(d)) if (1..=12).contains(&m) && (1..=31).contains(&d) => {
            Some(format!("{y:04}-{m:02}-{d:02}"))
        }
        (Some(m), None) if (1..=12).contains(&m) => Some(format!("{y:04}-{m:02}")),
        (None, None) => Some(format!("{y:04}")),
        _ => None,
    }
}

/// All dates in `text`, left to right, non-overlapping.
pub fn find_dates(text: &str) -> Vec<DateMatch> {
    let ci = CharIndex::new(text);
    let mut out: Vec<DateMatch> = Vec::new();
    let num = |m: Option<regex::Match>| m.and_then(|m| m.as_str().parse::<u32>().ok());
    for c in KANJI_ERA.captures_iter(text) {
        let base = era_base(&c[1]).unwrap();
        let n = if &c[2] == "元" {
            1
        } else {
            c[2].parse().unwrap_or(0)
        };
        let y = base + n;
        if let Some(v) = iso(y, num(c.get(3)), num(c.get(4))) {
            let m = c.get(0).unwrap();
            out.push(DateMatch {
                start: ci.char_at(m.start()),
                end: ci.char_at(m.end()),
                iso: v,
                year: y,
            });
        }
    }
    for c in ABBR_ERA.captures_iter(text) {
        let base = era_base(&c[1]).unwrap();
        let y = base + c[2].parse::<u32>().unwrap_or(0);
        if let Some(v) = iso(y, num(c.get(3)), num(c.get(4))) {
            let g = c.get(1).unwrap();
            let e = c.get(0).unwrap().end();
            out.push(DateMatch {
                start: ci.char_at(g.start()),
                end: ci.char_at(e),
                iso: v,
                year: y,
            });
        }
    }
    for c in SEIREKI.captures_iter(text) {
        let y: u32 = c[1].parse().unwrap();
        let (m, d) = if c.get(4).is_some() {
            (num(c.get(4)), num(c.get(5)))
        } else {
            (num(c.get(2)), num(c.get(3)))
        };
        if let Some(v) = iso(y, m, d) {
            let g = c.get(0).unwrap();
            let (s, e) = (ci.char_at(g.start()), ci.char_at(g.end()));
            if !out.iter().any(|o| o.start < e && s < o.end) {
                out.push(DateMatch {
                    start: s,
                    end: e,
                    iso: v,
                    year: y,
                });
            }
        }
    }
    out.sort_by_key(|d| d.start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_table() {
        let cases = [
            ("令和6年4月1日", "2024-04-01"),
            ("令和元年5月1日", "2019-05-01"),
            ("平成31年4月30日", "2019-04-30"),
            ("昭和25年3月", "1950-03"),
            ("R6.4.1", "2024-04-01"),
            ("H1.1.8", "1989-01-08"),
            ("2024年4月1日", "2024-04-01"),
            ("2024/4/1", "2024-04-01"),
        ];
        for (t, want) in cases {
            let d = find_dates(t);
            assert_eq!(d.len(), 1, "{t}: {d:?}");
            assert_eq!(d[0].iso, want, "{t}");
            assert_eq!((d[0].start, d[0].end), (0, t.chars().count()), "{t}");
        }
        assert!(find_dates("BP 120/80").is_empty());
        assert!(find_dates("令和6年13月1日").is_empty());
    }
}
