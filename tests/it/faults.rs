//! Faults injected into a real network: each test runs in a network
//! namespace of its own (its own loopback; every server and every
//! periscope process it starts lives there), where nftables drops or
//! resets packets, tc's token bucket limits the rate, an HTB class holds
//! back a share of the packets (reordering), a relay delays each chunk
//! (50 ms ± 10 ms each way: this kernel has no netem), and servers
//! die, hang, trickle or close. Every request ends in one class that names
//! the fault, nothing outlives its timeout, and every output — the JSON,
//! the CSV and JSONL rows, InfluxDB's points, the spans — holds every
//! request sent.

use std::future::Future;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// Run `body` on a thread of its own inside a new network namespace with
/// only a loopback: the sockets it opens and the processes it starts are
/// there, and so are the nftables rules and qdiscs it sets. Without the
/// right to make one (not root), the test is skipped, unless CI=true.
fn in_netns<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let t = std::thread::spawn(move || {
        // SAFETY: unshare has no memory preconditions; it moves this
        // thread alone into a new network namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            let e = std::io::Error::last_os_error();
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("cannot make a network namespace ({e}): the fault tests need root; CI=true makes that a failure");
            }
            eprintln!("skipping: cannot make a network namespace ({e})");
            return;
        }
        sh("ip link set lo up");
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(body());
    });
    if let Err(p) = t.join() {
        std::panic::resume_unwind(p);
    }
}

/// A shell command in the namespace; it must succeed.
fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// nftables rules (one a line), put in the namespace's `inet faults`
/// table, on its input hook (every packet on the loopback passes it).
fn nft(rules: &str) {
    let rules = format!(
        "table inet faults {{\nchain in {{\ntype filter hook input priority 0; policy accept;\n{rules}\n}}\n}}\n"
    );
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nft (scripts/test-env.sh installs nftables)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The packets an nftables rule with a counter has matched, by the
/// rule's comment.
fn matched(comment: &str) -> u64 {
    let out = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("comment \"{comment}\"")))
        .unwrap_or_else(|| panic!("no rule {comment}: {text}"));
    line.split("packets ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// A relay on a free loopback port to `upstream` that holds every chunk,
/// each way, for `delay` ± `jitter` (uniform) and passes it on in order,
/// as netem's delay does to packets. Its address.
async fn delaying_relay(upstream: String, delay_ms: f64, jitter_ms: f64) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut seed = 7u64;
        while let Ok((down, _)) = l.accept().await {
            let Ok(up) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let _ = (down.set_nodelay(true), up.set_nodelay(true));
            let (dr, dw) = down.into_split();
            let (ur, uw) = up.into_split();
            for (r, w) in [(dr, uw), (ur, dw)] {
                seed += 1;
                tokio::spawn(hold_and_pass(r, w, delay_ms, jitter_ms, seed));
            }
        }
    });
    addr
}

async fn hold_and_pass(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    delay_ms: f64,
    jitter_ms: f64,
    seed: u64,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    tokio::spawn(async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if w.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    });
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut last = tokio::time::Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let d = delay_ms + jitter_ms * (2.0 * rng.f64() - 1.0);
        let at = (tokio::time::Instant::now() + Duration::from_secs_f64(d / 1000.0)).max(last);
        last = at;
        if tx.send((at, buf[..n].to_vec())).is_err() {
            return;
        }
    }
}

