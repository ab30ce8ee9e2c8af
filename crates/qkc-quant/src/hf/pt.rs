//! PyTorch `.pt` / `.bin` checkpoints (`torch.save` of a state dict, the zip format of
//! torch ≥ 1.6) as a [`TensorSource`], without Python: the zip index is read with the `zip`
//! crate, the file is memory-mapped, and `data.pkl` is evaluated by a small pickle machine that
//! knows what `torch.save` writes: `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`
//! (and `_rebuild_tensor`, `_rebuild_parameter`), and persistent storages
//! `('storage', torch.<T>Storage, key, location, numel)` whose bytes are the zip entry
//! `<archive>/data/<key>`.
//!
//! Tensor names are the state dict's keys; nested dicts are flattened with `.` (so
//! `{"model": {...}}` gives `model.layer.weight`). Values that are not tensors (ints, the
//! `_metadata` of `state_dict()`, ...) are skipped. Contiguous tensors borrow the mapped file;
//! strided views are copied once at open. Storage entries must be stored uncompressed, as
//! `torch.save` writes them. The legacy (pre-1.6, non-zip) format is rejected with a clear
//! error. Every error names the file.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::Range;
use std::path::Path;

use memmap2::Mmap;

use super::common::{dtype_size, ImportError};
use super::{RawDtype, RawTensor, TensorSource};

/// A `torch.save`d state dict, memory-mapped.
#[derive(Debug)]
pub struct PtFile {
    path: String,
    map: Mmap,
    tensors: BTreeMap<String, PtTensor>,
}

#[derive(Debug)]
struct PtTensor {
    dtype: RawDtype,
    shape: Vec<usize>,
    data: PtData,
}

#[derive(Debug)]
enum PtData {
    Mapped(Range<usize>),
    Owned(Vec<u8>),
}

impl PtFile {
    /// Open and index `path`; fails with an error naming the file on I/O errors, a corrupt or
    /// non-zip file, a corrupt pickle, or a tensor whose storage is missing or too short.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ImportError> {
        let p = path.as_ref();
        let pstr = p.display().to_string();
        let bad = |reason: String| ImportError::BadFile {
            file: pstr.clone(),
            reason,
        };
        let file = File::open(p).map_err(|e| bad(format!("cannot open: {e}")))?;
        // SAFETY: the file is opened read-only; as with every memory-mapped checkpoint reader,
        // it must not be truncated while mapped.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| bad(format!("cannot map: {e}")))?;
        if map.len() >= 2 && map[0] == 0x80 {
            return Err(bad(
                "legacy (pre-1.6, non-zip) torch serialization is not supported; re-save it \
                 with a current torch.save"
                    .into(),
            ));
        }
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&map[..]))
            .map_err(|e| bad(format!("not a readable torch zip archive: {e}")))?;
        let mut entries: HashMap<String, (Range<usize>, bool)> = HashMap::new();
        for i in 0..zip.len() {
            let f = zip
                .by_index_raw(i)
                .map_err(|e| bad(format!("corrupt zip entry {i}: {e}")))?;
            let start = usize::try_from(f.data_start()).unwrap_or(usize::MAX);
            let len = usize::try_from(f.compressed_size()).unwrap_or(usize::MAX);
            let end = start
                .checked_add(len)
                .filter(|&e| e <= map.len())
                .ok_or_else(|| {
                    bad(format!(
                        "zip entry `{}` runs past the end of the file",
                        f.name()
                    ))
                })?;
            let stored = f.compression() == zip::CompressionMethod::Stored;
            entries.insert(f.name().to_string(), (start..end, stored));
        }
        let pkl_name = entries
            .keys()
            .filter(|k| k.ends_with("data.pkl") && k.matches('/').count() <= 1)
            .min_by_key(|k| k.len())
            .cloned()
            .ok_or_else(|| bad("no `data.pkl` in the zip: not a torch.save file".into()))?;
        let archive = pkl_name.strip_suffix("data.pkl").unwrap_or("").to_string();
        let (pkl_range, pkl_stored) = entries[&pkl_name].clone();
        if !pkl_stored {
            return Err(bad(format!(
                "`{pkl_name}` is compressed; torch.save stores it plain"
            )));
        }
        let root = Machine::default()
            .run(&map[pkl_range])
            .map_err(|e| bad(format!("corrupt pickle `{pkl_name}`: {e}")))?;
        let mut flat = Vec::new();
        flatten(&root, "", 0, &mut flat);
        if flat.is_empty() && !matches!(root, Obj::Dict(_)) {
            return Err(bad(format!(
                "`{pkl_name}` holds no state dict (found {})",
                root.kind()
            )));
        }
        let mut tensors = BTreeMap::new();
        for (name, t) in flat {
            let key = format!("{archive}data/{}", t.key);
            let (range, stored) = entries.get(&key).cloned().ok_or_else(|| {
                bad(format!(
                    "tensor `{name}`: its storage `{key}` is not in the zip"
                ))
            })?;
            if !stored {
                return Err(bad(format!(
                    "tensor `{name}`: storage `{key}` is compressed; torch.save stores it plain"
                )));
            }
            let pt = materialize(&map, range, &t)
                .map_err(|r| bad(format!("tensor `{name}` (storage `{key}`): {r}")))?;
            tensors.insert(name, pt);
        }
        Ok(PtFile {
            path: pstr,
            map,
            tensors,
        })
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The path the file was opened with.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl TensorSource for PtFile {
    fn get(&self, name: &str) -> Option<RawTensor<'_>> {
        let t = self.tensors.get(name)?;
        let data = match &t.data {
            PtData::Mapped(r) => &self.map[r.clone()],
            PtData::Owned(v) => v.as_slice(),
        };
        Some(RawTensor {
            dtype: t.dtype,
            shape: &t.shape,
            data,
        })
    }
    fn file_of(&self, _name: &str) -> String {
        self.path.clone()
    }
}

