//! A small learned text classifier: multinomial logistic regression on hashed character n-grams.
//!
//! Rules catch the phrasings someone thought of; text written by people who never saw them (a new ward's style, a
//! speech recogniser's run-on output, a euphemism) needs a second opinion that generalises from examples. Character
//! n-grams need no word segmenter for Japanese, cost a few microseconds per sentence and make a model small enough to
//! ship in the repository, so the model runs offline next to the rules rather than replacing them. Two models use
//! it: the guard's harm classifier (karte-guard) and the clause-role fallback (`classify`).
//!
//! Text is width-folded with the same normaliser as the rules (NFKC-like), so ５ｍｇ and 5mg are one feature.
//! Training is deterministic (seeded order), so the same data and settings give the same bytes; weights are stored
//! sparse and quantised together with the decision threshold the trainer chose.

use crate::normalize::normalize;

/// Hash buckets: 2^18 keeps collisions rare for a few hundred thousand distinct n-grams while the stored file only
/// holds the buckets that training touched.
pub const DIM_BITS: u32 = 18;
const DIM: usize = 1 << DIM_BITS;
const MAGIC: &[u8; 4] = b"KHC1";

/// Hashed character 1–3-grams of normalised text, with boundary marks so that a text's first and last characters
/// count as context; values are 1/√n so that long and short texts weigh alike. Whitespace and ASCII punctuation are
/// dropped: the stream guard judges JSON pieces (`{"plan":[{"text":"…`), a transcript's spacing is the
/// recogniser's, and neither says what a text means.
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

/// A trained model: dense weights (classes × buckets) for scoring, with the threshold its trainer chose.
#[derive(Clone)]
pub struct Model {
    pub classes: Vec<String>,
    pub threshold: f32,
    bias: Vec<f32>,
    /// Row-major by bucket: `w[bucket * classes + class]`.
    w: Vec<f32>,
}

impl Model {
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

    /// The most probable class and its probability.
    pub fn best(&self, text: &str) -> (&str, f32) {
        let p = self.probabilities(text);
        let (c, p) = self
            .classes
            .iter()
            .zip(p)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("a model has classes");
        (c.as_str(), p)
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

    pub fn from_bytes(b: &[u8]) -> Result<Model, String> {
        let mut r = Reader { b, at: 0 };
        if r.take(4)? != MAGIC {
            return Err("not a karte n-gram model (magic)".into());
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
        Ok(Model {
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

/// Training settings; the defaults are what the shipped models were trained with.
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

/// Train by AdaGrad on the softmax loss, one example at a time in a seeded order, so the same data and settings
/// give the same bytes. `examples` are (text, index into `classes`); `weight[c]` scales the loss of class `c`'s
/// examples, so that a caller can balance classes by share rather than by count. The threshold starts at 0.5; the
/// caller chooses its own on development data.
pub fn train(
    examples: &[(String, usize)],
    classes: Vec<String>,
    weight: &[f32],
    cfg: &TrainConfig,
) -> Model {
    let k = classes.len();
    assert_eq!(weight.len(), k, "one weight per class");
    let data: Vec<(Vec<(u32, f32)>, usize)> = examples
        .iter()
        .map(|(t, c)| {
            assert!(*c < k, "class index out of range");
            (features(t), *c)
        })
        .collect();
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
            let sw = weight[*y];
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
    Model {
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
        let ex: Vec<(String, usize)> = [
            ("体温は38度5分", 1),
            ("脈拍は百二十", 1),
            ("咳が3日前から続いている", 0),
            ("痰が絡むとのこと", 0),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), *b))
        .collect();
        let cfg = TrainConfig {
            epochs: 5,
            ..TrainConfig::default()
        };
        let classes = vec!["S".to_string(), "O".to_string()];
        let a = train(&ex, classes.clone(), &[1.0, 1.0], &cfg).to_bytes();
        assert_eq!(a, train(&ex, classes, &[1.0, 1.0], &cfg).to_bytes());
        let m = Model::from_bytes(&a).unwrap();
        assert_eq!(m.to_bytes(), a);
        assert_eq!(m.best("体温は37度8分").0, "O");
        assert!(Model::from_bytes(&a[..a.len() - 3]).is_err());
    }
}