#[test]
fn under_loss_delay_and_jitter_ttft_is_the_servers_plus_the_delay_injected() {
    in_netns(|| async {
        let mock = MockProc::start(&["--ttft", "100ms", "--itl", "20ms", "--output-tokens", "16"]);
        let relay = delaying_relay(mock.addr.clone(), 50.0, 10.0).await;
        let p = port_of(&relay);
        // 1% of the packets each way between periscope and the relay.
        nft(&format!(
            "tcp dport {p} numgen random mod 100 < 1 counter drop comment \"loss-up\"\n\
             tcp sport {p} numgen random mod 100 < 1 counter drop comment \"loss-down\""
        ));
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("r.csv");
        let (_, r) = run_ok(&[
            "run",
            "--target",
            &format!("http://{relay}/v1"),
            "--vus",
            "8",
            "--duration",
            "10s",
            "--no-preflight",
            "--timeout",
            "30s",
            "--csv",
            csv.to_str().unwrap(),
        ])
        .await;
        let s = &r["summary"];
        let requests = s["requests"].as_u64().unwrap();
        assert!(requests >= 100, "{s}");
        assert_eq!(
            s["errors"], 0,
            "lost packets are sent again, not errors: {}",
            r["errors"]
        );
        let dropped = matched("loss-up") + matched("loss-down");
        assert!(dropped > 0, "packets were lost");
        assert_eq!(
            std::fs::read_to_string(&csv).unwrap().lines().count() as u64,
            requests + 1
        );
        // ttft = the request's way up + the mock's ttft + the first token's
        // way down: the two delays' sum has its median at 100 ms.
        let st = mock.stats().await;
        let mock_ttft = f(&st["ttft_us"]["p50"]) / 1000.0;
        let ttft = f(&latency(&r, "ttft")["p50"]);
        assert!(
            (ttft - mock_ttft - 100.0).abs() <= 5.0,
            "ttft p50 {ttft} ms = the mock's {mock_ttft} + 100 ms injected? ({dropped} packets dropped)"
        );
        eprintln!(
            "faults: ttft p50 {ttft} ms, the mock's {mock_ttft} ms + 100 ms injected; {dropped} packets dropped; {requests} requests"
        );
        // The gaps keep the mock's: the relay passes chunks in order.
        let (itl, mock_itl) = (
            f(&latency(&r, "itl")["p50"]),
            f(&st["itl_us"]["p50"]) / 1000.0,
        );
        assert!(
            (itl - mock_itl).abs() <= 3.0,
            "itl {itl} vs the mock's {mock_itl}"
        );
    });
}

#[test]
fn a_rate_limited_link_takes_the_time_its_rate_says() {
    in_netns(|| async {
        // 8 Mbit/s on the loopback, with a bucket of 3 packets of the
        // Ethernet MTU it is given (tbf never sends a packet bigger than
        // its bucket, and loopback's own MTU is 64 kB): a 1536-float
        // embedding (~19 kB of JSON) takes ~19 ms to cross it, beside the
        // mock's own 5 ms.
        sh("ip link set lo mtu 1500");
        sh("tc qdisc add dev lo root tbf rate 8mbit burst 4500 latency 500ms");
        let mock = MockProc::start(&[]);
        let (_, r) = run_ok(&[
            "run",
            "embeddings",
            "--target",
            &mock.base(),
            "--vus",
            "1",
            "--iterations",
            "20",
            "--no-preflight",
        ])
        .await;
        let s = &r["summary"];
        assert_eq!(s["ok"], 20, "{s}");
        let per_request = f(&s["received"]["wire_bytes"]) / 20.0;
        assert!(per_request > 15_000.0, "{per_request} bytes an answer");
        // What the link's rate alone takes, and the whole answer.
        let wire_ms = per_request * 8.0 / 8e6 * 1000.0;
        let e2e = f(&latency(&r, "e2e")["p50"]);
        assert!(
            e2e >= wire_ms * 0.8 && e2e <= wire_ms + 5.0 + 25.0,
            "e2e {e2e} ms for {per_request} bytes at 8 Mbit/s ({wire_ms:.1} ms on the wire)"
        );
    });
}

/// A TCP counter of this namespace's kernel (`/proc/net/netstat`'s
/// `TcpExt` line), by name.
fn tcp_ext(name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/net/netstat").unwrap();
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no TcpExt {name}"))
}

#[test]
fn reordered_packets_change_no_token_and_no_figure_beyond_their_delay() {
    in_netns(|| async {
        let mock = MockProc::start(&["--ttft", "20ms", "--itl", "5ms", "--output-tokens", "32"]);
        let p = port_of(&mock.addr);
        // netem's reordering, made of what this kernel has: one packet in
        // twenty from the mock goes through an HTB class of 100 kbit/s, so
        // it leaves ~16 ms late and the packets after it overtake it.
        sh("ip link set lo mtu 1500");
        sh("tc qdisc add dev lo root handle 1: htb default 1");
        sh("tc class add dev lo parent 1: classid 1:1 htb rate 10gbit");
        sh("tc class add dev lo parent 1: classid 1:2 htb rate 100kbit ceil 100kbit burst 1600 cburst 1600");
        sh(&format!(
            "nft add table inet reorder && nft add chain inet reorder out '{{ type filter hook output priority 0; }}' && \
             nft add rule inet reorder out tcp sport {p} numgen random mod 100 '<' 5 meta priority set 1:2 counter comment '\"slow\"'"
        ));
        let ofo_before = tcp_ext("TCPOFOQueue");
        let (_, r) = run_ok(&[
            "run",
            "--target",
            &mock.base(),
            "--vus",
            "4",
            "--duration",
            "6s",
            "--no-preflight",
        ])
        .await;
        let reordered = tcp_ext("TCPOFOQueue") - ofo_before;
        assert!(
            matched("slow") > 20 && reordered > 20,
            "packets were reordered: {} held back, {reordered} queued out of order",
            matched("slow")
        );
        let s = &r["summary"];
        let ok = s["ok"].as_u64().unwrap();
        assert!(ok >= 50 && s["errors"] == 0, "{s} {}", r["errors"]);
        assert_eq!(s["output_tokens"].as_u64(), Some(ok * 32), "{s}");
        assert_eq!(latency(&r, "itl")["count"].as_u64(), Some(ok * 31));
        // The median stream met no late packet before its first token.
        let st = mock.stats().await;
        let (ttft, mock_ttft) = (
            f(&latency(&r, "ttft")["p50"]),
            f(&st["ttft_us"]["p50"]) / 1000.0,
        );
        assert!(
            (ttft - mock_ttft).abs() <= 2.0,
            "ttft p50 {ttft} ms vs the mock's {mock_ttft} ms"
        );
    });
}