fn materialize(map: &[u8], storage: Range<usize>, t: &TensorRef) -> Result<PtTensor, String> {
    let es = dtype_size(t.dtype);
    if storage.len() % es != 0 {
        return Err(format!(
            "storage of {} bytes is not a whole number of {:?} elements",
            storage.len(),
            t.dtype
        ));
    }
    let elems = storage.len() / es;
    if t.stride.len() != t.shape.len() {
        return Err(format!(
            "size {:?} and stride {:?} differ in rank",
            t.shape, t.stride
        ));
    }
    let numel = t
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("size {:?} overflows", t.shape))?;
    if numel > elems {
        return Err(format!(
            "size {:?} has {numel} elements, more than its storage's {elems} (overlapping or \
             broadcast views are not supported)",
            t.shape
        ));
    }
    if numel == 0 {
        return Ok(PtTensor {
            dtype: t.dtype,
            shape: t.shape.clone(),
            data: PtData::Owned(Vec::new()),
        });
    }
    // Highest element touched.
    let last = t
        .shape
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |acc, (&s, &st)| {
            acc.checked_add((s - 1).checked_mul(st)?)
        })
        .ok_or("size/stride overflow")?;
    if last >= elems {
        return Err(format!(
            "size {:?} stride {:?} offset {} reach element {last}, the storage has {elems}",
            t.shape, t.stride, t.offset
        ));
    }
    let mut contiguous = true;
    let mut expect = 1usize;
    for (&s, &st) in t.shape.iter().zip(&t.stride).rev() {
        if s != 1 && st != expect {
            contiguous = false;
        }
        expect *= s;
    }
    let base = storage.start;
    if contiguous {
        let a = base + t.offset * es;
        return Ok(PtTensor {
            dtype: t.dtype,
            shape: t.shape.clone(),
            data: PtData::Mapped(a..a + numel * es),
        });
    }
    let mut out = Vec::with_capacity(numel * es);
    let mut idx = vec![0usize; t.shape.len()];
    for _ in 0..numel {
        let e = t.offset + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
        out.extend_from_slice(&map[base + e * es..base + (e + 1) * es]);
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < t.shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(PtTensor {
        dtype: t.dtype,
        shape: t.shape.clone(),
        data: PtData::Owned(out),
    })
}

