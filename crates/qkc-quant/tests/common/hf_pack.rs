//! Formula-level packers of the HF quantized checkpoint formats qkc imports, and a writer of HF
//! model folders (config.json, quantize_config.json, safetensors shards + index).
//!
//! Written from `shared/FORMATS.md` and the reference packers' loops (AutoGPTQ `pack()` including
//! its 3-bit word-boundary code; AutoAWQ's GEMM `AWQ_ORDER` and GEMV natural order with
//! `calculate_zeros_width` padding; compressed-tensors `pack_to_int32`; SqueezeLLM's GPTQ-layout
//! qweight + CSR outliers; SpQR's 16×16 tiles with second-order stats, CSR/PTCSR outliers and
//! `in_perm`; AQLM's signed codes; bitsandbytes' nibble order and double quant), never qkc's own
//! packing code. Each packer also gives the format's reference dequant formula.
//!
//! Shared by qkc-quant's `hf_*` tests (`#[path = "common/hf_pack.rs"] mod hf_pack;`) and
//! qkc-model's HF fixture (`tests/common/hf_fixture.rs`), so it depends only on crates both have
//! (half, rand, rand_chacha, safetensors, serde_json).
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::{json, Value};

// ---------------------------------------------------------------- tensors and folders

/// One stored tensor: (name, dtype, shape, little-endian bytes).
pub type Tensor = (String, Dtype, Vec<usize>, Vec<u8>);

pub fn t_u32(name: &str, shape: &[usize], v: &[u32]) -> Tensor {
    let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    (name.into(), Dtype::I32, shape.to_vec(), b)
}
pub fn t_i32(name: &str, shape: &[usize], v: &[i32]) -> Tensor {
    let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    (name.into(), Dtype::I32, shape.to_vec(), b)
}
pub fn t_i64(name: &str, shape: &[usize], v: &[i64]) -> Tensor {
    let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    (name.into(), Dtype::I64, shape.to_vec(), b)
}
pub fn t_f32(name: &str, shape: &[usize], v: &[f32]) -> Tensor {
    let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    (name.into(), Dtype::F32, shape.to_vec(), b)
}
pub fn t_f16(name: &str, shape: &[usize], v: &[f16]) -> Tensor {
    let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    (name.into(), Dtype::F16, shape.to_vec(), b)
}
pub fn t_bf16(name: &str, shape: &[usize], v: &[bf16]) -> Tensor {
    let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    (name.into(), Dtype::BF16, shape.to_vec(), b)
}
pub fn t_u8(name: &str, shape: &[usize], v: Vec<u8>) -> Tensor {
    (name.into(), Dtype::U8, shape.to_vec(), v)
}

/// A temp folder, removed on drop.
pub struct Folder(pub PathBuf);
impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh, empty directory under the temp dir (unique per process and call).
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let id = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("qkc_hf_{tag}_{}_{id}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// Write config.json (+ `quantize_config.json` when given) and the tensors into `dir`: one
/// `model.safetensors`, or (several shards) `model-0000i-of-0000n.safetensors` + the index.
pub fn write_folder_in(
    dir: &Path,
    config: &Value,
    quantize_config: Option<&Value>,
    shards: &[Vec<Tensor>],
) {
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config");
    if let Some(q) = quantize_config {
        std::fs::write(dir.join("quantize_config.json"), q.to_string()).expect("qc");
    }
    let names: Vec<String> = if shards.len() == 1 {
        vec!["model.safetensors".into()]
    } else {
        (1..=shards.len())
            .map(|i| format!("model-{i:05}-of-{:05}.safetensors", shards.len()))
            .collect()
    };
    let mut map = serde_json::Map::new();
    let mut total = 0usize;
    for (ts, file) in shards.iter().zip(&names) {
        let views: BTreeMap<String, TensorView<'_>> = ts
            .iter()
            .map(|(n, d, s, b)| {
                map.insert(n.clone(), Value::String(file.clone()));
                total += b.len();
                (n.clone(), TensorView::new(*d, s.clone(), b).expect("view"))
            })
            .collect();
        let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
        let bytes = safetensors::tensor::serialize(views, Some(meta)).expect("serialize");
        std::fs::write(dir.join(file), bytes).expect("write");
    }
    if shards.len() > 1 {
        let idx = json!({"metadata": {"total_size": total}, "weight_map": map});
        std::fs::write(dir.join("model.safetensors.index.json"), idx.to_string()).expect("idx");
    }
}

/// [`write_folder_in`] a fresh temp folder, removed when the result drops.
pub fn write_folder(
    tag: &str,
    config: &Value,
    quantize_config: Option<&Value>,
    shards: &[Vec<Tensor>],
) -> Folder {
    let dir = temp_dir(tag);
    write_folder_in(&dir, config, quantize_config, shards);
    Folder(dir)
}

pub fn transpose<T: Copy>(v: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut o = Vec::with_capacity(v.len());
    for c in 0..cols {
        for r in 0..rows {
            o.push(v[r * cols + c]);
        }
    }
    o
}

/// A random permutation of `0..k` (Fisher–Yates).
pub fn random_perm(rng: &mut ChaCha8Rng, k: usize) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..k).collect();
    for i in (1..k).rev() {
        perm.swap(i, rng.gen_range(0..=i));
    }
    perm
}

