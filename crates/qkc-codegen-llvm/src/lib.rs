//! qkc-codegen-llvm: qkc's GPU code generator, KIR → LLVM IR (LLVM 19, through inkwell) → PTX
//! for `sm_80`, `sm_86`, `sm_89` and `sm_90`; and, secondarily, the same translation to an
//! x86-64 object for the host CPU.
//!
//! - [`compile_ptx`]: a verified GPU kernel → an [`Artifact`] holding PTX ([`Code::Ptx`]), its
//!   entry, launch shape (the kernel's grid and block), parameter layout and specialization key.
//! - [`llvm_ir`]: the LLVM IR the translation writes, before optimization (for review and
//!   snapshots).
//! - [`compile_host_object`]: a CPU kernel → a relocatable object exporting
//!   `void NAME(params..., u32 chunk_lo, u32 chunk_hi)`, the Cranelift backend's calling
//!   convention.
//! - [`ptxas_check`]: assemble PTX with `ptxas -v` and read registers, spills and shared memory.
//!
//! How each KIR construct translates is KIR.md's LLVM column; see [`emit`]'s modules. Kernels
//! are verified first ([`qkc_kernel::verify`]); anything verified that does not translate is a
//! [`LlvmError::Unsupported`], never a panic.
#![deny(missing_docs)]

pub mod emit;
pub mod error;
pub mod machine;
pub mod ptxas;

use inkwell::targets::{RelocMode, TargetMachine};
use qkc_kernel::{Artifact, Code, Kernel};

pub use error::{LlvmError, Result};
pub use ptxas::{ptxas_check, ptxas_path, PtxasReport};

use emit::{Emitter, Flavor};

/// LLVM's optimization level (the pass pipeline `default<On>` and the code generator's level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum OptLevel {
    /// No optimization.
    O0,
    /// `-O1`.
    O1,
    /// `-O2`.
    O2,
    /// `-O3` (the default).
    #[default]
    O3,
}

impl OptLevel {
    fn name(self) -> &'static str {
        match self {
            OptLevel::O0 => "O0",
            OptLevel::O1 => "O1",
            OptLevel::O2 => "O2",
            OptLevel::O3 => "O3",
        }
    }
}

/// Options of the PTX code generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PtxOptions {
    /// The compute capability `sm_XX`: 80, 86, 89 or 90.
    pub sm: u32,
    /// The optimization level.
    pub opt_level: OptLevel,
}

impl Default for PtxOptions {
    fn default() -> Self {
        PtxOptions {
            sm: 90,
            opt_level: OptLevel::O3,
        }
    }
}

/// The PTX ISA version generated: 8.0 (CUDA 12.0), which ptxas 12.x and CUDA 12/13 drivers
/// accept for every supported `sm`.
pub const PTX_ISA: &str = "ptx80";

impl PtxOptions {
    /// The options for `sm_<sm>` at `-O3`.
    pub fn sm(sm: u32) -> Self {
        PtxOptions {
            sm,
            ..PtxOptions::default()
        }
    }
    /// The code generator's name and options, as hashed into the specialization key.
    pub fn codegen_name(&self) -> String {
        format!(
            "llvm19 nvptx64 sm_{} {} {}",
            self.sm,
            PTX_ISA,
            self.opt_level.name()
        )
    }
    fn check(&self) -> Result<()> {
        if matches!(self.sm, 80 | 86 | 89 | 90) {
            Ok(())
        } else {
            Err(LlvmError::Options(format!(
                "sm_{} (supported: sm_80, sm_86, sm_89, sm_90)",
                self.sm
            )))
        }
    }
}

fn verified(k: &Kernel) -> Result<()> {
    qkc_kernel::verify(k).map_err(|source| LlvmError::Kernel {
        kernel: k.name.clone(),
        source: Box::new(source),
    })
}

fn nvptx_machine(k: &Kernel, opts: &PtxOptions) -> Result<TargetMachine> {
    opts.check()?;
    machine::init_nvptx();
    machine::target_machine(
        &k.name,
        machine::NVPTX_TRIPLE,
        &format!("sm_{}", opts.sm),
        &format!("+{PTX_ISA}"),
        opts.opt_level,
        RelocMode::Default,
    )
}

fn datalayout(tm: &TargetMachine) -> String {
    tm.get_target_data()
        .get_data_layout()
        .as_str()
        .to_string_lossy()
        .into_owned()
}

