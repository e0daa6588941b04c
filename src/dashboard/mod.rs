//! `--dashboard`: a page the run serves itself, live while it runs.
//!
//! A [`Board`] owns the listening socket (bound when the plan is made, so
//! a busy port fails before anything is sent), the run's history as
//! Server-Sent Events, and their fan-out to the browsers that have the page
//! open. Its inputs are the ones the JSON series is made of: every closed
//! one-second window and every server-metrics scrape ([`feed::Feed`], an
//! observer of the collector), a run's start and its end-of-run summary.
//! A browser that connects gets the whole history first, then each event
//! as it comes: a page opened mid-run shows the run so far.
//!
//! The load never waits for a browser: an event is appended to the history
//! and put on a bounded broadcast ring; a browser that falls a ring behind
//! is dropped (it may reconnect and start again from the history). The page
//! and its script are built into the binary (`page.html`): nothing is
//! fetched from elsewhere. Beyond loopback a token is required; the API key
//! and request bodies are never part of an event.

pub mod feed;
mod serve;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Where `--dashboard` listens when no address is given (k6's port).
pub const DEFAULT_ADDR: &str = "127.0.0.1:5665";

/// How many events a browser may fall behind before it is dropped.
const RING: usize = 512;

/// `--dashboard [ADDR]`, `--dashboard-token`, `--dashboard-linger`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub addr: SocketAddr,
    pub token: Option<String>,
    /// How long the page stays up after the run ends.
    pub linger: Duration,
}

impl Config {
    /// The address as given (`127.0.0.1:5665`, `:5665`, `0.0.0.0:8080`,
    /// `[::1]:5665`, or `true`/`1`/empty for the default), checked: an
    /// address beyond loopback needs a token.
    pub fn parse(addr: &str, token: Option<String>, linger: Duration) -> Result<Config, String> {
        let a = addr.trim();
        let a = match a {
            "" | "true" | "1" | "on" | "yes" => DEFAULT_ADDR.to_string(),
            a if a.starts_with(':') => format!("127.0.0.1{a}"),
            a if !a.contains(':') && a.parse::<u16>().is_ok() => format!("127.0.0.1:{a}"),
            a => a.to_string(),
        };
        let addr: SocketAddr = a.parse().map_err(|_| {
            format!("--dashboard '{addr}' is not an address to listen on, e.g. 127.0.0.1:5665 or 0.0.0.0:5665 (with no address, put it after the workload or write --dashboard=)")
        })?;
        let token = token.filter(|t| !t.trim().is_empty());
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(format!(
                "--dashboard {addr} listens beyond this machine: give it --dashboard-token TOKEN (or PERISCOPE_DASHBOARD_TOKEN); the page then asks for ?token=TOKEN"
            ));
        }
        Ok(Config {
            addr,
            token,
            linger,
        })
    }
}

/// The dashboard of one command (a run, a sweep's levels, a probe's
/// cases): cheap to clone, one server.
#[derive(Clone)]
pub struct Board {
    hub: Arc<Hub>,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Board({})", self.hub.addr)
    }
}

struct Hub {
    addr: SocketAddr,
    token: Option<String>,
    linger: Duration,
    born: Instant,
    state: Mutex<State>,
    tx: broadcast::Sender<Bytes>,
    stop: CancellationToken,
    /// Browsers dropped for falling behind.
    dropped: AtomicU64,
    /// Runs announced so far (a sweep's levels, a probe's cases).
    runs: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Every event so far, as sent (`event: …\ndata: …\n\n`).
    history: Vec<Bytes>,
    /// The socket, until the server takes it.
    listener: Option<std::net::TcpListener>,
    /// The HTML report, once the command has one.
    report: Option<Bytes>,
    done: bool,
}

impl Board {
    /// Bind the address now (a busy port is an error before the run).
    pub fn bind(cfg: &Config) -> Result<Board, String> {
        Board::bind_ring(cfg, RING)
    }

    /// [`Board::bind`], a page dropped `ring` events behind.
    fn bind_ring(cfg: &Config, ring: usize) -> Result<Board, String> {
        let listener = std::net::TcpListener::bind(cfg.addr).map_err(|e| {
            format!(
                "--dashboard {}: cannot listen there: {e} (another run's dashboard? give another port)",
                cfg.addr
            )
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("--dashboard {}: {e}", cfg.addr))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("--dashboard {addr}: {e}"))?;
        let (tx, _) = broadcast::channel(ring);
        Ok(Board {
            hub: Arc::new(Hub {
                addr,
                token: cfg.token.clone(),
                linger: cfg.linger,
                born: Instant::now(),
                state: Mutex::new(State {
                    listener: Some(listener),
                    ..State::default()
                }),
                tx,
                stop: CancellationToken::new(),
                dropped: AtomicU64::new(0),
                runs: AtomicU64::new(0),
            }),
        })
    }