// ---------------------------------------------------------------- GPTQ / AWQ

/// AutoGPTQ `pack()` along dim 0 of `v` (`[rows, cols]`, u32 codes): the result is
/// `[rows·bits/32, cols]` words. 2/4/8 bits: `32/bits` codes per word, LSB first. 3 bits: the
/// three-word loop with elements 10 and 21 split across words.
pub fn gptq_pack_dim0(v: &[u32], rows: usize, cols: usize, bits: usize) -> Vec<u32> {
    assert_eq!(rows * bits % 32, 0);
    let out_rows = rows * bits / 32;
    let mut q = vec![0u32; out_rows * cols];
    for c in 0..cols {
        let x = |r: usize| v[r * cols + c];
        let (mut i, mut row) = (0usize, 0usize);
        while row < out_rows {
            let w = |row: usize| row * cols + c;
            if bits != 3 {
                for j in i..i + 32 / bits {
                    q[w(row)] |= x(j) << (bits * (j - i));
                }
                i += 32 / bits;
                row += 1;
            } else {
                for j in i..i + 10 {
                    q[w(row)] |= x(j) << (3 * (j - i));
                }
                i += 10;
                q[w(row)] |= x(i) << 30;
                row += 1;
                q[w(row)] |= (x(i) >> 2) & 1;
                i += 1;
                for j in i..i + 10 {
                    q[w(row)] |= x(j) << (3 * (j - i) + 1);
                }
                i += 10;
                q[w(row)] |= x(i) << 31;
                row += 1;
                q[w(row)] |= (x(i) >> 1) & 3;
                i += 1;
                for j in i..i + 10 {
                    q[w(row)] |= x(j) << (3 * (j - i) + 2);
                }
                i += 10;
                row += 1;
            }
        }
    }
    q
}

/// One GPTQ/AWQ-style layer in HF orientation: codes `q[k][n]`, true zeros `z[groups][n]`, f16
/// scales `s[groups][n]`, `g_idx[k]`.
pub struct Layer {
    pub n: usize,
    pub k: usize,
    pub bits: usize,
    pub groups: usize,
    pub q: Vec<u32>,
    pub z: Vec<u32>,
    pub s: Vec<f16>,
    pub g_idx: Vec<i32>,
}

/// `g_idx` of act-order: the columns are quantized in a random order `perm`, and
/// `g_idx[j] = invperm[j] / gs` (FORMATS.md §1); plain `j / gs` otherwise.
pub fn gptq_g_idx(rng: &mut ChaCha8Rng, k: usize, gs: usize, act: bool) -> Vec<i32> {
    if act {
        let perm = random_perm(rng, k);
        let mut inv = vec![0usize; k];
        for (r, &j) in perm.iter().enumerate() {
            inv[j] = r;
        }
        inv.iter().map(|&r| (r / gs) as i32).collect()
    } else {
        (0..k).map(|j| (j / gs) as i32).collect()
    }
}

