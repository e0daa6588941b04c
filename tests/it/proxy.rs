//! Through a forward proxy (tinyproxy from Debian, on a free loopback
//! port): `--proxy` and the standard variables, `NO_PROXY`, credentials
//! that reach the proxy and never the output, CONNECT for https:// targets.

use std::process::{Child, Command};

use crate::common::*;

/// tinyproxy on a free loopback port, its config and log in a temporary
/// folder; stopped on drop. `auth`: the user and password it asks for.
struct Tinyproxy {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Tinyproxy {
    fn start(auth: Option<(&str, &str)>) -> Option<Tinyproxy> {
        if !installed("tinyproxy", "tinyproxy") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 512\nLogLevel Info\nLogFile \"{d}/log\"\nPidFile \"{d}/pid\"\n"
        );
        if let Some((u, p)) = auth {
            conf.push_str(&format!("BasicAuth {u} {p}\n"));
        }
        std::fs::write(dir.path().join("conf"), conf).unwrap();
        let mut child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(dir.path().join("conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start tinyproxy");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Tinyproxy { child, dir, port });
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("tinyproxy did not listen on {port}");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests it forwarded (absolute form) and the tunnels it opened.
    fn seen(&self, what: &str) -> usize {
        std::fs::read_to_string(self.dir.path().join("log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(what))
            .count()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_with(args: &[&str], env: &[(&str, String)]) -> (std::process::Output, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let mut all = args.to_vec();
    all.extend(["--json", &json]);
    let out = periscope_with_env(&all, env);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&json).unwrap();
    assert!(
        !text.contains("s3cret"),
        "the proxy's password is in the result"
    );
    (out, serde_json::from_str(&text).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_targets_go_through_the_proxy_with_its_credentials_and_the_report_says_so() {
    let mock = MockProc::start(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "4"]);
    let Some(tp) = Tinyproxy::start(Some(("alice", "s3cret"))) else {
        return;
    };
    let with_auth = format!("http://alice:s3cret@127.0.0.1:{}", tp.port);
    let forwarded = format!("POST http://{}/v1/chat/completions", mock.addr);
    // Both engines: periscope's HTTP/1.1 (absolute form) and reqwest's.
    for (engine, runs) in [("h1", 1), ("reqwest", 2)] {
        let (out, r) = run_with(
            &[
                "run",
                "--target",
                &mock.base(),
                "--proxy",
                &with_auth,
                "--http-engine",
                engine,
                "--vus",
                "2",
                "--iterations",
                "10",
            ],
            &[],
        );
        let said = stdout(&out) + &stderr(&out);
        assert!(
            said.contains(&format!("through the proxy {}", tp.url())),
            "{said}"
        );
        assert!(!said.contains("s3cret"), "{said}");
        assert_eq!(r["plan"]["proxy"], tp.url());
        assert_eq!(r["summary"]["errors"], 0, "{engine}: {}", r["summary"]);
        // Every request and each run's preflight reached the mock through it.
        assert_eq!(tp.seen(&forwarded), 11 * runs, "{engine}");
    }
    assert_eq!(mock.stats().await["requests"], 22);

    // Wrong credentials: the run does not start, and says the proxy refused.
    let out = periscope(&[
        "run",
        "--target",
        &mock.base(),
        "--proxy",
        &format!("http://alice:wrong@127.0.0.1:{}", tp.port),
        "--iterations",
        "2",
    ]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("through the proxy {}", tp.url())),
        "{err}"
    );
    assert!(!err.contains("wrong"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_variables_in_either_case_pick_the_proxy_and_no_proxy_skips_it() {
    let mock = MockProc::start(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "4"]);
    let Some(tp) = Tinyproxy::start(None) else {
        return;
    };
    let forwarded = format!("POST http://{}/v1/chat/completions", mock.addr);
    let args = ["run", "--target", &mock.base(), "--iterations", "5"];
    for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY"] {
        let before = tp.seen(&forwarded);
        let (_, r) = run_with(&args, &[(var, tp.url())]);
        assert_eq!(r["plan"]["proxy"], tp.url(), "{var}");
        assert_eq!(tp.seen(&forwarded) - before, 6, "{var}");
    }
    // NO_PROXY names the target (its IP, a CIDR, `*`): straight to it, past
    // a proxy that is not even there.
    let dead = "http://127.0.0.1:9".to_string();
    for skip in ["127.0.0.1", "127.0.0.0/8", "*"] {
        let (_, r) = run_with(
            &args,
            &[("HTTP_PROXY", dead.clone()), ("no_proxy", skip.into())],
        );
        assert!(r["plan"].get("proxy").is_none(), "{skip}");
        assert_eq!(r["summary"]["errors"], 0, "{skip}");
    }
    // The in-process mock is never proxied.
    let (_, r) = run_with(
        &["run", "--mock", "--iterations", "3"],
        &[("HTTP_PROXY", dead.clone())],
    );
    assert_eq!(r["summary"]["errors"], 0);
}

#[test]
fn a_bad_proxy_is_one_line_that_says_what_to_write() {
    assert_usage_error(
        &[
            "run",
            "--mock",
            "--proxy",
            "socks5://127.0.0.1:1080",
            "--iterations",
            "1",
        ],
        "http://",
    );
    let out = periscope_with_env(
        &["run", "--mock", "--iterations", "1"],
        &[("HTTPS_PROXY", "http://".into())],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: HTTPS_PROXY:"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_targets_tunnel_through_the_proxy_with_connect() {
    let mock = MockProc::start(&["--ttft", "20ms", "--itl", "2ms", "--output-tokens", "8"]);
    let Some(nginx) = Nginx::tls_h2_proxy(&mock.addr) else {
        return;
    };
    let Some(tp) = Tinyproxy::start(Some(("alice", "s3cret"))) else {
        return;
    };
    let cert = nginx.cert();
    let (out, r) = run_with(
        &[
            "run",
            "--target",
            &nginx.base(),
            "--cacert",
            cert.to_str().unwrap(),
            "--vus",
            "4",
            "--iterations",
            "40",
        ],
        &[(
            "https_proxy",
            format!("http://alice:s3cret@127.0.0.1:{}", tp.port),
        )],
    );
    assert_eq!(r["summary"]["errors"], 0, "{}", r["summary"]);
    assert!(stdout(&out).contains(&format!("through the proxy {}", tp.url())));
    // The client opened tunnels to nginx, no more than one per VU and the
    // preflight, and sent nothing in the clear.
    let tunnels = tp.seen(&format!("CONNECT 127.0.0.1:{}", nginx.port));
    assert!((1..=5).contains(&tunnels), "{tunnels} CONNECTs");
    assert_eq!(tp.seen("POST http"), 0);
    assert_eq!(mock.stats().await["requests"], 41);
}
