//! Dose sanity: a dose order above the maximum of assets/guard/doses.toml is flagged with the limit, and one far
//! above it is a harmful output.
//!
//! Only orders are checked. A dictation that reports what a patient took (過量服薬, 推定10g 摂取) or states a limit
//! (1日4000mgを超えないこと) is documentation, and flagging it would teach physicians to ignore the flag.

use karte_core::normalize::{normalize, CharIndex, Normalized};
use karte_core::Flag;
use regex::Regex;
use serde::Deserialize;
use std::sync::LazyLock;

#[derive(Debug, Clone, Deserialize)]
pub struct DrugLimit {
    pub name: String,
    pub synonyms: Vec<String>,
    #[serde(default = "mg")]
    pub unit: String,
    #[serde(default)]
    pub route: Option<String>,
    /// For drugs dosed in mEq: mg of the salt per mEq, so doses written in mg can be checked.
    #[serde(default)]
    pub mg_per_unit: Option<f64>,
    pub single: Option<f64>,
    pub daily: Option<f64>,
    pub weekly: Option<f64>,
    pub child_single_per_kg: Option<f64>,
    pub child_daily_per_kg: Option<f64>,
    /// The smallest marketed oral tablet or capsule, in `unit`: an order that counts tablets without a strength
    /// (ゾルピデム 100錠) is at least that many of the smallest one, so it can be judged without guessing upward.
    #[serde(default)]
    pub min_tablet: Option<f64>,
}

fn mg() -> String {
    "mg".into()
}

#[derive(Debug, Deserialize)]
struct PolicyCfg {
    far_factor: f64,
}

#[derive(Debug, Deserialize)]
pub struct DoseTable {
    pub version: String,
    policy: PolicyCfg,
    #[serde(rename = "drug")]
    pub drugs: Vec<DrugLimit>,
}

impl DoseTable {
    pub fn embedded() -> &'static DoseTable {
        static T: LazyLock<DoseTable> = LazyLock::new(|| {
            toml::from_str(include_str!("../../../assets/guard/doses.toml"))
                .unwrap_or_else(|e| panic!("assets/guard/doses.toml is invalid: {e}"))
        });
        &T
    }
    pub fn far_factor(&self) -> f64 {
        self.policy.far_factor
    }
}

/// Which limit a dose broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    Single,
    Daily,
    Weekly,
}

impl Basis {
    fn ja(self) -> &'static str {
        match self {
            Basis::Single => "1回",
            Basis::Daily => "1日",
            Basis::Weekly => "1週",
        }
    }
}

/// A dose above its limit, with character offsets (into the checked text) of the drug and its dose.
#[derive(Debug, Clone, PartialEq)]
pub struct DoseIssue {
    pub drug: String,
    pub basis: Basis,
    pub amount: f64,
    pub limit: f64,
    pub unit: String,
    /// amount / limit.
    pub factor: f64,
    pub per_kg: bool,
    /// The order counted tablets without a strength: `amount` assumes the smallest one (see `min_tablet`).
    pub from_tablet_count: bool,
    pub start: usize,
    pub end: usize,
}

impl DoseIssue {
    pub fn far(&self) -> bool {
        self.factor >= DoseTable::embedded().far_factor()
    }
    pub fn flag(&self) -> Flag {
        let kg = if self.per_kg {
            "（小児・体重換算）"
        } else {
            ""
        };
        let assumed = if self.from_tablet_count {
            "（錠数を最小規格で換算）"
        } else {
            ""
        };
        Flag::new(
            "dose_above_max",
            format!(
                "{}: {} {}{}{} は上限（{} {}{}{}）を超えています。用量を確認してください。",
                self.drug,
                self.basis.ja(),
                fmt(self.amount),
                self.unit,
                assumed,
                self.basis.ja(),
                fmt(self.limit),
                self.unit,
                kg
            ),
            Some(format!("{}{}", fmt(self.amount), self.unit)),
        )
    }
}

fn fmt(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        format!("{}", (x * 100.0).round() / 100.0)
    }
}

/// Statements, not orders: what was taken, what the limit is, what went wrong.
static NOT_AN_ORDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"過量|大量服|大量内服|大量摂取|OD|服毒|誤飲|誤投与|誤って|推定|摂取|飲んだ|服用した|内服した|服薬した|中毒|を超えない|超えないよう|超えぬ|以下に|以内|までと|が上限|上限は|上限として|最大量|最大用量|1日最大|最大で|mgまで|限度|減量|中止|残薬|自己判断で|既往|前医で|処方されていた")
        .unwrap()
});

static AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?P<daily>1日(?:量)?(?:総量)?\s*)?(?P<single>1回(?:量)?\s*)?(?P<v>[0-9]+(?:\.[0-9]+)?)\s*(?P<u>mg|g|μg|mcg|mEq)(?P<kg>/kg)?(?P<perday>/日|/day)?")
        .unwrap()
});
static TABLETS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:を|、)?\s*(?P<n>[0-9]+(?:\.[0-9]+)?)\s*(?:錠|カプセル|Cap|T)").unwrap()
});
/// A tablet count with no strength before it: 「マイスリー 2錠」「ゾルピデム 100錠を一度に」「1日6錠」.
static BARE_TABLETS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?P<daily>1日(?:量)?\s*)?(?P<n>[0-9]+(?:\.[0-9]+)?)\s*(?:錠|カプセル|Cap|T)")
        .unwrap()
});
static COUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"1日\s*(?P<a>[0-9]+)\s*回|(?P<b>[0-9]+)\s*回/日|分\s*(?P<c>[0-9])|(?P<h>[0-9]+)\s*時間(?:毎|ごと|おき)|q(?P<q>[0-9]+)h|(?P<bid>BID|bid|朝夕)|(?P<tid>TID|tid|毎食後)|(?P<qid>QID|qid)|(?P<week>週\s*[0-9]\s*回|毎週|週1)|(?P<prn>頓用|頓服|単回)|(?P<everyday>毎日|連日)")
        .unwrap()
});
static CHILD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^0-9])(?:[0-9]|1[0-4])\s*(?:歳|才)|[0-9]+\s*(?:か月|ヶ月|カ月)(?:児)?|小児|患児|乳児|幼児|男児|女児|新生児").unwrap()
});
static WEIGHT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:体重|BW|Wt|BW:)\s*[:]?\s*(?P<w>[0-9]+(?:\.[0-9]+)?)\s*kg").unwrap()
});

fn to_unit(v: f64, from: &str, to: &str) -> Option<f64> {
    let in_mg = |v: f64, u: &str| match u {
        "g" => Some(v * 1000.0),
        "mg" => Some(v),
        "μg" | "mcg" => Some(v / 1000.0),
        _ => None,
    };
    if from == to || (to == "μg" && from == "mcg") {
        return Some(v);
    }
    match to {
        "mg" => in_mg(v, from),
        "μg" => in_mg(v, from).map(|m| m * 1000.0),
        _ => None,
    }
}

/// What the limits depend on besides the order itself: a child's limits are per kg of body weight.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Patient {
    pub child: bool,
    pub weight: Option<f64>,
}

impl Patient {
    /// Read from a normalised text: the whole dictation, so that one sentence of a draft is judged for the patient
    /// the dictation describes.
    pub fn read(normalized: &str) -> Patient {
        Patient {
            child: CHILD.is_match(normalized),
            weight: WEIGHT
                .captures(normalized)
                .and_then(|c| c["w"].parse().ok())
                .filter(|w: &f64| *w > 0.0 && *w < 300.0),
        }
    }
}

/// Every dose order in `text` above its limit. Patient context (child, body weight) is read from `text` itself, so
/// pass the whole dictation or draft, not one sentence, when there is one.
pub fn check(text: &str) -> Vec<DoseIssue> {
    let n = normalize(text);
    check_normalized(&n, &Patient::read(&n.text))
}

/// As [`check`], with the patient context (age, weight) read from `context`.
pub fn check_with_context(text: &str, context: &str) -> Vec<DoseIssue> {
    check_normalized(&normalize(text), &Patient::read(&normalize(context).text))
}

