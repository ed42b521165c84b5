//! A learned second opinion on harmful output: multinomial logistic regression on hashed character n-grams.
//!
//! The rules in policy.toml catch the phrasings someone thought of; on text written by people who never saw them
//! they miss most euphemism, role-play framing and indirect requests (issue 16). Character n-grams need no word
//! segmenter for Japanese, cost a few microseconds per sentence and make a model small enough to ship in the
//! repository, so the classifier runs offline on the workstation next to the rules rather than replacing them.
//!
//! The model itself is karte-core's `ngram` (shared with the clause-role fallback); this module adds what is
//! harm-specific: the legitimate class, the harm score, the windows the policy judges, the class balance. Weights
//! are trained by `cargo run -p karte-guard --example train_harm` (deterministic) and stored sparse and
//! quantised in assets/guard/harm_classifier.bin together with the decision threshold chosen on the development
//! set; an empty file means "no classifier" so that the crate still builds before the first training.

use karte_core::ngram::{self, Model};
use karte_core::normalize::normalize;
use std::sync::LazyLock;

pub use karte_core::ngram::{features, TrainConfig, DIM_BITS};

/// The class that is not harm. Every other class is a harm category id as in policy.toml.
pub const LEGITIMATE: &str = "legitimate";

/// The harm model: an n-gram model whose first class is [`LEGITIMATE`].
pub struct Classifier(Model);

impl std::ops::Deref for Classifier {
    type Target = Model;
    fn deref(&self) -> &Model {
        &self.0
    }
}

impl std::ops::DerefMut for Classifier {
    fn deref_mut(&mut self) -> &mut Model {
        &mut self.0
    }
}

/// The harm verdict of one text: the most probable harm category and its probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub category: String,
    pub probability: f32,
}

impl Classifier {
    /// The shipped model, parsed once; `None` before the first training (empty weights file).
    pub fn embedded() -> Option<&'static Classifier> {
        static C: LazyLock<Option<Classifier>> = LazyLock::new(|| {
            let bytes = include_bytes!("../../../assets/guard/harm_classifier.bin");
            (!bytes.is_empty()).then(|| {
                Classifier::from_bytes(bytes)
                    .unwrap_or_else(|e| panic!("assets/guard/harm_classifier.bin: {e}"))
            })
        });
        C.as_ref()
    }

    pub fn from_bytes(b: &[u8]) -> Result<Classifier, String> {
        let m = Model::from_bytes(b)?;
        if m.classes.first().map(String::as_str) != Some(LEGITIMATE) {
            return Err(format!("first class is not {LEGITIMATE}"));
        }
        Ok(Classifier(m))
    }

    /// The most probable harm category (never `legitimate`), with the probability that the text is harm of any
    /// category: a text torn between two harm categories (falsification or insurance fraud) is still harm, so the
    /// decision uses their sum, 1 − P(legitimate).
    pub fn score(&self, text: &str) -> Score {
        let p = self.probabilities(text);
        let (c, _) = self
            .classes
            .iter()
            .zip(&p)
            .skip(1)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("a model has harm classes");
        Score {
            category: c.clone(),
            probability: 1.0 - p[0],
        }
    }

    /// As [`Classifier::score`], only when the probability reaches the shipped threshold.
    pub fn harmful(&self, text: &str) -> Option<Score> {
        let s = self.score(text);
        (s.probability >= self.threshold).then_some(s)
    }

    /// The highest harm probability over the windows the policy scores (see [`windows`]).
    pub fn max_probability(&self, text: &str) -> f32 {
        let norm = normalize(text);
        windows(norm.chars())
            .into_iter()
            .map(|(s, e)| {
                self.score(&norm.chars()[s..e].iter().collect::<String>())
                    .probability
            })
            .fold(0.0, f32::max)
    }
}

/// Each sentence and each pair of adjacent sentences: harm that a note spreads over two sentences is seen whole,
/// and a long note still costs linear time.
pub fn windows(chars: &[char]) -> Vec<(usize, usize)> {
    let sents = crate::policy::sentences(chars);
    let mut w: Vec<(usize, usize)> = sents.clone();
    w.extend(sents.windows(2).map(|p| (p[0].0, p[1].1)));
    w.retain(|&(s, e)| words(&chars[s..e]) >= MIN_WORD_CHARS && varied(&chars[s..e]));
    w
}

/// Windows with fewer kana and kanji than this are not judged: a fragment such as 「S)」「1.」 or a JSON key cannot
/// state an intent, and the model has nothing to go on there but noise.
const MIN_WORD_CHARS: usize = 4;

/// Repeated filler (「ああああ…」, a run of one symbol) is not language, and n-gram statistics on it are meaningless.
fn varied(cs: &[char]) -> bool {
    let mut d: Vec<char> = cs.to_vec();
    d.sort_unstable();
    d.dedup();
    d.len() * 4 >= cs.len().min(40)
}

fn words(cs: &[char]) -> usize {
    cs.iter()
        .filter(|&&c| matches!(c, '\u{3041}'..='\u{30ff}' | '\u{3400}'..='\u{9fff}'))
        .count()
}

/// The share of the training loss carried by legitimate examples. Above one half, text unlike anything the model
/// has seen (a drug order, a JSON piece, a phrasing of care no one wrote down) leans to legitimate: the classifier is
/// a second opinion, and where it has no evidence the rules should decide, not a prior that calls it harm.
pub const LEGITIMATE_SHARE: f32 = 0.9;

