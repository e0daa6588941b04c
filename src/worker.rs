//! Which of the load's worker threads this is. The executor runs one
//! single-threaded runtime per core and marks each thread; state kept per
//! worker (the connection pool's shards) is found by the mark, so a
//! connection stays on the runtime that drives it.

use std::cell::Cell;

thread_local! {
    /// 1 + the index of the worker running on this thread; 0 elsewhere.
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// 1 + the index of the worker this thread is, or 0 on any other thread.
pub fn current() -> usize {
    WORKER.with(Cell::get)
}

/// Mark this thread as worker `i` (from 0).
pub fn mark(i: usize) {
    WORKER.with(|w| w.set(i + 1));
}

/// How many workers a run uses: one per core the process may use.
pub fn count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
