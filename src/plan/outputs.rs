//! The outputs part of a plan: the files written at the end (`--json`,
//! `--html`, `--csv`), the live outputs (`--out`, `--trace-requests`) with
//! their credentials, tags and sampling, and the progress line.

use std::path::PathBuf;

use crate::cli::RunArgs;
use crate::error::{Error, Result};
use crate::scenario::ScenarioFile;
use crate::sink::tracer::TraceTarget;
use crate::sink::{Credentials, Output};
use crate::usage;

use super::env_var;

/// What the run writes, during and after it.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub json: Option<PathBuf>,
    /// `--format`: periscope's result or vLLM's benchmark JSON.
    pub json_format: crate::cli::JsonFormat,
    pub html: Option<PathBuf>,
    pub csv: Option<PathBuf>,
    /// `--requests-out FILE.jsonl|FILE.parquet`: a row per request, live.
    pub requests_out: Option<PathBuf>,
    /// `--requests-text`: the rows carry the request's body and the answer.
    pub requests_text: bool,
    /// Keep one row per request in the result.
    pub keep_requests: bool,
    pub progress_every: Option<crate::values::Every>,
    /// Live outputs, their credentials and the share of requests they get.
    pub live: Vec<Output>,
    pub credentials: Credentials,
    pub request_sample: f64,
    /// Tags of the run's points and result: the file's, then the flags'.
    pub tags: Vec<(String, String)>,
    /// Where request spans go (`--trace-requests`).
    pub trace_requests: Option<TraceTarget>,
    /// The `endpoint` tag of live points (a sweep's endpoint name; else the target).
    pub endpoint_tag: Option<String>,
    /// `--server-metrics`, `--promql`: what to scrape and query. An empty
    /// target URL stands for the target's origin + `/metrics`, known once
    /// the target is (the in-process mock's port).
    pub server: Option<crate::server_metrics::Config>,
    /// `--dashboard`: the live page, its socket bound when the plan is
    /// made (not for `--dry-run`); a sweep's levels share one.
    pub dashboard: Option<crate::dashboard::Board>,
}

/// `--server-metrics` and `--prometheus` as a scraper's configuration.
fn server_config(
    a: &crate::cli::ServerMetricsArgs,
) -> Result<Option<crate::server_metrics::Config>> {
    let url = |flag: &str, u: &str| -> Result<()> {
        match reqwest::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => Ok(()),
            _ => Err(usage!(
                "{flag} '{u}' is not an http(s) URL, e.g. http://localhost:8000/metrics{}",
                if flag == "--server-metrics" {
                    " (with no value, put it after the workload or write --server-metrics= to scrape the target's /metrics)"
                } else {
                    ""
                }
            )),
        }
    };
    for t in a.server_metrics.iter().filter(|t| !t.is_empty()) {
        url("--server-metrics", t)?;
    }
    if let Some(p) = &a.prometheus {
        url("--prometheus", p)?;
    }
    let queries = crate::server_metrics::Query::parse_all(&a.promql).map_err(Error::Usage)?;
    match (&a.prometheus, queries.is_empty()) {
        (Some(_), true) => {
            return Err(usage!(
                "--prometheus needs a query: add --promql EXPR (repeatable) or --promql @FILE"
            ))
        }
        (None, false) => {
            return Err(usage!(
                "--promql needs --prometheus URL (the query API of Prometheus, Thanos or VictoriaMetrics)"
            ))
        }
        _ => {}
    }
    let interval = a
        .scrape_interval
        .unwrap_or(std::time::Duration::from_secs(1));
    if interval < std::time::Duration::from_millis(100) {
        return Err(usage!("--scrape-interval must be at least 100ms"));
    }
    if a.server_metrics.is_empty() && a.prometheus.is_none() {
        if a.server_csv.is_some() || a.scrape_interval.is_some() {
            return Err(usage!(
                "--server-csv and --scrape-interval need --server-metrics [URL] or --prometheus URL"
            ));
        }
        return Ok(None);
    }
    let mut targets = a
        .server_metrics
        .iter()
        .map(|t| match t.is_empty() {
            true => Ok(String::new()),
            false => crate::endpoint::metrics_url("--server-metrics", t).map_err(Error::Usage),
        })
        .collect::<Result<Vec<_>>>()?;
    targets.dedup();
    Ok(Some(crate::server_metrics::Config {
        targets,
        interval,
        csv: a.server_csv.clone(),
        auth: None,
        prometheus: a.prometheus.clone(),
        query_concurrency: a.promql_concurrency.unwrap_or(5).max(1),
        queries,
        prometheus_wait: a
            .prometheus_wait
            .unwrap_or(std::time::Duration::from_secs(2)),
    }))
}

