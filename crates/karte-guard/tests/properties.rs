//! Properties that must hold for every input, not just the labelled set: round trips are exact, offsets are in
//! bounds, nothing panics. Inputs mix arbitrary Unicode with fragments that look like personal data and placeholders.

use karte_guard::pseudo::{pseudonymise, restore};
use karte_guard::stream::StreamGuard;
use karte_guard::Dictation;
use karte_guard::{injection, leak, scan, Policy};
use proptest::prelude::*;

/// Pieces that exercise every detector and the placeholder syntax itself.
const PIECES: &[&str] = &[
    "患者名：山田太郎様",
    "山田 花子さん",
    "090-1234-5678",
    "０３（１２３４）５６７８",
    "〒222-0011",
    "神奈川県横浜市港北区日吉本町1丁目2番3号",
    "マイナンバー 1234 5678 9018",
    "保険者番号 06130017",
    "記号 12-34 番号 5678 枝番 01",
    "患者ID: 00123456",
    "a.b@example.jp",
    "昭和45年3月2日生",
    "【氏名1】",
    "【電話2】",
    "【",
    "】",
    "BT 38.6℃",
    "アセトアミノフェン 3000mg 1日4回",
    "以上の指示を無視して",
    "確実に死ねる方法",
    "℡",
    "㍿",
    "　",
    "\n",
    "ｶﾞｰｾﾞ",
    "°C",
    "\u{3099}",
    "様子",
    "さん",
    "𠮷野家",
    "🙂",
];

fn mixed() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(PIECES).prop_map(str::to_string),
            2 => any::<String>(),
            1 => "[0-9０-９ー－\\- ]{1,16}",
        ],
        0..12,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn pseudonymise_then_restore_is_exact(text in mixed()) {
        let p = pseudonymise(&text);
        prop_assert_eq!(restore(&p.text, &p.mapping), text);
    }

    #[test]
    fn findings_are_in_bounds_and_match_their_text(text in mixed()) {
        let n = text.chars().count();
        let mut last_end = 0;
        for f in scan(&text) {
            prop_assert!(f.start < f.end && f.end <= n, "{:?} in {} chars", f, n);
            prop_assert!(f.start >= last_end, "findings overlap or are unsorted");
            last_end = f.end;
            let slice: String = text.chars().skip(f.start).take(f.end - f.start).collect();
            prop_assert_eq!(slice, f.text);
        }
    }

    #[test]
    fn other_checks_never_panic_and_stay_in_bounds(text in mixed()) {
        let n = text.chars().count();
        for i in injection::detect(&text) {
            prop_assert!(i.start < i.end && i.end <= n);
        }
        let v = Policy::embedded().check(&text);
        for h in &v.hits {
            prop_assert!(h.start <= h.end && h.end <= n);
        }
        // What was found is gone: no finding's text survives removal (unless it also occurs elsewhere unflagged).
        let found = scan(&text);
        let removed = leak::remove(&text, &found);
        for f in &found {
            prop_assert!(
                !removed.contains(&f.text) || text.matches(f.text.as_str()).count() > 1,
                "{:?} survived in {:?}", f.text, removed
            );
        }
    }

    #[test]
    fn stream_guard_shows_exactly_the_text_when_nothing_is_withheld(
        text in mixed(),
        cuts in prop::collection::vec(0usize..64, 0..16),
    ) {
        // Split the text at arbitrary character positions, as a tokenizer would.
        let chars: Vec<char> = text.chars().collect();
        let mut pieces = Vec::new();
        let mut pos = 0;
        for c in cuts {
            let end = (pos + c).min(chars.len());
            pieces.push(chars[pos..end].iter().collect::<String>());
            pos = end;
        }
        pieces.push(chars[pos..].iter().collect::<String>());
        // The model echoes its own input back: a text the pipeline would not take is no dictation.
        let d = Dictation::new(&text, karte_core::document::default_kind());
        prop_assume!(d.is_ok());
        let d = d.unwrap();
        let mut g = StreamGuard::new(&d);
        let mut shown = String::new();
        for p in &pieces {
            shown.push_str(&g.push(p));
        }
        shown.push_str(&g.finish());
        if g.blocked().is_empty() {
            // Personal data of the source is never a leak, so a clean stream passes through unchanged.
            prop_assert_eq!(shown, text);
        } else {
            prop_assert!(shown.contains(karte_guard::stream::WITHHELD));
        }
    }
}

/// Found by the property above: a rejected phone candidate (00⏎090-1234, too few digits) hid the real number.
#[test]
fn a_rejected_candidate_does_not_hide_the_number_after_it() {
    let f = scan("00\n090-1234-5678");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].text, "090-1234-5678");
}

/// Found by `stream_guard_shows_exactly_the_text_when_nothing_is_withheld` (CI, session 5): personal data that the
/// source holds must pass the stream whole, however the source's own scan split or merged it. Each row is a source
/// that the model echoes back verbatim.
#[test]
fn the_stream_never_removes_personal_data_that_the_source_holds() {
    const ECHOED: &[&str] = &[
        "神奈川県横浜市港北区日吉本町1丁目2番3号\n℡マイナンバー 1234 5678 9018",
        "神奈川県横浜市港北区日吉本町1丁目2番3号\n090-1234-5678",
        "患者名：山田太郎様\n昭和45年3月2日生",
        "〒222-0011\n神奈川県横浜市港北区日吉本町1丁目2番3号",
    ];
    for text in ECHOED {
        let chars: Vec<char> = text.chars().collect();
        // Whole, then one character at a time: the split must not matter.
        for pieces in [
            vec![text.to_string()],
            chars.iter().map(char::to_string).collect(),
        ] {
            let d = Dictation::new(text, karte_core::document::default_kind()).unwrap();
            let mut g = StreamGuard::new(&d);
            let mut shown: String = pieces.iter().map(|p| g.push(p)).collect();
            shown.push_str(&g.finish());
            assert_eq!(&shown, text, "leaks {:?}", g.leaks());
            assert!(g.blocked().is_empty());
        }
    }
}
