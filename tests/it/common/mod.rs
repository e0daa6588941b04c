//! Shared test helpers: the periscope binary, a mock in its own process, and
//! a small HTTP client.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{json, Value};

pub mod browser;

pub const BIN: &str = env!("CARGO_BIN_EXE_periscope");

/// `periscope mock` running as a child process on a free loopback port.
pub struct MockProc {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl MockProc {
    pub fn start(args: &[&str]) -> MockProc {
        Self::spawn(Command::new(BIN), args)
    }

    /// The mock at nice -10, ahead of the load client it shares the cores
    /// with, as the README advises for a timing reference on one machine.
    /// Under CI=true, a niceness that could not be set is a failure.
    pub fn start_ahead(args: &[&str]) -> MockProc {
        let mut cmd = Command::new("nice");
        cmd.args(["-n", "-10", BIN]);
        let m = Self::spawn(cmd, args);
        let nice = std::fs::read_to_string(format!("/proc/{}/stat", m.child.id()))
            .ok()
            .and_then(|s| {
                let fields = s
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(16)?
                    .to_string();
                fields.parse::<i32>().ok()
            });
        if nice != Some(-10) {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("the mock runs at nice {nice:?}, not -10: the timing test needs root or CAP_SYS_NICE");
            }
            eprintln!("note: the mock runs at nice {nice:?}, not -10 (no CAP_SYS_NICE)");
        }
        m
    }

    fn spawn(mut cmd: Command, args: &[&str]) -> MockProc {
        let mut child = cmd
            .args(["mock", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn periscope mock");
        let stderr = child.stderr.take().unwrap();
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        reader.read_line(&mut line).expect("mock banner");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split(['/', ' ']).next())
            .unwrap_or_else(|| panic!("unexpected mock banner: {line}"))
            .trim()
            .to_string();
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        MockProc { child, addr }
    }

    pub fn base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The mock's CPU seconds (user + system) and resident bytes, as
    /// /proc tells them.
    pub fn usage(&self) -> (f64, f64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // After the command's name in parentheses: fields 14 and 15 are utime, stime.
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: f64 = rest[11].parse::<f64>().unwrap() + rest[12].parse::<f64>().unwrap();
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap();
        let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
        (ticks / hz, pages * page)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Kill the mock now (SIGKILL: a server that dies mid-stream).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The mock's own send stamps.
    pub async fn stats(&self) -> serde_json::Value {
        get_json(&self.url("/mock/stats")).await
    }

    pub async fn reset(&self) {
        http().delete(self.url("/mock/stats")).send().await.unwrap();
    }

    /// Arrival stamps by the mock's clock, µs, sorted; then a reset.
    pub async fn arrivals(&self) -> Vec<u64> {
        let a = get_json(&self.url("/mock/arrivals")).await;
        self.reset().await;
        a["arrivals_us"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    }
}

impl Drop for MockProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The machine's busy CPU-seconds so far, all processes (user, nice,
/// system, irq, softirq and steal of /proc/stat's first line): a timing
/// test subtracts its own processes' share to say what else ran beside it.
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // user nice system idle iowait irq softirq steal
    [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| f.get(i))
        .sum::<f64>()
        / hz
}

pub fn http() -> reqwest::Client {
    periscope::client::http_builder()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap()
}

/// Run the periscope binary to completion.
pub fn periscope(args: &[&str]) -> Output {
    periscope_with_env(args, &[])
}

/// Run the periscope binary with `env` set (a script's `__ENV`).
pub fn periscope_with_env(args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("VUS")
        .env_remove("DURATION")
        .env_remove("MAX_TOKENS")
        .env_remove("GITHUB_STEP_SUMMARY")
        // The proxy tests set these themselves.
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run periscope")
}

/// Start periscope with `args`, send it `signal` after `after`, and wait for
/// it: its output, and how long it took to exit after the signal.
#[cfg(unix)]
pub async fn periscope_signalled(
    args: &[&str],
    after: std::time::Duration,
    signal: i32,
) -> (Output, std::time::Duration) {
    let child = Command::new(BIN)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start periscope");
    tokio::time::sleep(after).await;
    let t = std::time::Instant::now();
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (out, t.elapsed())
}

/// Run periscope off the async runtime (it is a blocking child process).
pub async fn periscope_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        periscope(&refs)
    })
    .await
    .unwrap()
}

