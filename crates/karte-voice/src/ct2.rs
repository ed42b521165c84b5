//! Reading CTranslate2's `model.bin` (format version 6, the one faster-whisper ships) straight into candle tensors.
//!
//! Reading the registry's file as it is avoids a conversion step at fetch time and a second 145 MB copy on disk; the
//! sha256 in the manifest then covers exactly the bytes that are run. CTranslate2 fuses Whisper's q/k/v (and the
//! cross-attention k/v) into one matrix; candle's Whisper wants them apart, so they are split here by rows.

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::whisper::Config;
use std::collections::HashMap;

/// Parse failures are reported as a plain string; the caller wraps them in a `model.load_failed` error.
type R<T> = std::result::Result<T, String>;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or("model.bin is truncated")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> R<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> R<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    /// Length-prefixed, NUL-terminated.
    fn string(&mut self) -> R<String> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        String::from_utf8(b.to_vec()).map_err(|_| "model.bin has a non-UTF-8 name".to_string())
    }
}

/// Every variable of a CTranslate2 model, named as CTranslate2 names them. Scalars (flags such as `pre_norm`) are
/// kept as raw bytes; tensors as f32.
pub struct Ct2Model {
    pub tensors: HashMap<String, Tensor>,
    pub scalars: HashMap<String, Vec<u8>>,
}

pub fn read(bytes: &[u8]) -> R<Ct2Model> {
    let mut c = Cursor { buf: bytes, pos: 0 };
    let version = c.u32()?;
    if version != 6 {
        return Err(format!("model.bin format version {version} (expected 6)"));
    }
    let spec = c.string()?;
    if spec != "WhisperSpec" {
        return Err(format!("model.bin holds a {spec}, not a Whisper model"));
    }
    let _revision = c.u32()?;
    let count = c.u32()?;
    let mut tensors = HashMap::new();
    let mut scalars = HashMap::new();
    for _ in 0..count {
        let name = c.string()?;
        let rank = c.u8()? as usize;
        let dims = (0..rank)
            .map(|_| c.u32().map(|d| d as usize))
            .collect::<R<Vec<_>>>()?;
        let dtype = c.u8()?;
        let nbytes = c.u32()? as usize;
        let data = c.take(nbytes)?;
        if rank == 0 {
            scalars.insert(name, data.to_vec());
            continue;
        }
        // CTranslate2's DataType enum: 0 float32, 4 float16, 5 bfloat16 (int8 models would need dequantising).
        let dt = match dtype {
            0 => DType::F32,
            4 => DType::F16,
            5 => DType::BF16,
            other => return Err(format!("{name}: unsupported CTranslate2 dtype {other}")),
        };
        let t = Tensor::from_raw_buffer(data, dt, &dims, &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| format!("{name}: {e}"))?;
        tensors.insert(name, t);
    }
    let aliases = c.u32()?;
    for _ in 0..aliases {
        let alias = c.string()?;
        let target = c.string()?;
        if let Some(t) = tensors.get(&target).cloned() {
            tensors.insert(alias, t);
        }
    }
    Ok(Ct2Model { tensors, scalars })
}