/// Nested dicts deeper than this are not searched for tensors (state dicts nest one or two).
const MAX_DEPTH: usize = 32;

fn flatten(o: &Obj, prefix: &str, depth: usize, out: &mut Vec<(String, TensorRef)>) {
    if depth > MAX_DEPTH {
        return;
    }
    if let Obj::Dict(items) = o {
        for (k, v) in items {
            let key = match k {
                Obj::Str(s) => s.clone(),
                Obj::Int(i) => i.to_string(),
                _ => continue,
            };
            let name = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            match v {
                Obj::Tensor(t) => out.push((name, t.clone())),
                Obj::Dict(_) => flatten(v, &name, depth + 1, out),
                _ => {}
            }
        }
    }
}

#[derive(Debug, Clone)]
struct TensorRef {
    key: String,
    dtype: RawDtype,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

/// The pickle values torch state dicts use.
#[derive(Debug, Clone)]
enum Obj {
    Mark,
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Obj>),
    List(Vec<Obj>),
    Dict(Vec<(Obj, Obj)>),
    Global(String, String),
    Storage(String, RawDtype),
    Tensor(TensorRef),
    /// A call we do not evaluate (kept so unknown objects do not fail the whole file).
    Opaque(String),
}

impl Obj {
    fn kind(&self) -> String {
        match self {
            Obj::Mark => "mark".into(),
            Obj::None => "None".into(),
            Obj::Bool(b) => format!("bool {b}"),
            Obj::Int(_) => "int".into(),
            Obj::Float(f) => format!("float {f}"),
            Obj::Str(_) => "str".into(),
            Obj::Bytes(b) => format!("bytes of length {}", b.len()),
            Obj::Tuple(_) => "tuple".into(),
            Obj::List(_) => "list".into(),
            Obj::Dict(_) => "dict".into(),
            Obj::Global(m, n) => format!("global {m}.{n}"),
            Obj::Storage(..) => "storage".into(),
            Obj::Tensor(_) => "tensor".into(),
            Obj::Opaque(s) => format!("object {s}"),
        }
    }
}

#[derive(Default)]
struct Machine {
    stack: Vec<Obj>,
    memo: HashMap<u32, Obj>,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn line(&mut self) -> Result<String, String> {
        let rest = &self.b[self.pos..];
        let nl = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or_else(|| format!("unterminated line at byte {}", self.pos))?;
        let s = String::from_utf8_lossy(&rest[..nl]).into_owned();
        self.pos += nl + 1;
        Ok(s)
    }
    fn string(&mut self, n: usize) -> Result<String, String> {
        let at = self.pos;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| format!("invalid UTF-8 string at byte {at}"))
    }
}

fn storage_dtype(name: &str) -> Option<RawDtype> {
    Some(match name {
        "FloatStorage" => RawDtype::F32,
        "HalfStorage" => RawDtype::F16,
        "BFloat16Storage" => RawDtype::BF16,
        "DoubleStorage" => RawDtype::F64,
        "LongStorage" => RawDtype::I64,
        "IntStorage" => RawDtype::I32,
        "ShortStorage" => RawDtype::I16,
        "CharStorage" => RawDtype::I8,
        "ByteStorage" | "BoolStorage" => RawDtype::U8,
        _ => return None,
    })
}

fn usizes(o: &Obj, what: &str) -> Result<Vec<usize>, String> {
    match o {
        Obj::Tuple(v) | Obj::List(v) => v
            .iter()
            .map(|x| match x {
                Obj::Int(i) if *i >= 0 => Ok(*i as usize),
                other => Err(format!("{what} holds {}", other.kind())),
            })
            .collect(),
        other => Err(format!("{what} is a {}, not a tuple", other.kind())),
    }
}

impl Machine {
    fn pop(&mut self) -> Result<Obj, String> {
        self.stack
            .pop()
            .ok_or_else(|| "stack underflow".to_string())
    }

