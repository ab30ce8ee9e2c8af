//! Text generation over a compiled model graph: feed tokens step by step through an executor
//! that keeps the KV caches, pick the next token (greedy, or temperature + top-p with a seed),
//! and time prefill and decode separately.

use std::collections::HashMap;
use std::time::Instant;

use qkc_ir::interp::{Interpreter, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ModelError;

/// Something that runs one step of the model graph (`ids`, `pos` → logits `[T, vocab]`) and keeps
/// its KV caches between steps.
pub trait Executor {
    /// Tokens per step this executor was compiled for.
    fn tokens(&self) -> usize;
    /// Run `ids` at positions `pos0..`; returns the logits of every token, row-major.
    fn step(&mut self, ids: &[u32], pos0: usize) -> Result<Vec<f32>, ModelError>;
    /// Empty the KV caches (the next step is at position 0).
    fn reset(&mut self);
}

fn inputs(ids: &[u32], pos0: usize) -> HashMap<String, Tensor> {
    let n = ids.len();
    HashMap::from([
        (
            "ids".to_string(),
            Tensor::new(vec![n], ids.iter().map(|&i| f64::from(i)).collect()),
        ),
        (
            "pos".to_string(),
            Tensor::new(vec![n], (pos0..pos0 + n).map(|p| p as f64).collect()),
        ),
    ])
}

fn logits(out: Vec<(String, Tensor)>) -> Result<Vec<f32>, ModelError> {
    let (_, t) = out
        .into_iter()
        .next()
        .ok_or_else(|| ModelError::Other("the model graph has no output".into()))?;
    Ok(t.data.iter().map(|&x| x as f32).collect())
}

impl Executor for qkc_runtime::CpuProgram {
    fn tokens(&self) -> usize {
        self.tokens()
    }
    fn step(&mut self, ids: &[u32], pos0: usize) -> Result<Vec<f32>, ModelError> {
        logits(self.run(&inputs(ids, pos0))?)
    }
    fn reset(&mut self) {
        self.reset_caches();
    }
}

#[cfg(feature = "cuda")]
impl Executor for qkc_runtime::cuda::GpuProgram {
    fn tokens(&self) -> usize {
        self.tokens()
    }
    fn step(&mut self, ids: &[u32], pos0: usize) -> Result<Vec<f32>, ModelError> {
        logits(self.run(&inputs(ids, pos0))?)
    }
    fn reset(&mut self) {
        self.reset_caches();
    }
}

/// The reference interpreter as an executor (f64; slow, for checks).
pub struct InterpExecutor<'g> {
    /// The interpreter, with its caches.
    pub interp: Interpreter<'g>,
    /// Tokens per step.
    pub tokens: usize,
}

impl Executor for InterpExecutor<'_> {
    fn tokens(&self) -> usize {
        self.tokens
    }
    fn step(&mut self, ids: &[u32], pos0: usize) -> Result<Vec<f32>, ModelError> {
        let out = self
            .interp
            .run(&inputs(ids, pos0))
            .map_err(|e| ModelError::Other(e.to_string()))?;
        logits(out)
    }
    fn reset(&mut self) {
        self.interp.reset_caches();
    }
}

/// How to pick the next token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Nucleus mass in (0, 1].
    pub top_p: f32,
    /// Seed of the sampler.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// Picks tokens from logits.
pub struct Sampler {
    cfg: Sampling,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler; checks the parameters.
    pub fn new(cfg: Sampling) -> Result<Self, ModelError> {
        if !(cfg.temperature.is_finite() && cfg.temperature >= 0.0) {
            return Err(ModelError::Other(format!(
                "--temperature must be a number >= 0, not {}",
                cfg.temperature
            )));
        }
        if !(cfg.top_p > 0.0 && cfg.top_p <= 1.0) {
            return Err(ModelError::Other(format!(
                "--top-p must be in (0, 1], not {}",
                cfg.top_p
            )));
        }
        Ok(Sampler {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
        })
    }

    /// The next token from one row of logits. NaN logits are an error (a broken kernel must
    /// not produce plausible text).
    pub fn pick(&mut self, logits: &[f32]) -> Result<u32, ModelError> {
        if let Some(i) = logits.iter().position(|x| x.is_nan()) {
            return Err(ModelError::Other(format!("logit {i} is NaN")));
        }
        let argmax = logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |b, (i, &x)| {
                if x > b.1 {
                    (i, x)
                } else {
                    b
                }
            })
            .0;
        if self.cfg.temperature == 0.0 {
            return Ok(argmax as u32);
        }
        let t = self.cfg.temperature;
        let m = logits[argmax];
        let mut p: Vec<(usize, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, &x)| (i, f64::from((x - m) / t).exp()))
            .collect();
        p.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f64 = p.iter().map(|x| x.1).sum();
        let mut keep = 0;
        let mut acc = 0.0;
        for (j, &(_, w)) in p.iter().enumerate() {
            acc += w / total;
            keep = j + 1;
            if acc >= f64::from(self.cfg.top_p) {
                break;
            }
        }
        p.truncate(keep);
        let mass: f64 = p.iter().map(|x| x.1).sum();
        let mut r = self.rng.gen::<f64>() * mass;
        for &(i, w) in &p {
            if r < w {
                return Ok(i as u32);
            }
            r -= w;
        }
        Ok(p.last().map_or(argmax, |x| x.0) as u32)
    }
}

