//! The template library: the files of `templates/kir/` at the repository root, embedded in the
//! binary so qkc runs without its source tree, or loaded from a directory.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::KernelError;
use crate::template::{Args, Instance, Template};

/// The embedded template files: (path under `templates/kir/`, text).
const FILES: &[(&str, &str)] = &[
    ("gemv_u4_cpu.kir", include_str!("../../../../templates/kir/gemv_u4_cpu.kir")),
    ("gemv_u4_cpu_q8.kir", include_str!("../../../../templates/kir/gemv_u4_cpu_q8.kir")),
    ("gemv_u4_cpu_a8.kir", include_str!("../../../../templates/kir/gemv_u4_cpu_a8.kir")),
    ("gemv_u4_cpu_a8g.kir", include_str!("../../../../templates/kir/gemv_u4_cpu_a8g.kir")),
    ("gemv_u8_cpu_a8g.kir", include_str!("../../../../templates/kir/gemv_u8_cpu_a8g.kir")),
    ("gemv_u4_gpu.kir", include_str!("../../../../templates/kir/gemv_u4_gpu.kir")),
    ("gemv_u4_gpu_r2.kir", include_str!("../../../../templates/kir/gemv_u4_gpu_r2.kir")),
    ("gemv_lut3_gpu_r2.kir", include_str!("../../../../templates/kir/gemv_lut3_gpu_r2.kir")),
    ("gemv_nf4_gpu_r2.kir", include_str!("../../../../templates/kir/gemv_nf4_gpu_r2.kir")),
    ("gemv_u4_gpu_f32.kir", include_str!("../../../../templates/kir/gemv_u4_gpu_f32.kir")),
    ("silu_cpu.kir", include_str!("../../../../templates/kir/silu_cpu.kir")),
    ("silu_gpu.kir", include_str!("../../../../templates/kir/silu_gpu.kir")),
    ("rmsnorm_cpu.kir", include_str!("../../../../templates/kir/rmsnorm_cpu.kir")),
    ("rmsnorm_gpu.kir", include_str!("../../../../templates/kir/rmsnorm_gpu.kir")),
    ("snippets/decode_u4.kir", include_str!("../../../../templates/kir/snippets/decode_u4.kir")),
    ("snippets/cvt_f16.kir", include_str!("../../../../templates/kir/snippets/cvt_f16.kir")),
    ("snippets/dequant_u4_h2.kir", include_str!("../../../../templates/kir/snippets/dequant_u4_h2.kir")),
    ("snippets/exp2_poly.kir", include_str!("../../../../templates/kir/snippets/exp2_poly.kir")),
    ("snippets/split_u4_bytes.kir", include_str!("../../../../templates/kir/snippets/split_u4_bytes.kir")),
    ("snippets/epilogue_none.kir", include_str!("../../../../templates/kir/snippets/epilogue_none.kir")),
    ("snippets/epilogue_silu.kir", include_str!("../../../../templates/kir/snippets/epilogue_silu.kir")),
    ("snippets/exp2_op.kir", include_str!("../../../../templates/kir/snippets/exp2_op.kir")),
    ("snippets/a8g_stats_f32.kir", include_str!("../../../../templates/kir/snippets/a8g_stats_f32.kir")),
    ("snippets/a8g_stats_f16.kir", include_str!("../../../../templates/kir/snippets/a8g_stats_f16.kir")),
];

/// Templates and snippets by name.
#[derive(Clone, Debug, Default)]
pub struct Library {
    items: BTreeMap<String, Template>,
}

impl Library {
    /// Parse a set of files into a library.
    pub fn from_sources<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Library, KernelError> {
        let mut items = BTreeMap::new();
        for (path, src) in files {
            let t = Template::parse(src)
                .map_err(|e| KernelError::Template { template: path.into(), message: e.to_string() })?;
            if let Some(old) = items.insert(t.name.clone(), t) {
                return Err(KernelError::Template {
                    template: old.name,
                    message: format!("defined twice (again in {path})"),
                });
            }
        }
        Ok(Library { items })
    }

    /// Load every `*.kir` file under `dir` (recursively).
    pub fn from_dir(dir: &Path) -> Result<Library, KernelError> {
        let mut files = Vec::new();
        collect(dir, &mut files).map_err(|e| KernelError::Template {
            template: dir.display().to_string(),
            message: e.to_string(),
        })?;
        Library::from_sources(files.iter().map(|(p, s)| (p.as_str(), s.as_str())))
    }

    /// A template or snippet by name.
    pub fn get(&self, name: &str) -> Option<&Template> {
        self.items.get(name)
    }

    /// All names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.items.keys().map(String::as_str)
    }

    /// Instantiate template `name`.
    pub fn instantiate(&self, name: &str, args: &Args) -> Result<Instance, KernelError> {
        let t = self.get(name).ok_or_else(|| KernelError::Template {
            template: name.into(),
            message: "no such template".into(),
        })?;
        t.instantiate(args, self)
    }
}

fn collect(dir: &Path, out: &mut Vec<(String, String)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "kir") {
            out.push((p.display().to_string(), std::fs::read_to_string(&p)?));
        }
    }
    Ok(())
}

/// The built-in library (the embedded `templates/kir/` files).
pub fn builtin() -> Result<Library, KernelError> {
    Library::from_sources(FILES.iter().copied())
}

/// The embedded files, for tests that compare them with the tree.
pub fn builtin_files() -> &'static [(&'static str, &'static str)] {
    FILES
}
