//! Write one template instance as an object file, to read its machine code with objdump.
//!
//! `cargo run -p qkc-codegen-cranelift --example dump_obj -- TEMPLATE OUT.o K=4096 N=14336 ...`
//! (int arguments as NAME=VALUE, snippets as NAME=@SNIPPET).

use qkc_kernel::template::{builtin, Args};

fn main() -> Result<(), String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let [name, out, rest @ ..] = argv.as_slice() else {
        return Err("usage: dump_obj TEMPLATE OUT.o NAME=VALUE... (snippets NAME=@SNIPPET)".into());
    };
    let mut args = Args::new();
    for a in rest {
        let (k, v) = a
            .split_once('=')
            .ok_or(format!("`{a}`: expected NAME=VALUE"))?;
        args = match v.strip_prefix('@') {
            Some(s) => args.snippet(k, s),
            None => args.int(k, v.parse().map_err(|e| format!("`{a}`: {e}"))?),
        };
    }
    let lib = builtin().map_err(|e| e.to_string())?;
    let k = lib
        .instantiate(name, &args)
        .map_err(|e| e.to_string())?
        .kernel;
    let (obj, _) = qkc_codegen_cranelift::compile_object(&[&k], name).map_err(|e| e.to_string())?;
    std::fs::write(out, obj).map_err(|e| e.to_string())?;
    Ok(())
}
