//! LLVM IR text → optimized module → PTX (or a host object), through inkwell.
//!
//! Each compilation gets its own LLVM context, so kernels compile in parallel on any threads;
//! the targets are initialized once per process.

use std::sync::Once;

use inkwell::context::Context;
use inkwell::memory_buffer::MemoryBuffer;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{
    CodeModel, FileType, InitializationConfig, RelocMode, Target, TargetMachine, TargetTriple,
};
use inkwell::OptimizationLevel;

use crate::error::{LlvmError, Result};
use crate::OptLevel;

/// The NVPTX triple.
pub const NVPTX_TRIPLE: &str = "nvptx64-nvidia-cuda";
/// The data layout LLVM 19 uses for `nvptx64-nvidia-cuda` (checked against the target machine).
pub const NVPTX_DATALAYOUT: &str = "e-i64:64-i128:128-v16:16-v32:32-n16:32:64";

static INIT_NVPTX: Once = Once::new();
static INIT_HOST: Once = Once::new();

pub(crate) fn init_nvptx() {
    INIT_NVPTX.call_once(|| Target::initialize_nvptx(&InitializationConfig::default()));
}

pub(crate) fn init_host() {
    INIT_HOST.call_once(|| {
        Target::initialize_native(&InitializationConfig::default()).ok();
    });
}

fn llvm_err(kernel: &str, stage: &'static str, message: impl ToString) -> LlvmError {
    LlvmError::Llvm {
        kernel: kernel.to_string(),
        stage,
        message: message.to_string(),
    }
}

fn level(o: OptLevel) -> OptimizationLevel {
    match o {
        OptLevel::O0 => OptimizationLevel::None,
        OptLevel::O1 => OptimizationLevel::Less,
        OptLevel::O2 => OptimizationLevel::Default,
        OptLevel::O3 => OptimizationLevel::Aggressive,
    }
}

/// A target machine for `triple`/`cpu`/`features`.
pub(crate) fn target_machine(
    kernel: &str,
    triple: &str,
    cpu: &str,
    features: &str,
    opt: OptLevel,
    reloc: RelocMode,
) -> Result<TargetMachine> {
    let t = TargetTriple::create(triple);
    let target = Target::from_triple(&t).map_err(|e| llvm_err(kernel, "target", e.to_string()))?;
    target
        .create_target_machine(&t, cpu, features, level(opt), reloc, CodeModel::Default)
        .ok_or_else(|| {
            llvm_err(
                kernel,
                "target",
                format!("no target machine for {triple} {cpu} {features}"),
            )
        })
}

/// What to emit.
pub(crate) enum Emit {
    /// Assembly text (PTX).
    Asm,
    /// An object file.
    Object,
}

/// Parse, verify, optimize and compile one module.
pub(crate) fn compile(
    kernel: &str,
    ir: &str,
    tm: &TargetMachine,
    opt: OptLevel,
    emit: Emit,
) -> Result<Vec<u8>> {
    let ctx = Context::create();
    let module = parse(&ctx, kernel, ir)?;
    module.set_data_layout(&tm.get_target_data().get_data_layout());
    let pipeline = match opt {
        OptLevel::O0 => "default<O0>",
        OptLevel::O1 => "default<O1>",
        OptLevel::O2 => "default<O2>",
        OptLevel::O3 => "default<O3>",
    };
    module
        .run_passes(pipeline, tm, PassBuilderOptions::create())
        .map_err(|e| llvm_err(kernel, "passes", e.to_string()))?;
    let ft = match emit {
        Emit::Asm => FileType::Assembly,
        Emit::Object => FileType::Object,
    };
    let buf = tm
        .write_to_memory_buffer(&module, ft)
        .map_err(|e| llvm_err(kernel, "codegen", e.to_string()))?;
    Ok(buf.as_slice().to_vec())
}

/// Parse and verify a module's text.
pub(crate) fn parse<'c>(
    ctx: &'c Context,
    kernel: &str,
    ir: &str,
) -> Result<inkwell::module::Module<'c>> {
    let buf = MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), kernel);
    let module = ctx
        .create_module_from_ir(buf)
        .map_err(|e| llvm_err(kernel, "parse", e.to_string()))?;
    module
        .verify()
        .map_err(|e| llvm_err(kernel, "verify", e.to_string()))?;
    Ok(module)
}