fn nvptx_ir(k: &Kernel, tm: &TargetMachine) -> Result<String> {
    Emitter::new(k, Flavor::Nvptx).module(machine::NVPTX_TRIPLE, &datalayout(tm))
}

/// The LLVM IR (text) the translation writes for a GPU kernel, before optimization. It is
/// parsed and verified by LLVM before it is returned.
pub fn llvm_ir(k: &Kernel, opts: &PtxOptions) -> Result<String> {
    verified(k)?;
    let tm = nvptx_machine(k, opts)?;
    let ir = nvptx_ir(k, &tm)?;
    let ctx = inkwell::context::Context::create();
    machine::parse(&ctx, &k.name, &ir)?;
    Ok(ir)
}

/// Compile a GPU kernel to PTX: verify, translate, optimize (`default<O3>`), emit PTX for
/// `sm_<opts.sm>`. The artifact's code is [`Code::Ptx`]; its entry is the kernel's name.
pub fn compile_ptx(k: &Kernel, opts: &PtxOptions) -> Result<Artifact> {
    verified(k)?;
    let tm = nvptx_machine(k, opts)?;
    let ir = nvptx_ir(k, &tm)?;
    let bytes = machine::compile(&k.name, &ir, &tm, opts.opt_level, machine::Emit::Asm)?;
    let ptx = String::from_utf8(bytes).map_err(|e| LlvmError::Llvm {
        kernel: k.name.clone(),
        stage: "codegen",
        message: format!("PTX is not UTF-8: {e}"),
    })?;
    // A call LLVM could not resolve (a misspelled intrinsic becomes an external function)
    // would only fail at link time on the device: refuse it here.
    if let Some(line) = ptx.lines().find(|l| l.starts_with(".extern .func")) {
        return Err(LlvmError::Llvm {
            kernel: k.name.clone(),
            stage: "codegen",
            message: format!("the PTX calls an undefined function: {line}"),
        });
    }
    Ok(Artifact::new(k, Code::Ptx(ptx), &opts.codegen_name()))
}

/// The host CPU target: triple, CPU name and features (AVX2/AVX-512 where the host has them).
fn host_machine(k: &Kernel, opt: OptLevel) -> Result<(TargetMachine, String)> {
    machine::init_host();
    let triple = TargetMachine::get_default_triple();
    let triple = triple.as_str().to_string_lossy().into_owned();
    let cpu = TargetMachine::get_host_cpu_name().to_string();
    let features = TargetMachine::get_host_cpu_features().to_string();
    let tm = machine::target_machine(&k.name, &triple, &cpu, &features, opt, RelocMode::PIC)?;
    Ok((tm, format!("llvm19 {triple} {cpu} {}", opt.name())))
}

/// The LLVM IR (text) the translation writes for a CPU kernel, before optimization.
pub fn host_llvm_ir(k: &Kernel) -> Result<String> {
    verified(k)?;
    let (tm, _) = host_machine(k, OptLevel::O3)?;
    let triple = tm.get_triple().as_str().to_string_lossy().into_owned();
    let ir = Emitter::new(k, Flavor::Host).module(&triple, &datalayout(&tm))?;
    let ctx = inkwell::context::Context::create();
    machine::parse(&ctx, &k.name, &ir)?;
    Ok(ir)
}

/// Compile a CPU kernel (`cpu chunks(..)`) for the host into a relocatable, position-
/// independent object exporting `extern "C" fn NAME(params..., chunk_lo: u32, chunk_hi: u32)`,
/// which runs the chunks `chunk_lo..chunk_hi` (the Cranelift backend's convention). Returns the
/// object's bytes and the artifact ([`Code::Object`]).
pub fn compile_host_object(k: &Kernel) -> Result<(Vec<u8>, Artifact)> {
    verified(k)?;
    let (tm, name) = host_machine(k, OptLevel::O3)?;
    let triple = tm.get_triple().as_str().to_string_lossy().into_owned();
    let ir = Emitter::new(k, Flavor::Host).module(&triple, &datalayout(&tm))?;
    let bytes = machine::compile(&k.name, &ir, &tm, OptLevel::O3, machine::Emit::Object)?;
    let art = Artifact::new(k, Code::Object(bytes.clone()), &name);
    Ok((bytes, art))
}
