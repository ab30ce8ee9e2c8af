//! The JIT path: a `JITModule` per kernel, finalized into executable memory, with the artifact
//! describing it. The runtime (qkc-runtime) calls [`JitKernel::entry`] through its own typed
//! pointers; [`JitKernel::call`] is a small dynamic-arity helper for kernels whose parameters
//! are all pointers or integers (every template today), used by the tests.

use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::default_libcall_names;
use qkc_kernel::{Artifact, Code, Kernel};

use crate::error::{CodegenError, Result};
use crate::isa::{host_isa, Options};
use crate::module::{define_kernel, Defined};

/// A kernel compiled into this process.
pub struct JitKernel {
    module: Option<JITModule>,
    entry: *const u8,
    /// The artifact: launch shape, parameter layout, key; its code is the CLIF text.
    pub artifact: Artifact,
    /// The CLIF and the time it took.
    pub defined: Defined,
    nparams: usize,
}

impl JitKernel {
    /// Compile `k` for the host.
    pub fn compile(k: &Kernel) -> Result<JitKernel> {
        let opts = Options::default();
        let isa = host_isa(opts)?;
        let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
        let defined = define_kernel(&mut module, k)?;
        let cl = |e: cranelift_module::ModuleError| CodegenError::Cranelift {
            kernel: k.name.clone(),
            message: e.to_string(),
        };
        module.finalize_definitions().map_err(cl)?;
        let entry = module.get_finalized_function(defined.id);
        let artifact = Artifact::new(k, Code::Clif(defined.clif.clone()), &opts.name());
        Ok(JitKernel {
            module: Some(module),
            entry,
            artifact,
            defined,
            nparams: k.params.len(),
        })
    }

    /// The machine code's entry: `extern "C" fn(params..., chunk_lo: u32, chunk_hi: u32)`.
    pub fn entry(&self) -> *const u8 {
        self.entry
    }

    /// Run chunks `lo..hi` with `args` (pointers as addresses, integers zero- or sign-extended
    /// to 64 bits), one per kernel parameter.
    ///
    /// # Safety
    /// Every pointer must point to a buffer at least as long as its parameter's `len`, aligned
    /// as the artifact's parameter layout says, and no UB of KIR.md may happen.
    pub unsafe fn call(&self, args: &[u64], lo: u32, hi: u32) -> Result<()> {
        if args.len() != self.nparams {
            return Err(CodegenError::Internal(format!(
                "{} arguments for {} parameters",
                args.len(),
                self.nparams
            )));
        }
        // SAFETY: forwarded to the caller's contract; the arity matches the kernel.
        unsafe { call_entry(self.entry, args, lo, hi) }
    }
}

/// The most parameters [`call_entry`] passes.
pub const MAX_PARAMS: usize = 24;

/// Call a compiled entry `extern "C" fn(params..., chunk_lo: u32, chunk_hi: u32)` whose
/// parameters are all pointers or integers, with `args` (one per parameter, widened to 64 bits).
///
/// # Safety
/// `entry` must be such an entry with exactly `args.len()` parameters, still alive; the
/// arguments must satisfy the kernel's contract (see [`JitKernel::call`]).
pub unsafe fn call_entry(entry: *const u8, args: &[u64], lo: u32, hi: u32) -> Result<()> {
    macro_rules! arity {
        ($($n:literal),*) => {{
            type F = unsafe extern "C" fn($(arity!(@t $n),)* u32, u32);
            // SAFETY: the entry was compiled with this signature (all parameters are
            // 64-bit integer-class values under the host's C calling convention).
            let f: F = unsafe { std::mem::transmute::<*const u8, F>(entry) };
            unsafe { f($(args[$n],)* lo, hi) };
        }};
        (@t $n:literal) => { u64 };
    }
    match args.len() {
        0 => arity!(),
        1 => arity!(0),
        2 => arity!(0, 1),
        3 => arity!(0, 1, 2),
        4 => arity!(0, 1, 2, 3),
        5 => arity!(0, 1, 2, 3, 4),
        6 => arity!(0, 1, 2, 3, 4, 5),
        7 => arity!(0, 1, 2, 3, 4, 5, 6),
        8 => arity!(0, 1, 2, 3, 4, 5, 6, 7),
        9 => arity!(0, 1, 2, 3, 4, 5, 6, 7, 8),
        10 => arity!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
        11 => arity!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
        12 => arity!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
        13 => arity!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12),
        14 => arity!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13),
        15 => arity!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14),
        16 => arity!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        17 => arity!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16),
        18 => arity!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17),
        19 => arity!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18),
        20 => arity!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19),
        21 => arity!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20),
        22 => arity!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21),
        23 => {
            arity!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22)
        }
        24 => arity!(
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23
        ),
        n => {
            return Err(CodegenError::Internal(format!(
                "a CPU kernel may have at most {MAX_PARAMS} parameters, not {n}"
            )))
        }
    }
    Ok(())
}

impl Drop for JitKernel {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: `entry` is not used after the kernel is dropped (it is private and only
            // called through `&self`).
            unsafe { m.free_memory() };
        }
    }
}