/// `args` is refused as bad usage: exit 1 and one line that says `says`.
pub fn assert_usage_error(args: &[&str], says: &str) {
    let out = periscope(args);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    let err = stderr(&out);
    assert!(
        err.contains(says) && err.lines().count() == 1,
        "{args:?}: {err}"
    );
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temporary path for a JSON result.
pub fn temp_json(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_string_lossy().into_owned()
}

pub fn read_json(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("result file")).expect("result json")
}

/// Data payloads of an SSE body.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// Owned arguments.
pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A latency metric of a result.
pub fn latency<'a>(r: &'a Value, metric: &str) -> &'a Value {
    &r["latency"][metric]
}

/// A JSON number.
pub fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A chat request body (system + user message).
pub fn chat(prompt: &str, stream: bool, max_tokens: u32) -> Value {
    let mut body = json!({
        "model": "m",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": stream,
    });
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// Send `n` requests with `conc` in flight; return (status, body) of each.
pub async fn fire(url: String, body: Value, n: usize, conc: usize) -> Vec<(u16, String)> {
    let c = http();
    let body = std::sync::Arc::new(body);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (c, url, body, next) = (c.clone(), url.clone(), body.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                match c.post(&url).json(&*body).send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let t = r.text().await.unwrap_or_else(|_| "<cut>".into());
                        out.push((s, t));
                    }
                    Err(e) => out.push((0, e.to_string())),
                }
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// GET a URL and read its JSON answer.
pub async fn get_json(url: &str) -> Value {
    http().get(url).send().await.unwrap().json().await.unwrap()
}

/// Run periscope with `args` plus `--json` to a temporary file; assert it
/// succeeded and return its output and the result document.
pub async fn run_ok(args: &[&str]) -> (Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--json".to_string(), json.clone()]);
    let out = periscope_async(all).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    (out, r)
}

/// nginx from Debian as a streaming reverse proxy on a free loopback port, its files
/// in a temporary folder; stopped on drop. None (with a note) when nginx is
/// not installed, unless CI=true, where a missing server fails the test.
pub struct Nginx {
    dir: tempfile::TempDir,
    pub port: u16,
    /// It speaks HTTPS (and HTTP/2).
    tls: bool,
}

/// nginx's location block of a streaming reverse proxy to `up`. A POST
/// that fails on a kept-alive upstream connection the server had just
/// closed (llama.cpp closes one after a number of requests) is sent again
/// on a fresh one, as a production proxy in front of it is set up to do:
/// nginx never retries a POST otherwise, and answers 502.
const PROXY_LOCATION: &str = "proxy_pass http://up;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_buffering off;\n      proxy_next_upstream error timeout non_idempotent;";

impl Nginx {
    /// A streaming reverse proxy in front of `upstream` (host:port).
    pub fn proxy(upstream: &str) -> Option<Nginx> {
        Self::start(
            // Idle upstream connections are dropped before llama.cpp's own
            // keep-alive timeout (5 s) closes them: otherwise nginx may send
            // a request on a socket the server is closing, and answer 502
            // (it never retries a POST).
            &format!("upstream up {{ server {upstream}; keepalive 256; keepalive_timeout 2s; }}\n"),
            PROXY_LOCATION,
            "",
        )
    }

    /// The streaming reverse proxy in front of `upstream`, gzipping SSE and
    /// JSON answers for clients that accept gzip (`gzip on` for
    /// `text/event-stream`, as some gateways are set up).
    pub fn gzip_proxy(upstream: &str) -> Option<Nginx> {
        Self::start(
            &format!("upstream up {{ server {upstream}; keepalive 256; keepalive_timeout 2s; }}\n"),
            &format!(
                "{PROXY_LOCATION}\n      gzip on;\n      gzip_proxied any;\n      gzip_min_length 0;\n      gzip_types text/event-stream application/json;"
            ),
            "",
        )
    }

    /// The streaming reverse proxy in front of `upstream`, speaking HTTP/2
    /// over TLS with a self-signed certificate for 127.0.0.1 made here by
    /// `openssl` (its PEM: [`Nginx::cert`]); `/nginx_status` is its
    /// stub_status (connections accepted).
    pub fn tls_h2_proxy(upstream: &str) -> Option<Nginx> {
        Self::tls_h2(upstream, PROXY_LOCATION)
    }

    /// A gRPC proxy (`grpc_pass`, h2c to `upstream`) serving HTTP/2 over
    /// TLS as [`Nginx::tls_h2_proxy`] does.
    pub fn tls_grpc_proxy(upstream: &str) -> Option<Nginx> {
        Self::tls_h2(upstream, "grpc_pass grpc://up;")
    }

    fn tls_h2(upstream: &str, location: &str) -> Option<Nginx> {
        let certs = tempfile::tempdir().unwrap();
        let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            // A server's certificate, not a CA's (rustls refuses a CA's as
            // the server's own: CaUsedAsEndEntity).
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-addext", "extendedKeyUsage=serverAuth"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl is installed by scripts/test-env.sh");
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut n = Self::start(
            &format!("upstream up {{ server {upstream}; keepalive 256; keepalive_timeout 2s; }}\n"),
            location,
            &format!(
                "listen 127.0.0.1:{{port}} ssl http2;\n    keepalive_requests 1000000;\n    ssl_certificate {};\n    ssl_certificate_key {};\n    location = /nginx_status {{ stub_status; }}\n",
                cert.display(),
                key.display()
            ),
        )?;
        std::fs::copy(&cert, n.dir.path().join("cert.pem")).unwrap();
        n.tls = true;
        Some(n)
    }

    /// The certificate of a [`Nginx::tls_h2_proxy`] (PEM).
    pub fn cert(&self) -> std::path::PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// What nginx logged: why it answered 502, when it did.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Answers every request at once with a small JSON body: the fastest
    /// target there is, for what the generator itself costs.
    pub fn static_ok() -> Option<Nginx> {
        Self::start(
            "",
            "keepalive_requests 100000000;\n      default_type application/json;\n      return 200 '{\"ok\":true}';",
            "",
        )
    }

    /// `server` replaces the plain `listen` line (`{port}` in it is the
    /// port).
    fn start(http_extra: &str, location: &str, server: &str) -> Option<Nginx> {
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(bin) = bin else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("nginx is not installed (scripts/test-env.sh installs it): CI=true makes a missing server a failure");
            }
            eprintln!("skipping: nginx is not installed (run scripts/test-env.sh)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let server = match server {
            "" => format!("listen 127.0.0.1:{port};\n"),
            s => s.replace("{port}", &port.to_string()),
        };
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\ndaemon on;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
               fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
               {http_extra}\
               server {{\n    {server}    location / {{\n      {location}\n    }}\n  }}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let out = Command::new(bin)
            .args([
                "-c",
                path.to_str().unwrap(),
                "-e",
                &format!("{d}/error.log"),
            ])
            .output()
            .expect("start nginx");
        assert!(
            out.status.success(),
            "nginx: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for _ in 0..50 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Some(Nginx {
            dir,
            port,
            tls: false,
        })
    }

    pub fn base(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("nginx.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// Debian's chromium, for checking the HTML report as a person sees it.
/// None (with a note) when it is not installed, unless CI=true, where a
/// missing browser fails the test.
pub fn chromium() -> Option<&'static str> {
    let found = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("chromium");
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("chromium is not installed (scripts/test-env.sh installs it): CI=true makes it a failure");
    }
    eprintln!("note: chromium is not installed; skipping the browser check");
    None
}

