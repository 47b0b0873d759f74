//! A persistent, spinning thread pool for the matmul kernels.
//!
//! Decode issues ~210 small matmuls per token, each a few tens of microseconds: waking parked
//! threads (rayon's scope: a futex wake per call) costs a visible share of that. Here the
//! workers spin on an epoch counter for a while after each job before parking, so back-to-back
//! matmuls start without a system call.
//!
//! Work is handed out in chunks from an atomic counter (not in fixed per-thread ranges): on a
//! shared machine a preempted worker then delays a call by at most one chunk, and a worker that
//! wakes after the caller took every chunk does not join the call at all (the caller closes a
//! gate before it waits), so the caller never waits for a thread the scheduler has parked.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Spin iterations (each a `spin_loop` hint, ~10–40 ns) before a worker parks, and before a
/// caller waiting for helpers starts yielding its core. Short on purpose: on this shared 2-core
/// machine (load average 3–4 from other builds) tg32 at 2 threads measured 11.9 tok/s with no
/// worker spin, 11.4 with 500, 10.7 with 2 000 and 8.3 with 200 000: a spinning worker burns
/// the scheduler credit it needs to be run promptly when the next matmul arrives.
const SPIN_LIMIT: u32 = 500;
const WAIT_SPINS: u32 = 500;

/// Gate bit: set while no job accepts helpers.
const CLOSED: usize = 1;
/// Gate increment per registered helper.
const HELPER: usize = 2;

/// One job: `run(chunk)` for every chunk in `0..chunks`, taken from `next`.
struct Job<'a> {
    run: &'a (dyn Fn(usize) + Sync),
    chunks: usize,
    next: AtomicUsize,
    /// Set when a chunk panicked on a worker; the caller re-raises it.
    panicked: AtomicBool,
}

impl Job<'_> {
    fn work(&self) {
        loop {
            let c = self.next.fetch_add(1, Ordering::Relaxed);
            if c >= self.chunks {
                return;
            }
            (self.run)(c);
        }
    }

    /// [`Job::work`] on a worker: a panic must not escape (the gate would stay registered and
    /// the caller would wait forever), so it is recorded for the caller and the rest skipped.
    fn work_catching(&self) {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.work())).is_err() {
            self.panicked.store(true, Ordering::Release);
            self.next.store(self.chunks, Ordering::Relaxed);
        }
    }
}

/// Closes the gate and waits until every registered helper has left, on every exit from
/// [`SpinPool::run`] — also when the caller's own chunk panics, so no helper can still be using
/// the job (which lives on the caller's stack) once `run` unwinds.
struct CloseAndWait<'s>(&'s Shared);

impl Drop for CloseAndWait<'_> {
    fn drop(&mut self) {
        let s = self.0;
        s.gate.fetch_or(CLOSED, Ordering::AcqRel);
        let mut spins = 0u32;
        while s.gate.load(Ordering::Acquire) != CLOSED {
            spins += 1;
            if spins < WAIT_SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        s.job.store(std::ptr::null_mut(), Ordering::Relaxed);
    }
}

struct Shared {
    /// Bumped once per job, before the gate opens.
    epoch: AtomicU64,
    /// The current job; only dereferenced by a helper registered in `gate`.
    job: AtomicPtr<Job<'static>>,
    /// `CLOSED` bit plus `HELPER` × registered helpers.
    gate: AtomicUsize,
    sleepers: AtomicUsize,
    shutdown: AtomicBool,
    park: Mutex<()>,
    wake: Condvar,
}

/// A pool of `threads - 1` workers; the calling thread is the last participant.
pub(crate) struct SpinPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serializes callers: one job at a time.
    dispatch: Mutex<()>,
}

impl std::fmt::Debug for SpinPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpinPool")
            .field("threads", &(self.workers.len() + 1))
            .finish()
    }
}

