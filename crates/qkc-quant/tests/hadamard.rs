//! Hadamard rotations: orthogonality for every supported size up to 28672, the FWHT path equals
//! the dense Kronecker formula (built here from the data files, independently of the crate),
//! and fold-then-rotate gives the unrotated product.

mod common;

use common::rng;
use qkc_quant::hadamard::{self, Plan};
use qkc_quant::rotation::{self, Rotation};
use rand::Rng;

/// The had_K tables read straight from the data files.
fn had_k(k: usize) -> Vec<f64> {
    let text = match k {
        12 => include_str!("../data/hadamard/had12.txt"),
        20 => include_str!("../data/hadamard/had20.txt"),
        28 => include_str!("../data/hadamard/had28.txt"),
        36 => include_str!("../data/hadamard/had36.txt"),
        40 => include_str!("../data/hadamard/had40.txt"),
        44 => include_str!("../data/hadamard/had44.txt"),
        52 => include_str!("../data/hadamard/had52.txt"),
        60 => include_str!("../data/hadamard/had60.txt"),
        108 => include_str!("../data/hadamard/had108.txt"),
        140 => include_str!("../data/hadamard/had140.txt"),
        156 => include_str!("../data/hadamard/had156.txt"),
        172 => include_str!("../data/hadamard/had172.txt"),
        _ => return vec![1.0],
    };
    text.chars()
        .filter(|c| *c == '+' || *c == '-')
        .map(|c| if c == '+' { 1.0 } else { -1.0 })
        .collect()
}

/// QuaRot's get_hadK, written out again.
fn quarot_k(n: usize) -> Option<usize> {
    for k in [172, 156, 140, 108, 60, 52, 36, 28, 44, 40, 20, 12] {
        if n % k == 0 {
            return (n / k).is_power_of_two().then_some(k);
        }
    }
    n.is_power_of_two().then_some(1)
}

/// Entry (i, j) of kron(had_K, H_{n/K}) / sqrt(n), or of its transpose.
fn kron_entry(had: &[f64], k: usize, n: usize, i: usize, j: usize, transpose: bool) -> f64 {
    let (i, j) = if transpose { (j, i) } else { (i, j) };
    let m = n / k;
    let sylvester = if ((i % m) & (j % m)).count_ones() % 2 == 0 {
        1.0
    } else {
        -1.0
    };
    had[(i / m) * k + j / m] * sylvester / (n as f64).sqrt()
}

