//! Test-only: read the tokenizer metadata out of a GGUF v2/v3 file (the KV section only; tensor
//! infos and data are never read). To be replaced by the crate's GGUF reader.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use qkc_model::tokenizer::Vocab;

/// One GGUF metadata value (only what the tokenizer keys use is kept; other values are parsed
/// and dropped).
#[derive(Debug, Clone)]
pub enum Value {
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
}

struct R<T: Read>(T);

impl<T: Read> R<T> {
    fn bytes<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.0.read_exact(&mut b)?;
        Ok(b)
    }
    fn u32(&mut self) -> std::io::Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> std::io::Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.u64().map_err(|e| e.to_string())?;
        if n > (1 << 30) {
            return Err(format!("string of {n} bytes"));
        }
        let mut b = vec![0u8; n as usize];
        self.0.read_exact(&mut b).map_err(|e| e.to_string())?;
        String::from_utf8(b).map_err(|e| e.to_string())
    }
    fn value(&mut self, ty: u32) -> Result<Value, String> {
        let io = |e: std::io::Error| e.to_string();
        Ok(match ty {
            0 => Value::UInt(self.bytes::<1>().map_err(io)?[0] as u64),
            1 => Value::Int(self.bytes::<1>().map_err(io)?[0] as i8 as i64),
            2 => Value::UInt(u16::from_le_bytes(self.bytes().map_err(io)?) as u64),
            3 => Value::Int(i16::from_le_bytes(self.bytes().map_err(io)?) as i64),
            4 => Value::UInt(self.u32().map_err(io)? as u64),
            5 => Value::Int(i32::from_le_bytes(self.bytes().map_err(io)?) as i64),
            6 => Value::Float(f32::from_le_bytes(self.bytes().map_err(io)?) as f64),
            7 => Value::Bool(self.bytes::<1>().map_err(io)?[0] != 0),
            8 => Value::Str(self.string()?),
            9 => {
                let elem = self.u32().map_err(io)?;
                let n = self.u64().map_err(io)?;
                if n > (1 << 28) {
                    return Err(format!("array of {n} elements"));
                }
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(self.value(elem)?);
                }
                Value::Array(v)
            }
            10 => Value::UInt(self.u64().map_err(io)?),
            11 => Value::Int(i64::from_le_bytes(self.bytes().map_err(io)?)),
            12 => Value::Float(f64::from_le_bytes(self.bytes().map_err(io)?)),
            t => return Err(format!("unknown GGUF value type {t}")),
        })
    }
}

/// The tokenizer metadata of a GGUF file, plus `tokenizer.chat_template` when present.
pub fn read_vocab(path: &Path) -> Result<(Vocab, Option<String>), String> {
    let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut r = R(BufReader::new(f));
    let io = |e: std::io::Error| e.to_string();
    if &r.bytes::<4>().map_err(io)? != b"GGUF" {
        return Err("not a GGUF file".into());
    }
    let version = r.u32().map_err(io)?;
    if !(2..=3).contains(&version) {
        return Err(format!("GGUF version {version}"));
    }
    let _n_tensors = r.u64().map_err(io)?;
    let n_kv = r.u64().map_err(io)?;
    let mut vocab = Vocab::default();
    let mut template = None;
    for _ in 0..n_kv {
        let key = r.string()?;
        let ty = r.u32().map_err(io)?;
        let value = r.value(ty)?;
        let strings = |v: Value| -> Result<Vec<String>, String> {
            match v {
                Value::Array(a) => a
                    .into_iter()
                    .map(|x| match x {
                        Value::Str(s) => Ok(s),
                        other => Err(format!("{key}: {other:?} is not a string")),
                    })
                    .collect(),
                other => Err(format!("{key}: {other:?} is not an array")),
            }
        };
        let id = |v: Value| -> Result<u32, String> {
            match v {
                Value::UInt(x) => u32::try_from(x).map_err(|e| e.to_string()),
                Value::Int(x) => u32::try_from(x).map_err(|e| e.to_string()),
                other => Err(format!("{key}: {other:?} is not an integer")),
            }
        };
        match key.as_str() {
            "tokenizer.ggml.model" => match value {
                Value::Str(s) => vocab.model = s,
                other => return Err(format!("{key}: {other:?}")),
            },
            "tokenizer.ggml.pre" => match value {
                Value::Str(s) => vocab.pre = Some(s),
                other => return Err(format!("{key}: {other:?}")),
            },
            "tokenizer.chat_template" => match value {
                Value::Str(s) => template = Some(s),
                other => return Err(format!("{key}: {other:?}")),
            },
            "tokenizer.ggml.tokens" => vocab.tokens = strings(value)?,
            "tokenizer.ggml.merges" => vocab.merges = strings(value)?,
            "tokenizer.ggml.token_type" => match value {
                Value::Array(a) => {
                    vocab.token_type = a
                        .into_iter()
                        .map(|x| match x {
                            Value::Int(i) => Ok(i as i32),
                            Value::UInt(u) => Ok(u as i32),
                            other => Err(format!("token_type {other:?}")),
                        })
                        .collect::<Result<_, _>>()?
                }
                other => return Err(format!("{key}: {other:?}")),
            },
            "tokenizer.ggml.scores" => match value {
                Value::Array(a) => {
                    vocab.scores = a
                        .into_iter()
                        .map(|x| match x {
                            Value::Float(f) => Ok(f as f32),
                            other => Err(format!("score {other:?}")),
                        })
                        .collect::<Result<_, _>>()?
                }
                other => return Err(format!("{key}: {other:?}")),
            },
            "tokenizer.ggml.bos_token_id" => vocab.bos = Some(id(value)?),
            "tokenizer.ggml.eos_token_id" => vocab.eos = Some(id(value)?),
            "tokenizer.ggml.add_bos_token" => match value {
                Value::Bool(b) => vocab.add_bos = b,
                other => return Err(format!("{key}: {other:?}")),
            },
            "tokenizer.ggml.add_space_prefix" => match value {
                Value::Bool(b) => vocab.add_space_prefix = Some(b),
                other => return Err(format!("{key}: {other:?}")),
            },
            _ => {}
        }
    }
    Ok((vocab, template))
}
