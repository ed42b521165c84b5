//! Data-driven checks of the test-suggestion rule base (assets/rules/suggestions.toml): every rule's `example` must
//! fire it and its `counter_example` must not, through the real extraction pipeline; every name a rule uses must be a
//! canonical lexicon name. All failures are collected and reported together, so one run shows the whole picture.

use karte_core::lexicon::{
    DEMOGRAPHICS, DIAGNOSES, DRUGS, FINDINGS, LABS, SYMPTOMS, TESTS, VITALS,
};
use karte_core::rules::{Cond, Rule, RuleBase};
use karte_core::{analyze, draft_floor, Fact, FactKind};
use std::collections::BTreeSet;

fn rb() -> &'static RuleBase {
    RuleBase::embedded()
}

fn facts_of(text: &str) -> Vec<Fact> {
    analyze(text, karte_core::document::default_kind())
        .unwrap_or_else(|e| panic!("analyze({text:?}) failed: {e:?}"))
        .facts()
}

fn show_facts(facts: &[Fact]) -> String {
    facts
        .iter()
        .filter(|f| f.kind != FactKind::Plan)
        .map(|f| {
            let kind = serde_json::to_value(f.kind)
                .unwrap()
                .as_str()
                .unwrap_or("?")
                .to_string();
            let neg = if f.negated { "!" } else { "" };
            match &f.value {
                Some(v) => format!("{neg}{kind}:{}={v}", f.name),
                None => format!("{neg}{kind}:{}", f.name),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(what: &str, failures: &[String]) {
    if !failures.is_empty() {
        panic!("{} {what}:\n{}", failures.len(), failures.join("\n"));
    }
}

#[test]
fn rule_base_has_enough_rules_with_unique_ids() {
    let rb = rb();
    assert_eq!(rb.version, "2026.12.0");
    assert!(rb.rules.len() >= 60, "only {} rules", rb.rules.len());
    let mut seen = BTreeSet::new();
    let dups: Vec<String> = rb
        .rules
        .iter()
        .filter(|r| !seen.insert(r.id.as_str()))
        .map(|r| r.id.clone())
        .collect();
    assert!(dups.is_empty(), "duplicate rule ids: {dups:?}");
    let categories: BTreeSet<&str> = rb.rules.iter().map(|r| r.category.as_str()).collect();
    assert!(
        categories.len() >= 12,
        "only {} categories: {categories:?}",
        categories.len()
    );
}

#[test]
fn every_rule_is_complete() {
    let mut failures = Vec::new();
    for r in &rb().rules {
        let id_ok = r.id.rsplit_once('-').is_some_and(|(p, n)| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_uppercase())
                && n.len() == 3
                && n.chars().all(|c| c.is_ascii_digit())
        });
        if !id_ok {
            failures.push(format!("{}: id is not of the form ABC-001", r.id));
        }
        if r.all.is_empty() && r.any.is_empty() {
            failures.push(format!(
                "{}: no `all` or `any` condition, so it would fire on everything",
                r.id
            ));
        }
        for (field, v) in [
            ("category", &r.category),
            ("reason", &r.reason),
            ("reference", &r.reference),
            ("example", &r.example),
        ] {
            if v.trim().is_empty() {
                failures.push(format!("{}: empty {field}", r.id));
            }
        }
        if r.tests.is_empty() {
            failures.push(format!("{}: no tests", r.id));
        }
        let mut t = BTreeSet::new();
        for x in &r.tests {
            if !t.insert(x) {
                failures.push(format!("{}: test {x} listed twice", r.id));
            }
        }
    }
    report("incomplete rules", &failures);
}

fn cond_known(c: &Cond) -> bool {
    match c.kind.as_str() {
        "symptom" => SYMPTOMS.contains(&c.name),
        "exam" => FINDINGS.contains(&c.name),
        "diagnosis" | "history" => DIAGNOSES.contains(&c.name),
        "drug" => DRUGS.contains(&c.name),
        "lab" => LABS.contains(&c.name),
        "test" => TESTS.contains(&c.name) || LABS.contains(&c.name),
        "vital" => VITALS.contains(&c.name.as_str()),
        "demographic" => DEMOGRAPHICS.contains(&c.name.as_str()),
        _ => false,
    }
}

#[test]
fn every_name_is_known_to_the_lexicons() {
    let mut failures = Vec::new();
    for r in &rb().rules {
        for c in r.all.iter().chain(&r.any).chain(&r.none) {
            if !cond_known(c) {
                failures.push(format!(
                    "{}: condition {}:{} names nothing in the lexicons",
                    r.id, c.kind, c.name
                ));
            }
            // Numeric comparisons only make sense on kinds that carry a number.
            if let Some((op, v)) = &c.op {
                let numeric = v.parse::<f64>().is_ok();
                let ok = match c.kind.as_str() {
                    "vital" | "lab" => numeric,
                    "demographic" => {
                        (c.name == "年齢" && numeric)
                            || (c.name == "性別" && ["男性", "女性"].contains(&v.as_str()))
                    }
                    "drug" => numeric,
                    _ => false,
                };
                if !ok {
                    failures.push(format!(
                        "{}: comparison {:?} {v} on {}:{} is meaningless",
                        r.id, op, c.kind, c.name
                    ));
                }
            }
        }
        for t in &r.tests {
            if !TESTS.contains(t) && !LABS.contains(t) {
                failures.push(format!(
                    "{}: test {t} is neither in tests.toml nor in labs.toml",
                    r.id
                ));
            }
        }
    }
    report("unknown names", &failures);
}

fn fires(r: &Rule, facts: &[Fact]) -> bool {
    rb().fired(facts).contains(&r.id.as_str())
}

#[test]
fn every_example_fires_its_rule() {
    let mut failures = Vec::new();
    for r in &rb().rules {
        let facts = facts_of(&r.example);
        if !fires(r, &facts) {
            failures.push(format!(
                "{}: example {:?} does not fire it; facts: [{}]",
                r.id,
                r.example,
                show_facts(&facts)
            ));
            continue;
        }
        // The example must leave something to suggest: a test it already names is not suggested again.
        let named = |t: &str| {
            facts.iter().any(|f| {
                !f.negated && matches!(f.kind, FactKind::Test | FactKind::Lab) && f.name == t
            })
        };
        if r.tests.iter().all(|t| named(t)) {
            failures.push(format!(
                "{}: example {:?} already names every suggested test",
                r.id, r.example
            ));
        }
    }
    report("examples that do not fire their rule", &failures);
}

#[test]
fn every_example_yields_a_suggestion_citing_a_fired_rule() {
    let rb = rb();
    let mut failures = Vec::new();
    for r in &rb.rules {
        let out = match draft_floor(&r.example, karte_core::document::default_kind()) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{}: draft_floor failed: {e:?}", r.id));
                continue;
            }
        };
        let fired = rb.fired(&out.facts);
        for s in &out.suggestions {
            let Some((id, ver)) = s.rule.split_once('@') else {
                failures.push(format!(
                    "{}: suggestion cites {:?}, not id@version",
                    r.id, s.rule
                ));
                continue;
            };
            if ver != rb.version || !fired.contains(&id) {
                failures.push(format!(
                    "{}: suggestion {} cites {} which did not fire",
                    r.id, s.test, s.rule
                ));
            }
        }
        // Each test of this rule is suggested (by this rule or an earlier one that also fired) unless already named.
        let named = |t: &str| {
            out.facts.iter().any(|f| {
                !f.negated && matches!(f.kind, FactKind::Test | FactKind::Lab) && f.name == t
            })
        };
        for t in &r.tests {
            if fired.contains(&r.id.as_str())
                && !named(t)
                && !out.suggestions.iter().any(|s| &s.test == t)
            {
                failures.push(format!(
                    "{}: test {t} not suggested for its own example",
                    r.id
                ));
            }
        }
        if fired.contains(&r.id.as_str()) {
            let cites = format!("{}@{}", r.id, rb.version);
            let own = out.suggestions.iter().any(|s| s.rule == cites);
            let earlier = r
                .tests
                .iter()
                .all(|t| named(t) || out.suggestions.iter().any(|s| &s.test == t));
            if !own && !earlier {
                failures.push(format!("{}: no suggestion cites {cites}", r.id));
            }
        }
    }
    report("suggestion problems", &failures);
}