    fn pop_mark(&mut self) -> Result<Vec<Obj>, String> {
        let at = self
            .stack
            .iter()
            .rposition(|o| matches!(o, Obj::Mark))
            .ok_or("no MARK on the stack")?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top(&mut self) -> Result<&mut Obj, String> {
        self.stack
            .last_mut()
            .ok_or_else(|| "stack underflow".to_string())
    }

    fn reduce(&mut self, f: Obj, args: Obj) -> Result<Obj, String> {
        let Obj::Global(m, n) = &f else {
            return Ok(Obj::Opaque(f.kind()));
        };
        let args = match args {
            Obj::Tuple(a) => a,
            other => return Err(format!("{m}.{n} called with a {}", other.kind())),
        };
        Ok(match (m.as_str(), n.as_str()) {
            ("collections", "OrderedDict") | ("builtins", "dict") => Obj::Dict(Vec::new()),
            ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
                if args.len() < 4 {
                    return Err(format!("{n} with {} arguments", args.len()));
                }
                let Obj::Storage(key, dtype) = &args[0] else {
                    return Err(format!("{n}: first argument is a {}", args[0].kind()));
                };
                let offset = match &args[1] {
                    Obj::Int(i) if *i >= 0 => *i as usize,
                    other => return Err(format!("{n}: storage offset is {}", other.kind())),
                };
                Obj::Tensor(TensorRef {
                    key: key.clone(),
                    dtype: *dtype,
                    offset,
                    shape: usizes(&args[2], "size")?,
                    stride: usizes(&args[3], "stride")?,
                })
            }
            ("torch._utils", "_rebuild_parameter")
            | ("torch._utils", "_rebuild_parameter_with_state") => args
                .into_iter()
                .next()
                .ok_or("_rebuild_parameter without arguments")?,
            ("torch", "Size") => args.into_iter().next().unwrap_or(Obj::Tuple(Vec::new())),
            _ => Obj::Opaque(format!("{m}.{n}")),
        })
    }

    fn persistent_load(&mut self, pid: Obj) -> Result<Obj, String> {
        let Obj::Tuple(t) = pid else {
            return Err(format!("persistent id is a {}", pid.kind()));
        };
        match t.as_slice() {
            [Obj::Str(tag), Obj::Global(_, ty), Obj::Str(key), _, ..] if tag == "storage" => {
                let dtype =
                    storage_dtype(ty).ok_or_else(|| format!("unsupported storage type `{ty}`"))?;
                Ok(Obj::Storage(key.clone(), dtype))
            }
            _ => Err("persistent id is not ('storage', type, key, location, numel)".into()),
        }
    }

