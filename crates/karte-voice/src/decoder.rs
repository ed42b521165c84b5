//! Whisper's text decoder with a key/value cache, so that each decoding step runs one new token.
//!
//! candle's Whisper decoder caches only the cross-attention keys/values and re-runs the whole token sequence (the
//! ~200-token lexicon prompt plus everything sampled so far) through self-attention at every step: decoding cost
//! grew with the square of the length and dominated transcription time. Here the self-attention keys/values of the
//! tokens already seen are kept per layer, and the cross-attention keys/values of the encoder output are computed
//! once per 30-second window ([`Decoder::start`]). The weights are the same tensors candle's model holds (shared,
//! not copied); the arithmetic is the same per token, so a transcript does not change (tests/transcribe.rs checks
//! it against candle's uncached decoder on a real clip).

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear};
use std::collections::HashMap;

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
}

struct Block {
    attn_ln: LayerNorm,
    attn: Attention,
    cross_ln: LayerNorm,
    cross: Attention,
    mlp_ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

pub(crate) struct Decoder {
    embed: Embedding,
    positions: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
    n_head: usize,
    /// Whisper scales queries and keys each by `head_dim^-0.25` (their product by `head_dim^-0.5`).
    scale: f64,
}

/// Per-window decoding state: the cross-attention keys/values of this window's audio, and the self-attention
/// keys/values of every token fed so far (heads split: `1 × heads × tokens × head_dim`).
pub(crate) struct State {
    cross: Vec<(Tensor, Tensor)>,
    past: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl State {
    /// Tokens already fed (the position of the next one).
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Decoder {
    /// Build from the tensors under candle's Whisper names (`model.decoder.*`), as [`crate::ct2`] produces them.
    pub(crate) fn new(
        t: &HashMap<String, Tensor>,
        layers: usize,
        n_head: usize,
        d_model: usize,
    ) -> std::result::Result<Self, String> {
        let get = |k: &str| {
            t.get(k)
                .cloned()
                .ok_or_else(|| format!("model.bin lacks {k}"))
        };
        let p = "model.decoder";
        let ln = |name: &str| -> std::result::Result<LayerNorm, String> {
            Ok(LayerNorm::new(
                get(&format!("{name}.weight"))?,
                get(&format!("{name}.bias"))?,
                1e-5,
            ))
        };
        let lin = |name: &str, bias: bool| -> std::result::Result<Linear, String> {
            let b = if bias {
                Some(get(&format!("{name}.bias"))?)
            } else {
                None
            };
            Ok(Linear::new(get(&format!("{name}.weight"))?, b))
        };
        let attn = |name: &str| -> std::result::Result<Attention, String> {
            Ok(Attention {
                q: lin(&format!("{name}.q_proj"), true)?,
                k: lin(&format!("{name}.k_proj"), false)?,
                v: lin(&format!("{name}.v_proj"), true)?,
                out: lin(&format!("{name}.out_proj"), true)?,
            })
        };
        let blocks = (0..layers)
            .map(|i| {
                let b = format!("{p}.layers.{i}");
                Ok(Block {
                    attn_ln: ln(&format!("{b}.self_attn_layer_norm"))?,
                    attn: attn(&format!("{b}.self_attn"))?,
                    cross_ln: ln(&format!("{b}.encoder_attn_layer_norm"))?,
                    cross: attn(&format!("{b}.encoder_attn"))?,
                    mlp_ln: ln(&format!("{b}.final_layer_norm"))?,
                    fc1: lin(&format!("{b}.fc1"), true)?,
                    fc2: lin(&format!("{b}.fc2"), true)?,
                })
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        Ok(Decoder {
            embed: Embedding::new(get(&format!("{p}.embed_tokens.weight"))?, d_model),
            positions: get(&format!("{p}.embed_positions.weight"))?,
            blocks,
            ln: ln(&format!("{p}.layer_norm"))?,
            n_head,
            scale: ((d_model / n_head) as f64).powf(-0.25),
        })
    }

    /// `1 × tokens × d` → `1 × heads × tokens × head_dim`.
    fn heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        x.reshape((b, n, self.n_head, d / self.n_head))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Start a window: the cross-attention keys/values of the encoder output `features` (`1 × frames × d`), once.
    pub(crate) fn start(&self, features: &Tensor) -> Result<State> {
        let cross = self
            .blocks
            .iter()
            .map(|b| {
                let k = (self.heads(&b.cross.k.forward(features)?)? * self.scale)?;
                let v = self.heads(&b.cross.v.forward(features)?)?;
                Ok((k, v))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(State {
            past: vec![None; self.blocks.len()],
            cross,
            len: 0,
        })
    }

    /// Feed `tokens` (the prompt at the first call, then one sampled token per call) and return the final hidden
    /// states of these tokens (`1 × tokens × d`, after the last layer norm).
    pub(crate) fn forward(&self, state: &mut State, tokens: &[u32]) -> Result<Tensor> {
        let n = tokens.len();
        let offset = state.len;
        let ids = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
        let pos = self.positions.narrow(0, offset, n)?;
        let mut x = self.embed.forward(&ids)?.broadcast_add(&pos)?;
        // Causal mask over [past | new] keys, needed only when several tokens come at once (the prompt).
        let mask = if n > 1 {
            let total = offset + n;
            let m: Vec<f32> = (0..n)
                .flat_map(|i| {
                    (0..total).map(move |j| {
                        if j > offset + i {
                            f32::NEG_INFINITY
                        } else {
                            0.0
                        }
                    })
                })
                .collect();
            Some(Tensor::from_vec(m, (n, total), &Device::Cpu)?)
        } else {
            None
        };
        for (i, b) in self.blocks.iter().enumerate() {
            // Self-attention over the cached keys/values plus the new tokens'.
            let h = b.attn_ln.forward(&x)?;
            let q = (self.heads(&b.attn.q.forward(&h)?)? * self.scale)?;
            let k_new = (self.heads(&b.attn.k.forward(&h)?)? * self.scale)?;
            let v_new = self.heads(&b.attn.v.forward(&h)?)?;
            let (k, v) = match state.past[i].take() {
                Some((k0, v0)) => (
                    Tensor::cat(&[&k0, &k_new], 2)?,
                    Tensor::cat(&[&v0, &v_new], 2)?,
                ),
                None => (k_new, v_new),
            };
            let a = attend(&q, &k, &v, mask.as_ref())?;
            state.past[i] = Some((k, v));
            x = (x + b.attn.out.forward(&a)?)?;
            // Cross-attention on the window's audio.
            let h = b.cross_ln.forward(&x)?;
            let q = (self.heads(&b.cross.q.forward(&h)?)? * self.scale)?;
            let (k, v) = &state.cross[i];
            let a = attend(&q, k, v, None)?;
            x = (x + b.cross.out.forward(&a)?)?;
            let h = b.mlp_ln.forward(&x)?;
            x = (&x + b.fc2.forward(&b.fc1.forward(&h)?.gelu()?)?)?;
        }
        state.len += n;
        self.ln.forward(&x)
    }

    /// Logits of one hidden state row (`d`) over the vocabulary: Whisper ties the output projection to the token
    /// embedding.
    pub(crate) fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let w = self.embed.embeddings();
        hidden.unsqueeze(0)?.matmul(&w.t()?)?.squeeze(0)
    }
}

/// Scaled dot-product attention on pre-scaled, head-split `q` and `k`; returns `1 × tokens × d`.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let mut qk = q.matmul(&k.t()?.contiguous()?)?;
    if let Some(m) = mask {
        qk = qk.broadcast_add(m)?;
    }
    let w = candle_nn::ops::softmax_last_dim(&qk.to_dtype(DType::F32)?)?;
    w.matmul(v)?.transpose(1, 2)?.flatten_from(D::Minus2)
}
