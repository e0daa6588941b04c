//! The request part of a plan: how every request is sent — the API key,
//! headers, timeout, HTTP engine, what counts the tokens the server's usage
//! leaves out, and whether a preflight checks the target first.

use std::time::Duration;

use crate::cli::RunArgs;
use crate::client::Engine;
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
    pub http_engine: Engine,
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
        headers.extend(a.request.headers.iter().cloned());
        Ok(RequestPlan {
            token: a.request.token.clone().filter(|t| !t.is_empty()),
            headers,
            timeout,
            http_engine: a
                .http_engine
                .or(f.http_engine.as_ref().map(|v| v.0))
                .unwrap_or_default(),
            tokenizer: a.request.tokenizer.clone().unwrap_or_default(),
            preflight: !a.no_preflight && f.preflight != Some(false),
        })
    }
}