#[test]
fn no_counter_example_fires_its_rule() {
    let mut failures = Vec::new();
    let mut without = Vec::new();
    for r in &rb().rules {
        let Some(ce) = &r.counter_example else {
            without.push(r.id.clone());
            continue;
        };
        let facts = facts_of(ce);
        if fires(r, &facts) {
            failures.push(format!(
                "{}: counter_example {:?} fires it; facts: [{}]",
                r.id,
                ce,
                show_facts(&facts)
            ));
        }
    }
    // Most rules must carry a counter-example (the brief: "for most rules").
    let n = rb().rules.len();
    if without.len() * 4 > n {
        failures.push(format!(
            "{} of {n} rules have no counter_example: {without:?}",
            without.len()
        ));
    }
    report("counter-examples that fire their rule", &failures);
}

#[test]
fn every_contraindication_holds_on_its_example_and_withholds_its_tests() {
    let rb = rb();
    assert!(
        rb.contraindications.len() >= 3,
        "contrast, lumbar puncture and MRI contraindications are required"
    );
    let mut failures = Vec::new();
    for c in &rb.contraindications {
        for (field, v) in [("reason", &c.reason), ("reference", &c.reference)] {
            if v.trim().is_empty() {
                failures.push(format!("{}: empty {field}", c.id));
            }
        }
        for t in &c.tests {
            if !TESTS.contains(t) && !LABS.contains(t) {
                failures.push(format!("{}: test {t} is not in the lexicons", c.id));
            }
        }
        for cond in c.any.iter().chain(&c.unless) {
            if !cond_known(cond) {
                failures.push(format!(
                    "{}: {}:{} names nothing",
                    c.id, cond.kind, cond.name
                ));
            }
        }
        let norm = karte_core::normalize::normalize(&c.example).text;
        let facts = facts_of(&c.example);
        if c.holds(&facts, &norm).is_none() {
            failures.push(format!(
                "{}: example {:?} does not make it hold; facts: [{}]",
                c.id,
                c.example,
                show_facts(&facts)
            ));
        }
        // While it holds, none of its tests is suggested, whatever rule would propose them.
        let out = draft_floor(&c.example, karte_core::document::default_kind()).unwrap();
        for s in &out.suggestions {
            if c.tests.contains(&s.test) {
                failures.push(format!("{}: {} suggested for its example", c.id, s.test));
            }
        }
        if let Some(ce) = &c.counter_example {
            let norm = karte_core::normalize::normalize(ce).text;
            if c.holds(&facts_of(ce), &norm).is_some() {
                failures.push(format!("{}: counter_example {ce:?} makes it hold", c.id));
            }
        }
    }
    report("contraindication problems", &failures);
}

