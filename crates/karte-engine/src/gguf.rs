//! A minimal GGUF header reader used *before* llama.cpp sees the file.
//!
//! llama.cpp reports a cut or foreign file only as a null model plus a log line, and a file that is too large for RAM
//! is only noticed when the machine starts swapping. Reading the header ourselves lets us tell the nurse which of the
//! three it is, and gives the shape numbers (layers, KV heads, vocabulary) that the memory estimate needs.
//!
//! Everything here is bounded by the file length, so a garbage file cannot make us allocate or loop without limit.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

pub(crate) const MAGIC: &[u8; 4] = b"GGUF";

/// Why a header could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// The file ends before the header (or the tensor data it announces) does.
    Truncated,
    /// The bytes are not a GGUF header this reader understands.
    Invalid(&'static str),
}

/// A scalar metadata value; arrays are skipped, only their length is kept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Meta {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    ArrayLen(u64),
}

impl Meta {
    fn as_u64(&self) -> Option<u64> {
        match *self {
            Meta::Uint(v) => Some(v),
            Meta::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) meta: HashMap<String, Meta>,
    /// Bytes the file must at least have to hold every tensor the header announces.
    pub(crate) required_len: u64,
}

/// Model shape numbers relevant to memory use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) n_layer: u64,
    pub(crate) n_head: u64,
    pub(crate) n_head_kv: u64,
    pub(crate) k_dim: u64,
    pub(crate) v_dim: u64,
    pub(crate) n_vocab: u64,
}

impl Header {
    fn get_u64(&self, key: &str) -> Option<u64> {
        self.meta.get(key).and_then(Meta::as_u64)
    }

    pub(crate) fn shape(&self) -> Option<Shape> {
        let arch = match self.meta.get("general.architecture") {
            Some(Meta::Str(a)) => a.clone(),
            _ => return None,
        };
        let n_layer = self.get_u64(&format!("{arch}.block_count"))?;
        let n_embd = self.get_u64(&format!("{arch}.embedding_length"))?;
        let n_head = self
            .get_u64(&format!("{arch}.attention.head_count"))?
            .max(1);
        let n_head_kv = self
            .get_u64(&format!("{arch}.attention.head_count_kv"))
            .unwrap_or(n_head);
        let k_dim = self
            .get_u64(&format!("{arch}.attention.key_length"))
            .unwrap_or(n_embd / n_head);
        let v_dim = self
            .get_u64(&format!("{arch}.attention.value_length"))
            .unwrap_or(k_dim);
        let n_vocab = match self.meta.get("tokenizer.ggml.tokens") {
            Some(Meta::ArrayLen(n)) => *n,
            _ => self.get_u64(&format!("{arch}.vocab_size")).unwrap_or(0),
        };
        Some(Shape {
            n_layer,
            n_head,
            n_head_kv,
            k_dim,
            v_dim,
            n_vocab,
        })
    }
}

/// Reads only the four magic bytes: enough to tell "not a model at all" from "a model we may not fit".
pub(crate) fn check_magic(path: &Path) -> io::Result<Result<(), HeaderError>> {
    let mut f = File::open(path)?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match f.read(&mut magic[got..])? {
            0 => return Ok(Err(HeaderError::Truncated)),
            n => got += n,
        }
    }
    Ok(if &magic == MAGIC {
        Ok(())
    } else {
        Err(HeaderError::Invalid("magic"))
    })
}

/// Parses the header and tensor table of a GGUF file.
pub(crate) fn read_header(path: &Path) -> io::Result<Result<Header, HeaderError>> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut r = Reader {
        inner: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        file_len,
    };
    Ok(r.header())
}

struct Reader {
    inner: BufReader<File>,
    pos: u64,
    file_len: u64,
}

type R<T> = Result<T, HeaderError>;

