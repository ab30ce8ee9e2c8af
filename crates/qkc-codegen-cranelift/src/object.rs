//! The object path: the same lowering into an `ObjectModule`, written as a relocatable ELF
//! object (`.o`) exporting the kernel as `extern "C" fn NAME(params..., chunk_lo, chunk_hi)`,
//! position-independent so it links into PIE executables.

use cranelift_module::default_libcall_names;
use cranelift_object::{ObjectBuilder, ObjectModule};
use qkc_kernel::{Artifact, Code, Kernel};

use crate::error::{CodegenError, Result};
use crate::isa::{host_isa, Options};
use crate::module::define_kernel;

/// Compile `kernels` into one object file; the artifact of each carries the object's bytes.
pub fn compile_object(kernels: &[&Kernel], object_name: &str) -> Result<(Vec<u8>, Vec<Artifact>)> {
    let opts = Options {
        pic: true,
        ..Options::default()
    };
    let isa = host_isa(opts)?;
    let builder = ObjectBuilder::new(isa, object_name, default_libcall_names()).map_err(|e| {
        CodegenError::Cranelift {
            kernel: object_name.into(),
            message: e.to_string(),
        }
    })?;
    let mut module = ObjectModule::new(builder);
    for k in kernels {
        define_kernel(&mut module, k)?;
    }
    let bytes = module
        .finish()
        .emit()
        .map_err(|e| CodegenError::Cranelift {
            kernel: object_name.into(),
            message: e.to_string(),
        })?;
    let arts = kernels
        .iter()
        .map(|k| Artifact::new(k, Code::Object(bytes.clone()), &opts.name()))
        .collect();
    Ok((bytes, arts))
}