/// What a run through a fault left behind: its JSON and its outputs'
/// counts, checked for every request sent.
struct Outputs {
    dir: tempfile::TempDir,
}

impl Outputs {
    fn new() -> Outputs {
        Outputs {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn args(&self, influx: &str, spans: &str) -> Vec<String> {
        let p = |n: &str| self.dir.path().join(n).to_str().unwrap().to_string();
        s(&[
            "--csv",
            &p("r.csv"),
            "--requests-out",
            &p("rows.jsonl"),
            "--out",
            &format!("influxdb={influx}/periscope"),
            "--trace-requests",
            spans,
            "--json",
            &p("r.json"),
        ])
    }

    /// The run's result, after checking that the CSV and JSONL rows, the
    /// InfluxDB points and the spans each hold every request.
    async fn check(&self, influx: &str, receiver: &MockProc, spans_before: u64) -> Value {
        let r = read_json(self.dir.path().join("r.json").to_str().unwrap());
        let n = r["summary"]["requests"].as_u64().unwrap();
        let lines = |f: &str| {
            std::fs::read_to_string(self.dir.path().join(f))
                .unwrap()
                .lines()
                .count() as u64
        };
        assert_eq!(lines("r.csv"), n + 1, "CSV rows");
        assert_eq!(lines("rows.jsonl"), n, "JSONL rows");
        for o in r["outputs"].as_array().unwrap() {
            assert_eq!(o["dropped"], 0, "{o}");
        }
        let run_id = r["run_id"].as_str().unwrap();
        let points = values(
            &influxql(
                influx,
                &format!("SELECT count(\"ok\") FROM periscope_request WHERE run_id = '{run_id}'"),
            )
            .await,
        );
        assert_eq!(points, vec![n as f64], "InfluxDB request points");
        let spans = receiver.stats().await["otlp"]["spans"].as_u64().unwrap();
        assert_eq!(spans - spans_before, n, "client spans");
        r
    }
}

/// The error classes of a result, with their counts.
fn classes(r: &Value) -> std::collections::BTreeMap<String, u64> {
    let mut m = std::collections::BTreeMap::new();
    for e in r["errors"].as_array().unwrap() {
        *m.entry(e["class"].as_str().unwrap().to_string())
            .or_default() += e["count"].as_u64().unwrap();
    }
    m
}

/// A server on a free loopback port that runs `each` on every connection
/// it accepts, on a thread of its own.
fn raw_server(each: fn(std::net::TcpStream)) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || each(c));
        }
    });
    addr
}

/// Read one request's head (and what came with it).
fn read_head(c: &mut std::net::TcpStream) -> bool {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    true
}