/// A random layer: codes uniform, zeros `2^(bits-1)` (sym) or uniform in `1..=maxq`, scales
/// uniform in `[1e-4, 0.05)`.
pub fn random_layer(
    n: usize,
    k: usize,
    bits: usize,
    gs: usize,
    sym: bool,
    act: bool,
    seed: u64,
) -> Layer {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let groups = k / gs;
    let maxq = (1u32 << bits) - 1;
    let q = (0..k * n).map(|_| rng.gen_range(0..=maxq)).collect();
    let z = (0..groups * n)
        .map(|_| {
            if sym {
                1 << (bits - 1)
            } else {
                rng.gen_range(1..=maxq)
            }
        })
        .collect();
    let s = (0..groups * n)
        .map(|_| f16::from_f32(rng.gen_range(1e-4f32..0.05)))
        .collect();
    let g_idx = gptq_g_idx(&mut rng, k, gs, act);
    Layer {
        n,
        k,
        bits,
        groups,
        q,
        z,
        s,
        g_idx,
    }
}

impl Layer {
    /// The reference dequant `W[i, j] = s[g(j)][i] · (q[j][i] − z[g(j)][i])` in f32, `[n, k]`,
    /// with the zeros `zr` a reader sees. Exact in f32 (11 + 9 significant bits).
    pub fn reference_with(&self, zr: &[u32]) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        let mut w = vec![0f32; n * k];
        for i in 0..n {
            for j in 0..k {
                let g = self.g_idx[j] as usize;
                let d = self.q[j * n + i] as f32 - zr[g * n + i] as f32;
                w[i * k + j] = self.s[g * n + i].to_f32() * d;
            }
        }
        w
    }
    pub fn reference(&self) -> Vec<f32> {
        self.reference_with(&self.z)
    }

    /// GPTQ tensors of module `p` (v1: `zero − 1` stored).
    pub fn gptq_tensors(&self, p: &str, v2: bool, with_g_idx: bool) -> Vec<Tensor> {
        let (n, k, b) = (self.n, self.k, self.bits);
        let qweight = gptq_pack_dim0(&self.q, k, n, b);
        // qzeros packs along N: pack the transpose along dim 0, transpose back
        let stored: Vec<u32> = self
            .z
            .iter()
            .map(|&z| if v2 { z } else { z.wrapping_sub(1) })
            .collect();
        let qz_t = gptq_pack_dim0(&transpose(&stored, self.groups, n), n, self.groups, b);
        let qzeros = transpose(&qz_t, n * b / 32, self.groups);
        let mut v = vec![
            t_u32(&format!("{p}.qweight"), &[k * b / 32, n], &qweight),
            t_u32(&format!("{p}.qzeros"), &[self.groups, n * b / 32], &qzeros),
            t_f16(&format!("{p}.scales"), &[self.groups, n], &self.s),
        ];
        if with_g_idx {
            v.push(t_i32(&format!("{p}.g_idx"), &[k], &self.g_idx));
        }
        v
    }

    /// AWQ GEMM tensors (4-bit): qweight `[k, n/8]`, qzeros `[groups, n/8]`, AWQ_ORDER.
    pub fn awq_gemm_tensors(&self, p: &str) -> Vec<Tensor> {
        const ORDER: [usize; 8] = [0, 2, 4, 6, 1, 3, 5, 7];
        let (n, k) = (self.n, self.k);
        let pack = |v: &[u32], rows: usize| {
            let mut o = vec![0u32; rows * n / 8];
            for r in 0..rows {
                for col in 0..n / 8 {
                    for (i, &ord) in ORDER.iter().enumerate() {
                        o[r * n / 8 + col] |= v[r * n + col * 8 + ord] << (4 * i);
                    }
                }
            }
            o
        };
        vec![
            t_u32(&format!("{p}.qweight"), &[k, n / 8], &pack(&self.q, k)),
            t_u32(
                &format!("{p}.qzeros"),
                &[self.groups, n / 8],
                &pack(&self.z, self.groups),
            ),
            t_f16(&format!("{p}.scales"), &[self.groups, n], &self.s),
        ]
    }

    /// AWQ GEMV tensors (4-bit): qweight `[n, k/8]` natural order along K, qzeros `[n, W]`,
    /// scales `[n, 8W]`, `W = calculate_zeros_width(k, gs)` (padding zero).
    pub fn awq_gemv_tensors(&self, p: &str, gs: usize) -> Vec<Tensor> {
        let (n, k, groups) = (self.n, self.k, self.groups);
        let mult = match gs {
            g if g >= 128 => 1,
            64 => 2,
            32 => 4,
            _ => panic!("calculate_zeros_width: group {gs}"),
        };
        let width = (k / gs).div_ceil(8).div_ceil(mult) * mult;
        let mut qw = vec![0u32; n * k / 8];
        for i in 0..n {
            for col in 0..k / 8 {
                for e in 0..8 {
                    qw[i * k / 8 + col] |= self.q[(col * 8 + e) * n + i] << (4 * e);
                }
            }
        }
        let mut qz = vec![0u32; n * width];
        let mut sc = vec![f16::ZERO; n * width * 8];
        for i in 0..n {
            for g in 0..groups {
                qz[i * width + g / 8] |= self.z[g * n + i] << (4 * (g % 8));
                sc[i * width * 8 + g] = self.s[g * n + i];
            }
        }
        vec![
            t_u32(&format!("{p}.qweight"), &[n, k / 8], &qw),
            t_u32(&format!("{p}.qzeros"), &[n, width], &qz),
            t_f16(&format!("{p}.scales"), &[n, width * 8], &sc),
        ]
    }
}

