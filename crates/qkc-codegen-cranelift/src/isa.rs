//! The host ISA: cranelift-native's detection (SSE4.1, AVX, AVX2, FMA, BMI on this EPYC), with
//! the flags qkc wants. KIR's CPU vectors are 128 bits, which Cranelift encodes with SSE4.1, or
//! VEX (AVX) when the host has it. We require SSE4.1 (pmulld, pminsd, roundps) and FMA (the
//! templates' `fma`; without it Cranelift would call `fmaf` through a libcall).

use std::sync::Arc;

use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::settings::{self, Configurable};

use crate::error::{CodegenError, Result};

/// Options that change the generated code (hashed into the artifact key via [`Options::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Position-independent code (object files linked into PIE executables need it).
    pub pic: bool,
    /// Run Cranelift's IR verifier before compiling (on in debug builds).
    pub verify: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pic: false,
            verify: cfg!(debug_assertions),
        }
    }
}

impl Options {
    /// The code generator's name and options, as recorded in [`qkc_kernel::Artifact::codegen`].
    pub fn name(&self) -> String {
        format!(
            "cranelift-{} x86_64-host{}",
            env!("CARGO_PKG_VERSION"),
            if self.pic { " pic" } else { "" }
        )
    }
}

/// The host ISA with speed optimizations, checked to have the SIMD features KIR CPU kernels use.
pub fn host_isa(opts: Options) -> Result<Arc<dyn TargetIsa>> {
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v)
            .map_err(|e| CodegenError::Isa(format!("setting {k}={v}: {e}")))
    };
    set(&mut flags, "opt_level", "speed")?;
    set(
        &mut flags,
        "is_pic",
        if opts.pic { "true" } else { "false" },
    )?;
    set(
        &mut flags,
        "enable_verifier",
        if opts.verify { "true" } else { "false" },
    )?;
    check_host()?;
    let isa = cranelift_native::builder().map_err(|e| CodegenError::Isa(e.to_string()))?;
    isa.finish(settings::Flags::new(flags))
        .map_err(|e| CodegenError::Isa(e.to_string()))
}

/// cranelift-native enables what the host has; KIR CPU kernels need at least SSE4.1 and FMA.
#[cfg(target_arch = "x86_64")]
fn check_host() -> Result<()> {
    for (name, ok) in [
        ("sse4.1", is_x86_feature_detected!("sse4.1")),
        ("fma", is_x86_feature_detected!("fma")),
    ] {
        if !ok {
            return Err(CodegenError::Isa(format!("the host CPU lacks {name}")));
        }
    }
    Ok(())
}

#[cfg(not(target_arch = "x86_64"))]
fn check_host() -> Result<()> {
    Err(CodegenError::Isa(
        "only x86-64 hosts are supported (128-bit SSE/AVX lowering)".into(),
    ))
}