/// A plan naming a contraindicated test is flagged; a note that the physician weighed it, or a test that lifts the
/// contraindication, silences the flag; the flag cites id@version.
#[test]
fn contraindicated_orders_in_the_plan_are_warned_about() {
    let cases: &[(&str, bool)] = &[
        (
            "造影剤アレルギーの既往あり。腹痛あり。腹部造影CTを施行する。",
            true,
        ),
        ("eGFR 22。腹痛あり。腹部造影CTを施行する。", true),
        (
            "造影剤アレルギーの既往あり。ステロイド前投与のうえ腹部造影CTを施行する。",
            false,
        ),
        ("発熱と頭痛あり。JCS 10。腰椎穿刺を施行する。", true),
        (
            "発熱と頭痛あり。JCS 10。頭部CTで異常なし。腰椎穿刺を施行する。",
            false,
        ),
        ("発熱と頭痛あり。意識清明。腰椎穿刺を施行する。", false),
        (
            "ペースメーカー植込み後。右片麻痺。頭部MRIを施行する。",
            true,
        ),
        (
            "MRI対応ペースメーカー植込み後。右片麻痺。頭部MRIを施行する。",
            false,
        ),
        (
            "ペースメーカー植込み後。右片麻痺。頭部CTを施行する。",
            false,
        ),
        // ALP is a lab, not a lumbar puncture.
        ("意識障害あり。ALP 300。", false),
    ];
    let mut failures = Vec::new();
    for (text, warned) in cases {
        let out = draft_floor(text, karte_core::document::default_kind()).unwrap();
        let flags: Vec<&karte_core::Flag> = out
            .flags
            .iter()
            .filter(|f| f.code == karte_core::rules::CONTRAINDICATION_FLAG)
            .collect();
        if flags.is_empty() == *warned {
            failures.push(format!(
                "{text}: warned {} (want {warned})",
                !flags.is_empty()
            ));
        }
        for f in flags {
            let cites = f
                .detail
                .as_deref()
                .is_some_and(|d| d.contains(&format!("@{}", rb().version)));
            if !cites {
                failures.push(format!("{text}: flag does not cite id@version: {f:?}"));
            }
        }
    }
    report("contraindication warnings", &failures);
}