// ---------------------------------------------------------------- compressed-tensors

/// compressed-tensors `pack_to_int32` of offset codes along `dim` of `[rows, cols]`.
pub fn ct_pack(v: &[u32], rows: usize, cols: usize, bits: usize, dim: usize) -> Vec<u32> {
    let pf = 32 / bits;
    if dim == 1 {
        let w = cols.div_ceil(pf);
        let mut o = vec![0u32; rows * w];
        for r in 0..rows {
            for i in 0..pf {
                for c in (i..cols).step_by(pf) {
                    o[r * w + c / pf] |= v[r * cols + c] << (bits * i);
                }
            }
        }
        o
    } else {
        let h = rows.div_ceil(pf);
        let mut o = vec![0u32; h * cols];
        for i in 0..pf {
            for r in (i..rows).step_by(pf) {
                for c in 0..cols {
                    o[(r / pf) * cols + c] |= v[r * cols + c] << (bits * i);
                }
            }
        }
        o
    }
}

// ---------------------------------------------------------------- SqueezeLLM

/// SqueezeLLM's qweight `[K·bits/32, N]`: column n is one little-endian stream of K codes,
/// code k at stream bit k·bits (FORMATS.md §1/§3: GPTQ's layout, 3-bit codes straddle words).
pub fn pack_gptq_columns(codes: &[u32], n: usize, k: usize, bits: usize) -> Vec<i32> {
    let rows = (k * bits).div_ceil(32);
    let mut out = vec![0u32; rows * n];
    for col in 0..n {
        for kk in 0..k {
            let c = u64::from(codes[kk * n + col]);
            let bit = kk * bits;
            let (w, o) = (bit / 32, bit % 32);
            let v = c << o;
            out[w * n + col] |= v as u32;
            if o + bits > 32 {
                out[(w + 1) * n + col] |= (v >> 32) as u32;
            }
        }
    }
    out.into_iter().map(|v| v as i32).collect()
}

/// A SqueezeLLM module: codes `[K, N]`, per-output-channel f32 table `[N, 2^bits]`, and CSR
/// outliers per row (column, stored value = outlier − c0), sorted by column.
pub struct SqueezeLlm {
    pub n: usize,
    pub k: usize,
    pub bits: usize,
    pub codes: Vec<u32>,
    pub lut: Vec<f32>,
    pub outliers: Vec<Vec<(i32, f32)>>,
}

impl SqueezeLlm {
    /// `qweight`, `lookup_table` (+ `rows`, `cols`, `vals` when any row has outliers).
    pub fn tensors(&self, p: &str) -> Vec<Tensor> {
        let (n, k, bits) = (self.n, self.k, self.bits);
        let m = 1usize << bits;
        let mut v = vec![
            t_i32(
                &format!("{p}.qweight"),
                &[(k * bits).div_ceil(32), n],
                &pack_gptq_columns(&self.codes, n, k, bits),
            ),
            t_f32(&format!("{p}.lookup_table"), &[n, m], &self.lut),
        ];
        if self.outliers.iter().any(|r| !r.is_empty()) {
            let (rows, cols, vals) = self.csr();
            v.push(t_i32(&format!("{p}.rows"), &[n + 1], &rows));
            v.push(t_i32(&format!("{p}.cols"), &[cols.len()], &cols));
            v.push(t_f32(&format!("{p}.vals"), &[vals.len()], &vals));
        }
        v
    }

