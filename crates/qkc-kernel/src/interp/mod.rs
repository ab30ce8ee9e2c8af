//! The KIR interpreter: runs a kernel on the CPU for given buffers, so templates are tested
//! without any backend, and defines what KIR means where prose is ambiguous.
//!
//! Blocks (GPU) or chunks (CPU) run one after another. The threads of a block run in lockstep,
//! SIMT style: each instruction executes for every active thread before the next one, `if` and
//! `for` narrow an active mask, so barriers and warp shuffles see exactly what hardware would.
//! A barrier reached by only part of a block, a shuffle in a partly active warp, an out-of-bounds
//! or misaligned access, a read of unwritten memory, and a data race are errors, not silent
//! wrong answers.

mod exec;
mod lanes;
mod mem;
mod ops;

use half::f16;

use crate::error::KernelError;
use crate::kernel::Kernel;

/// A buffer argument's bytes, with typed constructors and readers.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Buffer {
    /// Little-endian bytes.
    pub bytes: Vec<u8>,
}

impl Buffer {
    /// From raw bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Buffer { bytes }
    }
    /// f32 values.
    pub fn f32s(xs: &[f32]) -> Self {
        Buffer { bytes: xs.iter().flat_map(|x| x.to_le_bytes()).collect() }
    }
    /// f32 values rounded to f16.
    pub fn f16s(xs: &[f32]) -> Self {
        Buffer { bytes: xs.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect() }
    }
    /// Raw f16 values.
    pub fn f16_bits(xs: &[u16]) -> Self {
        Buffer { bytes: xs.iter().flat_map(|x| x.to_le_bytes()).collect() }
    }
    /// u32 words.
    pub fn u32s(xs: &[u32]) -> Self {
        Buffer { bytes: xs.iter().flat_map(|x| x.to_le_bytes()).collect() }
    }
    /// i32 values.
    pub fn i32s(xs: &[i32]) -> Self {
        Buffer { bytes: xs.iter().flat_map(|x| x.to_le_bytes()).collect() }
    }
    /// i8 values.
    pub fn i8s(xs: &[i8]) -> Self {
        Buffer { bytes: xs.iter().map(|&x| x as u8).collect() }
    }
    /// `n` f32 NaNs: an output buffer that shows any element the kernel forgot to write.
    pub fn poison_f32(n: usize) -> Self {
        Buffer::f32s(&vec![f32::NAN; n])
    }
    /// `n` f16 NaNs.
    pub fn poison_f16(n: usize) -> Self {
        Buffer::f16_bits(&vec![0x7e00; n])
    }
    /// Read as f32.
    pub fn to_f32(&self) -> Vec<f32> {
        self.bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }
    /// Read as f16, widened to f32.
    pub fn to_f16(&self) -> Vec<f32> {
        self.bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
    }
    /// Read as u32.
    pub fn to_u32(&self) -> Vec<u32> {
        self.bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }
}

/// A kernel argument.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// A buffer for a pointer parameter (read back after the run).
    Buf(Buffer),
    /// An integer for an integer parameter (bits truncated to its width).
    Int(i64),
    /// A float for a float parameter (rounded to its type).
    Float(f64),
}

impl Arg {
    /// The buffer, for pointer arguments.
    pub fn buffer(&self) -> Option<&Buffer> {
        match self {
            Arg::Buf(b) => Some(b),
            _ => None,
        }
    }
}

/// Limits of a run.
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    /// Stop after this many thread-instructions (a runaway loop guard).
    pub max_thread_insts: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { max_thread_insts: 2_000_000_000 }
    }
}

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Instructions executed, counted once per active thread (region ops count once per entry).
    pub thread_insts: u64,
    /// Bytes loaded from memory.
    pub bytes_loaded: u64,
    /// Bytes stored.
    pub bytes_stored: u64,
    /// Barriers executed (per block).
    pub barriers: u64,
}

/// Run a kernel on `args` (one per parameter, in order); buffers are updated in place.
pub fn run(k: &Kernel, args: &mut [Arg]) -> Result<Stats, KernelError> {
    run_with(k, args, RunOptions::default())
}

/// [`run`] with limits.
pub fn run_with(k: &Kernel, args: &mut [Arg], opts: RunOptions) -> Result<Stats, KernelError> {
    crate::verify::verify(k)?;
    exec::Engine::run(k, args, opts).map_err(KernelError::Interp)
}
