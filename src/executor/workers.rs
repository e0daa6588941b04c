//! The threads that send requests: one single-threaded tokio runtime per
//! core, each owning its virtual users and their connections.
//!
//! A work-stealing runtime moves a request's task and its connection's task
//! between threads, and each move is a wake-up through the kernel; with one
//! runtime per core a request, its connection and its timers stay on one
//! thread (oha and wrk are built the same way). Tasks are dealt to the
//! runtimes in turn.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stop: Vec<oneshot::Sender<()>>,
}

impl Workers {
    pub fn start(n: usize) -> std::io::Result<Self> {
        let mut handles = Vec::with_capacity(n);
        let mut stop = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let (tx, rx) = oneshot::channel::<()>();
            stop.push(tx);
            std::thread::Builder::new()
                .name(format!("periscope-w{i}"))
                .spawn(move || {
                    crate::worker::mark(i);
                    rt.block_on(async {
                        let _ = rx.await;
                    });
                })?;
        }
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
            stop,
        })
    }

    /// The next worker's runtime (dealt in turn, as tasks are).
    pub fn next(&self) -> Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].clone()
    }

    /// Run `fut` on the next worker, tracked by `tracker`.
    pub fn spawn<F>(&self, tracker: &TaskTracker, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn(tracker.track_future(fut));
    }
}

/// Stopping a worker ends its thread; tasks still on it (connections kept
/// open for reuse) are dropped with its runtime.
impl Drop for Workers {
    fn drop(&mut self) {
        for s in self.stop.drain(..) {
            let _ = s.send(());
        }
    }
}