    /// The CSR triplet (`rows`, `cols`, `vals`).
    pub fn csr(&self) -> (Vec<i32>, Vec<i32>, Vec<f32>) {
        let (mut rows, mut cols, mut vals) = (vec![0i32], Vec::new(), Vec::new());
        for r in &self.outliers {
            for &(c, v) in r {
                cols.push(c);
                vals.push(v);
            }
            rows.push(cols.len() as i32);
        }
        (rows, cols, vals)
    }

    /// `W[n, k] = lookup_table[n, q[k, n]] (+ vals)`, the sum in f32.
    pub fn reference(&self) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        let m = 1usize << self.bits;
        let mut w: Vec<f32> = (0..n * k)
            .map(|i| {
                let (r, c) = (i / k, i % k);
                self.lut[r * m + self.codes[c * n + r] as usize]
            })
            .collect();
        for (r, row) in self.outliers.iter().enumerate() {
            for &(c, v) in row {
                w[r * k + c as usize] += v;
            }
        }
        w
    }
}

// ---------------------------------------------------------------- SpQR

pub fn h(x: f32) -> f16 {
    f16::from_f32(x)
}

/// `s * (q - z)` as cuda_fp16's host operators compute it (each op in f32, rounded to fp16).
pub fn hdeq(q: f16, s: f16, z: f16) -> f16 {
    h(s.to_f32() * h(q.to_f32() - z.to_f32()).to_f32())
}

/// A SpQR module (3-bit, 16×16 tiles), everything in the stored (permuted) column order.
pub struct Spqr {
    pub n: usize,
    pub k: usize,
    /// Per tile `(ti, tj)`, tile-row-major: second-order stats `[s_s, z_s, s_z, z_z]`.
    pub stats: Vec<[f16; 4]>,
    /// Per row `i` and tile column `tj` (`[n, k/16]`): the 3-bit `(s_code, z_code)`.
    pub sz_codes: Vec<(u8, u8)>,
    /// 3-bit weight codes `[n, k]`.
    pub q: Vec<u8>,
    /// Outliers per row: (stored column, fp16 value), sorted by column.
    pub outliers: Vec<Vec<(u16, f16)>>,
    /// `in_perm` (`x_perm[i] = x[in_perm[i]]`), when stored.
    pub perm: Option<Vec<u32>>,
}

impl Spqr {
    fn tiles(&self) -> (usize, usize) {
        (self.n.div_ceil(16), self.k / 16)
    }