    /// Start serving (once; later calls do nothing) and say where.
    pub fn serve(&self) -> Result<(), String> {
        let Some(listener) = self.state().listener.take() else {
            return Ok(());
        };
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("--dashboard {}: {e}", self.hub.addr))?;
        eprintln!("dashboard: {}", self.url());
        tokio::spawn(serve::accept_loop(listener, self.clone()));
        Ok(())
    }

    /// The page's address (with `?token=` when one is asked for; the
    /// token is the user's own, not a secret of the target's).
    pub fn url(&self) -> String {
        let host = match self.hub.addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let token = match &self.hub.token {
            Some(_) => "?token=…",
            None => "",
        };
        format!("http://{host}:{}/{token}", self.hub.addr.port())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.hub.addr
    }

    /// Seconds since the board was made: the page's time axis, shared by
    /// every run of the command.
    pub fn at(&self) -> f64 {
        (self.hub.born.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
    }

    /// A new run starts (`meta`: what it runs); its events carry the index
    /// returned.
    pub fn start_run(&self, mut meta: serde_json::Value) -> u64 {
        let n = self.hub.runs.fetch_add(1, Ordering::Relaxed);
        if let Some(o) = meta.as_object_mut() {
            o.insert("run".into(), n.into());
            o.insert("at".into(), self.at().into());
        }
        self.push("run", &meta);
        n
    }

    /// The latest run has ended: its figures as the result has them.
    pub fn end_run(&self, mut summary: serde_json::Value) {
        let n = self.hub.runs.load(Ordering::Relaxed).saturating_sub(1);
        if let Some(o) = summary.as_object_mut() {
            o.insert("run".into(), n.into());
            o.insert("at".into(), self.at().into());
        }
        self.push("summary", &summary);
    }

    /// Append an event to the history and send it to every open page.
    pub fn push(&self, kind: &str, data: &serde_json::Value) {
        let event = Bytes::from(format!("event: {kind}\ndata: {data}\n\n"));
        let mut st = self.state();
        st.history.push(event.clone());
        // No page open is not an error.
        let _ = self.hub.tx.send(event);
    }

    /// The command is over: hand the page its HTML report (when there is
    /// one), say so to every page, keep serving for `--dashboard-linger`
    /// (Ctrl-C ends the wait), then stop.
    pub async fn finish(&self, report: Option<String>) {
        {
            let mut st = self.state();
            st.report = report.map(Bytes::from);
            st.done = true;
        }
        let linger = self.hub.linger;
        self.push(
            "done",
            &serde_json::json!({
                "at": self.at(),
                "linger_s": linger.as_secs_f64(),
                "report": self.state().report.is_some(),
                "dropped_pages": self.dropped(),
            }),
        );
        if !linger.is_zero() && self.state().listener.is_none() {
            eprintln!(
                "dashboard: the page stays up for {} at {} (Ctrl-C to leave now)",
                humantime::format_duration(linger),
                self.url()
            );
            tokio::select! {
                _ = tokio::time::sleep(linger) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        } else {
            // Time for open pages to read the last events.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.hub.stop.cancel();
    }

    /// Pages dropped so far for falling behind.
    pub fn dropped(&self) -> u64 {
        self.hub.dropped.load(Ordering::Relaxed)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.hub.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The history so far and a receiver of what comes after it, taken
    /// together: nothing missed, nothing twice.
    fn subscribe(&self) -> (Vec<Bytes>, broadcast::Receiver<Bytes>) {
        let st = self.state();
        (st.history.clone(), self.hub.tx.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_the_forms_users_write() {
        let p = |a: &str| Config::parse(a, None, Duration::ZERO).map(|c| c.addr.to_string());
        assert_eq!(p("").unwrap(), "127.0.0.1:5665");
        assert_eq!(p("true").unwrap(), "127.0.0.1:5665");
        assert_eq!(p(":8080").unwrap(), "127.0.0.1:8080");
        assert_eq!(p("8080").unwrap(), "127.0.0.1:8080");
        assert_eq!(p("[::1]:5665").unwrap(), "[::1]:5665");
        assert!(p("localhost:x").unwrap_err().contains("not an address"));
    }

    #[test]
    fn beyond_loopback_a_token_is_required() {
        let e = Config::parse("0.0.0.0:5665", None, Duration::ZERO).unwrap_err();
        assert!(e.contains("--dashboard-token"), "{e}");
        assert!(Config::parse("0.0.0.0:5665", Some(" ".into()), Duration::ZERO).is_err());
        let c = Config::parse("0.0.0.0:5665", Some("s3".into()), Duration::ZERO).unwrap();
        assert_eq!(c.token.as_deref(), Some("s3"));
    }

    #[tokio::test]
    async fn a_subscriber_gets_the_history_then_what_follows_once() {
        let b = Board::bind(&Config::parse("127.0.0.1:0", None, Duration::ZERO).unwrap()).unwrap();
        b.start_run(serde_json::json!({"scenario": "s"}));
        b.push("window", &serde_json::json!({"t": 0}));
        let (history, mut rx) = b.subscribe();
        b.push("window", &serde_json::json!({"t": 1}));
        assert_eq!(history.len(), 2);
        let text = |b: &Bytes| String::from_utf8(b.to_vec()).unwrap();
        assert!(
            text(&history[0]).starts_with("event: run\ndata: {"),
            "{}",
            text(&history[0])
        );
        assert!(
            text(&history[0]).contains("\"run\":0"),
            "{}",
            text(&history[0])
        );
        assert_eq!(text(&history[1]), "event: window\ndata: {\"t\":0}\n\n");
        assert_eq!(
            text(&rx.recv().await.unwrap()),
            "event: window\ndata: {\"t\":1}\n\n"
        );
        assert!(rx.try_recv().is_err());
    }
}