/// Timings of one generation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Prefill seconds.
    pub prefill_s: f64,
    /// Generated tokens (decode steps).
    pub generated: usize,
    /// Decode seconds (the steps after the first generated token).
    pub decode_s: f64,
}

impl Stats {
    /// Prompt tokens per second.
    pub fn prefill_tps(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill_s.max(1e-12)
    }
    /// Generated tokens per second.
    pub fn decode_tps(&self) -> f64 {
        self.generated as f64 / self.decode_s.max(1e-12)
    }
}

/// Generate up to `max_tokens` after `prompt`, calling `on_token` with each new token; stops
/// after a token in `stop`. The executor must be fresh (empty caches) and compiled for T = 1;
/// `max_seq` is the cache capacity, checked before running out of it.
pub fn generate(
    exe: &mut dyn Executor,
    prompt: &[u32],
    max_tokens: usize,
    max_seq: usize,
    sampling: Sampling,
    stop: &[u32],
    on_token: &mut dyn FnMut(u32) -> Result<(), ModelError>,
) -> Result<(Vec<u32>, Stats), ModelError> {
    if prompt.is_empty() {
        return Err(ModelError::Other("the prompt is empty (no tokens)".into()));
    }
    if exe.tokens() != 1 {
        return Err(ModelError::Other(format!(
            "the executor runs {} tokens per step; generation steps one token at a time",
            exe.tokens()
        )));
    }
    let need = prompt.len() + max_tokens;
    if need > max_seq {
        return Err(ModelError::Other(format!(
            "the prompt ({} tokens) plus --max-tokens {max_tokens} need {need} cache slots, but the KV cache holds {max_seq} (raise --ctx)",
            prompt.len()
        )));
    }
    let mut sampler = Sampler::new(sampling)?;
    let mut stats = Stats {
        prompt_tokens: prompt.len(),
        ..Stats::default()
    };
    let t0 = Instant::now();
    let mut last = Vec::new();
    for (p, &id) in prompt.iter().enumerate() {
        last = exe.step(&[id], p)?;
    }
    stats.prefill_s = t0.elapsed().as_secs_f64();
    let mut out = Vec::new();
    let t1 = Instant::now();
    let mut pos = prompt.len();
    for i in 0..max_tokens {
        if i > 0 {
            last = exe.step(&out[out.len() - 1..], pos)?;
            pos += 1;
        }
        let next = sampler.pick(&last)?;
        out.push(next);
        on_token(next)?;
        if stop.contains(&next) {
            break;
        }
    }
    // decode time counts the steps that produced tokens 2.. (the first comes from prefill)
    stats.generated = out.len().saturating_sub(1);
    stats.decode_s = t1.elapsed().as_secs_f64();
    Ok((out, stats))
}

/// Perplexity of `tokens` as llama.cpp's `perplexity` tool computes it: the text is cut into
/// windows of `ctx` tokens, each evaluated from empty caches, and the negative log-likelihood is
/// summed over the second half of each window (every scored token sees at least `ctx/2` tokens
/// of context). Returns (perplexity, scored tokens). `progress` is called after each window.
pub fn perplexity(
    exe: &mut dyn Executor,
    tokens: &[u32],
    ctx: usize,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<(f64, usize), ModelError> {
    if ctx < 4 {
        return Err(ModelError::Other(format!(
            "--ctx {ctx} is too small (at least 4)"
        )));
    }
    let windows = tokens.len() / ctx;
    if windows == 0 {
        return Err(ModelError::Other(format!(
            "the text has {} tokens, fewer than one window of --ctx {ctx}",
            tokens.len()
        )));
    }
    let (mut nll, mut count) = (0f64, 0usize);
    for w in 0..windows {
        exe.reset();
        let win = &tokens[w * ctx..(w + 1) * ctx];
        for p in 0..ctx - 1 {
            let l = exe.step(&win[p..p + 1], p)?;
            if p + 1 >= ctx / 2 {
                let m = l.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                if !m.is_finite() {
                    return Err(ModelError::Other(format!(
                        "non-finite logits at window {w}, position {p}"
                    )));
                }
                let lse =
                    f64::from(m) + l.iter().map(|&x| f64::from(x - m).exp()).sum::<f64>().ln();
                nll += lse - f64::from(l[win[p + 1] as usize]);
                count += 1;
            }
        }
        progress(w + 1, windows, (nll / count.max(1) as f64).exp());
    }
    Ok(((nll / count as f64).exp(), count))
}

/// Whether two sequences agree, and where they first differ.
pub fn first_difference(a: &[u32], b: &[u32]) -> Option<usize> {
    (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_argmax_and_nan_is_refused() {
        let mut s = Sampler::new(Sampling::default()).expect("sampler");
        assert_eq!(s.pick(&[0.1, 3.0, -1.0, 2.9]).expect("pick"), 1);
        assert!(s.pick(&[0.1, f32::NAN]).is_err());
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        let mut s = Sampler::new(Sampling {
            temperature: 1.0,
            top_p: 0.5,
            seed: 3,
        })
        .expect("s");
        // token 2 alone holds > 50% of the mass: top-p 0.5 always picks it
        for _ in 0..50 {
            assert_eq!(s.pick(&[0.0, 0.0, 5.0, 0.0]).expect("pick"), 2);
        }
        assert!(Sampler::new(Sampling {
            temperature: -1.0,
            ..Sampling::default()
        })
        .is_err());
        assert!(Sampler::new(Sampling {
            top_p: 0.0,
            ..Sampling::default()
        })
        .is_err());
    }
}