/// Run headless chromium on `page` with `args`; returns (stdout, stderr).
pub fn chromium_run(page: &std::path::Path, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server from Debian's packages in its own process, data in a temporary
/// folder, on free loopback ports; stopped on drop.
pub struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn installed(bin: &str, package: &str) -> bool {
    if Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{bin} is not installed (scripts/test-env.sh installs {package}): CI=true makes a missing server a failure");
    }
    eprintln!("note: {bin} is not installed; skipping");
    false
}

fn wait_ready(url: &str, child: &mut Child) {
    for _ in 0..100 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server for {url} exited: {status}");
        }
        if let Ok(r) = plain_http::blocking_get(url) {
            if r < 300 {
                return;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("nothing answers at {url}");
}

#[allow(unused_imports)]
pub use plain_http::blocking_get;

mod plain_http {
    /// A GET's status, without an async runtime.
    pub fn blocking_get(url: &str) -> std::io::Result<u16> {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut s = std::net::TcpStream::connect(host)?;
        write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        buf.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other("no status"))
    }
}

impl Server {
    /// Start `cmd` (output discarded) and wait until `base` + `ready` answers.
    pub fn spawn(mut cmd: Command, dir: tempfile::TempDir, base: String, ready: &str) -> Server {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server");
        wait_ready(&format!("{base}{ready}"), &mut child);
        Server {
            child,
            _dir: dir,
            base,
        }
    }

