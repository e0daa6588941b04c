//! The request part of a plan: how every request is sent — the API key,
//! headers, timeout, HTTP engine, what counts the tokens the server's usage
//! leaves out, and whether a preflight checks the target first.

use std::time::Duration;

use crate::cli::RunArgs;
use crate::client::{Connect, Engine};
use crate::error::Result;
use crate::scenario::ScenarioFile;
use crate::tokenizer::Choice;
use crate::usage;

/// How requests are sent.
#[derive(Debug, Clone)]
pub struct RequestPlan {
    /// The API key, never printed or stored.
    pub token: Option<String>,
    /// The scenario file's headers, an OTLP platform's, then the flags'.
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// The HTTP stack, HTTP/2, its connections, extra trusted roots.
    pub connect: Connect,
    /// What counts tokens (`--tokenizer`).
    pub tokenizer: Choice,
    pub preflight: bool,
}

impl RequestPlan {
    /// `platform_headers` are those every export of otlp-traces carries.
    pub fn from_args(
        a: &RunArgs,
        f: &ScenarioFile,
        platform_headers: &[(String, String)],
    ) -> Result<Self> {
        let timeout = a
            .request
            .timeout
            .or(f.timeout.as_ref().map(|v| v.0))
            .unwrap_or(Duration::from_secs(60));
        if timeout.is_zero() {
            return Err(usage!("--timeout must be more than 0"));
        }
        let mut headers: Vec<(String, String)> = f
            .headers
            .iter()
            .map(|h| (h.0 .0.clone(), h.0 .1.clone()))
            .collect();
        headers.splice(0..0, platform_headers.iter().cloned());
        if let Some(id) = &a.request.agent_id {
            headers.push(("X-LLMTrace-Agent-ID".into(), id.clone()));
        }
        headers.extend(a.request.headers.iter().cloned());
        let engine = a
            .http_engine
            .or(f.http_engine.as_ref().map(|v| v.0))
            .unwrap_or_default();
        if a.http2 && engine == Engine::H1 {
            return Err(usage!(
                "--http2 needs --http-engine auto or reqwest (h1 speaks HTTP/1.1 only)"
            ));
        }
        if a.connections.is_some() && !a.http2 && a.otlp.otlp_protocol.is_none() {
            return Err(usage!(
                "--connections spreads HTTP/2 streams: give --http2 too (HTTP/1.1 opens a connection per VU)"
            ));
        }
        let cacert = match &a.cacert {
            Some(p) => {
                let pem = std::fs::read(p)
                    .map_err(|e| usage!("--cacert {}: cannot read it ({e})", p.display()))?;
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(usage!(
                        "--cacert {}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)",
                        p.display()
                    ));
                }
                Some(pem)
            }
            None => None,
        };
        Ok(RequestPlan {
            token: a.request.token.clone().filter(|t| !t.is_empty()),
            headers,
            timeout,
            connect: Connect {
                engine,
                http2: a.http2,
                connections: a.connections.unwrap_or(1),
                cacert,
                grpc: false,
                compression: a.compression || f.compression == Some(true),
            },
            tokenizer: a.request.tokenizer.clone().unwrap_or_default(),
            preflight: !a.no_preflight && f.preflight != Some(false),
        })
    }
}

