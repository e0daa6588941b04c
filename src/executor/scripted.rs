//! A scripted VU: the script's `default` run in a loop on a thread of its
//! own (a JavaScript runtime cannot move between threads), as the closed
//! model's VUs run their sessions. `setup()` runs before the load and
//! `teardown()` after it, each on a thread of their own.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio_util::task::TaskTracker;

use super::workers::Workers;
use super::Context;
use crate::script::ScriptRun;

/// Run `f` on a new thread with room for a JavaScript runtime; resolves
/// when it is done.
pub(super) async fn on_thread<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(name)
        .stack_size(2 << 20)
        .spawn(move || {
            // A VU's thread: the heap all VUs share, not a heap of
            // its own (see `crate::alloc`).
            crate::alloc::use_shared_here();
            let _ = tx.send(f());
        });
    if let Err(e) = spawned {
        eprintln!("error: cannot start a VU thread: {e}");
        return None;
    }
    rx.await.ok()
}

/// Run the script's `setup` or `teardown` on a thread of its own; false
/// when it failed (said on stderr and counted as a failed iteration).
pub(super) async fn once(name: &'static str, ctx: &Context, pool: &Workers) -> bool {
    let Some(s) = ctx.script.clone() else {
        return true;
    };
    let worker = pool.next();
    let run = s.clone();
    match on_thread(format!("periscope-{name}"), move || run.once(name, worker)).await {
        Some(Err(e)) => {
            eprintln!("error: {e}");
            s.io.fail(e);
            false
        }
        _ => true,
    }
}

/// Start VU `id` (k6's `__VU` is `id + 1`), its requests run on the
/// `worker` runtime, tracked by `tracker`.
pub(super) fn spawn(
    id: u64,
    stop: Arc<AtomicBool>,
    (ctx, script, worker): (Arc<Context>, Arc<ScriptRun>, tokio::runtime::Handle),
    remaining: Option<Arc<AtomicU64>>,
    dispatched: Arc<AtomicU64>,
    tracker: &TaskTracker,
) {
    tracker.spawn(on_thread(format!("periscope-vu{}", id + 1), move || {
        ctx.gauges.active_vus.fetch_add(1, Ordering::Relaxed);
        run(
            id,
            &stop,
            &ctx,
            (&script, worker),
            remaining.as_deref(),
            &dispatched,
        );
        ctx.gauges.active_vus.fetch_sub(1, Ordering::Relaxed);
    }));
}

fn run(
    id: u64,
    stop: &AtomicBool,
    ctx: &Context,
    (script, worker): (&ScriptRun, tokio::runtime::Handle),
    remaining: Option<&AtomicU64>,
    dispatched: &AtomicU64,
) {
    let mut vu = match script.vu(id + 1, worker) {
        Ok(v) => v,
        Err(e) => {
            script.io.fail(format!("init: {e}"));
            return;
        }
    };
    let mut iteration = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) || ctx.soft.is_cancelled() {
            break;
        }
        if !super::closed::claim(remaining, ctx) {
            break;
        }
        dispatched.fetch_add(1, Ordering::Relaxed);
        // A failed iteration is counted (its message and line) by the VU;
        // the next one goes on.
        let _ = vu.iteration(iteration);
        iteration += 1;
        if ctx.hard.is_cancelled() {
            break;
        }
    }
}
