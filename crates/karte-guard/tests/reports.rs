//! Report headers (issue 21): labelled identifiers of any shape, birth dates in every notation, names beside
//! departments and titles, romaji names and initials; and department, title and rank words never flagged alone.
//! Tables of synthetic Japanese inputs and the findings expected (kind, text), in order.

use karte_guard::pii::{is_role_words, scan, PiiKind};
use karte_guard::pseudo::{pseudonymise, restore};

fn findings(text: &str) -> Vec<(PiiKind, String)> {
    scan(text).into_iter().map(|f| (f.kind, f.text)).collect()
}

fn check(table: &[(&str, &[(PiiKind, &str)])]) {
    for (text, want) in table {
        let want: Vec<(PiiKind, String)> = want.iter().map(|(k, s)| (*k, s.to_string())).collect();
        assert_eq!(findings(text), want, "{text}");
    }
}

use PiiKind::{Address as A, BirthDate as B, PatientId as Id, PersonName as N};

#[test]
fn identifiers_after_a_label_whatever_their_alphabet() {
    check(&[
        ("患者ID：MR2024-89012", &[(Id, "MR2024-89012")]),
        ("検査番号：ICU-CTA-240806", &[(Id, "ICU-CTA-240806")]),
        ("患者参照コード19990801", &[(Id, "19990801")]),
        ("カルテ番号\tB-771203", &[(Id, "B-771203")]),
        ("｜患者番号｜K-0048812｜", &[(Id, "K-0048812")]),
        (
            "受付番号: ER24-1103-007　来院 02:14",
            &[(Id, "ER24-1103-007")],
        ),
        ("MRN 2023-HK-00412", &[(Id, "2023-HK-00412")]),
        ("Patient ID: JP-88-1034", &[(Id, "JP-88-1034")]),
        ("患者ＩＤ：ＮＭ－０８８１２", &[(Id, "ＮＭ－０８８１２")]),
        ("当院カルテNo. 3318-07 にて管理", &[(Id, "3318-07")]),
        ("検体番号 C-2024-0719。", &[(Id, "C-2024-0719")]),
        // No digit, no identifier; a Latin word that ends in ID is not the label.
        ("患者ID：未登録", &[]),
        ("COVID-19 PCR 陰性", &[]),
        ("IDカードを提示", &[]),
    ]);
}

#[test]
fn birth_dates_after_a_label_in_every_notation() {
    check(&[
        ("生年月日：1958年3月2日", &[(B, "1958年3月2日")]),
        ("生年月日：S33.3.2", &[(B, "S33.3.2")]),
        ("生年月日：昭和33年3月2日", &[(B, "昭和33年3月2日")]),
        ("生年月日：1958/03/02", &[(B, "1958/03/02")]),
        ("生年月日 1958-03-02", &[(B, "1958-03-02")]),
        ("生年月日｜1958.03.02", &[(B, "1958.03.02")]),
        ("生年月日：19580302", &[(B, "19580302")]),
        ("DOB: 03/02/1958", &[(B, "03/02/1958")]),
        ("DOB　　1950/01/30", &[(B, "1950/01/30")]),
        // An age is not a date; nor is a date of examination.
        ("生年月日：58歳", &[]),
        ("検査日：2024/08/06", &[]),
        ("検査日 20240806", &[]),
    ]);
}

#[test]
fn names_beside_departments_and_titles() {
    check(&[
        ("読影医：放射線診断専門医 山田太郎", &[(N, "山田太郎")]),
        ("放射線診断専門医 山田太郎", &[(N, "山田太郎")]),
        ("依頼医：脳神経外科医長 岩井 慎吾", &[(N, "岩井 慎吾")]),
        ("読影：放射線科 副部長 岡田 恭子", &[(N, "岡田 恭子")]),
        ("担当：救命救急科 専攻医 浜口 翔", &[(N, "浜口 翔")]),
        ("記載者：神経内科 医員 荒井", &[(N, "荒井")]),
        ("主治医\t整形外科 医長 松本 隆", &[(N, "松本 隆")]),
        ("担当医：小児科 後藤 大樹", &[(N, "後藤 大樹")]),
        (
            "判読医　超音波専門医 脳卒中専門医 野村 達也",
            &[(N, "野村 達也")],
        ),
        ("介助：看護師 村上", &[(N, "村上")]),
        ("担当 OT 松田", &[(N, "松田")]),
    ]);
}

#[test]
fn romaji_names_and_initials_in_clinical_context() {
    check(&[
        ("氏名: Yamada Taro", &[(N, "Yamada Taro")]),
        (
            "氏名｜Abe Naoki（阿部 直樹）",
            &[(N, "Abe Naoki"), (N, "阿部 直樹")],
        ),
        ("病理：Y.T.氏より提出", &[(N, "Y.T.")]),
        ("患者：M.S.さん", &[(N, "M.S.")]),
        ("Yamada 様 ご来院", &[(N, "Yamada")]),
        ("依頼：救命救急科 Dr. Hayashi", &[(N, "Hayashi")]),
        ("依頼医：呼吸器内科 Dr.Yoshida", &[(N, "Yoshida")]),
        // All-capital abbreviations before an honorific are not names.
        ("CT様の陰影", &[]),
    ]);
}

