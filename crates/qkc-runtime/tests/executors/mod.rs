//! Executors of the shared conformance suites (crates/qkc-kernel/tests/*_common): the Cranelift
//! JIT on the host, and CUDA (PTX from the LLVM backend) when a device is present.
#![allow(dead_code)]

use std::sync::Arc;

use qkc_codegen_cranelift::JitKernel;
use qkc_codegen_llvm::{compile_ptx, PtxOptions};
use qkc_kernel::interp::Arg;
use qkc_kernel::lower::{LowerTarget, Lowered};
use qkc_kernel::LaunchConfig;
use qkc_runtime::buffer::AlignedBuf;
use qkc_runtime::cuda::{Cuda, DevBuf, GpuKernel};

/// Decode the output bytes.
pub fn read_out(bytes: &[u8], f16: bool) -> Vec<f32> {
    if f16 {
        bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect()
    } else {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

/// Cranelift JIT, all chunks on this thread.
pub struct Jit(pub u32);

impl Jit {
    pub fn run(
        &self,
        l: &Lowered,
        mut args: Vec<Arg>,
        out: usize,
        out_f16: bool,
    ) -> Result<Vec<f32>, String> {
        self.run_in_place(l, &mut args)?;
        let b = args[out].buffer().ok_or("output is not a buffer")?;
        Ok(read_out(&b.bytes, out_f16))
    }

    /// Run and copy every buffer back into `args`.
    pub fn run_in_place(&self, l: &Lowered, args: &mut [Arg]) -> Result<(), String> {
        let jit = JitKernel::compile(&l.kernel).map_err(|e| e.to_string())?;
        let mut bufs: Vec<Option<AlignedBuf>> = Vec::new();
        let mut raw = Vec::new();
        for a in args.iter() {
            match a {
                Arg::Buf(b) => {
                    let ab = AlignedBuf::from_bytes(&b.bytes);
                    raw.push(ab.addr());
                    bufs.push(Some(ab));
                }
                Arg::Int(i) => {
                    raw.push(*i as u64);
                    bufs.push(None);
                }
                Arg::Float(_) => {
                    return Err("float scalar parameters are not passed by this executor".into())
                }
            }
        }
        let LaunchConfig::Cpu { chunks } = jit.artifact.launch else {
            return Err("not a CPU kernel".into());
        };
        // SAFETY: buffers have the lengths the kernel's bindings imply (the suite built them).
        unsafe { jit.call(&raw, 0, chunks) }.map_err(|e| e.to_string())?;
        for (a, b) in args.iter_mut().zip(&bufs) {
            if let (Arg::Buf(dst), Some(src)) = (a, b) {
                dst.bytes.copy_from_slice(src.bytes());
            }
        }
        Ok(())
    }

    pub fn target(&self) -> LowerTarget {
        LowerTarget::Cpu { chunks: self.0 }
    }
}

/// CUDA: PTX from the LLVM backend, loaded and launched on device 0.
pub struct Gpu(pub Arc<Cuda>);

impl Gpu {
    /// The device, or why there is none.
    pub fn open() -> Result<Gpu, String> {
        Cuda::open().map(Gpu).map_err(|e| e.to_string())
    }

    pub fn run(
        &self,
        l: &Lowered,
        mut args: Vec<Arg>,
        out: usize,
        out_f16: bool,
    ) -> Result<Vec<f32>, String> {
        self.run_in_place(l, &mut args)?;
        let b = args[out].buffer().ok_or("output is not a buffer")?;
        Ok(read_out(&b.bytes, out_f16))
    }

    /// Run and copy every buffer back into `args`.
    pub fn run_in_place(&self, l: &Lowered, args: &mut [Arg]) -> Result<(), String> {
        let cuda = &self.0;
        cuda.make_current().map_err(|e| e.to_string())?;
        let art = compile_ptx(&l.kernel, &PtxOptions::sm(cuda.sm)).map_err(|e| e.to_string())?;
        let k = GpuKernel::load(art).map_err(|e| e.to_string())?;
        let mut bufs: Vec<Option<DevBuf>> = Vec::new();
        let mut raw = Vec::new();
        for a in args.iter() {
            match a {
                Arg::Buf(b) => {
                    let d = DevBuf::from_bytes(&b.bytes).map_err(|e| e.to_string())?;
                    raw.push(d.addr());
                    bufs.push(Some(d));
                }
                Arg::Int(i) => {
                    raw.push(*i as u64);
                    bufs.push(None);
                }
                Arg::Float(_) => {
                    return Err("float scalar parameters are not passed by this executor".into())
                }
            }
        }
        k.launch(cuda, &raw).map_err(|e| e.to_string())?;
        cuda.sync(&format!("kernel `{}`", l.kernel.name))
            .map_err(|e| e.to_string())?;
        for (a, b) in args.iter_mut().zip(&bufs) {
            if let (Arg::Buf(dst), Some(src)) = (a, b) {
                let n = dst.bytes.len();
                dst.bytes
                    .copy_from_slice(&src.read().map_err(|e| e.to_string())?[..n]);
            }
        }
        Ok(())
    }

    pub fn target(&self) -> LowerTarget {
        LowerTarget::Gpu { sm: self.0.sm }
    }
}
