//! The output guard over a finished draft: leak check, harmful-output policy and dose limits, sentence by sentence.
//!
//! A sentence the model wrote that the policy blocks is removed and the draft says so; a sentence in the
//! physician's own words is never removed (it is their record), only flagged. Leaked personal data is cut out of
//! the sentence, which stays.

use crate::dictation::Dictation;
use crate::injection::Injection;
use crate::leak;
use crate::policy::{Level, Policy, OVERDOSE};
use karte_core::{DraftOutput, Flag, Origin};

/// Apply the output guard to `out`, drafted from `dictation`. Each sentence's `origin` says whether it is the
/// physician's own words or the model's.
pub fn guard_draft(dictation: &Dictation, out: &mut DraftOutput) {
    let policy = Policy::embedded();
    let mut blocked: Vec<String> = Vec::new();
    let withhold_joined = joined_blocks(dictation, out);
    let known = dictation.known();
    for (sec, list) in out.sections.take_all().into_iter().enumerate() {
        let mut kept = Vec::with_capacity(list.len());
        for (i, mut s) in list.into_iter().enumerate() {
            let own = s.origin == Origin::Dictation;
            let joined_block = withhold_joined
                .iter()
                .find(|(at, _)| *at == (sec, i))
                .map(|(_, c)| c.clone());
            if !own {
                let leaked = known.leaks(&s.text);
                if !leaked.is_empty() {
                    let kinds: Vec<&str> = leaked.iter().map(|f| f.kind.label_ja()).collect();
                    s.text = leak::remove(&s.text, &leaked);
                    push_unique(
                        &mut s.flags,
                        Flag::new(
                            "pii_leak",
                            format!(
                                "口述にない個人情報（{}）をモデルが書いたため削除しました。",
                                kinds.join("、")
                            ),
                            Some(kinds.join(",")),
                        ),
                    );
                }
            }
            let v = policy.check_learned_for(&s.text, dictation.patient());
            for issue in &v.doses {
                push_unique(&mut s.flags, issue.flag());
            }
            for (c, r) in v.categories.iter().zip(&v.reasons) {
                if c == OVERDOSE {
                    continue;
                }
                let level = v
                    .hits
                    .iter()
                    .filter(|h| &h.category == c)
                    .map(|h| h.level)
                    .max()
                    .unwrap_or(Level::Flag);
                let code = if level == Level::Block {
                    "policy_block"
                } else {
                    "policy_flag"
                };
                push_unique(&mut s.flags, Flag::new(code, r.clone(), Some(c.clone())));
            }
            if v.is_block() && !own {
                blocked.extend(v.categories.iter().cloned());
                continue;
            }
            // Harm spread over several model sentences (中止。… だけで治療する。) is caught on them joined.
            if let Some(cats) = joined_block {
                blocked.extend(cats);
                continue;
            }
            kept.push(s);
        }
        *out.sections.at_mut(sec) = kept;
    }
    if !blocked.is_empty() {
        blocked.sort();
        blocked.dedup();
        out.flags.push(Flag::new(
            "blocked",
            "安全のため、モデルが書いた文の一部を表示していません。口述の内容は変わっていません。",
            Some(blocked.join(",")),
        ));
    }
}

/// Rules with `scope = "text"` look across sentences, so the model's sentences are also checked joined, in draft
/// order. Returns ((section, index in it), categories) for each model sentence inside a blocking hit: by place, not
/// by text, since the physician may have dictated the very words the model repeats.
fn joined_blocks(dictation: &Dictation, out: &DraftOutput) -> Vec<((usize, usize), Vec<String>)> {
    let mut joined = String::new();
    let mut ranges: Vec<(usize, usize, (usize, usize))> = Vec::new();
    for (sec, part) in out.sections.parts().iter().enumerate() {
        for (i, s) in part.sentences.iter().enumerate() {
            if s.origin == Origin::Dictation {
                continue;
            }
            let start = joined.chars().count();
            joined.push_str(&s.text);
            if !s.text.ends_with('。') {
                joined.push('。');
            }
            ranges.push((start, joined.chars().count(), (sec, i)));
        }
    }
    let v = Policy::embedded().check_learned_for(&joined, dictation.patient());
    let mut found = Vec::new();
    for h in v.hits.iter().filter(|h| h.level == Level::Block) {
        for &(a, b, at) in &ranges {
            if a < h.end && h.start < b {
                found.push((at, vec![h.category.clone()]));
            }
        }
    }
    found
}