fn random_vec(n: usize, seed: u64) -> Vec<f64> {
    let mut r = rng(seed);
    (0..n).map(|_| r.gen_range(-1.0..1.0)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn supported_sizes_follow_get_hadk() {
    for n in 1..=30000 {
        assert_eq!(hadamard::supported(n), quarot_k(n).is_some(), "n = {n}");
    }
    for (n, k) in [
        (11008, 172),
        (14336, 28),
        (13824, 108),
        (5120, 40),
        (4096, 1),
        (768, 12),
        (28672, 28),
    ] {
        assert_eq!(hadamard::get_hadk(n).ok(), Some(k), "n = {n}");
    }
}

#[test]
fn h_times_h_transpose_is_identity_for_every_supported_size() {
    let sizes = hadamard::supported_sizes(28672);
    assert!(sizes.len() > 100 && sizes.contains(&28672) && sizes.contains(&11008));
    for n in sizes {
        let mut plan = Plan::<f64>::new(n, false).expect("plan");
        let mut plan_t = Plan::<f64>::new(n, true).expect("plan");
        if n <= 64 {
            // Dense through the transform: column j = H e_j; check H·Hᵀ = I entry by entry.
            let cols: Vec<Vec<f64>> = (0..n)
                .map(|j| {
                    let mut e = vec![0.0; n];
                    e[j] = 1.0;
                    plan.apply(&mut e).expect("apply");
                    e
                })
                .collect();
            for a in 0..n {
                for b in 0..n {
                    let row_dot: f64 = (0..n).map(|j| cols[j][a] * cols[j][b]).sum();
                    let want = if a == b { 1.0 } else { 0.0 };
                    assert!(
                        (row_dot - want).abs() < 1e-12,
                        "n = {n}: (H·Hᵀ)[{a},{b}] = {row_dot}"
                    );
                }
            }
            continue;
        }
        // Large n: a few random vectors. ‖Hx‖ = ‖x‖, ⟨Hx, Hy⟩ = ⟨x, y⟩, Hᵀ(Hx) = x, and one column
        // has every entry ±1/sqrt(n) (so √n·H is a ±1 matrix with H·Hᵀ = n·I).
        let (x, y) = (random_vec(n, n as u64), random_vec(n, n as u64 + 1));
        let (mut hx, mut hy) = (x.clone(), y.clone());
        plan.apply(&mut hx).expect("apply");
        plan.apply(&mut hy).expect("apply");
        let tol = 1e-10 * n as f64;
        assert!((dot(&hx, &hx) - dot(&x, &x)).abs() < tol, "n = {n}: norm");
        assert!(
            (dot(&hx, &hy) - dot(&x, &y)).abs() < tol,
            "n = {n}: inner product"
        );
        plan_t.apply(&mut hx).expect("apply T");
        assert!(
            hx.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-12),
            "n = {n}: Hᵀ H x ≠ x"
        );
        let mut e = vec![0.0; n];
        e[n / 3] = 1.0;
        plan.apply(&mut e).expect("apply");
        let s = 1.0 / (n as f64).sqrt();
        assert!(
            e.iter().all(|v| (v.abs() - s).abs() < 1e-12),
            "n = {n}: column is not ±1/sqrt(n)"
        );
    }
}

#[test]
fn fwht_path_equals_dense_kronecker() {
    for n in [768, 4096, 11008, 14336] {
        let k = quarot_k(n).expect("supported");
        let had = had_k(k);
        for transpose in [false, true] {
            let x = random_vec(n, 7 + n as u64);
            let mut y = x.clone();
            hadamard::apply(&mut y, transpose).expect("apply");
            let mut yf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            hadamard::apply_f32(&mut yf, transpose).expect("apply f32");
            // All rows for the smaller sizes, 48 random rows for the large ones (n² is too much).
            let rows: Vec<usize> = if n <= 4096 {
                (0..n).collect()
            } else {
                let mut r = rng(n as u64);
                (0..48).map(|_| r.gen_range(0..n)).collect()
            };
            for i in rows {
                let want: f64 = (0..n)
                    .map(|j| kron_entry(&had, k, n, i, j, transpose) * x[j])
                    .sum();
                assert!(
                    (y[i] - want).abs() < 1e-10,
                    "n = {n} T = {transpose}: row {i}: {} vs {want}",
                    y[i]
                );
                assert!(
                    (f64::from(yf[i]) - want).abs() < 1e-4,
                    "n = {n} T = {transpose}: f32 row {i}"
                );
            }
        }
    }
}

#[test]
fn dense_matrix_helper_matches_the_formula() {
    for n in [12, 40, 96, 64] {
        let k = quarot_k(n).expect("supported");
        let had = had_k(k);
        let d = hadamard::dense(n, false).expect("dense");
        for i in 0..n {
            for j in 0..n {
                assert!((d[i * n + j] - kron_entry(&had, k, n, i, j, false)).abs() < 1e-15);
            }
        }
    }
}

#[test]
fn batched_f32_rows_equal_single_vectors() {
    let n = 5120;
    let rows = 3;
    let x: Vec<f32> = random_vec(n * rows, 3)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let mut batch = x.clone();
    hadamard::apply_rows_f32(&mut batch, n, false).expect("batch");
    for r in 0..rows {
        let mut one = x[r * n..(r + 1) * n].to_vec();
        hadamard::apply_f32(&mut one, false).expect("one");
        assert_eq!(one, batch[r * n..(r + 1) * n]);
    }
}

#[test]
fn f32_fast_paths_match_f64_reference() {
    // m = n/K below, at and above the register tile (16), K = 1, and both transposes.
    for n in [24, 48, 96, 172 * 8, 172 * 16, 28 * 32, 40 * 64, 1024, 2] {
        for transpose in [false, true] {
            let x = random_vec(n, 21 + n as u64);
            let mut want = x.clone();
            hadamard::apply(&mut want, transpose).expect("f64");
            let mut got: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            hadamard::apply_f32(&mut got, transpose).expect("f32");
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (f64::from(*a) - b).abs() < 1e-5,
                    "n = {n} T = {transpose}: {a} vs {b}"
                );
            }
        }
    }
}

fn matvec(w: &[f32], rows: usize, x: &[f64]) -> Vec<f64> {
    let n = x.len();
    (0..rows)
        .map(|r| (0..n).map(|j| f64::from(w[r * n + j]) * x[j]).sum())
        .collect()
}

#[test]
fn fold_then_rotate_gives_the_unrotated_product() {
    let rots = [
        Rotation::hadamard(11008).expect("had"),
        Rotation::hadamard(768).expect("had"),
        Rotation::random_hadamard(1024, 3).expect("rand had"),
        Rotation::random_orthogonal(48, 4),
    ];
    for rot in rots {
        let (n, rows) = (rot.n(), 4);
        let w: Vec<f32> = random_vec(rows * n, 11)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let x = random_vec(n, 12);
        let want = matvec(&w, rows, &x);
        let mut folded = w.clone();
        rotation::fold(&mut folded, rows, &rot).expect("fold");
        let mut rx = x.clone();
        rot.apply(&mut rx).expect("rotate");
        let got = matvec(&folded, rows, &rx);
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                "n = {n}: {a} vs {b}"
            );
        }
        // And the transpose undoes the rotation.
        rot.apply_transpose(&mut rx).expect("inverse");
        assert!(rx.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-9));
    }
}

#[test]
fn bad_sizes_and_rotations_are_rejected() {
    for n in [0, 6, 100, 14, 24 * 3 * 5] {
        let e = hadamard::apply(&mut vec![0.0; n], false).expect_err("unsupported size");
        assert!(e.to_string().contains("Hadamard of size"), "{e}");
    }
    let mut plan = Plan::<f32>::new(12, false).expect("plan");
    assert!(plan.apply(&mut [0.0; 13]).is_err());
    assert!(Rotation::dense(2, vec![1.0, 1.0, 0.0, 1.0], 1e-6).is_err());
    assert!(Rotation::dense(2, vec![1.0, 0.0, 0.0], 1e-6).is_err());
    assert!(Rotation::dense(2, vec![0.0, 1.0, -1.0, 0.0], 1e-6).is_ok());
}