    /// The second-order word of tile `(ti, tj)` as a reader sees it: the reference writer gives
    /// padding rows no fragment, so with N % 16 != 0 the last row block keeps only the fragments
    /// of its valid rows (fragment f in rows 2f, 2f+1).
    fn word2(&self, ti: usize, tj: usize) -> (u64, u64) {
        let [ss, zs, sz, zz] = self.stats[ti * self.tiles().1 + tj];
        let w2 = u64::from(ss.to_bits())
            | u64::from(zs.to_bits()) << 16
            | u64::from(sz.to_bits()) << 32
            | u64::from(zz.to_bits()) << 48;
        let frags = (self.n - ti * 16).min(16).div_ceil(2);
        let kept = if frags >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * frags)) - 1
        };
        (w2, w2 & kept)
    }

    /// Per-row fp16 `(s, z)` of row `i`, tile column `tj`.
    pub fn row_sz(&self, i: usize, tj: usize) -> (f16, f16) {
        let (_, seen) = self.word2(i / 16, tj);
        let hb = |b: u32| f16::from_bits((seen >> b) as u16);
        let (ss, zs, sz, zz) = (hb(0), hb(16), hb(32), hb(48));
        let (sc, zc) = self.sz_codes[i * self.tiles().1 + tj];
        (
            hdeq(h(f32::from(sc)), ss, sz),
            hdeq(h(f32::from(zc)), zs, zz),
        )
    }

    /// `dense_weights`, `row_offsets` + `col_vals` (CSR, or PTCSR: per 16-row block, max row
    /// length · 16 slots, the t-th entry of block row j at slot t·16 + j, zero padding; needs
    /// N % 16 == 0), and `in_perm` (u16 pairs) when set.
    pub fn tensors(&self, p: &str, ptcsr: bool) -> Vec<Tensor> {
        let (n, k) = (self.n, self.k);
        let (tn, tk) = self.tiles();
        let mut dw = vec![0i64; tn * tk * 16];
        for ti in 0..tn {
            for tj in 0..tk {
                let (w2, _) = self.word2(ti, tj);
                for r in 0..16 {
                    let i = ti * 16 + r;
                    if i >= n {
                        continue; // padding rows are zero
                    }
                    let (sc, zc) = self.sz_codes[i * tk + tj];
                    let mut word =
                        u64::from(sc) | u64::from(zc) << 3 | ((w2 >> (8 * (r / 2))) & 0xFF) << 54;
                    for j in 0..16 {
                        word |= u64::from(self.q[i * k + tj * 16 + j]) << (6 + 3 * j);
                    }
                    dw[(ti * tk + tj) * 16 + r] = word as i64;
                }
            }
        }
        let colval = |c: u16, v: f16| (u32::from(v.to_bits()) << 16 | u32::from(c)) as i32;
        let (row_offsets, col_vals) = if !ptcsr {
            let mut ro = vec![0i32];
            let mut cv = Vec::new();
            for row in &self.outliers {
                cv.extend(row.iter().map(|&(c, v)| colval(c, v)));
                ro.push(cv.len() as i32);
            }
            (ro, cv)
        } else {
            assert_eq!(n % 16, 0, "PTCSR needs N % 16 == 0");
            let mut ro = vec![0i32];
            let mut cv: Vec<i32> = Vec::new();
            for b in 0..n / 16 {
                let rows = &self.outliers[b * 16..b * 16 + 16];
                let cnt = rows.iter().map(Vec::len).max().unwrap_or(0);
                let start = cv.len();
                cv.resize(start + cnt * 16, 0);
                for (j, row) in rows.iter().enumerate() {
                    for (t, &(c, v)) in row.iter().enumerate() {
                        cv[start + t * 16 + j] = colval(c, v);
                    }
                }
                ro.push(cv.len() as i32);
            }
            (ro, cv)
        };
        let mut v = vec![
            t_i64(&format!("{p}.dense_weights"), &[dw.len()], &dw),
            t_i32(
                &format!("{p}.row_offsets"),
                &[row_offsets.len()],
                &row_offsets,
            ),
            t_i32(&format!("{p}.col_vals"), &[col_vals.len()], &col_vals),
        ];
        if let Some(perm) = &self.perm {
            let packed: Vec<i32> = perm
                .chunks_exact(2)
                .map(|p| (p[0] | p[1] << 16) as i32)
                .collect();
            v.push(t_i32(&format!("{p}.in_perm"), &[k / 2], &packed));
        }
        v
    }

    /// The fp16 host reference (`dequantize_compressed`) in the stored (permuted) column order,
    /// as f32, with a per-element tolerance for a reader computing in f32 (a few fp16 ulps of
    /// the terms). `s = s_s·(s_code − s_z)`, `z = z_s·(z_code − z_z)`, `w = s·(q − z)`, each op
    /// rounded to fp16; the outlier value is added and the sum rounded to fp16 once.
    pub fn reference(&self) -> (Vec<f32>, Vec<f32>) {
        let (n, k) = (self.n, self.k);
        let tk = self.tiles().1;
        let mut reference = vec![0f32; n * k];
        let mut tol = vec![0f32; n * k];
        for i in 0..n {
            for tj in 0..tk {
                let (s, z) = self.row_sz(i, tj);
                for j in 0..16 {
                    let at = i * k + tj * 16 + j;
                    let w = hdeq(h(f32::from(self.q[at])), s, z);
                    reference[at] = w.to_f32();
                    tol[at] = 4.0 / 1024.0 * s.to_f32().abs() * (8.0 + z.to_f32().abs()) + 1e-7;
                }
            }
        }
        for (i, row) in self.outliers.iter().enumerate() {
            for &(c, v) in row {
                let at = i * k + c as usize;
                reference[at] += v.to_f32();
                tol[at] += v.to_f32().abs() / 1024.0;
            }
        }
        for (r, t) in reference.iter_mut().zip(tol.iter_mut()) {
            let rounded = h(*r).to_f32();
            *t += (rounded - *r).abs();
            *r = rounded;
        }
        (reference, tol)
    }

    /// [`Self::reference`] (values, tolerance) in the ORIGINAL column order:
    /// `W_orig[:, in_perm[i]] = W[:, i]`.
    pub fn reference_original(&self) -> (Vec<f32>, Vec<f32>) {
        let (w, tol) = self.reference();
        match &self.perm {
            None => (w, tol),
            Some(perm) => {
                let (n, k) = (self.n, self.k);
                let (mut o, mut t) = (vec![0f32; n * k], vec![0f32; n * k]);
                for r in 0..n {
                    for (i, &c) in perm.iter().enumerate() {
                        o[r * k + c as usize] = w[r * k + i];
                        t[r * k + c as usize] = tol[r * k + i];
                    }
                }
                (o, t)
            }
        }
    }
}