/// The draft-level notice for instruction-like text in a dictation.
pub fn injection_flag(found: &[Injection]) -> Flag {
    Flag::new(
        "injection",
        format!(
            "口述の中に AI への指示のような文がありました（{}か所）。データとして扱い、指示には従っていません。",
            found.len()
        ),
        Some(
            found
                .iter()
                .map(|i| i.rule)
                .collect::<Vec<_>>()
                .join(","),
        ),
    )
}

fn push_unique(flags: &mut Vec<Flag>, f: Flag) {
    if !flags.contains(&f) {
        flags.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use karte_core::document::{default_kind, Sections};
    use karte_core::{EngineInfo, Sentence};

    fn sentence((text, origin): (&str, Origin)) -> Sentence {
        Sentence {
            text: text.into(),
            spans: Vec::new(),
            flags: Vec::new(),
            origin,
            sources: Vec::new(),
            problem: None,
        }
    }

    fn draft(plan: &[(&str, Origin)]) -> DraftOutput {
        let k = default_kind();
        let mut sections = Sections::empty(k);
        *sections.at_mut(k.position("plan").unwrap()) = plan.iter().map(|&s| sentence(s)).collect();
        DraftOutput {
            kind: k.id.clone(),
            sections,
            inputs: Default::default(),
            suggestions: Vec::new(),
            flags: Vec::new(),
            facts: Vec::new(),
            engine: EngineInfo::default(),
            timings_ms: Default::default(),
        }
    }

    #[test]
    fn model_sentences_are_cleaned_and_own_words_only_flagged() {
        let input = Dictation::new(
            "発熱あり。アセトアミノフェン 3000mg 1日4回 内服。",
            karte_core::document::default_kind(),
        )
        .unwrap();
        let mut d = draft(&[
            ("アセトアミノフェン 3000mg 1日4回 内服。", Origin::Dictation),
            ("家族の連絡先は 090-1111-2222 です。", Origin::Model),
            (
                "確実に死ねる方法は薬をまとめて飲むことです。",
                Origin::Model,
            ),
            ("解熱を確認する。", Origin::Model),
        ]);
        guard_draft(&input, &mut d);
        let plan = &d.sections.get("plan");
        assert_eq!(
            plan.len(),
            3,
            "the blocked model sentence is removed: {plan:?}"
        );
        // The physician's own overdose order stays, with the limit named.
        assert!(plan[0]
            .flags
            .iter()
            .any(|f| f.code == "dose_above_max" && f.message.contains("4000mg")));
        // A phone number the input lacks is a leak: cut out, flagged.
        assert!(!plan[1].text.contains("090"), "{}", plan[1].text);
        assert!(plan[1].flags.iter().any(|f| f.code == "pii_leak"));
        assert!(plan[2].flags.is_empty());
        assert!(d
            .flags
            .iter()
            .any(|f| f.code == "blocked" && f.detail.as_deref() == Some("self_harm")));
    }

    #[test]
    fn harm_spread_over_two_model_sentences_is_withheld() {
        let input = Dictation::new(
            "乳癌術後、化学療法中。",
            karte_core::document::default_kind(),
        )
        .unwrap();
        let mut d = draft(&[
            ("化学療法は中止する。", Origin::Model),
            ("今後は高濃度ビタミンC点滴だけで治療する。", Origin::Model),
            ("次回外来で採血。", Origin::Model),
        ]);
        guard_draft(&input, &mut d);
        let texts: Vec<&str> = d
            .sections
            .get("plan")
            .iter()
            .map(|s| s.text.as_str())
            .collect();
        assert!(!texts.iter().any(|t| t.contains("ビタミンC")), "{texts:?}");
        assert!(d.flags.iter().any(|f| f.code == "blocked"), "{:?}", d.flags);
    }

    #[test]
    fn a_model_copy_of_the_physicians_words_is_judged_as_the_models() {
        // The same harmful order twice: once the physician's (kept, flagged), once the model's copy (removed).
        let order = "アセトアミノフェン 10000mg 1日4回 内服。";
        let input = Dictation::new(
            &format!("発熱あり。{order}"),
            karte_core::document::default_kind(),
        )
        .unwrap();
        let mut d = draft(&[(order, Origin::Dictation), (order, Origin::Model)]);
        guard_draft(&input, &mut d);
        let plan = &d.sections.get("plan");
        assert_eq!(plan.len(), 1, "{plan:?}");
        assert_eq!(plan[0].origin, Origin::Dictation);
        assert!(plan[0].flags.iter().any(|f| f.code == "dose_above_max"));
        assert!(d
            .flags
            .iter()
            .any(|f| f.code == "blocked" && f.detail.as_deref() == Some("overdose")));
    }
}
