//! A small fork-join pool for kernel launches: the calling thread runs part 0 of each launch and
//! `n − 1` workers run the others. Workers spin on a generation counter for a while after each
//! job (a decode step is hundreds of launches of a few microseconds: waking a sleeping thread
//! per launch costs more than many kernels), then park until the next job unparks them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The job: a type-erased `&(dyn Fn(usize) + Sync)` (part index → work), valid while the
/// calling thread waits in [`SpinPool::run`].
#[derive(Clone, Copy)]
struct JobPtr(*const (dyn Fn(usize) + Sync));

// SAFETY: the pointee is `Sync` and outlives every use (see `SpinPool::run`).
unsafe impl Send for JobPtr {}
unsafe impl Sync for JobPtr {}

struct Shared {
    generation: AtomicU64,
    done: AtomicUsize,
    stop: AtomicBool,
    job: std::sync::Mutex<Option<JobPtr>>,
}

/// See the module docs.
pub struct SpinPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// How long an idle worker spins before parking.
const SPIN: Duration = Duration::from_micros(200);

/// How long a thread spins on pause instructions alone before it also yields its core each
/// round. The gaps between launches of a decode step are a few microseconds: a `sched_yield`
/// in every gap (as when yielding every 64 spins) cost ~7% of a SmolLM2 decode step in
/// `__schedule`, and the worker noticed a job late when it was in the syscall. Yielding after
/// this long still lets an oversubscribed machine progress (pure spinning collapsed there).
const YIELD_AFTER: Duration = Duration::from_micros(50);

impl SpinPool {
    /// A pool that runs jobs on `threads` threads (the caller and `threads − 1` workers).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            job: std::sync::Mutex::new(None),
        });
        let mut workers = Vec::new();
        for w in 1..threads.max(1) {
            let sh = shared.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("qkc-cpu-{w}"))
                    .spawn(move || worker(&sh, w))?,
            );
        }
        Ok(SpinPool { shared, workers })
    }

    /// Threads that run a job (the caller included).
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Run `f(0)` on the calling thread and `f(1..threads)` on the workers; returns when all
    /// parts are done.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() {
            f(0);
            return;
        }
        // SAFETY: lifetime erasure only; the pointer is cleared and every worker has finished
        // with it before this function returns, so it never outlives `f`.
        let ptr: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(f) };
        if let Ok(mut j) = self.shared.job.lock() {
            *j = Some(JobPtr(ptr));
        }
        self.shared.done.store(0, Ordering::Release);
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        for w in &self.workers {
            w.thread().unpark();
        }
        f(0);
        let n = self.workers.len();
        let mut spins = 0u32;
        let mut since: Option<Instant> = None;
        while self.shared.done.load(Ordering::Acquire) < n {
            // spin, then yield: when the machine is oversubscribed (more runnable threads than
            // cores) the worker may be waiting for this very core
            spins = spins.wrapping_add(1);
            if spins % 64 == 0 && since.get_or_insert_with(Instant::now).elapsed() > YIELD_AFTER {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        if let Ok(mut j) = self.shared.job.lock() {
            *j = None;
        }
    }
}

fn worker(sh: &Shared, index: usize) {
    let mut seen = 0u64;
    loop {
        let t0 = Instant::now();
        let mut spins = 0u32;
        loop {
            if sh.stop.load(Ordering::Acquire) {
                return;
            }
            let g = sh.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            spins = spins.wrapping_add(1);
            if spins % 64 == 0 {
                let idle = t0.elapsed();
                if idle > SPIN {
                    std::thread::park_timeout(Duration::from_millis(5));
                } else if idle > YIELD_AFTER {
                    std::thread::yield_now();
                }
            } else {
                std::hint::spin_loop();
            }
        }
        let job = sh.job.lock().ok().and_then(|j| *j);
        if let Some(JobPtr(p)) = job {
            // SAFETY: `run` keeps the closure alive until `done` counts this worker.
            let f = unsafe { &*p };
            f(index);
        }
        sh.done.fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for SpinPool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for w in self.workers.drain(..) {
            w.thread().unpark();
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_once_per_job() {
        let pool = SpinPool::new(3).expect("pool");
        for round in 0..2000 {
            let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
            pool.run(&|i| {
                hits[i].fetch_add(round + 1, Ordering::Relaxed);
            });
            for h in &hits {
                assert_eq!(h.load(Ordering::Relaxed), round + 1);
            }
            if round == 1000 {
                // let the workers park, then wake them
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