impl Reader {
    fn bytes<const N: usize>(&mut self) -> R<[u8; N]> {
        let mut b = [0u8; N];
        self.inner
            .read_exact(&mut b)
            .map_err(|_| HeaderError::Truncated)?;
        self.pos += N as u64;
        Ok(b)
    }
    fn u32(&mut self) -> R<u32> {
        self.bytes::<4>().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> R<u64> {
        self.bytes::<8>().map(u64::from_le_bytes)
    }
    fn skip(&mut self, n: u64) -> R<()> {
        if self
            .pos
            .checked_add(n)
            .is_none_or(|end| end > self.file_len)
        {
            return Err(HeaderError::Truncated);
        }
        let n_i64 = i64::try_from(n).map_err(|_| HeaderError::Truncated)?;
        self.inner
            .seek(SeekFrom::Current(n_i64))
            .map_err(|_| HeaderError::Truncated)?;
        self.pos += n;
        Ok(())
    }
    /// Reads a length and checks it against what is left of the file, so garbage cannot request gigabytes.
    fn len(&mut self) -> R<u64> {
        let n = self.u64()?;
        if n > self.file_len.saturating_sub(self.pos) {
            return Err(HeaderError::Truncated);
        }
        Ok(n)
    }
    fn string(&mut self) -> R<String> {
        let n = self.len()?;
        if n > 1 << 20 {
            // Keys and the scalar values we keep are short; a long one is skipped, not stored.
            self.skip(n)?;
            return Ok(String::new());
        }
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|_| HeaderError::Truncated)?;
        self.pos += n;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn scalar_size(t: u32) -> Option<u64> {
        match t {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        }
    }

    fn value(&mut self, t: u32) -> R<Meta> {
        Ok(match t {
            0 => Meta::Uint(u64::from(self.bytes::<1>()?[0])),
            1 => Meta::Int(i64::from(i8::from_le_bytes(self.bytes::<1>()?))),
            2 => Meta::Uint(u64::from(u16::from_le_bytes(self.bytes::<2>()?))),
            3 => Meta::Int(i64::from(i16::from_le_bytes(self.bytes::<2>()?))),
            4 => Meta::Uint(u64::from(self.u32()?)),
            5 => Meta::Int(i64::from(i32::from_le_bytes(self.bytes::<4>()?))),
            6 => Meta::Float(f64::from(f32::from_le_bytes(self.bytes::<4>()?))),
            7 => Meta::Bool(self.bytes::<1>()?[0] != 0),
            8 => Meta::Str(self.string()?),
            9 => {
                let elem = self.u32()?;
                let count = self.u64()?;
                if let Some(size) = Self::scalar_size(elem) {
                    self.skip(count.checked_mul(size).ok_or(HeaderError::Truncated)?)?;
                } else if elem == 8 {
                    if count > self.file_len {
                        return Err(HeaderError::Truncated);
                    }
                    for _ in 0..count {
                        let n = self.len()?;
                        self.skip(n)?;
                    }
                } else {
                    return Err(HeaderError::Invalid("array type"));
                }
                Meta::ArrayLen(count)
            }
            10 => Meta::Uint(self.u64()?),
            11 => Meta::Int(i64::from_le_bytes(self.bytes::<8>()?)),
            12 => Meta::Float(f64::from_le_bytes(self.bytes::<8>()?)),
            _ => return Err(HeaderError::Invalid("value type")),
        })
    }

    fn header(&mut self) -> R<Header> {
        if &self.bytes::<4>()? != MAGIC {
            return Err(HeaderError::Invalid("magic"));
        }
        let version = self.u32()?;
        if !(2..=3).contains(&version) {
            return Err(HeaderError::Invalid("version"));
        }
        let n_tensors = self.u64()?;
        let n_kv = self.u64()?;
        // Each entry takes at least 8 bytes; more entries than that cannot fit in the file.
        if n_tensors > self.file_len / 8 || n_kv > self.file_len / 8 {
            return Err(HeaderError::Truncated);
        }
        let mut meta = HashMap::new();
        for _ in 0..n_kv {
            let key = self.string()?;
            let t = self.u32()?;
            let v = self.value(t)?;
            meta.insert(key, v);
        }
        // End of the tensor data relative to the data section. A tensor of a type we do not know still has to start
        // inside the file, so it contributes `offset + 1`: the result is a lower bound, never an over-estimate.
        let mut data_extent: u64 = 0;
        for _ in 0..n_tensors {
            let _name = self.string()?;
            let n_dims = self.u32()?;
            if n_dims > 8 {
                return Err(HeaderError::Invalid("tensor dims"));
            }
            let mut n_elems: u64 = 1;
            for _ in 0..n_dims {
                n_elems = n_elems.saturating_mul(self.u64()?);
            }
            let ty = self.u32()?;
            let offset = self.u64()?;
            let size = ggml_type_size(ty).map_or(1, |(blck, bytes)| {
                n_elems.div_ceil(blck).saturating_mul(bytes)
            });
            data_extent = data_extent.max(offset.saturating_add(size));
        }
        let alignment = meta
            .get("general.alignment")
            .and_then(Meta::as_u64)
            .filter(|a| *a > 0)
            .unwrap_or(32);
        let data_start = self.pos.div_ceil(alignment).saturating_mul(alignment);
        let required_len = if n_tensors == 0 {
            self.pos
        } else {
            data_start.saturating_add(data_extent)
        };
        if required_len > self.file_len {
            return Err(HeaderError::Truncated);
        }
        Ok(Header { meta, required_len })
    }
}

/// (elements per block, bytes per block) for the ggml tensor types found in common GGUF files.
fn ggml_type_size(t: u32) -> Option<(u64, u64)> {
    Some(match t {
        0 => (1, 4),     // F32
        1 => (1, 2),     // F16
        2 => (32, 18),   // Q4_0
        3 => (32, 20),   // Q4_1
        6 => (32, 22),   // Q5_0
        7 => (32, 24),   // Q5_1
        8 => (32, 34),   // Q8_0
        9 => (32, 36),   // Q8_1
        10 => (256, 84), // Q2_K
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        24 => (1, 1), // I8
        25 => (1, 2), // I16
        26 => (1, 4), // I32
        27 => (1, 8), // I64
        28 => (1, 8), // F64
        30 => (1, 2), // BF16
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gguf_bytes(kv: &[(&str, u32, Vec<u8>)], tensors: &[(&str, &[u64], u32, u64)]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        b.extend_from_slice(&(kv.len() as u64).to_le_bytes());
        for (k, t, v) in kv {
            b.extend_from_slice(&(k.len() as u64).to_le_bytes());
            b.extend_from_slice(k.as_bytes());
            b.extend_from_slice(&t.to_le_bytes());
            b.extend_from_slice(v);
        }
        for (name, dims, ty, off) in tensors {
            b.extend_from_slice(&(name.len() as u64).to_le_bytes());
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in *dims {
                b.extend_from_slice(&d.to_le_bytes());
            }
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&off.to_le_bytes());
        }
        b
    }

    fn str_val(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    #[test]
    fn reads_shape_and_detects_cut_tensor_data() {
        let kv = vec![
            ("general.architecture", 8, str_val("llama")),
            ("llama.block_count", 4, 2u32.to_le_bytes().to_vec()),
            ("llama.embedding_length", 4, 64u32.to_le_bytes().to_vec()),
            ("llama.attention.head_count", 4, 4u32.to_le_bytes().to_vec()),
            (
                "llama.attention.head_count_kv",
                4,
                2u32.to_le_bytes().to_vec(),
            ),
        ];
        let mut bytes = gguf_bytes(&kv, &[("w", &[64, 64], 0, 0)]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        // Header only: the 16 KiB tensor is missing.
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(
            read_header(&p).unwrap().unwrap_err(),
            HeaderError::Truncated
        );
        // Pad to alignment and add the tensor data.
        while bytes.len() % 32 != 0 {
            bytes.push(0);
        }
        bytes.extend(std::iter::repeat_n(0u8, 64 * 64 * 4));
        std::fs::File::create(&p)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        let h = read_header(&p).unwrap().unwrap();
        let s = h.shape().unwrap();
        assert_eq!((s.n_layer, s.n_head, s.n_head_kv, s.k_dim), (2, 4, 2, 16));
        assert_eq!(h.required_len, bytes.len() as u64);
    }

    #[test]
    fn garbage_is_invalid_or_truncated_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.gguf");
        let mut x: u32 = 0x1234_5678;
        for len in [0usize, 3, 4, 16, 100, 5000] {
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            if len >= 4 {
                b[..4].copy_from_slice(MAGIC);
            }
            std::fs::write(&p, &b).unwrap();
            assert!(read_header(&p).unwrap().is_err());
        }
    }
}
