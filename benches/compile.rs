//! Compile-time bench: parse + verify + the fusion pipeline + partition, per ir/ graph.
//! (Kernel code generation joins this bench when the backends land.)

use criterion::{criterion_group, criterion_main, Criterion};
use qkc::{ir, passes};

fn graphs() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/ir");
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "qir"))
        .filter_map(|p| {
            Some((
                p.file_stem()?.to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).ok()?,
            ))
        })
        .collect();
    v.sort();
    v
}

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("frontend+passes");
    for (name, src) in graphs() {
        group.bench_function(&name, |b| {
            b.iter(|| {
                let mut g = ir::parse(&src).expect("parse");
                ir::verify::verify(&g).expect("verify");
                let opts = passes::Options {
                    verify_each: false,
                    ..passes::Options::default()
                };
                passes::default_pipeline(opts)
                    .run(&mut g)
                    .expect("pipeline");
                passes::partition(&g)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, compile);
criterion_main!(benches);
