//! The template mechanism on small inline templates: argument checking, requirements, snippet
//! splicing with renaming (also nested), constant expressions, and diagnostics of invalid
//! instances at the template's own line numbers.

use qkc_kernel::template::{eval, eval_cond, Args, Library};
use qkc_kernel::{print, KernelError, Type};

const SCALE: &str = "#template scale
#param N: int
#param T: type
#param body: snippet
#require N % 4 == 0 | N must be a multiple of 4
kernel @scale(%x: ptr<global, f32> len({{N}})) cpu chunks({{cdiv(N, 8)}}) {
  %c = axis cpu.chunk : i32
  %v = load %x[%c] align 4 : {{T}}
  {{body %v -> %a}}
  {{body %a -> %b}}
  store %b, %x[%c] align 4
}
";

const DOUBLE: &str = "#snippet double
#param T: type
#param inner: snippet
#in %in
#out %out
%two = const 2.0 : {{T}}
{{inner %in, %two -> %out}}
";

const MUL: &str = "#snippet mul
#param T: type
#in %p, %q
#out %r
%r = mul %p, %q : {{T}}   // a comment that must not swallow the next line
";

const ADD3: &str = "#snippet add3
#in %p, %q, %s
#out %r
%r = add %p, %q : f32
";

fn lib() -> Library {
    Library::from_sources([
        ("scale.kir", SCALE),
        ("double.kir", DOUBLE),
        ("mul.kir", MUL),
        ("add3.kir", ADD3),
    ])
    .expect("library")
}

fn args() -> Args {
    Args::new().int("N", 16).ty("T", Type::F32).snippet("body", "double").snippet("inner", "mul")
}

#[test]
fn nested_snippets_splice_with_fresh_names() {
    let inst = lib().instantiate("scale", &args()).expect("instantiate");
    let text = print(&inst.kernel);
    assert!(text.contains("cpu chunks(2)"), "{text}");
    // two splices of `double`, each with its own nested `mul`
    assert!(text.contains("%body.0.two = const 2.0 : f32"), "{text}");
    assert!(text.contains("%body.1.two = const 2.0 : f32"), "{text}");
    assert!(text.contains("%a = mul %v, %body.0.two : f32"), "{text}");
    assert!(text.contains("%b = mul %a, %body.1.two : f32"), "{text}");
    // the template's lines keep their numbers in the instance
    assert_eq!(inst.source.lines().nth(10).map(str::trim), Some("store %b, %x[%c] align 4"));
}

fn template_err(args: &Args) -> String {
    match lib().instantiate("scale", args) {
        Err(e @ (KernelError::Template { .. } | KernelError::Unsupported(_))) => e.to_string(),
        other => panic!("expected a template error, got {other:?}"),
    }
}

#[test]
fn arguments_are_checked_against_the_holes() {
    let mut no_n = args();
    no_n.0.remove("N");
    assert!(template_err(&no_n).contains("missing argument for hole `N`"));
    assert!(template_err(&args().int("M", 3)).contains("argument `M` matches no hole"));
    assert!(template_err(&args().float("N", 3.0)).contains("hole `N` is Int"));
    assert!(template_err(&args().snippet("body", "nope")).contains("no snippet `nope`"));
    let m = template_err(&args().snippet("inner", "add3"));
    assert!(m.contains("passes 2 input(s) and 1 output(s); snippet `add3` takes 3 and gives 1"), "{m}");
    let m = template_err(&args().int("N", 18));
    assert!(m.contains("requirement `N % 4 == 0` fails for N=18: N must be a multiple of 4"), "{m}");
}

#[test]
fn invalid_instances_point_at_template_lines() {
    let bad = SCALE.replace("store %b, %x[%c] align 4", "store %b, %x[%c] align 3");
    let lib = Library::from_sources([("scale.kir", bad.as_str()), ("double.kir", DOUBLE), ("mul.kir", MUL)])
        .expect("library");
    match lib.instantiate("scale", &args()) {
        Err(KernelError::Instance { rendered, .. }) => {
            assert!(rendered.contains("scale (instance):11:3: align 3 is not a power of two"), "{rendered}")
        }
        other => panic!("expected an invalid instance, got {other:?}"),
    }
    let ty = lib.instantiate("scale", &args().ty("T", Type::I32)).expect_err("type error");
    assert!(ty.to_string().contains("scale (instance):9:23: `2.0` is not a valid i32 literal"), "{ty}");
}

#[test]
fn let_values_are_fixed_by_the_template() {
    let src = "#template fixed\n#param N: int\n#let W: int = N / 4\n#let T: type = <4 x f32>\nkernel @f(%x: ptr<global, f32>) cpu chunks({{W}}) {\n  %z = const 0.0 : {{T}}\n}\n";
    let lib = Library::from_sources([("f.kir", src)]).expect("library");
    let k = lib.instantiate("fixed", &Args::new().int("N", 12)).expect("instantiate").kernel;
    assert!(print(&k).contains("cpu chunks(3)"));
    let e = lib.instantiate("fixed", &Args::new().int("N", 12).int("W", 1)).expect_err("override");
    assert!(e.to_string().contains("fixed by the template"), "{e}");
}

#[test]
fn integer_expressions() {
    let vars = [("K".to_string(), 4096), ("G".to_string(), 128)].into_iter().collect();
    assert_eq!(eval("K / G * 2 + 1", &vars), Ok(65));
    assert_eq!(eval("cdiv(K + 1, G) - min(3, max(1, 2))", &vars), Ok(31));
    assert_eq!(eval("(K - 1) % G", &vars), Ok(127));
    assert_eq!(eval_cond("K % G == 0", &vars), Ok(true));
    assert!(eval("K / (G - 128)", &vars).is_err());
    assert!(eval("Q", &vars).expect_err("unknown").contains("unknown integer parameter `Q`"));
}

#[test]
fn aliased_outputs_cost_no_instruction() {
    let t = "#template t\n#param e: snippet\nkernel @t(%x: ptr<global, f32>) cpu chunks(1) {\n  %i = const 0 : i32\n  %a = load %x[%i] align 4 : f32\n  {{e %a -> %b}}\n  {{e %b -> %c}}\n  store %c, %x[%i] align 4\n}\n";
    let id = "#snippet id\n#in %v\n#out %w = %v\n";
    let lib = Library::from_sources([("t.kir", t), ("id.kir", id)]).expect("library");
    let k = lib.instantiate("t", &Args::new().snippet("e", "id")).expect("instantiate").kernel;
    assert_eq!(k.num_insts(), 3, "{k}");
    assert!(print(&k).contains("store %a, %x[%i] align 4"), "{k}");
}
