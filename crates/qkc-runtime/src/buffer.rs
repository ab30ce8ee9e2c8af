//! Host buffers: 64-byte aligned, so every alignment a kernel's parameter layout asks for holds.

use qkc_ir::DType;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A 64-byte aligned byte buffer.
pub struct AlignedBuf {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBuf {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Self {
        AlignedBuf {
            lines: vec![Line([0; 64]); len.div_ceil(64).max(1)],
            len,
        }
    }

    /// A copy of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut b = Self::zeroed(bytes.len());
        b.bytes_mut().copy_from_slice(bytes);
        b
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `lines` holds at least `len` initialized bytes; `Line` is plain bytes.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<u8>(), self.len) }
    }

    /// The bytes, mutably.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<u8>(), self.len) }
    }

    /// The address, for a kernel argument.
    pub fn addr(&self) -> u64 {
        self.lines.as_ptr() as u64
    }

    /// Fill with 0xFF bytes: NaN in every float dtype, -1 in every integer one. Buffers a run
    /// writes are poisoned first, so a kernel that skips an element cannot pass a check.
    pub fn poison(&mut self) {
        self.bytes_mut().fill(0xFF);
    }
}

/// Bytes per element of a graph dtype.
pub fn dtype_size(d: DType) -> usize {
    match d {
        DType::F32 | DType::I32 | DType::U32 => 4,
        DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
        DType::I8 | DType::U8 => 1,
    }
}

/// Encode f64 values as little-endian elements of `d` (floats round to nearest even; integers
/// round and saturate).
pub fn encode(d: DType, xs: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(xs.len() * dtype_size(d));
    for &x in xs {
        match d {
            DType::F32 => out.extend_from_slice(&(x as f32).to_le_bytes()),
            DType::F16 => out.extend_from_slice(&half::f16::from_f64(x).to_le_bytes()),
            DType::BF16 => out.extend_from_slice(&half::bf16::from_f64(x).to_le_bytes()),
            DType::I32 => out.extend_from_slice(&(x.round() as i32).to_le_bytes()),
            DType::U32 => out.extend_from_slice(&(x.round() as u32).to_le_bytes()),
            DType::I16 => out.extend_from_slice(&(x.round() as i16).to_le_bytes()),
            DType::U16 => out.extend_from_slice(&(x.round() as u16).to_le_bytes()),
            DType::I8 => out.push(x.round() as i8 as u8),
            DType::U8 => out.push(x.round() as u8),
        }
    }
    out
}

/// Decode little-endian elements of `d` to f64.
pub fn decode(d: DType, b: &[u8]) -> Vec<f64> {
    let n = dtype_size(d);
    b.chunks_exact(n)
        .map(|c| match d {
            DType::F32 => f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            DType::F16 => half::f16::from_le_bytes([c[0], c[1]]).to_f64(),
            DType::BF16 => half::bf16::from_le_bytes([c[0], c[1]]).to_f64(),
            DType::I32 => f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            DType::U32 => f64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            DType::I16 => f64::from(i16::from_le_bytes([c[0], c[1]])),
            DType::U16 => f64::from(u16::from_le_bytes([c[0], c[1]])),
            DType::I8 => f64::from(c[0] as i8),
            DType::U8 => f64::from(c[0]),
        })
        .collect()
}