#[test]
fn every_fault_ends_each_request_in_a_class_that_names_it_and_every_output_holds_it() {
    in_netns(|| async {
        let Some(influx) = Server::influxdb() else {
            return;
        };
        let receiver = MockProc::start(&[]);
        let spans_url = receiver.url("/v1/traces");
        // Each fault: how it is made, the classes its requests may end in
        // (the first one must be there), and what the first one's message says.
        struct Case {
            name: &'static str,
            classes: &'static [&'static str],
            says: &'static str,
        }
        let long_streams = ["--ttft", "20ms", "--itl", "50ms", "--output-tokens", "64"];
        for case in [
            Case {
                name: "killed mid-stream",
                // A request the mock had read (and acknowledged) as it died
                // is connection_lost: it may have started on it.
                classes: &["stream_cut", "connect", "connection_lost"],
                says: "",
            },
            Case {
                name: "reset",
                classes: &["stream_cut", "connect"],
                says: "reset",
            },
            Case {
                name: "never answers",
                classes: &["timeout"],
                says: "--timeout",
            },
            Case {
                name: "slow loris",
                classes: &["timeout"],
                says: "--timeout",
            },
            Case {
                name: "half-open",
                classes: &["timeout", "connect"],
                says: "--timeout",
            },
            Case {
                name: "dns fails",
                classes: &["dns"],
                says: "periscope-test.invalid",
            },
            Case {
                name: "closes on the request",
                classes: &["connection_lost"],
                says: "after the whole request",
            },
        ] {
            let outputs = Outputs::new();
            let spans_before = receiver.stats().await["otlp"]["spans"]
                .as_u64()
                .unwrap_or(0);
            let mut mock = MockProc::start(&long_streams);
            let target = match case.name {
                "never answers" => format!(
                    "http://{}/v1",
                    raw_server(|mut c| {
                        read_head(&mut c);
                        std::thread::sleep(Duration::from_secs(30));
                    })
                ),
                "slow loris" => format!(
                    "http://{}/v1",
                    raw_server(|mut c| {
                        read_head(&mut c);
                        let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n");
                        for _ in 0..300 {
                            std::thread::sleep(Duration::from_millis(100));
                            if c.write_all(b"1\r\n:\r\n").is_err() {
                                return;
                            }
                        }
                    })
                ),
                "closes on the request" => format!(
                    "http://{}/v1",
                    raw_server(|mut c| {
                        if read_head(&mut c) {
                            COUNTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    })
                ),
                "dns fails" => "http://periscope-test.invalid:8000/v1".to_string(),
                _ => mock.base(),
            };
            let mut args = s(&[
                "run",
                "--target",
                &target,
                "--vus",
                "4",
                "--duration",
                "3s",
                "--timeout",
                "1500ms",
                "--no-preflight",
            ]);
            args.extend(outputs.args(&influx.base, &spans_url));
            let started = Instant::now();
            let run = tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                periscope(&refs)
            });
            // The faults that strike mid-run.
            tokio::time::sleep(Duration::from_millis(800)).await;
            let p = port_of(&mock.addr);
            match case.name {
                "killed mid-stream" => mock.kill(),
                "reset" => nft(&format!(
                    "tcp dport {p} counter reject with tcp reset comment \"reset\""
                )),
                "half-open" => nft(&format!(
                    "tcp dport {p} counter drop comment \"half-open-up\"\n\
                     tcp sport {p} counter drop comment \"half-open-down\""
                )),
                _ => {}
            }
            let out = run.await.unwrap();
            let took = started.elapsed();
            let err = stderr(&out);
            assert!(out.status.success(), "{}: {err}", case.name);
            assert!(!err.contains("panicked"), "{}: {err}", case.name);
            // 3 s of load, then at most one --timeout for what is in flight.
            assert!(
                took < Duration::from_millis(3000 + 1500 + 2500),
                "{}: the run took {took:?}",
                case.name
            );
            let r = outputs.check(&influx.base, &receiver, spans_before).await;
            let got = classes(&r);
            let n = r["summary"]["requests"].as_u64().unwrap();
            eprintln!("faults: {}: {n} requests in {took:?}, {got:?}", case.name);
            assert_eq!(
                got.values().sum::<u64>() + r["summary"]["ok"].as_u64().unwrap(),
                n,
                "{}: every request ended once",
                case.name
            );
            assert!(
                got.keys().all(|c| case.classes.contains(&c.as_str()))
                    && got.contains_key(case.classes[0]),
                "{}: {got:?} (expected {:?}): {}",
                case.name,
                case.classes,
                r["errors"]
            );
            let first = r["errors"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["class"] == case.classes[0])
                .unwrap();
            assert!(
                first["message"].as_str().unwrap().contains(case.says),
                "{}: {first}",
                case.name
            );
            match case.name {
                "reset" => assert!(matched("reset") > 0),
                "half-open" => assert!(matched("half-open-down") > 0),
                "closes on the request" => {
                    // Each request reached the server once: none went twice.
                    let counted = COUNTED.swap(0, std::sync::atomic::Ordering::SeqCst);
                    assert_eq!(counted as u64, n, "requests the server read");
                }
                _ => {}
            }
            let _ = Command::new("nft")
                .args(["delete", "table", "inet", "faults"])
                .output();
        }
    });
}

static COUNTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