    /// Kill the server now (a backend that goes away mid-run).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// InfluxDB 1.x (`influxd`).
    pub fn influxdb() -> Option<Server> {
        if !installed("influxd", "influxdb") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (http, rpc) = (free_port(), free_port());
        let d = dir.path().display();
        let conf = dir.path().join("influxdb.conf");
        std::fs::write(
            &conf,
            format!(
                "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n[meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n[http]\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n[monitor]\n  store-enabled = false\n"
            ),
        )
        .unwrap();
        let mut child = Command::new("influxd")
            .arg("-config")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start influxd");
        let base = format!("http://127.0.0.1:{http}");
        wait_ready(&format!("{base}/ping"), &mut child);
        Some(Server {
            child,
            _dir: dir,
            base,
        })
    }

    /// VictoriaMetrics (its InfluxDB 2.x write path).
    pub fn victoria_metrics() -> Option<Server> {
        if !installed("victoria-metrics", "victoria-metrics") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", dir.path().display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-search.latencyOffset=0s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start victoria-metrics");
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&format!("{base}/health"), &mut child);
        Some(Server {
            child,
            _dir: dir,
            base,
        })
    }
}

/// Bytes as lowercase hex (trace and span ids).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

// InfluxDB and the Grafana dashboards.

/// InfluxQL through `/query`.
pub async fn influxql(base: &str, q: &str) -> Value {
    let mut url = reqwest::Url::parse(&format!("{base}/query")).unwrap();
    url.query_pairs_mut()
        .append_pair("db", "periscope")
        .append_pair("q", q)
        .append_pair("epoch", "ms");
    get_json(url.as_str()).await
}

