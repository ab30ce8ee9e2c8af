//! The object path: one kernel emitted as a `.o` by the ObjectModule, linked into a small C
//! program with the system C compiler, called on fresh random inputs, and checked against the
//! f64 reference and the KIR interpreter. Without a C compiler it says "skipped" (it never
//! passes silently).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{instantiate, quantize, randn, rng, seed, Backend, Interp};
use qkc_codegen_cranelift::compile_object;
use qkc_kernel::interp::{Arg, Buffer};
use qkc_kernel::template::Args;

/// The C side: read the three inputs, call the kernel on chunks 0..1 and 1..CHUNKS into a
/// NaN-poisoned, 256-byte aligned y, write y. The prototype is written here; qkc's generated
/// header (templates/, not yet there) will replace it.
const MAIN_C: &str = r#"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
void gemv_u4_cpu_q8(const int32_t *w, const uint16_t *s, const float *x, float *y, uint32_t lo, uint32_t hi);
static void *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb"); if (!f) { perror(path); exit(2); }
  fseek(f, 0, SEEK_END); *n = (size_t)ftell(f); fseek(f, 0, SEEK_SET);
  void *p = aligned_alloc(256, (*n + 255) / 256 * 256);
  if (fread(p, 1, *n, f) != *n) { perror(path); exit(2); }
  fclose(f); return p;
}
int main(int argc, char **argv) {
  if (argc != 7) return 2;
  size_t nw, ns, nx; int n = atoi(argv[5]); unsigned chunks = (unsigned)atoi(argv[6]);
  void *w = slurp(argv[1], &nw), *s = slurp(argv[2], &ns), *x = slurp(argv[3], &nx);
  float *y = aligned_alloc(256, ((size_t)n * 4 + 255) / 256 * 256);
  for (int i = 0; i < n; i++) y[i] = NAN;
  gemv_u4_cpu_q8(w, s, x, y, 0, 1);
  gemv_u4_cpu_q8(w, s, x, y, 1, chunks);
  FILE *f = fopen(argv[4], "wb"); fwrite(y, 4, (size_t)n, f); fclose(f);
  return 0;
}
"#;

fn cc() -> Option<String> {
    let cands = [
        std::env::var("CC").ok(),
        Some("cc".into()),
        Some("gcc".into()),
    ];
    cands.into_iter().flatten().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn object_links_into_a_c_program() {
    let Some(cc) = cc() else {
        eprintln!("skipped: no C compiler (cc/gcc) on this machine");
        return;
    };
    let (k, n, group, chunks) = (512usize, 19usize, 64usize, 3i64);
    let s = seed("object_link");
    let q = quantize(n, k, group, s);
    let x = randn(&mut rng(s ^ 7), k, 1.0);
    let args = Args::new()
        .int("K", k as i64)
        .int("N", n as i64)
        .int("GROUP", group as i64)
        .int("CHUNKS", chunks);
    let kern = instantiate(
        "gemv_u4_cpu_q8",
        &args
            .snippet("split", "split_u4_bytes")
            .snippet("epilogue", "epilogue_none"),
    );
    let (obj, arts) = compile_object(&[&kern], "qkc_kernels").expect("object");
    eprintln!("{}", arts[0]);

    let dir: PathBuf = std::env::temp_dir().join(format!("qkc-object-link-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = |f: &str| dir.join(f);
    std::fs::write(p("k.o"), &obj).expect("write .o");
    std::fs::write(p("main.c"), MAIN_C).expect("write main.c");
    std::fs::write(p("w.bin"), Buffer::u32s(&q.words).bytes).expect("w");
    std::fs::write(p("s.bin"), Buffer::f16_bits(&q.scales).bytes).expect("s");
    std::fs::write(p("x.bin"), Buffer::f32s(&x).bytes).expect("x");
    let out = Command::new(&cc)
        .args(["-O1", "-o"])
        .arg(p("prog"))
        .arg(p("main.c"))
        .arg(p("k.o"))
        .arg("-lm")
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "{cc} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(p("prog"))
        .args([p("w.bin"), p("s.bin"), p("x.bin"), p("y.bin")])
        .arg(n.to_string())
        .arg(chunks.to_string())
        .output()
        .expect("run prog");
    assert!(
        run.status.success(),
        "prog failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let y = Buffer::from_bytes(std::fs::read(p("y.bin")).expect("y")).to_f32();

    let mut a = vec![
        Arg::Buf(Buffer::u32s(&q.words)),
        Arg::Buf(Buffer::f16_bits(&q.scales)),
        Arg::Buf(Buffer::f32s(&x)),
        Arg::Buf(Buffer::poison_f32(n)),
    ];
    Interp.run(&kern, &mut a).expect("interp");
    let yi = a[3].buffer().expect("y").to_f32();
    for r in 0..n {
        let row = &q.deq[r * k..(r + 1) * k];
        let sum: f64 = row
            .iter()
            .zip(&x)
            .map(|(&w, &v)| (f64::from(w) * f64::from(v)).abs())
            .sum();
        let want: f64 = row
            .iter()
            .zip(&x)
            .map(|(&w, &v)| f64::from(w) * f64::from(v))
            .sum();
        // int8 x rounding dominates against the f32 x: 1e-2 of Σ|w·x| (as in the suite).
        assert!(
            (f64::from(y[r]) - want).abs() <= 1e-2 * sum,
            "row {r}: C got {}, f64 want {want}",
            y[r]
        );
        // the same integer dots and f32 ops as the interpreter: 1e-6 of Σ|w·x|.
        assert!(
            (y[r] - yi[r]).abs() as f64 <= 1e-6 * sum,
            "row {r}: C got {}, interp {}",
            y[r],
            yi[r]
        );
    }
    eprintln!(
        "object_link: {} rows match (.o of {} bytes, kept in {})",
        n,
        obj.len(),
        dir.display()
    );
}
