//! The one lowering path, generic over where the code goes (`cranelift_module::Module`):
//! [`crate::jit`] hands it a `JITModule`, [`crate::object`] an `ObjectModule`. Both get the same
//! CLIF, so the snapshot of one is the code of both.

use std::time::{Duration, Instant};

use cranelift_codegen::Context;
use cranelift_module::{FuncId, Linkage, Module};
use qkc_kernel::Kernel;

use crate::error::{CodegenError, Result};
use crate::lower;

/// What defining one kernel produced besides the function id.
#[derive(Clone, Debug)]
pub struct Defined {
    /// The function in the module.
    pub id: FuncId,
    /// The CLIF text before Cranelift's optimizations (what [`crate::clif_text`] normalizes).
    pub clif: String,
    /// Time spent translating KIR to CLIF.
    pub lower_time: Duration,
    /// Time spent in Cranelift (optimization, register allocation, emission).
    pub compile_time: Duration,
    /// Bytes of machine code.
    pub code_bytes: u32,
}

/// Verify `k`, translate it to CLIF and define it in `module` as an exported function named
/// after the kernel.
pub fn define_kernel<M: Module>(module: &mut M, k: &Kernel) -> Result<Defined> {
    qkc_kernel::verify(k)?;
    let t0 = Instant::now();
    let sig = lower::signature(k, module.isa().default_call_conv())?;
    let cl = |e: cranelift_module::ModuleError| CodegenError::Cranelift {
        kernel: k.name.clone(),
        message: e.to_string(),
    };
    let id = module
        .declare_function(&k.name, Linkage::Export, &sig)
        .map_err(cl)?;
    let mut ctx: Context = module.make_context();
    ctx.func.signature = sig;
    lower::lower_kernel(k, &mut ctx.func, module.isa().frontend_config())?;
    let clif = ctx.func.display().to_string();
    let lower_time = t0.elapsed();
    let t1 = Instant::now();
    module.define_function(id, &mut ctx).map_err(|e| match e {
        cranelift_module::ModuleError::Compilation(ce) => compile_error(k, &ctx, ce),
        e => cl(e),
    })?;
    let code_bytes = ctx.compiled_code().map_or(0, |c| c.code_info().total_size);
    Ok(Defined {
        id,
        clif,
        lower_time,
        compile_time: t1.elapsed(),
        code_bytes,
    })
}

/// Cranelift's lowering gaps (an instruction with no x86-64 rule) are `Unsupported`, like
/// ours; verifier errors are our bugs and carry the annotated function.
fn compile_error(k: &Kernel, ctx: &Context, e: cranelift_codegen::CodegenError) -> CodegenError {
    match e {
        cranelift_codegen::CodegenError::Unsupported(m) => CodegenError::Unsupported {
            kernel: k.name.clone(),
            inst: "(Cranelift x86-64 lowering)".into(),
            reason: m,
        },
        cranelift_codegen::CodegenError::Verifier(errs) => CodegenError::Cranelift {
            kernel: k.name.clone(),
            message: cranelift_codegen::print_errors::pretty_verifier_error(&ctx.func, None, errs),
        },
        e => CodegenError::Cranelift {
            kernel: k.name.clone(),
            message: e.to_string(),
        },
    }
}