impl Outputs {
    pub fn from_args(a: &RunArgs, f: &ScenarioFile) -> Result<Self> {
        let trace_requests = a
            .sink
            .trace_requests
            .as_deref()
            .map(|u| {
                TraceTarget::resolve(
                    u,
                    a.otlp.platform.unwrap_or_default(),
                    a.otlp.project.clone(),
                    crate::otlp::Protocol::resolve(
                        a.otlp.otlp_protocol.as_deref(),
                        a.otlp.otlp_json,
                        None,
                    )?,
                )
            })
            .transpose()
            .map_err(Error::Usage)?;
        let mut tags: Vec<(String, String)> = f
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .filter(|(k, _)| !a.sink.tags.iter().any(|(ak, _)| ak == k))
            .collect();
        tags.extend(a.sink.tags.iter().cloned());
        Ok(Outputs {
            json: a.json.clone(),
            html: a.html.clone(),
            csv: a.csv.clone(),
            requests_out: match &a.requests_out {
                Some(p) => {
                    crate::sink::rows::Format::of(p).map_err(Error::Usage)?;
                    Some(p.clone())
                }
                None => None,
            },
            requests_text: if a.requests_text && a.requests_out.is_none() {
                return Err(usage!(
                    "--requests-text puts texts in the rows of --requests-out FILE.jsonl|FILE.parquet: give it"
                ));
            } else {
                a.requests_text
            },
            keep_requests: a.keep_requests,
            json_format: a.format.unwrap_or_default(),
            progress_every: a.progress_every,
            live: a.sink.outs.clone(),
            credentials: Credentials {
                user: a.sink.influx_user.clone(),
                password: a.sink.influx_password.clone(),
                token: env_var("INFLUX_TOKEN"),
            },
            request_sample: match a.sink.influx_request_sample {
                Some(x) if !(0.0..=1.0).contains(&x) => {
                    return Err(usage!(
                        "--influx-request-sample must be between 0 and 1 (0.1 keeps one request in ten)"
                    ))
                }
                Some(x) => x,
                None => 1.0,
            },
            tags,
            trace_requests,
            endpoint_tag: a.sink.endpoint_tag.clone(),
            server: server_config(&a.server)?,
            dashboard: match a.dry_run {
                true => None,
                false => a.dashboard.board().map_err(Error::Usage)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::tests::{plan, usage_error};

    #[test]
    fn files_tags_sampling_and_progress() {
        let p = plan(&["--mock"]).unwrap();
        let o = &p.outputs;
        assert!(o.json.is_none() && o.html.is_none() && o.csv.is_none());
        assert!(!o.keep_requests && o.live.is_empty() && o.trace_requests.is_none());
        assert_eq!(o.request_sample, 1.0);
        let p = plan(&[
            "--mock",
            "--json",
            "r.json",
            "--csv",
            "r.csv",
            "--tag",
            "team=a",
            "--influx-request-sample",
            "0.25",
            "--progress-every",
            "5",
        ])
        .unwrap();
        let o = &p.outputs;
        assert_eq!(o.json.as_deref(), Some(std::path::Path::new("r.json")));
        assert!(
            !o.keep_requests,
            "the CSV's rows are written during the run"
        );
        assert_eq!(o.tags, vec![("team".to_string(), "a".to_string())]);
        assert_eq!(o.request_sample, 0.25);
        assert_eq!(o.progress_every, Some(crate::values::Every::Seconds(5)));
        assert!(
            usage_error(&["--mock", "--influx-request-sample", "2"]).contains("between 0 and 1")
        );
    }
}
