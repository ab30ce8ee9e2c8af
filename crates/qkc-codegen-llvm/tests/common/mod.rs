//! Shared test support: compile a kernel to PTX and assemble it with ptxas for sm_90 and sm_80.
#![allow(dead_code)]

use qkc_codegen_llvm::{compile_ptx, ptxas_check, ptxas_path, PtxOptions, PtxasReport};
use qkc_kernel::template::{builtin, Args, Library};
use qkc_kernel::{Code, Kernel};

/// `true` when ptxas can be run; otherwise prints "skipped: no ptxas" for `test`.
pub fn have_ptxas(test: &str) -> bool {
    if ptxas_path().is_some() {
        true
    } else {
        eprintln!("{test}: skipped: no ptxas");
        false
    }
}

pub fn lib() -> Library {
    builtin().expect("built-in templates parse")
}

pub fn instantiate(name: &str, args: &Args) -> Kernel {
    lib()
        .instantiate(name, args)
        .unwrap_or_else(|e| panic!("instantiate {name}: {e}"))
        .kernel
}

pub fn parse(src: &str) -> Kernel {
    let k = qkc_kernel::parse(src).unwrap_or_else(|e| panic!("parse: {e:?}\n{src}"));
    qkc_kernel::verify(&k).unwrap_or_else(|e| panic!("verify: {e}\n{src}"));
    k
}

/// The PTX of `k` for `sm_<sm>`.
pub fn ptx(k: &Kernel, sm: u32) -> String {
    let art = compile_ptx(k, &PtxOptions::sm(sm))
        .unwrap_or_else(|e| panic!("compile @{} sm_{sm}: {e}", k.name));
    match art.code {
        Code::Ptx(p) => p,
        other => panic!("not PTX: {other:?}"),
    }
}

/// Compile for `sm` and assemble with ptxas; panics on either failure.
pub fn assemble(k: &Kernel, sm: u32) -> (String, PtxasReport) {
    let p = ptx(k, sm);
    let r = ptxas_check(&p, sm).unwrap_or_else(|e| panic!("@{} sm_{sm}: {e}\n{p}", k.name));
    (p, r)
}

/// Compile and assemble for every supported sm (90, 80, 86, 89); returns the sm_90 PTX and
/// report.
pub fn assemble_all(k: &Kernel) -> (String, PtxasReport) {
    let r90 = assemble(k, 90);
    for sm in [80, 86, 89] {
        let (p, _) = assemble(k, sm);
        assert!(p.contains(&format!(".target sm_{sm}")), "{p}");
    }
    r90
}