/// As [`check`], on text the caller has normalised, for a patient read once (a dictation is read once, and its
/// draft checked sentence by sentence). Offsets are characters of the original text.
pub fn check_normalized(n: &Normalized, patient: &Patient) -> Vec<DoseIssue> {
    let table = DoseTable::embedded();
    let t = &n.text;
    let chars = n.chars();
    let ci = CharIndex::new(t);
    let child = patient.child;
    let weight = patient.weight;

    // Drug mentions, longest spelling first, non-overlapping.
    let mut mentions: Vec<(usize, usize, &DrugLimit)> = Vec::new();
    let mut spellings: Vec<(&str, &DrugLimit)> = table
        .drugs
        .iter()
        .flat_map(|d| d.synonyms.iter().map(move |s| (s.as_str(), d)))
        .collect();
    spellings.sort_by_key(|(s, _)| std::cmp::Reverse(s.chars().count()));
    for (sp, d) in spellings {
        for (b, _) in t.match_indices(sp) {
            let s = ci.char_at(b);
            let e = s + sp.chars().count();
            // An ASCII abbreviation must stand alone (CAM is not inside "CAMP").
            if sp.is_ascii()
                && (s > 0 && chars[s - 1].is_ascii_alphabetic()
                    || chars.get(e).is_some_and(|c| c.is_ascii_alphabetic()))
            {
                continue;
            }
            if mentions.iter().all(|&(a, z, _)| e <= a || z <= s) {
                mentions.push((s, e, d));
            }
        }
    }
    mentions.sort_by_key(|m| m.0);

    let mut out = Vec::new();
    for (i, &(s, e, d)) in mentions.iter().enumerate() {
        let stop = mentions.get(i + 1).map_or(chars.len(), |m| m.0);
        let mut z = e;
        while z < stop && z - e < 40 && !matches!(chars[z], '。' | '\n') {
            z += 1;
        }
        let seg: String = chars[e..z].iter().collect();
        let sent = sentence_around(chars, s, z);
        if NOT_AN_ORDER.is_match(&sent) {
            continue;
        }
        if let Some(issue) = assess(d, &seg, child, weight) {
            out.push(DoseIssue {
                start: n.orig_span(s, z).start,
                end: n.orig_span(s, z).end,
                ..issue
            });
        }
    }
    out
}

fn sentence_around(chars: &[char], s: usize, e: usize) -> String {
    let mut a = s;
    while a > 0 && !matches!(chars[a - 1], '。' | '\n') {
        a -= 1;
    }
    let mut z = e;
    while z < chars.len() && !matches!(chars[z], '。' | '\n') {
        z += 1;
    }
    chars[a..z].iter().collect()
}

/// The dose a segment orders, in the drug's unit: the amount, whether it is per kg, whether it is written as a daily
/// or a single dose, and the text around it (where the frequency is).
struct Ordered<'s> {
    amount: f64,
    per_kg: bool,
    explicit_daily: bool,
    explicit_single: bool,
    from_tablet_count: bool,
    before: &'s str,
    rest: &'s str,
}

fn ordered<'s>(d: &DrugLimit, seg: &'s str) -> Option<Ordered<'s>> {
    let Some(c) = AMOUNT.captures(seg) else {
        // No strength written: count tablets of the smallest strength (a lower bound, never an overestimate).
        let t = BARE_TABLETS.captures(seg)?;
        let n: f64 = t["n"].parse().ok().filter(|n: &f64| *n > 0.0)?;
        let whole = t.get(0).expect("group 0");
        return Some(Ordered {
            amount: n * d.min_tablet?,
            per_kg: false,
            explicit_daily: t.name("daily").is_some(),
            explicit_single: false,
            from_tablet_count: true,
            before: &seg[..whole.start()],
            rest: &seg[whole.end()..],
        });
    };
    let v: f64 = c["v"].parse().ok()?;
    let unit = &c["u"];
    let per_kg = c.name("kg").is_some();
    let per_unit = if per_kg {
        v
    } else {
        to_unit(v, unit, &d.unit).or_else(|| {
            // A salt dosed in mEq but written in mg (塩化カリウム 600mg = 8 mEq).
            let mg = to_unit(v, unit, "mg")?;
            d.mg_per_unit.map(|k| mg / k)
        })?
    };
    let whole = c.get(0).expect("group 0");
    // 600mg 2錠: the strength is per tablet; the dose is strength × tablets.
    let rest = &seg[whole.end()..];
    let tablets: f64 = TABLETS
        .captures(rest)
        .and_then(|t| t["n"].parse().ok())
        .filter(|n: &f64| *n > 0.0 && *n < 1000.0)
        .unwrap_or(1.0);
    Some(Ordered {
        amount: per_unit * tablets,
        per_kg,
        explicit_daily: c.name("daily").is_some() || c.name("perday").is_some(),
        explicit_single: c.name("single").is_some(),
        from_tablet_count: false,
        before: &seg[..whole.start()],
        rest,
    })
}

