//! Persistent worker threads for the data-parallel training step.
//!
//! [`Workers::for_each_mut`] runs `f(&mut items[i])` for every i, item i on thread i mod N, where
//! thread 0 is the caller and threads 1..N are workers that live as long as the pool. It is what
//! `std::thread::scope` + `spawn` per item would do, without creating threads (each with a fresh
//! stack mapping and several allocations) on every step: a step of the c1 benchmark takes about a
//! millisecond, and a spawn costs tens of microseconds.
//!
//! Hand-off: the caller publishes a type-erased job under a mutex and bumps a generation counter;
//! workers spin briefly on that counter (steps follow each other closely), then sleep on a
//! condition variable. The caller waits for every worker to finish before `for_each_mut` returns
//! (or unwinds), which is what makes lending it borrowed data sound. Nothing here allocates once
//! the pool exists.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// How many times a waiting thread polls before it sleeps: about 0.57 ms on this Zen 3 machine
/// (measured; one `pause` is ~80 cycles), long enough to cover the serial tail between two steps
/// of the benchmark configs, so a worker rarely pays a wake-up.
const SPIN_POLLS: usize = 20_000;

/// A pool of `threads - 1` worker threads plus the calling thread.
pub struct Workers {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    job_posted: Condvar,
    job_finished: Condvar,
    /// The generation of the latest job, readable without the lock for spinning.
    generation: AtomicU64,
    /// Workers still running the latest job.
    running: AtomicUsize,
}

struct State {
    job: Option<Job>,
    panicked: bool,
    shutdown: bool,
}

/// A borrowed closure with its lifetime erased: `call(data, thread)` runs thread `thread`'s share.
#[derive(Clone, Copy)]
struct Job {
    data: *const (),
    call: unsafe fn(*const (), usize),
}

// SAFETY: `data` points to a `Share` whose items are `Send` and whose closure is `Sync`; the
// caller keeps it alive until every worker has finished with it.
unsafe impl Send for Job {}

/// What the threads share during one `for_each_mut`: the items and the closure.
struct Share<'a, T, F> {
    items: *mut T,
    len: usize,
    threads: usize,
    f: &'a F,
}

/// Runs `f` on items thread, thread + threads, thread + 2 threads, ...
///
/// # Safety
/// `data` must point to a live `Share<T, F>`, and no other thread may touch the same items: each
/// index belongs to exactly one thread.
unsafe fn run_share<T, F: Fn(&mut T)>(data: *const (), thread: usize) {
    let share = &*(data as *const Share<'_, T, F>);
    let mut i = thread;
    while i < share.len {
        (share.f)(&mut *share.items.add(i));
        i += share.threads;
    }
}

impl Workers {
    /// A pool for `threads` threads in all: the caller and `threads - 1` workers.
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                job: None,
                panicked: false,
                shutdown: false,
            }),
            job_posted: Condvar::new(),
            job_finished: Condvar::new(),
            generation: AtomicU64::new(0),
            running: AtomicUsize::new(0),
        });
        let handles = (1..threads)
            .map(|thread| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("meanflow-worker-{thread}"))
                    .spawn(move || worker_loop(&shared, thread))
                    .expect("Workers: the operating system refused to start a thread")
            })
            .collect();
        Workers { shared, handles }
    }

    /// Threads in all, the caller included.
    pub fn threads(&self) -> usize {
        self.handles.len() + 1
    }

    /// f(&mut items\[i\]) for every i; item i runs on thread i mod [`Workers::threads`] (thread 0 is
    /// the caller). Returns when every item is done. A panic in `f` on any thread is re-raised
    /// here, after all threads have stopped using `items`.
    pub fn for_each_mut<T: Send, F: Fn(&mut T) + Sync>(&self, items: &mut [T], f: F) {
        let threads = self.threads();
        let share = Share {
            items: items.as_mut_ptr(),
            len: items.len(),
            threads,
            f: &f,
        };
        let data = &share as *const Share<'_, T, F> as *const ();
        if threads == 1 || items.len() <= 1 {
            // SAFETY: `share` is alive and this is the only thread.
            unsafe { run_share::<T, F>(data, 0) };
            return;
        }
        {
            let mut state = self.shared.lock();
            // A panic left over from a call whose caller share also panicked is not this job's.
            state.panicked = false;
            state.job = Some(Job {
                data,
                call: run_share::<T, F>,
            });
            self.shared.running.store(threads - 1, Ordering::SeqCst);
            self.shared.generation.fetch_add(1, Ordering::SeqCst);
        }
        self.shared.job_posted.notify_all();
        // Waits for the workers even if the caller's share panics: they hold pointers into `share`.
        let finish = WaitForWorkers(self);
        // SAFETY: `share` outlives this call and `finish`; thread 0 owns indices 0, threads, ...
        unsafe { run_share::<T, F>(data, 0) };
        drop(finish);
        let mut state = self.shared.lock();
        state.job = None;
        if std::mem::take(&mut state.panicked) {
            drop(state);
            panic!("Workers::for_each_mut: a worker thread panicked");
        }
    }
}