/// Every value of every series of a query's answer.
pub fn values(answer: &Value) -> Vec<f64> {
    answer["results"][0]["series"]
        .as_array()
        .map(|series| {
            series
                .iter()
                .flat_map(|s| s["values"].as_array().unwrap().iter())
                .flat_map(|row| {
                    row.as_array().unwrap()[1..]
                        .iter()
                        .filter_map(Value::as_f64)
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn dashboard(name: &str) -> Value {
    let path = format!("{}/grafana/dashboards/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A dashboard's query with its variables at "All" for one run, over the
/// last hour at 1 s resolution.
pub fn panel_query(q: &str, run_id: &str) -> String {
    q.replace("$run_id", run_id)
        .replace("$scenario", ".*")
        .replace("$endpoint", ".*")
        .replace("$segment", ".*")
        .replace("$timeFilter", "time > now() - 1h")
        .replace("$__interval_ms", "1000")
        .replace("$__interval", "1s")
}

/// A dashboard's variables (all but `segment`, which a run without
/// segments leaves empty), each query's answer for one run, by name.
pub async fn variable_answers(base: &str, name: &str, run_id: &str) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    for v in dashboard(name)["templating"]["list"].as_array().unwrap() {
        if v["name"] == "segment" {
            continue;
        }
        let q = v["query"].as_str().unwrap().replace("$run_id", run_id);
        let tags = values_or_tags(&influxql(base, &q).await);
        assert!(!tags.is_empty(), "{name}: variable {q}");
        out.push((v["name"].as_str().unwrap().to_string(), tags));
    }
    out
}

/// Every panel query of a dashboard for one run, its variables at "All":
/// each must return data. By panel title, its targets' answers in order.
pub async fn panel_answers(base: &str, name: &str, run_id: &str) -> BTreeMap<String, Vec<Value>> {
    let mut by_title: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for panel in dashboard(name)["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap().to_string();
        for t in panel["targets"].as_array().unwrap() {
            let q = panel_query(t["query"].as_str().unwrap(), run_id);
            let answer = influxql(base, &q).await;
            assert!(
                !values(&answer).is_empty(),
                "{name} / {title}: {q}\n{answer}"
            );
            by_title.entry(title.clone()).or_default().push(answer);
        }
    }
    by_title
}

/// Every series of a query's answer: its tags (`k=v,…`, empty when
/// ungrouped) and each column's values by name.
pub fn columns(answer: &Value) -> Vec<(String, BTreeMap<String, Vec<f64>>)> {
    let Some(series) = answer["results"][0]["series"].as_array() else {
        return Vec::new();
    };
    series
        .iter()
        .map(|s| {
            let tags = s["tags"]
                .as_object()
                .map(|t| {
                    t.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let names: Vec<&str> = s["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            let mut cols: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for row in s["values"].as_array().unwrap() {
                for (name, v) in names.iter().zip(row.as_array().unwrap()).skip(1) {
                    if let Some(v) = v.as_f64() {
                        cols.entry(name.to_string()).or_default().push(v);
                    }
                }
            }
            (tags, cols)
        })
        .collect()
}

/// The exact nearest-rank quantile, and InfluxQL's percentile() rank.
pub fn ranks(sorted: &[f64], q: f64) -> (f64, f64) {
    let n = sorted.len() as f64;
    let nearest = ((q * n).ceil() as usize).clamp(1, sorted.len());
    let influx = ((n * q + 0.5).floor() as usize).clamp(1, sorted.len());
    (sorted[nearest - 1], sorted[influx - 1])
}

/// Tag values (SHOW TAG VALUES answers strings, not numbers).
pub fn values_or_tags(answer: &Value) -> Vec<Value> {
    answer["results"][0]["series"]
        .as_array()
        .map(|s| {
            s.iter()
                .flat_map(|x| x["values"].as_array().unwrap().clone())
                .collect()
        })
        .unwrap_or_default()
}

/// A run's tokens are the usage the mock sent, and its ttft (p50 within
/// 2 ms) and itl (within 1 ms) agree with the mock's send stamps.
pub fn usage_and_stamps_agree(r: &Value, st: &Value, n: u64) {
    let s = &r["summary"];
    assert_eq!(s["errors"], 0, "{}", r["errors"]);
    assert_eq!(s["output_token_sources"]["usage"], n);
    assert_eq!(f(&s["output_tokens"]), f(&st["output_tokens"]));
    assert_eq!(f(&s["input_tokens"]), f(&st["prompt_tokens"]));
    let (ttft, itl) = (f(&latency(r, "ttft")["p50"]), f(&latency(r, "itl")["p50"]));
    let mock_ttft = f(&st["ttft_us"]["p50"]) / 1000.0;
    let mock_itl = f(&st["itl_us"]["p50"]) / 1000.0;
    assert!(
        (ttft - mock_ttft).abs() < 2.0,
        "ttft {ttft} vs the mock's {mock_ttft}"
    );
    assert!(
        (itl - mock_itl).abs() < 1.0,
        "itl {itl} vs the mock's {mock_itl}"
    );
}