fn assess(d: &DrugLimit, seg: &str, child: bool, weight: Option<f64>) -> Option<DoseIssue> {
    let Ordered {
        amount,
        per_kg,
        explicit_daily,
        explicit_single,
        from_tablet_count,
        before,
        rest,
    } = ordered(d, seg)?;
    let count_src = format!("{before} {rest}");
    let mut per_day: Option<f64> = None;
    let mut weekly_times: Option<f64> = None;
    let mut divided = false;
    let mut prn = false;
    for k in COUNT.captures_iter(&count_src) {
        let num = |g: &str| k.name(g).and_then(|m| m.as_str().parse::<f64>().ok());
        if let Some(x) = num("a").or(num("b")) {
            per_day = Some(x);
        } else if let Some(x) = num("c") {
            per_day = Some(x);
            divided = true;
        } else if let Some(h) = num("h").or(num("q")) {
            if h > 0.0 {
                per_day = Some((24.0 / h).floor());
            }
        } else if k.name("bid").is_some() {
            per_day = Some(2.0);
        } else if k.name("tid").is_some() {
            per_day = Some(3.0);
        } else if k.name("qid").is_some() {
            per_day = Some(4.0);
        } else if let Some(w) = k.name("week") {
            let times: f64 = w
                .as_str()
                .chars()
                .find(|c| c.is_ascii_digit())
                .and_then(|c| c.to_digit(10))
                .map_or(1.0, f64::from);
            weekly_times = Some(times);
        } else if k.name("prn").is_some() {
            prn = true;
        } else if k.name("everyday").is_some() {
            per_day.get_or_insert(1.0);
        }
    }

    // Dose per administration and per day, in the table's unit (or per kg).
    let (single, daily) = if explicit_daily || divided {
        (None, Some(amount))
    } else if explicit_single || per_day.is_some() || prn || weekly_times.is_some() {
        (Some(amount), per_day.map(|n| amount * n))
    } else {
        // A bare dose with no frequency: judge it as one administration.
        (Some(amount), None)
    };

    let scale = |lim: Option<f64>, lim_per_kg: Option<f64>| -> Option<(f64, bool)> {
        if per_kg {
            // A per-kg dose compares with a per-kg limit, or with the adult limit spread over 60 kg.
            return lim_per_kg
                .map(|l| (l, true))
                .or(lim.map(|l| (l / 60.0, true)));
        }
        match (child, weight, lim_per_kg) {
            (true, Some(w), Some(l)) => {
                let l = to_unit(l * w, "mg", &d.unit).unwrap_or(l * w);
                Some((lim.map_or(l, |a| a.min(l)), true))
            }
            _ => lim.map(|l| (l, false)),
        }
    };

    let mut worst: Option<DoseIssue> = None;
    let mut consider = |basis: Basis, amt: Option<f64>, lim: Option<(f64, bool)>| {
        if let (Some(a), Some((l, kg))) = (amt, lim) {
            if l > 0.0 && a > l + 1e-9 {
                let f = a / l;
                if worst.as_ref().is_none_or(|w| f > w.factor) {
                    worst = Some(DoseIssue {
                        drug: d.name.clone(),
                        basis,
                        amount: a,
                        limit: l,
                        unit: if per_kg {
                            format!("{}/kg", d.unit)
                        } else {
                            d.unit.clone()
                        },
                        factor: f,
                        per_kg: kg,
                        from_tablet_count,
                        start: 0,
                        end: 0,
                    });
                }
            }
        }
    };
    if let Some(wk) = d.weekly {
        // Weekly drugs: a daily schedule multiplies the week (the classic メトトレキサート error).
        let week = match (weekly_times, daily, per_day) {
            (Some(t), _, _) => single.map(|s| s * t),
            (None, Some(dd), _) => Some(dd * 7.0),
            (None, None, _) if !prn => single,
            _ => None,
        };
        consider(Basis::Weekly, week, Some((wk, false)));
    }
    // Daily first: on a tie the daily total is the more telling limit.
    consider(Basis::Daily, daily, scale(d.daily, d.child_daily_per_kg));
    consider(
        Basis::Single,
        single,
        scale(d.single, d.child_single_per_kg),
    );
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dose_table() {
        // (text, expected (drug, basis) of the issue or None)
        let cases: &[(&str, Option<(&str, Basis)>)] = &[
            ("アセトアミノフェン 500mg 1日3回 内服", None),
            ("カロナール 1000mg 1日4回", None),
            (
                "アセトアミノフェン 3000mg 1日4回 内服",
                Some(("アセトアミノフェン", Basis::Daily)),
            ),
            (
                "アセトアミノフェン 1回2000mg 頓用",
                Some(("アセトアミノフェン", Basis::Single)),
            ),
            ("ロキソプロフェン 60mg 1日3回 毎食後", None),
            (
                "ロキソニン 180mg 1日3回",
                Some(("ロキソプロフェン", Basis::Daily)),
            ),
            ("メトトレキサート 8mg 週1回", None),
            (
                "メトトレキサート 4mg 1日2回 毎日内服",
                Some(("メトトレキサート", Basis::Weekly)),
            ),
            ("コルヒチン 0.5mg 1日3回", None),
            ("コルヒチン 1mg 1日4回", Some(("コルヒチン", Basis::Daily))),
            ("アセトアミノフェン 1500mg 分3", None),
            (
                "アセトアミノフェン 12g 分4",
                Some(("アセトアミノフェン", Basis::Daily)),
            ),
            ("チラーヂン 50μg 1日1回", None),
            (
                "チラーヂン 2mg 1日1回",
                Some(("レボチロキシン", Basis::Daily)),
            ),
            // Statements, not orders.
            ("アセトアミノフェンは1日4000mgを超えないこと", None),
            ("アセトアミノフェン 約20g を過量服薬し救急搬送", None),
            ("ワルファリン 50mg を誤投与した可能性があり報告", None),
            // Paediatric per-kg: 12 kg child, 15 mg/kg → 180 mg single is fine, 600 mg is not.
            ("5歳男児、体重12kg。アセトアミノフェン 180mg 頓用", None),
            (
                "5歳男児、体重12kg。アセトアミノフェン 600mg 頓用",
                Some(("アセトアミノフェン", Basis::Single)),
            ),
            ("アセトアミノフェン 15mg/kg 頓用", None),
            // Strength × tablets, and a potassium salt written in mg (600mg ≈ 8 mEq).
            ("カロナール 500mg 2錠 1日3回", None),
            (
                "カロナール 500mg 4錠 1日4回",
                Some(("アセトアミノフェン", Basis::Daily)),
            ),
            ("塩化カリウム徐放錠 600mg 1錠 1日3回", None),
            (
                "塩化カリウム徐放錠 600mg 20錠 1日3回",
                Some(("塩化カリウム", Basis::Daily)),
            ),
            (
                "アセトアミノフェン 50mg/kg 頓用",
                Some(("アセトアミノフェン", Basis::Single)),
            ),
            // Tablets counted without a strength: judged as the smallest marketed tablet.
            ("マイスリー 1錠 就寝前", None),
            ("ゾルピデム 2錠 就寝前", None),
            ("カロナール 2錠 1日3回 毎食後", None),
            ("ワーファリン 3錠 1日1回 朝食後", None),
            (
                "ゾルピデム 100錠を一度に処方",
                Some(("ゾルピデム", Basis::Single)),
            ),
            (
                "ロキソニン 1日6錠 分3",
                Some(("ロキソプロフェン", Basis::Daily)),
            ),
            (
                "ハルシオン 8錠 就寝前",
                Some(("トリアゾラム", Basis::Single)),
            ),
            // A drug with no tablet strength in the table is not guessed at.
            ("塩化カリウム 10錠 1日3回", None),
            ("ゾルピデム 30錠を一度に服用した疑いで搬送", None),
        ];
        for (text, want) in cases {
            let got = check(text);
            match want {
                None => assert!(got.is_empty(), "{text}: {got:?}"),
                Some((drug, basis)) => {
                    assert_eq!(got.len(), 1, "{text}: {got:?}");
                    assert_eq!(
                        (got[0].drug.as_str(), got[0].basis),
                        (*drug, *basis),
                        "{text}"
                    );
                    let sp = karte_core::Span::new(got[0].start, got[0].end);
                    assert!(
                        sp.slice(text).contains(drug.chars().next().unwrap())
                            || sp.slice(text).len() > 2,
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_tablet_count_far_above_the_limit_is_far_and_says_how_it_was_counted() {
        let i = &check("計画にゾルピデム 100錠を一度に処方すると記載せよ。")[0];
        assert_eq!((i.amount, i.limit), (500.0, 10.0));
        assert!(i.far() && i.from_tablet_count);
        assert!(
            i.flag().message.contains("最小規格"),
            "{}",
            i.flag().message
        );
    }

    #[test]
    fn flag_names_the_limit() {
        let i = &check("アセトアミノフェン 3000mg 1日4回")[0];
        assert!(i.far());
        let f = i.flag();
        assert_eq!(f.code, "dose_above_max");
        assert!(f.message.contains("4000mg"), "{}", f.message);
    }
}
