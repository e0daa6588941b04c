//! Time and signals around a run: waiting for `--start-at`, and Ctrl-C or
//! SIGTERM (a pod being stopped): the first stops starting requests and
//! gives those in flight the grace; the second cancels them.

use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// Sleep until `at` (the origin of the load, as an instant and a wall-clock
/// time); a time already past by more than a second is an error, since the
/// segments would not start together. Ctrl-C while waiting stops the run.
pub(super) async fn wait_for_start(at: SystemTime) -> Result<(Instant, SystemTime)> {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let stamp = humantime::format_rfc3339_millis(at);
    match at.duration_since(wall) {
        Ok(ahead) => {
            eprintln!(
                "waiting {} for --start-at {stamp}",
                crate::fmt::fmt_dur(ahead)
            );
            let origin = now + ahead;
            tokio::select! {
                _ = crate::timer::sleep_until(origin) => Ok((origin, at)),
                _ = interrupt() => Err(Error::Start(format!(
                    "interrupted while waiting for --start-at {stamp}: nothing was sent"
                ))),
            }
        }
        Err(e) if e.duration() <= std::time::Duration::from_secs(1) => {
            Ok((now - e.duration(), at))
        }
        Err(e) => Err(Error::Start(format!(
            "--start-at {stamp} passed {} ago (after the preflight): give a later time, so that every segment starts together",
            crate::fmt::fmt_dur(e.duration())
        ))),
    }
}

pub(super) fn soft_stopped_by_user(task: &tokio::task::JoinHandle<bool>) -> bool {
    // The Ctrl-C task only finishes (returning true) after a first Ctrl-C.
    task.is_finished()
}

/// First Ctrl-C: stop starting requests and give in-flight ones the grace
/// period. Second: cancel them now. Returns once the first one arrived.
pub(super) async fn watch_ctrl_c(
    soft: CancellationToken,
    hard: CancellationToken,
    grace: std::time::Duration,
) -> bool {
    interrupt().await;
    eprintln!(
        "\ninterrupted: finishing requests in flight (up to {}); Ctrl-C again to stop now",
        crate::fmt::fmt_dur(grace)
    );
    soft.cancel();
    tokio::spawn(async move {
        interrupt().await;
        hard.cancel();
    });
    true
}

/// The next Ctrl-C (SIGINT) or SIGTERM; never, when neither can be watched.
pub(crate) async fn interrupt() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_err() { std::future::pending::<()>().await },
                _ = term.recv() => {}
            }
            return;
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
