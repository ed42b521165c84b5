//! A learned second opinion on harmful output: multinomial logistic regression on hashed character n-grams.
//!
//! The rules in policy.toml catch the phrasings someone thought of; on text written by people who never saw them
//! they miss most euphemism, role-play framing and indirect requests (issue 16). Character n-grams need no word
//! segmenter for Japanese, cost a few microseconds per sentence and make a model small enough to ship in the
//! repository, so the classifier runs offline on the workstation next to the rules rather than replacing them.
//!
//! Text is width-folded with the same normaliser as the rules (NFKC-like), so ５ｍｇ and 5mg are one feature.
//! Weights are trained by `cargo run -p karte-guard --example train_harm` (deterministic) and stored sparse and
//! quantised in assets/guard/harm_classifier.bin together with the decision threshold chosen on the development
//! set; an empty file means "no classifier" so that the crate still builds before the first training.

use karte_core::normalize::normalize;
use std::sync::LazyLock;

/// Hash buckets: 2^18 keeps collisions rare for a few hundred thousand distinct n-grams while the stored file only
/// holds the buckets that training touched.
pub const DIM_BITS: u32 = 18;
const DIM: usize = 1 << DIM_BITS;
/// The class that is not harm. Every other class is a harm category id as in policy.toml.
pub const LEGITIMATE: &str = "legitimate";
const MAGIC: &[u8; 4] = b"KHC1";

/// Hashed character 1–3-grams of normalised text, with boundary marks so that a sentence's first and last
/// characters count as context; values are 1/√n so that long and short sentences weigh alike. ASCII punctuation is
/// dropped: the stream guard judges JSON pieces (`{"plan":[{"text":"…`), and brackets and quotes say nothing of
/// intent but would make every piece look unlike the training text.
pub fn features(text: &str) -> Vec<(u32, f32)> {
    let norm = normalize(text);
    let mut cs: Vec<char> = Vec::with_capacity(norm.chars().len() + 2);
    cs.push('\u{2}');
    cs.extend(
        norm.chars()
            .iter()
            .filter(|c| !c.is_whitespace() && !c.is_ascii_punctuation()),
    );
    cs.push('\u{3}');
    let mut idx: Vec<u32> = Vec::with_capacity(cs.len() * 3);
    for n in 1..=3usize {
        for w in cs.windows(n) {
            let mut h: u32 = 0x811c_9dc5 ^ (n as u32);
            for &c in w {
                h ^= c as u32;
                h = h.wrapping_mul(0x0100_0193);
                h ^= h >> 15;
            }
            idx.push(h & (DIM as u32 - 1));
        }
    }
    idx.sort_unstable();
    let mut out: Vec<(u32, f32)> = Vec::with_capacity(idx.len());
    for i in idx {
        match out.last_mut() {
            Some((j, v)) if *j == i => *v += 1.0,
            _ => out.push((i, 1.0)),
        }
    }
    let norm2: f32 = out.iter().map(|(_, v)| v * v).sum::<f32>().sqrt().max(1e-6);
    for (_, v) in &mut out {
        *v /= norm2;
    }
    out
}

/// A trained model: dense weights (classes × buckets) for scoring, with the threshold chosen on the dev set.
pub struct Classifier {
    pub classes: Vec<String>,
    pub threshold: f32,
    bias: Vec<f32>,
    /// Row-major by bucket: `w[bucket * classes + class]`.
    w: Vec<f32>,
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