/// Addresses as forms write them: a lot number after 番地 without の, kanji numerals after 字, kana building names,
/// and an address wrapped after its municipality (each line its own finding, so the layout survives).
#[test]
fn addresses_in_the_shapes_forms_write_them() {
    check(&[
        (
            "住所：長野県北佐久郡軽井沢町大字長倉2140番地13",
            &[(A, "長野県北佐久郡軽井沢町大字長倉2140番地13")],
        ),
        (
            "住所：沖縄県中頭郡読谷村字渡慶次二〇五",
            &[(A, "沖縄県中頭郡読谷村字渡慶次二〇五")],
        ),
        (
            "住所：横浜市青葉区あざみ野2-9-11 あざみ野ガーデンズ B棟405号室",
            &[(
                A,
                "横浜市青葉区あざみ野2-9-11 あざみ野ガーデンズ B棟405号室",
            )],
        ),
        (
            "住所：千葉県市川市八幡2丁目3番 ひまわり荘105",
            &[(A, "千葉県市川市八幡2丁目3番 ひまわり荘105")],
        ),
        (
            "住所：大阪府豊中市上野東\n　　　2丁目4番18号",
            &[(A, "大阪府豊中市上野東"), (A, "2丁目4番18号")],
        ),
        (
            "住所：横浜市港北区\n　　　日吉本町4-12-3 コーポ日吉101",
            &[(A, "横浜市港北区"), (A, "日吉本町4-12-3 コーポ日吉101")],
        ),
        (
            "連絡先住所：宮城県石巻市大街道東3丁目4番8号（実家）",
            &[(A, "宮城県石巻市大街道東3丁目4番8号")],
        ),
        // A block-like number on the line under an address or a field is not an address unless it fills the line.
        (
            "住所：東京都新宿区西新宿2-8-1\n2-3日前から発熱。",
            &[(A, "東京都新宿区西新宿2-8-1")],
        ),
        ("既往歴：高血圧症\n　　　2-3年前から内服", &[]),
        ("主治医：内科 田中\n　　3-5-12", &[(N, "田中")]),
        ("術後2-3日で離床、3-4週で転院予定。", &[]),
        ("住所：東京都新宿区在住の方", &[(A, "東京都新宿区")]),
    ]);
}

/// Every word of the lexicon, alone, in a department or title field, and next to a name: never flagged itself.
#[test]
fn department_title_and_rank_words_are_never_names_alone() {
    let lexicon = include_str!("../../../assets/guard/clinical_roles.txt");
    let words: Vec<&str> = lexicon
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('〜'))
        .collect();
    assert!(words.len() >= 100, "lexicon too small");
    let mut wrong = Vec::new();
    for w in words {
        if !is_role_words(w) {
            wrong.push(format!("{w}: not a role word"));
        }
        for text in [
            w.to_string(),
            format!("依頼科：{w}"),
            format!("担当医：{w}"),
            format!("{w}より紹介。"),
            format!("｜依頼医｜{w}｜"),
        ] {
            if scan(&text).iter().any(|f| f.kind == PiiKind::PersonName) {
                wrong.push(format!("{text}: {:?}", findings(&text)));
            }
        }
        let text = format!("読影医：{w} 山田 太郎");
        if findings(&text) != vec![(N, "山田 太郎".to_string())] {
            wrong.push(format!("{text}: {:?}", findings(&text)));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn compound_titles_are_role_words_and_names_are_not() {
    for (text, role) in [
        ("放射線診断専門医", true),
        ("乳腺外科専門医", true),
        ("放射線科副部長", true),
        ("救命救急科", true),
        ("IVR専門医", true),
        ("小児科専門医・小児神経専門医", true),
        ("消化器内科 医員", true),
        ("山田太郎", false),
        ("仁科", false),
        ("服部", false),
        ("阿部 直樹", false),
    ] {
        assert_eq!(is_role_words(text), role, "{text}");
    }
}

/// The new findings pseudonymise and restore like the old ones.
#[test]
fn report_headers_pseudonymise_and_restore() {
    let text = "患者ID：MR2024-89012　氏名：Yamada Taro\n生年月日：S33.3.2\n読影医：放射線診断専門医 山田太郎";
    let p = pseudonymise(text);
    for leaked in ["MR2024-89012", "Yamada", "S33.3.2", "山田太郎"] {
        assert!(!p.text.contains(leaked), "{}", p.text);
    }
    assert!(p.text.contains("放射線診断専門医"), "{}", p.text);
    assert!(
        p.text.contains("【患者ID1】") && p.text.contains("【氏名1】"),
        "{}",
        p.text
    );
    assert_eq!(restore(&p.text, &p.mapping), text);
}
