//! A sub-millisecond timer for schedules that must be kept.
//!
//! tokio's timer wheel has a 1 ms resolution and rounds deadlines up, so a
//! token due at 100.0 ms leaves at 100–101 ms. The mock's token schedule and
//! the open model's arrival schedule are the ground truth of timing tests, so
//! they use this timer instead: one OS thread keeps a heap of deadlines and
//! sleeps on `recv_timeout` (a futex with a nanosecond timeout, with the
//! thread's timer slack set to 1 µs), then wakes the tasks whose deadline has
//! passed. Registration is a lock-free channel send; there is no lock on the
//! hot path. Deadlines already passed complete without registering.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// State shared between a [`Sleep`] and the timer thread.
struct Shared {
    fired: AtomicBool,
    /// The waker of the task that awaits the sleep. A mutex, not a lock on a
    /// hot path: it is touched once when registering and once when firing.
    waker: Mutex<Option<Waker>>,
}

struct Entry {
    deadline: Instant,
    shared: Arc<Shared>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and we want the earliest deadline.
    fn cmp(&self, other: &Self) -> Ordering {
        other.deadline.cmp(&self.deadline)
    }
}

fn timer_thread() -> &'static Mutex<Sender<Entry>> {
    static TX: OnceLock<Mutex<Sender<Entry>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Entry>();
        std::thread::Builder::new()
            .name("periscope-timer".into())
            .spawn(move || {
                set_timer_slack();
                let mut heap: BinaryHeap<Entry> = BinaryHeap::new();
                loop {
                    let now = Instant::now();
                    while heap.peek().is_some_and(|e| e.deadline <= now) {
                        let entry = heap.pop().expect("peeked");
                        entry.shared.fired.store(true, AtomicOrdering::Release);
                        let waker = entry.shared.waker.lock().ok().and_then(|mut w| w.take());
                        if let Some(w) = waker {
                            w.wake();
                        }
                    }
                    let received = match heap.peek() {
                        Some(e) => rx.recv_timeout(e.deadline.saturating_duration_since(now)),
                        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match received {
                        Ok(entry) => {
                            heap.push(entry);
                            while let Ok(entry) = rx.try_recv() {
                                heap.push(entry);
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .expect("spawn timer thread");
        // The sender is cloned per thread (see `sender`), so this mutex is only
        // taken once per thread.
        Mutex::new(tx)
    })
}

thread_local! {
    static SENDER: Sender<Entry> = timer_thread().lock().expect("timer sender").clone();
}

#[cfg(target_os = "linux")]
fn set_timer_slack() {
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(not(target_os = "linux"))]
fn set_timer_slack() {}

/// A future that completes at `deadline`, within tens of microseconds.
pub struct Sleep {
    deadline: Instant,
    shared: Option<Arc<Shared>>,
}

/// Sleep until `deadline` with sub-millisecond precision.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        shared: None,
    }
}

impl Sleep {
    /// The instant this sleep completes at.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(shared) = &self.shared {
            if shared.fired.load(AtomicOrdering::Acquire) {
                return Poll::Ready(());
            }
            if let Ok(mut w) = shared.waker.lock() {
                *w = Some(cx.waker().clone());
            }
            // The timer may have fired between the check and the store.
            if shared.fired.load(AtomicOrdering::Acquire) {
                return Poll::Ready(());
            }
            return Poll::Pending;
        }
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let shared = Arc::new(Shared {
            fired: AtomicBool::new(false),
            waker: Mutex::new(Some(cx.waker().clone())),
        });
        let entry = Entry {
            deadline: self.deadline,
            shared: shared.clone(),
        };
        SENDER.with(|tx| {
            let _ = tx.send(entry);
        });
        self.shared = Some(shared);
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sleeps_until_deadline_and_not_before() {
        let start = Instant::now();
        let mut handles = Vec::new();
        for i in 0..50u64 {
            let deadline = start + Duration::from_millis(5 + i % 10);
            handles.push(tokio::spawn(async move {
                sleep_until(deadline).await;
                Instant::now() >= deadline
            }));
        }
        for h in handles {
            assert!(h.await.unwrap(), "a sleep completed before its deadline");
        }
        let past = sleep_until(start);
        past.await; // an elapsed deadline completes at once
    }
}