    fn run(mut self, bytes: &[u8]) -> Result<Obj, String> {
        let mut r = Reader { b: bytes, pos: 0 };
        loop {
            let at = r.pos;
            let op = r.u8()?;
            match op {
                0x80 => {
                    r.u8()?; // PROTO
                }
                0x95 => {
                    r.u64()?; // FRAME
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Obj::Mark),
                b'}' => self.stack.push(Obj::Dict(Vec::new())),
                b']' => self.stack.push(Obj::List(Vec::new())),
                b')' => self.stack.push(Obj::Tuple(Vec::new())),
                b'N' => self.stack.push(Obj::None),
                0x88 => self.stack.push(Obj::Bool(true)),
                0x89 => self.stack.push(Obj::Bool(false)),
                b'J' => {
                    let v = r.u32()? as i32;
                    self.stack.push(Obj::Int(i64::from(v)));
                }
                b'K' => {
                    let v = r.u8()?;
                    self.stack.push(Obj::Int(i64::from(v)));
                }
                b'M' => {
                    let v = r.u16()?;
                    self.stack.push(Obj::Int(i64::from(v)));
                }
                0x8a => {
                    let n = r.u8()? as usize;
                    let s = r.take(n)?;
                    if n > 8 {
                        return Err(format!("LONG1 of {n} bytes at byte {at}"));
                    }
                    let mut v: i64 = 0;
                    for (i, &b) in s.iter().enumerate() {
                        v |= i64::from(b) << (8 * i);
                    }
                    if n > 0 && n < 8 && s[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.stack.push(Obj::Int(v));
                }
                b'G' => {
                    let s = r.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(s);
                    self.stack.push(Obj::Float(f64::from_be_bytes(a)));
                }
                b'X' => {
                    let n = r.u32()? as usize;
                    let s = r.string(n)?;
                    self.stack.push(Obj::Str(s));
                }
                0x8c => {
                    let n = r.u8()? as usize;
                    let s = r.string(n)?;
                    self.stack.push(Obj::Str(s));
                }
                0x8d => {
                    let n = usize::try_from(r.u64()?).map_err(|_| "huge string")?;
                    let s = r.string(n)?;
                    self.stack.push(Obj::Str(s));
                }
                b'U' => {
                    let n = r.u8()? as usize;
                    let s = r.take(n)?;
                    self.stack
                        .push(Obj::Str(String::from_utf8_lossy(s).into_owned()));
                }
                b'T' => {
                    let n = r.u32()? as usize;
                    let s = r.take(n)?;
                    self.stack
                        .push(Obj::Str(String::from_utf8_lossy(s).into_owned()));
                }
                b'C' => {
                    let n = r.u8()? as usize;
                    let s = r.take(n)?;
                    self.stack.push(Obj::Bytes(s.to_vec()));
                }
                b'B' => {
                    let n = r.u32()? as usize;
                    let s = r.take(n)?;
                    self.stack.push(Obj::Bytes(s.to_vec()));
                }
                b'q' => {
                    let i = u32::from(r.u8()?);
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                b'r' => {
                    let i = r.u32()?;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(i, v);
                }
                b'h' | b'j' => {
                    let i = if op == b'h' {
                        u32::from(r.u8()?)
                    } else {
                        r.u32()?
                    };
                    let v = self.memo.get(&i).cloned().ok_or_else(|| {
                        format!("memo {i} read before it was written (byte {at})")
                    })?;
                    self.stack.push(v);
                }
                b'c' => {
                    let m = r.line()?;
                    let n = r.line()?;
                    self.stack.push(Obj::Global(m, n));
                }
                0x93 => {
                    let n = self.pop()?;
                    let m = self.pop()?;
                    match (m, n) {
                        (Obj::Str(m), Obj::Str(n)) => self.stack.push(Obj::Global(m, n)),
                        _ => return Err(format!("STACK_GLOBAL of non-strings at byte {at}")),
                    }
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Obj::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err("stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Obj::Tuple(items));
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.reduce(f, args)?;
                    self.stack.push(v);
                }
                0x81 => {
                    let _args = self.pop()?;
                    let cls = self.pop()?;
                    self.stack.push(Obj::Opaque(cls.kind()));
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.stack.push(v);
                }
                b'b' => {
                    self.pop()?; // BUILD: state dropped (e.g. state_dict()'s `_metadata`)
                    self.top()?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top()? {
                        Obj::Dict(d) => d.push((k, v)),
                        Obj::Opaque(_) => {}
                        other => return Err(format!("SETITEM on a {}", other.kind())),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(format!("SETITEMS with an odd item count at byte {at}"));
                    }
                    let mut it = items.into_iter();
                    match self.top()? {
                        Obj::Dict(d) => {
                            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                                d.push((k, v));
                            }
                        }
                        Obj::Opaque(_) => {}
                        other => return Err(format!("SETITEMS on a {}", other.kind())),
                    }
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Obj::List(l) => l.push(v),
                        Obj::Opaque(_) => {}
                        other => return Err(format!("APPEND on a {}", other.kind())),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Obj::List(l) => l.extend(items),
                        Obj::Opaque(_) => {}
                        other => return Err(format!("APPENDS on a {}", other.kind())),
                    }
                }
                b'0' => {
                    self.pop()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                _ => return Err(format!("unsupported pickle opcode 0x{op:02x} at byte {at}")),
            }
        }
    }
}
