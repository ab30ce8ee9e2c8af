//! Shared test support: fresh seeds and random inputs, 256-byte aligned buffers (KIR's buffer
//! alignment), and the backends the conformance suite runs on (the KIR interpreter and the
//! Cranelift JIT behind one trait).
#![allow(dead_code)]

pub mod conformance;

use qkc_codegen_cranelift::JitKernel;
use qkc_kernel::interp::{Arg, Buffer};
use qkc_kernel::template::{builtin, Args, Library};
use qkc_kernel::Kernel;
use qkc_quant::QuantTensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A fresh seed per run (QKC_TEST_SEED to replay one), printed so failures can be replayed.
pub fn seed(test: &str) -> u64 {
    let s = std::env::var("QKC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("{test}: QKC_TEST_SEED={s}");
    s
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Gaussian-ish nonzero values, scaled; never exactly zero.
pub fn randn(r: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v: f32 = (0..4).map(|_| r.gen::<f32>() - 0.5).sum::<f32>() * 1.7 * scale;
            if v == 0.0 {
                scale * 1e-3
            } else {
                v
            }
        })
        .collect()
}

pub fn lib() -> Library {
    builtin().expect("built-in templates parse")
}

pub fn instantiate(name: &str, args: &Args) -> Kernel {
    lib().instantiate(name, args).expect("instantiate").kernel
}

/// A random N×K matrix quantized by qkc-quant's `int4:gG` (the real layout and dequant).
pub struct Quantized {
    pub words: Vec<u32>,
    pub scales: Vec<u16>,
    pub deq: Vec<f32>,
}

pub fn quantize(n: usize, k: usize, group: usize, s: u64) -> Quantized {
    let w = randn(&mut rng(s), n * k, 0.05);
    let scheme = format!("int4:g{group}").parse().expect("scheme");
    let q = QuantTensor::quantize(scheme, &w, n, k).expect("quantize");
    Quantized {
        words: q.part("qweight").expect("qweight").to_u32(),
        scales: q.part("scales").expect("scales").to_u16_bits(),
        deq: q.dequant().expect("dequant"),
    }
}

/// Bytes in 256-byte aligned storage (KIR.md: buffers are 256-byte aligned).
pub struct Aligned {
    blocks: Vec<Blk>,
    len: usize,
}

#[repr(C, align(256))]
#[derive(Clone, Copy)]
struct Blk([u8; 256]);

impl Aligned {
    pub fn new(bytes: &[u8]) -> Self {
        let mut blocks = vec![Blk([0; 256]); bytes.len().div_ceil(256).max(1)];
        for (b, c) in blocks.iter_mut().zip(bytes.chunks(256)) {
            b.0[..c.len()].copy_from_slice(c);
        }
        Aligned {
            blocks,
            len: bytes.len(),
        }
    }
    pub fn ptr(&mut self) -> u64 {
        self.blocks.as_mut_ptr() as u64
    }
    pub fn bytes(&self) -> Vec<u8> {
        self.blocks
            .iter()
            .flat_map(|b| b.0)
            .take(self.len)
            .collect()
    }
}

/// Somewhere a kernel can run.
pub trait Backend {
    /// Its name in messages.
    fn name(&self) -> &'static str;
    /// Run `k` on `args` (buffers updated in place).
    fn run(&self, k: &Kernel, args: &mut [Arg]) -> Result<(), String>;
}

/// The KIR interpreter: the meaning of KIR.
pub struct Interp;

impl Backend for Interp {
    fn name(&self) -> &'static str {
        "interp"
    }
    fn run(&self, k: &Kernel, args: &mut [Arg]) -> Result<(), String> {
        qkc_kernel::interp::run(k, args)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Cranelift JIT: the chunks run in two calls (`0..c/2`, `c/2..c`) so both the hoisted
/// prologue and the chunk range are exercised.
pub struct CraneliftJit;

impl Backend for CraneliftJit {
    fn name(&self) -> &'static str {
        "cranelift-jit"
    }
    fn run(&self, k: &Kernel, args: &mut [Arg]) -> Result<(), String> {
        let jit = JitKernel::compile(k).map_err(|e| e.to_string())?;
        let mut bufs: Vec<Option<Aligned>> = args
            .iter()
            .map(|a| a.buffer().map(|b| Aligned::new(&b.bytes)))
            .collect();
        let mut raw = Vec::new();
        for (a, b) in args.iter().zip(bufs.iter_mut()) {
            raw.push(match (a, b) {
                (_, Some(b)) => b.ptr(),
                (Arg::Int(i), None) => *i as u64,
                _ => return Err("float scalar arguments are not passed by the test helper".into()),
            });
        }
        let chunks = match k.target {
            qkc_kernel::Target::Cpu { chunks, .. } => chunks,
            qkc_kernel::Target::Gpu { .. } => return Err("GPU kernel".into()),
        };
        let mid = chunks / 2;
        // SAFETY: buffers are the template's lengths, 256-byte aligned, alive across the calls.
        unsafe {
            jit.call(&raw, 0, mid).map_err(|e| e.to_string())?;
            jit.call(&raw, mid, chunks).map_err(|e| e.to_string())?;
        }
        for (a, b) in args.iter_mut().zip(bufs) {
            if let (Arg::Buf(buf), Some(b)) = (a, b) {
                *buf = Buffer::from_bytes(b.bytes());
            }
        }
        Ok(())
    }
}