// A poisoned lock only means a thread panicked while holding it; the state stays valid, so both
// helpers below take it as it is.
impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sleeps on `condition`, releasing the lock, until notified.
fn wait<'a>(condition: &Condvar, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
    condition
        .wait(state)
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Blocks until the running workers have finished the current job (on drop, so also on unwind).
struct WaitForWorkers<'a>(&'a Workers);

impl Drop for WaitForWorkers<'_> {
    fn drop(&mut self) {
        let shared = &self.0.shared;
        for _ in 0..SPIN_POLLS {
            if shared.running.load(Ordering::Acquire) == 0 {
                return;
            }
            std::hint::spin_loop();
        }
        let mut state = shared.lock();
        while shared.running.load(Ordering::Acquire) != 0 {
            state = wait(&shared.job_finished, state);
        }
    }
}

fn worker_loop(shared: &Shared, thread: usize) {
    let mut seen = 0u64;
    loop {
        for _ in 0..SPIN_POLLS {
            if shared.generation.load(Ordering::Acquire) != seen {
                break;
            }
            std::hint::spin_loop();
        }
        let job = {
            let mut state = shared.lock();
            // The generation changes only under the lock, so this check cannot miss a wake-up.
            while shared.generation.load(Ordering::Acquire) == seen && !state.shutdown {
                state = wait(&shared.job_posted, state);
            }
            if state.shutdown {
                return;
            }
            seen = shared.generation.load(Ordering::Acquire);
            state.job.expect("a new generation always comes with a job")
        };
        // SAFETY: the caller of for_each_mut keeps the job's data alive until `running` is 0.
        let result = catch_unwind(AssertUnwindSafe(|| unsafe { (job.call)(job.data, thread) }));
        let mut state = shared.lock();
        if result.is_err() {
            state.panicked = true;
        }
        if shared.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            shared.job_finished.notify_all();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.job_posted.notify_all();
        for handle in self.handles.drain(..) {
            // A worker that panicked has already reported it through for_each_mut.
            let _ = handle.join();
        }
    }
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.threads())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_visited_once_on_its_thread() {
        for threads in [1, 2, 3, 5] {
            let workers = Workers::new(threads);
            for len in [0, 1, 2, 3, 7, 16] {
                // (index, visits, thread name) per item.
                let mut items: Vec<(usize, usize, String)> =
                    (0..len).map(|i| (i, 0, String::new())).collect();
                for _ in 0..3 {
                    workers.for_each_mut(&mut items, |item| {
                        item.1 += 1;
                        item.2 = std::thread::current().name().unwrap_or("").to_string();
                    });
                }
                let caller = std::thread::current().name().unwrap_or("").to_string();
                for (i, visits, name) in &items {
                    assert_eq!(*visits, 3, "item {i} of {len} with {threads} threads");
                    let thread = i % threads;
                    let expected = if thread == 0 || len <= 1 {
                        caller.clone()
                    } else {
                        format!("meanflow-worker-{thread}")
                    };
                    assert_eq!(name, &expected, "item {i} of {len} with {threads} threads");
                }
            }
        }
    }

    #[test]
    fn a_worker_panic_reaches_the_caller_and_the_pool_survives() {
        let workers = Workers::new(2);
        let mut items = [0u32, 1u32];
        let result = catch_unwind(AssertUnwindSafe(|| {
            workers.for_each_mut(&mut items, |x| {
                if *x == 1 {
                    panic!("item 1 fails");
                }
                *x += 10;
            })
        }));
        assert!(result.is_err(), "the worker's panic must reach the caller");
        assert_eq!(items[0], 10);
        workers.for_each_mut(&mut items, |x| *x += 1);
        assert_eq!(items, [11, 2]);
    }

    #[test]
    fn a_caller_panic_waits_for_the_workers() {
        let workers = Workers::new(2);
        let mut items = [0u64, 0u64];
        let result = catch_unwind(AssertUnwindSafe(|| {
            workers.for_each_mut(&mut items, |x| {
                if std::thread::current().name() == Some("meanflow-worker-1") {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    *x = 7;
                } else {
                    panic!("the caller's share fails");
                }
            })
        }));
        assert!(result.is_err());
        // The worker finished writing before the panic left for_each_mut.
        assert_eq!(items[1], 7);
    }
}