// ---------------------------------------------------------------- AQLM

/// An AQLM module: `codes[o, i, c]` (unsigned, `< 2^nbits`), fp16 `codebooks[c, 2^nbits, og,
/// ig]`, fp16 `scales[o]`.
pub struct Aqlm {
    pub n: usize,
    pub k: usize,
    pub c: usize,
    pub nbits: usize,
    pub og: usize,
    pub ig: usize,
    pub codes: Vec<u32>,
    pub books: Vec<f16>,
    pub scales: Vec<f16>,
}

impl Aqlm {
    /// `codes` stored signed (pack_int_data: values ≥ 2^(nbits-1) wrap negative; int8 for
    /// nbits ≤ 8, else int16), `codebooks`, `scales` `[N/og, 1, 1, 1]`.
    pub fn tensors(&self, p: &str) -> Vec<Tensor> {
        let (no, ni, c, m) = (
            self.n / self.og,
            self.k / self.ig,
            self.c,
            1usize << self.nbits,
        );
        let nbits = self.nbits;
        let signed: Vec<i64> = self
            .codes
            .iter()
            .map(|&u| {
                let u = i64::from(u);
                if u >= 1 << (nbits - 1) {
                    u - (1 << nbits)
                } else {
                    u
                }
            })
            .collect();
        let (dt, bytes): (Dtype, Vec<u8>) = if nbits <= 8 {
            (Dtype::I8, signed.iter().map(|&v| v as i8 as u8).collect())
        } else {
            (
                Dtype::I16,
                signed
                    .iter()
                    .flat_map(|&v| (v as i16).to_le_bytes())
                    .collect(),
            )
        };
        vec![
            (format!("{p}.codes"), dt, vec![no, ni, c], bytes),
            t_f16(
                &format!("{p}.codebooks"),
                &[c, m, self.og, self.ig],
                &self.books,
            ),
            t_f16(&format!("{p}.scales"), &[no, 1, 1, 1], &self.scales),
        ]
    }

    /// `W[o·og+a, i·ig+b] = scales[o] · Σ_c codebooks[c, codes[o,i,c], a, b]`, in f64, rounded
    /// once to f32.
    pub fn reference(&self) -> Vec<f32> {
        let (og, ig, c, k) = (self.og, self.ig, self.c, self.k);
        let (no, ni, m) = (self.n / og, k / ig, 1usize << self.nbits);
        let mut w = vec![0f32; self.n * k];
        for o in 0..no {
            for i in 0..ni {
                for a in 0..og {
                    for b in 0..ig {
                        let acc: f64 = (0..c)
                            .map(|cb| {
                                let e = self.codes[(o * ni + i) * c + cb] as usize;
                                self.books[((cb * m + e) * og + a) * ig + b].to_f64()
                            })
                            .sum();
                        w[(o * og + a) * k + i * ig + b] = (self.scales[o].to_f64() * acc) as f32;
                    }
                }
            }
        }
        w
    }
}

// ---------------------------------------------------------------- bitsandbytes

/// bitsandbytes' `get_4bit_type` tables, as torch stores them (python floats → float32).
pub fn bnb_code(nf4: bool) -> [f32; 16] {
    if nf4 {
        [
            -1.0f64,
            -0.6961928009986877,
            -0.5250730514526367,
            -0.39491748809814453,
            -0.28444138169288635,
            -0.18477343022823334,
            -0.09105003625154495,
            0.0,
            0.07958029955625534,
            0.16093020141124725,
            0.24611230194568634,
            0.33791524171829224,
            0.44070982933044434,
            0.5626170039176941,
            0.7229568362236023,
            1.0,
        ]
        .map(|v| v as f32)
    } else {
        [
            0.0f32, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0, 0.0, -0.0625, -8.0, -12.0, -4.0, -6.0,
            -2.0, -3.0,
        ]
        .map(|v| v / 12.0)
    }
}