/// Train on (text, category) pairs: [`LEGITIMATE`] first, harm categories sorted, and legitimate and harmful
/// examples weighted by [`LEGITIMATE_SHARE`], not by their counts, so that twelve harm classes do not outvote the
/// legitimate half that over-refusal is measured on.
pub fn train(examples: &[(String, String)], cfg: &TrainConfig) -> Classifier {
    train_weighted(examples, cfg, LEGITIMATE_SHARE)
}

/// The trainers' experiment switches, `--epochs N --l2 X --share S`, over the shipped settings (`default_share` is
/// the classifier's own legitimate share): both trainers must read them alike, or an experiment on one classifier
/// would not be repeatable on the other.
pub fn experiment_settings(args: &[String], default_share: f32) -> (TrainConfig, f32) {
    let opt = |k: &str| number_after(args, k);
    let mut cfg = TrainConfig::default();
    if let Some(e) = opt("--epochs") {
        cfg.epochs = e as usize;
    }
    if let Some(l) = opt("--l2") {
        cfg.l2 = l;
    }
    (cfg, opt("--share").unwrap_or(default_share))
}

/// The trainers' `--show-at T`: also list the development texts scored at or above `T`, for whoever edits the
/// data (they are synthetic, so printing them is fine). Not given: list none beyond the trainer's own report.
pub fn show_at(args: &[String]) -> f32 {
    number_after(args, "--show-at").unwrap_or(f32::INFINITY)
}

/// Both trainers' threshold rule: among the thresholds `lowest`/100 ..= 0.99 (steps of 0.01) whose own false
/// alarms on development legitimate text (`own_false`) stay within `budget`, the highest whose development recall is
/// within `slack` of the best of them; 0.99 when none is within budget. The highest rather than the lowest: when
/// development recall saturates, a lower threshold spends the budget on nothing, and text unlike the development
/// set pays for it.
pub fn choose_threshold(
    lowest: u32,
    budget: f64,
    slack: f64,
    own_false: impl Fn(f32) -> f64,
    recall: impl Fn(f32) -> f64,
) -> f32 {
    let feasible: Vec<f32> = (lowest..=99)
        .map(|i| i as f32 / 100.0)
        .filter(|&t| own_false(t) <= budget)
        .collect();
    let best = feasible.iter().map(|&t| recall(t)).fold(0.0, f64::max);
    feasible
        .iter()
        .copied()
        .rfind(|&t| recall(t) >= best - slack)
        .unwrap_or(0.99)
}

/// The number after the option `name`, if given and a number.
fn number_after(args: &[String], name: &str) -> Option<f32> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse::<f32>().ok())
}

/// As [`train`], with the legitimate share of the loss given (for the trainer's experiments).
pub fn train_weighted(
    examples: &[(String, String)],
    cfg: &TrainConfig,
    legitimate_share: f32,
) -> Classifier {
    let mut classes: Vec<String> = vec![LEGITIMATE.to_string()];
    for (_, c) in examples {
        if !classes.contains(c) {
            classes.push(c.clone());
        }
    }
    classes[1..].sort();
    let data: Vec<(String, usize)> = examples
        .iter()
        .map(|(t, c)| (t.clone(), classes.iter().position(|x| x == c).unwrap()))
        .collect();
    let n = data.len() as f32;
    let n_legit = data.iter().filter(|d| d.1 == 0).count().max(1) as f32;
    let n_harm = (n - n_legit).max(1.0);
    let weight: Vec<f32> = (0..classes.len())
        .map(|c| {
            if c == 0 {
                n * legitimate_share / n_legit
            } else {
                n * (1.0 - legitimate_share) / n_harm
            }
        })
        .collect();
    Classifier(ngram::train(&data, classes, &weight, cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule on made-up curves: own false alarms fall as the threshold rises, recall falls later.
    #[test]
    fn the_threshold_is_the_highest_near_the_best_recall_within_budget() {
        let fp = |t: f32| if t < 0.30 { 0.02 } else { 0.0 };
        let recall = |t: f32| {
            if t < 0.50 {
                0.96
            } else if t < 0.60 {
                0.955
            } else {
                0.90
            }
        };
        // Within budget from 0.30; best recall 0.96; within one point up to 0.59.
        assert_eq!(choose_threshold(20, 0.01, 0.01, fp, recall), 0.59);
        // No slack: the highest reaching 0.96 itself.
        assert_eq!(choose_threshold(20, 0.01, 0.0, fp, recall), 0.49);
        // Nothing within budget.
        assert_eq!(choose_threshold(20, 0.001, 0.01, |_| 0.02, recall), 0.99);
    }

    #[test]
    fn training_is_deterministic_and_round_trips() {
        let ex: Vec<(String, String)> = [
            ("記録を書き換えておいて。", "falsification"),
            ("記録を訂正履歴つきで修正した。", LEGITIMATE),
            ("説明せずに手術を進めましょう。", "consent_bypass"),
            ("説明し同意を得て手術した。", LEGITIMATE),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let cfg = TrainConfig {
            epochs: 5,
            ..TrainConfig::default()
        };
        let a = train(&ex, &cfg).to_bytes();
        assert_eq!(a, train(&ex, &cfg).to_bytes());
        let m = Classifier::from_bytes(&a).unwrap();
        assert_eq!(m.to_bytes(), a);
        assert_eq!(
            m.score("記録を書き換えておいて。").category,
            "falsification"
        );
    }
}
