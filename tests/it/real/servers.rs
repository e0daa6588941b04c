//! The real servers of the tests, each started on a free loopback port with
//! its data in a temporary folder and stopped when dropped: llama.cpp's
//! `llama-server` with the Gemma 3 270M GGUF, the LiteLLM proxy in front of
//! it, and llama-cpp-python's server. Under CI=true a missing one fails.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A file the suite's install script puts in place, or None (skip) outside CI.
pub fn installed_file(var: &str, default: PathBuf, what: &str) -> Option<PathBuf> {
    let p = std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
    if p.exists() {
        return Some(p);
    }
    if ci() {
        panic!("{what} is not installed at {} (scripts/test-env.sh installs it): CI=true makes a missing server a failure", p.display());
    }
    eprintln!("note: {what} is not installed ({}); skipping", p.display());
    None
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn home_cache() -> PathBuf {
    std::env::var_os("PERISCOPE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/periscope")
        })
}

/// llama.cpp's `llama-server` with the Gemma 3 270M GGUF.
pub struct Llama {
    child: Child,
    _dir: tempfile::TempDir,
    pub port: u16,
}

impl Llama {
    /// Start it with these extra options; None when not installed (outside CI).
    pub fn start(extra: &[&str]) -> Option<Llama> {
        let bin = installed_file(
            "PERISCOPE_LLAMA_SERVER",
            repo().join(".venv-llama/bin/llama-server-vulkan"),
            "llama.cpp's server",
        )?;
        let model = installed_file(
            "PERISCOPE_GGUF",
            home_cache().join("models/gemma-3-270m-q4_k_m.gguf"),
            "the Gemma 3 270M GGUF",
        )?;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .arg("-m")
            .arg(&model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            // One thread, so that its timings are steady beside periscope
            // on the other core; 4 slots for 4 VUs; /metrics on. HTTP
            // threads for every client connection: its HTTP server holds a
            // thread per kept-alive connection until its keep-alive timeout
            // (5 s), and a gateway's idle connections must not make the
            // direct leg wait (seen: 4 s stalls with the default 6).
            .args([
                "-t",
                "1",
                "-np",
                "4",
                "-c",
                "8192",
                "--metrics",
                "--no-webui",
            ])
            .args(["--threads-http", "32"])
            .args(["--alias", "gemma", "--log-disable", "--offline"])
            .args(extra)
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start llama-server");
        let mut l = Llama {
            child,
            _dir: dir,
            port,
        };
        l.wait_ready();
        Some(l)
    }

    fn wait_ready(&mut self) {
        let url = format!("{}/health", self.origin());
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(120) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("llama-server exited: {status}");
            }
            // 503 while the model loads, 200 once it serves.
            if blocking_get(&url).is_ok_and(|s| s == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("llama-server did not become ready at {url}");
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn base(&self) -> String {
        format!("{}/v1", self.origin())
    }

    /// Its Prometheus counters, by name.
    pub async fn metrics(&self) -> BTreeMap<String, f64> {
        let text = http()
            .get(format!("{}/metrics", self.origin()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Llama {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The API key the LiteLLM proxy is started with (it refuses to start
/// without one); periscope sends it as the user's key.
pub const LITELLM_KEY: &str = "sk-periscope-test-5c1f0e8a9b7d4c2e8f1a3b6d9c0e7f2a";

/// The LiteLLM proxy in front of a llama.cpp server, model `gemma`.
pub struct LiteLlm {
    child: Child,
    _dir: tempfile::TempDir,
    pub port: u16,
}

impl LiteLlm {
    pub fn start(upstream: &Llama) -> Option<LiteLlm> {
        let venv = std::env::var_os("PERISCOPE_LITELLM_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".venv-litellm"));
        // Installed in the background while the tests build: wait for it.
        let t0 = Instant::now();
        while !venv.join(".ready").exists() && !venv.join(".failed").exists() {
            if !venv.exists() || t0.elapsed() > Duration::from_secs(900) {
                break;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        if !venv.join(".ready").exists() {
            let log = std::fs::read_to_string(venv.join("install.log")).unwrap_or_default();
            if ci() {
                panic!("the LiteLLM proxy is not installed in {} (scripts/test-env.sh): CI=true makes it a failure\n{log}", venv.display());
            }
            eprintln!("note: the LiteLLM proxy is not installed; skipping");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "model_list:\n  - model_name: gemma\n    litellm_params:\n      model: openai/gemma\n      api_base: {}\n      api_key: none\nlitellm_settings:\n  telemetry: false\n",
                upstream.base()
            ),
        )
        .unwrap();
        let child = Command::new(venv.join("bin/litellm"))
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env("LITELLM_MASTER_KEY", LITELLM_KEY)
            .env("LITELLM_LOG", "ERROR")
            .env("LITELLM_TELEMETRY", "False")
            .env("NO_DOCS", "True")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start litellm");
        let mut l = LiteLlm {
            child,
            _dir: dir,
            port,
        };
        let url = format!("http://127.0.0.1:{port}/health/liveliness");
        let t0 = Instant::now();
        loop {
            if let Ok(Some(status)) = l.child.try_wait() {
                panic!("litellm exited: {status}");
            }
            if blocking_get(&url).is_ok_and(|s| s == 200) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "litellm did not start"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        // The first request through it imports its provider code: warm it.
        let _ = l.child.try_wait();
        Some(l)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for LiteLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// llama-cpp-python's server, a second implementation of the API (it sends
/// no usage in streams). Built from source once by `make
/// test-llama-cpp-python`, which runs this test; not part of `make test`.
pub struct LlamaCppPython {
    child: Child,
    _dir: tempfile::TempDir,
    pub port: u16,
}

impl LlamaCppPython {
    pub fn start() -> LlamaCppPython {
        let python = std::env::var("PERISCOPE_LLAMA_CPP_PYTHON")
            .expect("make test-llama-cpp-python sets PERISCOPE_LLAMA_CPP_PYTHON");
        let model = installed_file(
            "PERISCOPE_GGUF",
            home_cache().join("models/gemma-3-270m-q4_k_m.gguf"),
            "the Gemma 3 270M GGUF",
        )
        .expect("the model is installed");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(python)
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(&model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--n_threads",
                "1",
                "--n_ctx",
                "4096",
                "--model_alias",
                "gemma",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start llama-cpp-python's server");
        let mut s = LlamaCppPython {
            child,
            _dir: dir,
            port,
        };
        let url = format!("http://127.0.0.1:{port}/v1/models");
        let t0 = Instant::now();
        loop {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("llama-cpp-python's server exited: {status}");
            }
            if blocking_get(&url).is_ok_and(|c| c == 200) {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "it did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        s
    }
}

impl Drop for LlamaCppPython {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