impl Ct2Model {
    fn get(&self, name: &str) -> R<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| format!("model.bin lacks {name}"))
    }

    fn layers(&self, prefix: &str) -> usize {
        (0..)
            .take_while(|i| {
                self.tensors
                    .contains_key(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))
            })
            .count()
    }

    fn heads(&self, name: &str, fallback: usize) -> usize {
        match self.scalars.get(name).map(|b| b.as_slice()) {
            Some([a, b]) => u16::from_le_bytes([*a, *b]) as usize,
            Some([a, b, c, d]) => u32::from_le_bytes([*a, *b, *c, *d]) as usize,
            _ => fallback,
        }
    }

    /// candle's Whisper configuration, read off the tensor shapes so that another Whisper size loads unchanged.
    pub fn config(&self, suppress_tokens: Vec<u32>) -> R<Config> {
        let conv1 = self.get("encoder/conv1/weight")?.dims().to_vec();
        let emb = self.get("decoder/embeddings/weight")?.dims().to_vec();
        let enc_pos = self
            .get("encoder/position_encodings/encodings")?
            .dims()
            .to_vec();
        let dec_pos = self
            .get("decoder/position_encodings/encodings")?
            .dims()
            .to_vec();
        let d_model = emb[1];
        Ok(Config {
            num_mel_bins: conv1[1],
            max_source_positions: enc_pos[0],
            d_model,
            encoder_attention_heads: self.heads("encoder/num_heads", d_model / 64),
            encoder_layers: self.layers("encoder"),
            vocab_size: emb[0],
            max_target_positions: dec_pos[0],
            decoder_attention_heads: self.heads("decoder/num_heads", d_model / 64),
            decoder_layers: self.layers("decoder"),
            suppress_tokens,
        })
    }

    /// The tensors under the names candle's (Hugging Face-style) Whisper loads.
    pub fn into_candle(self, cfg: &Config) -> R<HashMap<String, Tensor>> {
        let d = cfg.d_model;
        let mut out = HashMap::new();
        let mut put = |k: String, t: Tensor| {
            out.insert(k, t);
        };
        let rows = |t: &Tensor, i: usize| t.narrow(0, i * d, d).map_err(|e| e.to_string());
        let e = "model.encoder";
        put(
            format!("{e}.conv1.weight"),
            self.get("encoder/conv1/weight")?.clone(),
        );
        put(
            format!("{e}.conv1.bias"),
            self.get("encoder/conv1/bias")?.clone(),
        );
        put(
            format!("{e}.conv2.weight"),
            self.get("encoder/conv2/weight")?.clone(),
        );
        put(
            format!("{e}.conv2.bias"),
            self.get("encoder/conv2/bias")?.clone(),
        );
        put(
            format!("{e}.layer_norm.weight"),
            self.get("encoder/layer_norm/gamma")?.clone(),
        );
        put(
            format!("{e}.layer_norm.bias"),
            self.get("encoder/layer_norm/beta")?.clone(),
        );
        let dm = "model.decoder";
        put(
            format!("{dm}.embed_tokens.weight"),
            self.get("decoder/embeddings/weight")?.clone(),
        );
        put(
            format!("{dm}.embed_positions.weight"),
            self.get("decoder/position_encodings/encodings")?.clone(),
        );
        put(
            format!("{dm}.layer_norm.weight"),
            self.get("decoder/layer_norm/gamma")?.clone(),
        );
        put(
            format!("{dm}.layer_norm.bias"),
            self.get("decoder/layer_norm/beta")?.clone(),
        );

        let blocks = [
            ("encoder", e, cfg.encoder_layers),
            ("decoder", dm, cfg.decoder_layers),
        ];
        for (side, cname, n) in blocks {
            for i in 0..n {
                let src = format!("{side}/layer_{i}");
                let dst = format!("{cname}.layers.{i}");
                let ln = |from: &str, to: &str, put: &mut dyn FnMut(String, Tensor)| -> R<()> {
                    put(
                        format!("{dst}.{to}.weight"),
                        self.get(&format!("{src}/{from}/gamma"))?.clone(),
                    );
                    put(
                        format!("{dst}.{to}.bias"),
                        self.get(&format!("{src}/{from}/beta"))?.clone(),
                    );
                    Ok(())
                };
                let lin = |from: &str, to: &str, put: &mut dyn FnMut(String, Tensor)| -> R<()> {
                    put(
                        format!("{dst}.{to}.weight"),
                        self.get(&format!("{src}/{from}/weight"))?.clone(),
                    );
                    put(
                        format!("{dst}.{to}.bias"),
                        self.get(&format!("{src}/{from}/bias"))?.clone(),
                    );
                    Ok(())
                };
                ln(
                    "self_attention/layer_norm",
                    "self_attn_layer_norm",
                    &mut put,
                )?;
                ln("ffn/layer_norm", "final_layer_norm", &mut put)?;
                lin("ffn/linear_0", "fc1", &mut put)?;
                lin("ffn/linear_1", "fc2", &mut put)?;
                lin("self_attention/linear_1", "self_attn.out_proj", &mut put)?;
                // Fused q|k|v rows; Whisper's k projection has no bias (CTranslate2 stores zeros there).
                let w = self.get(&format!("{src}/self_attention/linear_0/weight"))?;
                let b = self.get(&format!("{src}/self_attention/linear_0/bias"))?;
                put(format!("{dst}.self_attn.q_proj.weight"), rows(w, 0)?);
                put(format!("{dst}.self_attn.q_proj.bias"), rows(b, 0)?);
                put(format!("{dst}.self_attn.k_proj.weight"), rows(w, 1)?);
                put(format!("{dst}.self_attn.v_proj.weight"), rows(w, 2)?);
                put(format!("{dst}.self_attn.v_proj.bias"), rows(b, 2)?);
                if side == "decoder" {
                    ln("attention/layer_norm", "encoder_attn_layer_norm", &mut put)?;
                    lin("attention/linear_0", "encoder_attn.q_proj", &mut put)?;
                    lin("attention/linear_2", "encoder_attn.out_proj", &mut put)?;
                    let w = self.get(&format!("{src}/attention/linear_1/weight"))?;
                    let b = self.get(&format!("{src}/attention/linear_1/bias"))?;
                    put(format!("{dst}.encoder_attn.k_proj.weight"), rows(w, 0)?);
                    put(format!("{dst}.encoder_attn.v_proj.weight"), rows(w, 1)?);
                    put(format!("{dst}.encoder_attn.v_proj.bias"), rows(b, 1)?);
                }
            }
        }
        Ok(out)
    }
}