impl RequestPlan {
    /// Anthropic's way: the key (`key`, else `--token`) as `x-api-key`,
    /// not a bearer token, and an `anthropic-version` unless one is given.
    pub fn anthropic(&mut self, key: Option<String>) {
        let has =
            |h: &[(String, String)], n: &str| h.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        if let Some(k) = key.or_else(|| self.token.take()) {
            if !has(&self.headers, "x-api-key") {
                self.headers.push(("x-api-key".into(), k));
            }
        }
        self.token = None;
        if !has(&self.headers, "anthropic-version") {
            self.headers
                .push(("anthropic-version".into(), "2023-06-01".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{plan, usage_error};

    #[test]
    fn key_headers_timeout_engine_tokenizer_and_preflight() {
        let p = plan(&["--mock"]).unwrap();
        let r = &p.request;
        assert_eq!(r.token, None);
        assert_eq!(r.timeout, Duration::from_secs(60));
        assert_eq!(r.connect.engine, Engine::Auto);
        assert!(!r.connect.http2);
        assert_eq!(r.tokenizer, Choice::Auto);
        assert!(r.preflight);
        let p = plan(&[
            "--mock",
            "--token",
            "sk-1",
            "--header",
            "X-A: 1",
            "--timeout",
            "5s",
            "--http-engine",
            "reqwest",
            "--tokenizer",
            "o200k_base",
            "--no-preflight",
        ])
        .unwrap();
        let r = &p.request;
        assert_eq!(r.token.as_deref(), Some("sk-1"));
        assert_eq!(r.headers, vec![("X-A".to_string(), "1".to_string())]);
        assert_eq!(r.timeout, Duration::from_secs(5));
        assert_eq!(r.connect.engine, Engine::Reqwest);
        assert!(
            matches!(r.tokenizer, Choice::Tiktoken(_)),
            "{:?}",
            r.tokenizer
        );
        assert!(!r.preflight);
        // A blank key is no key.
        assert_eq!(
            plan(&["--mock", "--token", ""]).unwrap().request.token,
            None
        );
        assert!(usage_error(&["--mock", "--timeout", "0s"]).contains("more than 0"));
    }

    #[test]
    fn http2_its_connections_and_a_cacert_are_checked() {
        let p = plan(&["--mock", "--http2", "--connections", "4"]).unwrap();
        assert!(p.request.connect.http2);
        assert_eq!(p.request.connect.connections, 4);
        assert_eq!(
            plan(&["--mock", "--http2"])
                .unwrap()
                .request
                .connect
                .connections,
            1
        );
        let e = usage_error(&["--mock", "--http2", "--http-engine", "h1"]);
        assert!(
            e.contains("--http2 needs --http-engine auto or reqwest"),
            "{e}"
        );
        let e = usage_error(&["--mock", "--connections", "2"]);
        assert!(e.contains("give --http2 too"), "{e}");
        let e = usage_error(&["--mock", "--cacert", "/nonexistent/ca.pem"]);
        assert!(
            e.contains("--cacert /nonexistent/ca.pem: cannot read it"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let e = usage_error(&["--mock", "--cacert", not_pem.to_str().unwrap()]);
        assert!(e.contains("no PEM certificate in it"), "{e}");
    }

    #[test]
    fn the_files_headers_come_first_and_a_platforms_before_them() {
        let f: ScenarioFile =
            yaml_serde::from_str("headers: ['X-File: f']\ntimeout: 3s\n").unwrap();
        let a = RunArgs {
            request: crate::cli::RequestArgs {
                headers: vec![("X-Flag".into(), "g".into())],
                ..Default::default()
            },
            ..Default::default()
        };
        let r = RequestPlan::from_args(&a, &f, &[("X-Platform".into(), "p".into())]).unwrap();
        let names: Vec<&str> = r.headers.iter().map(|h| h.0.as_str()).collect();
        assert_eq!(names, ["X-Platform", "X-File", "X-Flag"]);
        assert_eq!(r.timeout, Duration::from_secs(3));
    }

    #[test]
    fn the_messages_api_sends_its_key_as_x_api_key_with_a_version() {
        let p = plan(&["messages", "--mock", "--token", "sk-ant"]).unwrap();
        let r = &p.request;
        assert_eq!(r.token, None, "no bearer token for Anthropic's API");
        assert!(r.headers.contains(&("x-api-key".into(), "sk-ant".into())));
        assert!(r
            .headers
            .contains(&("anthropic-version".into(), "2023-06-01".into())));
        let p = plan(&[
            "messages",
            "--mock",
            "--header",
            "anthropic-version: 2024-10-22",
        ])
        .unwrap();
        let versions: Vec<&str> = p
            .request
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("anthropic-version"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(versions, ["2024-10-22"]);
        // Other workloads keep the bearer token.
        let p = plan(&["--mock", "--token", "sk-1"]).unwrap();
        assert_eq!(p.request.token.as_deref(), Some("sk-1"));
    }
}