impl SpinPool {
    /// Starts `threads - 1` workers.
    pub(crate) fn new(threads: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            gate: AtomicUsize::new(CLOSED),
            sleepers: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            park: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut pool = Self {
            shared: Arc::clone(&shared),
            workers: Vec::new(),
            dispatch: Mutex::new(()),
        };
        for i in 1..threads.max(1) {
            let shared = Arc::clone(&shared);
            // On error `pool` is dropped, which stops the workers started so far.
            let handle = std::thread::Builder::new()
                .name(format!("bitnet-kernel-{i}"))
                .spawn(move || worker(&shared))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Runs `run(c)` for every `c in 0..chunks` on the pool and the calling thread; returns
    /// when all have finished.
    pub(crate) fn run(&self, chunks: usize, run: &(dyn Fn(usize) + Sync)) {
        let job = Job {
            run,
            chunks,
            next: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        };
        if self.workers.is_empty() || chunks <= 1 {
            job.work();
            return;
        }
        let _one_job = self.dispatch.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        // The pointer is only dereferenced by helpers registered while the gate is open, and
        // this function does not return before the gate is closed and they have all left, so
        // the erased lifetime is never outlived.
        let ptr = &job as *const Job<'_> as *mut Job<'static>;
        s.job.store(ptr, Ordering::Relaxed);
        // Gate first, then the epoch: a worker woken by the epoch finds the gate open.
        s.gate.store(0, Ordering::SeqCst);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = s.park.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let close = CloseAndWait(s);
        job.work();
        drop(close);
        if job.panicked.load(Ordering::Acquire) {
            panic!("a kernel task panicked on a pool worker");
        }
    }
}

impl Drop for SpinPool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.shutdown.store(true, Ordering::SeqCst);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        {
            let _guard = s.park.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            // A worker that panicked has nothing left to clean up.
            let _ = w.join();
        }
    }
}

fn worker(s: &Shared) {
    let mut seen = s.epoch.load(Ordering::SeqCst);
    loop {
        // Wait for a new epoch: spin, then park.
        let mut spins = 0u32;
        let idle = || s.epoch.load(Ordering::SeqCst) == seen && !s.shutdown.load(Ordering::SeqCst);
        while idle() {
            spins += 1;
            if spins < SPIN_LIMIT {
                std::hint::spin_loop();
                continue;
            }
            let mut guard = s.park.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, Ordering::SeqCst);
            while idle() {
                guard = s.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            s.sleepers.fetch_sub(1, Ordering::SeqCst);
            break;
        }
        // Read the epoch before testing shutdown: `Drop` sets shutdown before its epoch bump, so
        // a worker that records the shutdown epoch as seen also sees the flag (otherwise it
        // would wait for an epoch that never comes).
        seen = s.epoch.load(Ordering::SeqCst);
        if s.shutdown.load(Ordering::SeqCst) {
            return;
        }
        // Register unless the caller has already closed the gate.
        let mut g = s.gate.load(Ordering::Acquire);
        let registered = loop {
            if g & CLOSED != 0 {
                break false;
            }
            match s
                .gate
                .compare_exchange_weak(g, g + HELPER, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break true,
                Err(now) => g = now,
            }
        };
        if !registered {
            continue;
        }
        // Registered: the job of the open gate is live until we leave.
        seen = s.epoch.load(Ordering::Acquire);
        let ptr = s.job.load(Ordering::Acquire);
        // SAFETY: see `SpinPool::run`: the caller keeps the job alive until every registered
        // helper has decremented the gate.
        if let Some(job) = unsafe { ptr.as_ref() } {
            job.work_catching();
        }
        s.gate.fetch_sub(HELPER, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_start_and_stop_repeatedly() {
        for threads in 1..4 {
            for jobs in 0..3 {
                let pool = SpinPool::new(threads).expect("pool");
                let count = AtomicUsize::new(0);
                for _ in 0..jobs {
                    pool.run(5, &|_| {
                        count.fetch_add(1, Ordering::Relaxed);
                    });
                }
                drop(pool);
                assert_eq!(count.load(Ordering::Relaxed), 5 * jobs);
            }
        }
    }

    #[test]
    fn every_chunk_runs_once_across_many_jobs() {
        let pool = SpinPool::new(3).expect("pool");
        for chunks in [0usize, 1, 2, 7, 64] {
            for _ in 0..200 {
                let hits: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
                pool.run(chunks, &|c| {
                    hits[c].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn a_panicking_chunk_reaches_the_caller_and_the_pool_keeps_working() {
        let pool = SpinPool::new(2).expect("pool");
        for _ in 0..20 {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.run(64, &|c| {
                    if c % 7 == 3 {
                        panic!("chunk {c}");
                    }
                })
            }));
            assert!(result.is_err());
        }
        let count = AtomicUsize::new(0);
        pool.run(64, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 64);
    }
}