/// The absmax of a bitsandbytes 4-bit weight: f32 per block, or double-quantized.
pub enum BnbAbsmax {
    Plain(Vec<f32>),
    Nested {
        /// u8 code per block.
        q: Vec<u8>,
        /// f32 per `nbs` blocks.
        nested_absmax: Vec<f32>,
        nbs: usize,
        offset: f32,
        /// The 256-entry `nested_quant_map`.
        map: Vec<f32>,
    },
}

/// A bitsandbytes NF4/FP4 module: 4-bit codes of the row-major flattened `[n, k]` weight.
pub struct Bnb {
    pub n: usize,
    pub k: usize,
    pub nf4: bool,
    pub bs: usize,
    pub codes: Vec<u8>,
    pub absmax: BnbAbsmax,
}

impl Bnb {
    pub fn type_name(&self) -> &'static str {
        if self.nf4 {
            "nf4"
        } else {
            "fp4"
        }
    }

    /// The absmax per block as a reader computes it: double quant is
    /// `dequantize_blockwise, then += offset`, in f32.
    pub fn absmax_f32(&self) -> Vec<f32> {
        match &self.absmax {
            BnbAbsmax::Plain(a) => a.clone(),
            BnbAbsmax::Nested {
                q,
                nested_absmax,
                nbs,
                offset,
                map,
            } => q
                .iter()
                .enumerate()
                .map(|(b, &c)| map[c as usize] * nested_absmax[b / nbs] + offset)
                .collect(),
        }
    }

    /// `weight` (u8 `[ceil(NK/2), 1]`, element 2i in the high nibble), `weight.absmax`,
    /// `weight.quant_map`, the nested tensors, and the quant-state JSON (`dtype` names the
    /// model's float type, e.g. `float16`).
    pub fn tensors(&self, p: &str, dtype: &str) -> Vec<Tensor> {
        let (n, k, bs) = (self.n, self.k, self.bs);
        let blocks = (n * k).div_ceil(bs);
        let packed: Vec<u8> = self
            .codes
            .chunks(2)
            .map(|p| p[0] << 4 | p.get(1).copied().unwrap_or(0))
            .collect();
        let name = self.type_name();
        let mut v = vec![
            t_u8(&format!("{p}.weight"), &[packed.len(), 1], packed),
            t_f32(&format!("{p}.weight.quant_map"), &[16], &bnb_code(self.nf4)),
        ];
        let mut json = format!(
            r#"{{"quant_type": "{name}", "blocksize": {bs}, "dtype": "{dtype}", "shape": [{n}, {k}]"#
        );
        match &self.absmax {
            BnbAbsmax::Plain(a) => {
                assert_eq!(a.len(), blocks);
                v.push(t_f32(&format!("{p}.weight.absmax"), &[blocks], a));
            }
            BnbAbsmax::Nested {
                q,
                nested_absmax,
                nbs,
                offset,
                map,
            } => {
                v.push(t_u8(&format!("{p}.weight.absmax"), &[blocks], q.clone()));
                v.push(t_f32(
                    &format!("{p}.weight.nested_absmax"),
                    &[nested_absmax.len()],
                    nested_absmax,
                ));
                v.push(t_f32(&format!("{p}.weight.nested_quant_map"), &[256], map));
                json += &format!(
                    r#", "nested_blocksize": {nbs}, "nested_dtype": "float32", "nested_offset": {}"#,
                    f64::from(*offset)
                );
            }
        }
        json += "}";
        v.push(t_u8(
            &format!("{p}.weight.quant_state.bitsandbytes__{name}"),
            &[json.len()],
            json.into_bytes(),
        ));
        v
    }

    /// `W_flat[j] = code[q_j] · absmax[j / bs]` in f32, `[n, k]`.
    pub fn reference(&self) -> Vec<f32> {
        let code = bnb_code(self.nf4);
        let absmax = self.absmax_f32();
        (0..self.n * self.k)
            .map(|j| code[self.codes[j] as usize] * absmax[j / self.bs])
            .collect()
    }
}
