//! Deterministic data parallelism over rows with `std::thread::scope`.
//!
//! Work is cut into chunks whose size never depends on the thread count, and results are
//! reassembled in chunk order, so every quantizer gives bit-identical output on 1 or 64 threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::QuantError;

static MAX_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Cap the threads the quantizers use (0 = all available cores).
pub fn set_max_threads(n: usize) {
    MAX_THREADS.store(n, Ordering::Relaxed);
}

/// The number of worker threads to use.
pub fn threads() -> usize {
    let avail = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    match MAX_THREADS.load(Ordering::Relaxed) {
        0 => avail,
        n => n.min(avail).max(1),
    }
}

/// Run `f(first_row, chunk)` on consecutive chunks of whole rows (`row_len` values each) of
/// `data`, in parallel. The first error (in chunk order) wins.
pub fn for_each_row_chunk<T, F>(data: &mut [T], row_len: usize, f: F) -> Result<(), QuantError>
where
    T: Send,
    F: Fn(usize, &mut [T]) -> Result<(), QuantError> + Sync,
{
    if row_len == 0 || data.is_empty() {
        return Ok(());
    }
    let rows = data.len() / row_len;
    // ~64k values per chunk, at least one row.
    let chunk_rows = (65536 / row_len).clamp(1, rows.max(1));
    let nthreads = threads().min(rows.div_ceil(chunk_rows)).max(1);
    if nthreads == 1 {
        return data
            .chunks_mut(chunk_rows * row_len)
            .enumerate()
            .try_for_each(|(i, c)| f(i * chunk_rows, c));
    }
    let queue = Mutex::new(data.chunks_mut(chunk_rows * row_len).enumerate());
    let errors: Mutex<Vec<(usize, QuantError)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..nthreads {
            s.spawn(|| loop {
                let next = match queue.lock() {
                    Ok(mut q) => q.next(),
                    Err(_) => None,
                };
                let Some((i, chunk)) = next else { break };
                if let Err(e) = f(i * chunk_rows, chunk) {
                    if let Ok(mut errs) = errors.lock() {
                        errs.push((i, e));
                    }
                }
            });
        }
    });
    let mut errs = errors.into_inner().unwrap_or_default();
    errs.sort_by_key(|(i, _)| *i);
    errs.into_iter().next().map_or(Ok(()), |(_, e)| Err(e))
}

/// Map `f` over the chunks `[c·chunk, min((c+1)·chunk, total))` in parallel and return the
/// results in chunk order.
pub fn map_chunks<R, F>(total: usize, chunk: usize, f: F) -> Result<Vec<R>, QuantError>
where
    R: Send,
    F: Fn(std::ops::Range<usize>) -> Result<R, QuantError> + Sync,
{
    let chunk = chunk.max(1);
    let count = total.div_ceil(chunk);
    let range = |c: usize| c * chunk..((c + 1) * chunk).min(total);
    let nthreads = threads().min(count).max(1);
    if nthreads == 1 {
        return (0..count).map(|c| f(range(c))).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<R, QuantError>)>> = Mutex::new(Vec::with_capacity(count));
    std::thread::scope(|s| {
        for _ in 0..nthreads {
            s.spawn(|| loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= count {
                    break;
                }
                let r = f(range(c));
                if let Ok(mut res) = results.lock() {
                    res.push((c, r));
                }
            });
        }
    });
    let mut res = results.into_inner().unwrap_or_default();
    if res.len() != count {
        return Err(QuantError::Invalid("a worker thread panicked".into()));
    }
    res.sort_by_key(|(c, _)| *c);
    res.into_iter().map(|(_, r)| r).collect()
}

/// Counts finished rows across threads and reports them to an optional callback.
pub struct Progress<'a> {
    total: usize,
    done: AtomicUsize,
    cb: Option<&'a (dyn Fn(usize, usize) + Sync)>,
}

impl<'a> Progress<'a> {
    /// A tracker of `total` rows.
    pub fn new(total: usize, cb: Option<&'a (dyn Fn(usize, usize) + Sync)>) -> Self {
        Progress {
            total,
            done: AtomicUsize::new(0),
            cb,
        }
    }

    /// `rows` more rows are done.
    pub fn add(&self, rows: usize) {
        let done = self.done.fetch_add(rows, Ordering::Relaxed) + rows;
        if let Some(cb) = self.cb {
            cb(done.min(self.total), self.total);
        }
    }
}
