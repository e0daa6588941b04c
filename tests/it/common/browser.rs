//! Headless Chromium driven over WebDriver (Debian's chromedriver): open a
//! page, run a script in it, take a screenshot. For pages that live while
//! a run goes on, which `chromium --dump-dom` cannot wait on.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// chromedriver on a free loopback port; stopped on drop.
pub struct Driver {
    child: Child,
    base: String,
    _profiles: Vec<tempfile::TempDir>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser (a WebDriver session).
pub struct Browser {
    base: String,
    id: String,
}

impl Driver {
    /// None when chromedriver is not installed (a failure under CI=true).
    pub fn start() -> Option<Driver> {
        if !super::installed("chromedriver", "chromium-driver") {
            return None;
        }
        let port = super::free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _profiles: Vec::new(),
        };
        for _ in 0..100 {
            if ready(port) {
                return Some(driver);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("chromedriver did not answer at {}", driver.base);
    }

    /// A new headless browser of its own profile (a desktop window, light).
    pub async fn browser(&mut self) -> Browser {
        self.browser_with(&["--window-size=1280,2200"]).await
    }

    /// A phone's window (390 × 844) in the dark: as a phone set to dark mode shows a page.
    pub async fn phone_in_the_dark(&mut self) -> Browser {
        self.browser_with(&["--window-size=390,844", "--force-dark-mode"])
            .await
    }

    async fn browser_with(&mut self, extra: &[&str]) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ]
        .iter()
        .chain(extra)
        .map(|a| a.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
        }}});
        self._profiles.push(profile);
        let v = call(
            reqwest::Method::POST,
            &format!("{}/session", self.base),
            Some(caps),
        )
        .await;
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        Browser {
            base: self.base.clone(),
            id,
        }
    }
}

impl Browser {
    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.id)
    }

    pub async fn open(&self, url: &str) {
        call(
            reqwest::Method::POST,
            &self.url("/url"),
            Some(json!({"url": url})),
        )
        .await;
    }

    /// The value of `script` (a function body: `return …`) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        call(
            reqwest::Method::POST,
            &self.url("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Evaluate `script` until it is true (within `limit`).
    pub async fn wait_for(&self, script: &str, limit: Duration) {
        let t = std::time::Instant::now();
        while t.elapsed() < limit {
            if self.eval(script).await == Value::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page never had `{script}` within {limit:?}");
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = call(reqwest::Method::GET, &self.url("/screenshot"), None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("a base64 screenshot"))
            .unwrap()
    }

    pub async fn close(self) {
        call(reqwest::Method::DELETE, &self.url(""), None).await;
    }
}

/// Whether chromedriver says it is ready (HTTP/1.1: it answers HTTP/1.0
/// with an error).
fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let head =
        format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(head.as_bytes()).is_err() {
        return false;
    }
    // It may keep the connection open: read until the answer says so.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if text.contains("\"ready\":true") {
            return text.starts_with("HTTP/1.1 200");
        }
    }
    false
}

async fn call(method: reqwest::Method, url: &str, body: Option<Value>) -> Value {
    let mut req = super::http()
        .request(method, url)
        .timeout(Duration::from_secs(60));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("WebDriver {url}: {e}"));
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "WebDriver {url}: {status} {v}");
    v["value"].clone()
}