    /// Class probabilities (softmax), in the order of `classes`.
    pub fn probabilities(&self, text: &str) -> Vec<f32> {
        let k = self.classes.len();
        let mut z = self.bias.clone();
        for (i, v) in features(text) {
            let row = &self.w[i as usize * k..(i as usize + 1) * k];
            for (zc, wc) in z.iter_mut().zip(row) {
                *zc += wc * v;
            }
        }
        softmax(&mut z);
        z
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
            .filter(|(c, _)| *c != LEGITIMATE)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("a model has harm classes");
        let legit: f32 = self
            .classes
            .iter()
            .zip(&p)
            .filter(|(c, _)| *c == LEGITIMATE)
            .map(|(_, p)| *p)
            .sum();
        Score {
            category: c.clone(),
            probability: 1.0 - legit,
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

    /// Sparse, per-class quantised (i8) storage: only buckets that training touched are written, which keeps the
    /// shipped file small without losing precision that matters for a threshold decision.
    pub fn to_bytes(&self) -> Vec<u8> {
        let k = self.classes.len();
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&DIM_BITS.to_le_bytes());
        out.extend_from_slice(&(k as u32).to_le_bytes());
        out.extend_from_slice(&self.threshold.to_le_bytes());
        for c in &self.classes {
            out.extend_from_slice(&(c.len() as u16).to_le_bytes());
            out.extend_from_slice(c.as_bytes());
        }
        let scale: Vec<f32> = (0..k)
            .map(|c| {
                let m = (0..DIM)
                    .map(|i| self.w[i * k + c].abs())
                    .fold(0.0f32, f32::max);
                if m > 0.0 {
                    m / 127.0
                } else {
                    1.0
                }
            })
            .collect();
        for (b, sc) in self.bias.iter().zip(&scale) {
            out.extend_from_slice(&b.to_le_bytes());
            out.extend_from_slice(&sc.to_le_bytes());
        }
        let rows: Vec<(usize, Vec<i8>)> = (0..DIM)
            .filter_map(|i| {
                let q: Vec<i8> = (0..k)
                    .map(|c| (self.w[i * k + c] / scale[c]).round().clamp(-127.0, 127.0) as i8)
                    .collect();
                q.iter().any(|&x| x != 0).then_some((i, q))
            })
            .collect();
        out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
        for (i, q) in rows {
            out.extend_from_slice(&(i as u32).to_le_bytes());
            out.extend(q.iter().map(|&x| x as u8));
        }
        out
    }

    pub fn from_bytes(b: &[u8]) -> Result<Classifier, String> {
        let mut r = Reader { b, at: 0 };
        if r.take(4)? != MAGIC {
            return Err("not a karte harm classifier (magic)".into());
        }
        if r.u32()? != DIM_BITS {
            return Err("hash size differs from this build".into());
        }
        let k = r.u32()? as usize;
        let threshold = r.f32()?;
        let mut classes = Vec::with_capacity(k);
        for _ in 0..k {
            let n = u16::from_le_bytes(r.take(2)?.try_into().unwrap()) as usize;
            classes.push(String::from_utf8(r.take(n)?.to_vec()).map_err(|e| e.to_string())?);
        }
        let mut bias = Vec::with_capacity(k);
        let mut scale = Vec::with_capacity(k);
        for _ in 0..k {
            bias.push(r.f32()?);
            scale.push(r.f32()?);
        }
        let rows = r.u32()? as usize;
        let mut w = vec![0.0f32; DIM * k];
        for _ in 0..rows {
            let i = r.u32()? as usize;
            if i >= DIM {
                return Err("bucket out of range".into());
            }
            for (c, &q) in r.take(k)?.iter().enumerate() {
                w[i * k + c] = q as i8 as f32 * scale[c];
            }
        }
        Ok(Classifier {
            classes,
            threshold,
            bias,
            w,
        })
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self
            .b
            .get(self.at..self.at + n)
            .ok_or("weights file truncated")?;
        self.at += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn f32(&mut self) -> Result<f32, String> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().unwrap()))
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

fn softmax(z: &mut [f32]) {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0;
    for v in z.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    for v in z.iter_mut() {
        *v /= s;
    }
}

/// Training settings; the defaults are what the shipped model was trained with.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 40,
            learning_rate: 0.5,
            l2: 1e-5,
            seed: 16,
        }
    }
}

/// The share of the training loss carried by legitimate examples. Above one half, text unlike anything the model
/// has seen (a drug order, a JSON piece, a phrasing of care no one wrote down) leans to legitimate: the classifier is
/// a second opinion, and where it has no evidence the rules should decide, not a prior that calls it harm.
const LEGITIMATE_SHARE: f32 = 0.75;

/// Train by AdaGrad on the softmax loss, one example at a time in a seeded order, so the same data and settings
/// give the same bytes. Legitimate and harmful examples are weighted by [`LEGITIMATE_SHARE`], not by their counts,
/// so that twelve harm classes do not outvote the legitimate half that over-refusal is measured on.
pub fn train(examples: &[(String, String)], cfg: &TrainConfig) -> Classifier {
    let mut classes: Vec<String> = vec![LEGITIMATE.to_string()];
    for (_, c) in examples {
        if !classes.contains(c) {
            classes.push(c.clone());
        }
    }
    classes[1..].sort();
    let k = classes.len();
    let data: Vec<(Vec<(u32, f32)>, usize)> = examples
        .iter()
        .map(|(t, c)| (features(t), classes.iter().position(|x| x == c).unwrap()))
        .collect();
    let n_legit = data.iter().filter(|d| d.1 == 0).count().max(1) as f32;
    let n_harm = (data.len() as f32 - n_legit).max(1.0);
    let weight = |y: usize| {
        let n = data.len() as f32;
        if y == 0 {
            n * LEGITIMATE_SHARE / n_legit
        } else {
            n * (1.0 - LEGITIMATE_SHARE) / n_harm
        }
    };
    let mut w = vec![0.0f32; DIM * k];
    let mut g2 = vec![1e-8f32; DIM * k];
    let mut bias = vec![0.0f32; k];
    let mut bg2 = vec![1e-8f32; k];
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut rng = cfg.seed;
    for _ in 0..cfg.epochs {
        for i in (1..order.len()).rev() {
            rng = splitmix(rng);
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        for &j in &order {
            let (x, y) = &data[j];
            let mut z = bias.clone();
            for &(i, v) in x {
                for c in 0..k {
                    z[c] += w[i as usize * k + c] * v;
                }
            }
            softmax(&mut z);
            let sw = weight(*y);
            for c in 0..k {
                let err = (z[c] - if c == *y { 1.0 } else { 0.0 }) * sw;
                bg2[c] += err * err;
                bias[c] -= cfg.learning_rate * err / bg2[c].sqrt();
                for &(i, v) in x {
                    let p = i as usize * k + c;
                    let g = err * v + cfg.l2 * w[p];
                    g2[p] += g * g;
                    w[p] -= cfg.learning_rate * g / g2[p].sqrt();
                }
            }
        }
    }
    Classifier {
        classes,
        threshold: 0.5,
        bias,
        w,
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_variants_share_features() {
        assert_eq!(features("ＡＢＣ５ｍｇ"), features("ABC5mg"));
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
