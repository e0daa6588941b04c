//! The `otlp-traces` part of a plan: flags over the scenario file's `otlp:`
//! section over the OpenTelemetry environment, resolved into what the
//! workload sends, where, with what headers, at what rate, and the query
//! load beside it.

use std::sync::Arc;

use crate::otlp::query::{self, QueryPlan};
use crate::otlp::{
    env, expected, export_headers, parse_mix, parse_mix_with, project_name, traces_url, OtlpSpec,
    OtlpView, Platform, Protocol, QueryView, TestType, DEFAULT_MIX, TRACES_PATH,
};

/// An otlp-traces run, resolved from flags, scenario file and environment.
pub struct Resolved {
    pub spec: OtlpSpec,
    /// The URL exports go to.
    pub url: String,
    /// Headers every export carries (content type and encoding, the
    /// platform's, `OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(String, String)>,
    /// Traces per second when `--mb-per-s` sets the rate.
    pub rate: Option<f64>,
    /// Exports are gRPC calls.
    pub grpc: bool,
    /// The query load sent alongside ingestion.
    pub queries: Option<QueryPlan>,
    /// What the run is planned to send.
    pub view: OtlpView,
}

/// Resolve an otlp-traces run. `target` is `--target` or the file's;
/// `mock_base` the in-process mock's base URL when `--mock`.
pub fn resolve(
    a: &crate::cli::OtlpArgs,
    f: Option<&crate::scenario::OtlpEntry>,
    endpoint: Option<&str>,
    target: Option<&str>,
    mock: bool,
) -> Result<Resolved, String> {
    let protocol = Protocol::resolve(a.otlp_protocol.as_deref(), a.otlp_json, file_protocol(f)?)?;
    let json = protocol == Protocol::HttpJson;
    let mut grpc = protocol == Protocol::Grpc;
    let mix = mix_of(a, f)?;
    let platform = platform_of(a, f)?;
    let project = project_name(
        a.project
            .clone()
            .or_else(|| f.and_then(|f| f.project.clone())),
        platform,
    );
    let mb = a
        .mb_per_s
        .or(f.and_then(|f| f.mb_per_s.as_ref().map(|v| v.0)));
    if let Some(m) = mb {
        if !(m > 0.0 && m.is_finite()) {
            return Err("--mb-per-s must be more than 0".into());
        }
    }
    let mut headers = export_headers(platform, &project, json)?;
    let service_name = env("OTEL_SERVICE_NAME").unwrap_or_else(|| "periscope-agent".into());
    let (mut queries, mut query_view) =
        resolve_queries(a, f, mock, platform, &headers, &service_name, &project)?;
    let test_type = test_type(a, f, queries.is_some())?;
    let mut query_only = None;
    let mut mb = mb;
    let url = match test_type {
        TestType::Query => {
            if a.mb_per_s.is_some() {
                return Err("--mb-per-s paces trace exports; a query-only run (--test-type query) sends none: drop it".into());
            }
            // A profile's byte rate is ingestion's: not this run's.
            mb = None;
            grpc = false;
            let q = queries.take().expect("test_type checked the query load");
            headers = q.headers.clone();
            let url = match &q.endpoint {
                Some(e) => e.clone(),
                None => "http://127.0.0.1".into(),
            };
            query_only = Some(Arc::new(q));
            url
        }
        _ if mock => {
            // The mock's port is known only when it starts: the path is what counts.
            format!("http://127.0.0.1{TRACES_PATH}")
        }
        _ => traces_url(
            endpoint.or(f.and_then(|f| f.endpoint.as_deref())),
            target,
            grpc,
        )?,
    };
    if test_type == TestType::Ingestion {
        queries = None;
        // Asked for: no query planned. By default: a profile's rate with no
        // endpoint is still said to be unsent.
        if a.test_type.is_some() || f.is_some_and(|f| f.test_type.is_some()) {
            query_view = None;
        }
    }
    let path = reqwest::Url::parse(&url)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| TRACES_PATH.into());
    let mut spec = OtlpSpec {
        mix,
        platform,
        protocol,
        service_name,
        project,
        path,
        pace_mean_bytes: None,
        recent: Arc::default(),
        query_only,
    };
    let (mean_bytes, mean_spans) = expected(&spec);
    let rate = match &spec.query_only {
        Some(q) => Some(q.rate),
        None => mb.map(|m| {
            spec.pace_mean_bytes = Some(mean_bytes);
            m * 1e6 / mean_bytes
        }),
    };
    let view = OtlpView {
        url: url.clone(),
        mix: spec
            .mix
            .iter()
            .map(|(k, w)| format!("{}:{w}", k.name()))
            .collect::<Vec<_>>()
            .join(","),
        platform: format!("{platform:?}").to_lowercase(),
        json,
        protocol: Some(protocol),
        test_type: Some(test_type),
        mb_per_s: mb,
        mean_trace_bytes: mean_bytes,
        mean_trace_spans: mean_spans,
        queries: query_view,
    };
    Ok(Resolved {
        spec,
        url,
        headers,
        rate,
        grpc,
        queries,
        view,
    })
}

/// The test type: the flag, the file's, else combined when there is a
/// query load and ingestion when not. Queries need the query API.
fn test_type(
    a: &crate::cli::OtlpArgs,
    f: Option<&crate::scenario::OtlpEntry>,
    has_queries: bool,
) -> Result<TestType, String> {
    let file = match f.and_then(|f| f.test_type.as_deref()) {
        Some(t) => Some(
            <TestType as clap::ValueEnum>::from_str(t, true).map_err(|_| {
                format!("otlp.test_type: '{t}' is not one of ingestion, query, combined")
            })?,
        ),
        None => None,
    };
    let t = a.test_type.or(file).unwrap_or(if has_queries {
        TestType::Combined
    } else {
        TestType::Ingestion
    });
    if t != TestType::Ingestion && !has_queries {
        return Err(format!(
            "--test-type {} queries the backend: give its query API with --query-endpoint URL and a rate with --queries-per-s N (a profile may give the rate)",
            t.name()
        ));
    }
    Ok(t)
}

/// The scenarios the file declares, then the mix: the flag's, the file's,
/// else the declared ones by weight, else the built-in default.
fn mix_of(
    a: &crate::cli::OtlpArgs,
    f: Option<&crate::scenario::OtlpEntry>,
) -> Result<Vec<(crate::otlp::Kind, u32)>, String> {
    let mut declared: Vec<crate::otlp::Kind> = Vec::new();
    let mut weights = Vec::new();
    for def in f.map(|f| f.scenarios.clone()).unwrap_or_default() {
        let taken: Vec<String> = declared.iter().map(|k| k.name().to_string()).collect();
        let w = def.weight.unwrap_or(1);
        let k = def.into_kind(&taken)?;
        declared.push(k);
        weights.push(w);
    }
    Ok(
        match a.mix.as_deref().or(f.and_then(|f| f.mix.as_deref())) {
            Some(m) => parse_mix_with(m, &declared)?,
            None if !declared.is_empty() => {
                let mix: Vec<_> = declared
                    .iter()
                    .copied()
                    .zip(weights)
                    .filter(|(_, w)| *w > 0)
                    .collect();
                if mix.is_empty() {
                    return Err(
                        "otlp.scenarios: every weight is 0: give one a weight above 0".into(),
                    );
                }
                mix
            }
            None => parse_mix(DEFAULT_MIX)?,
        },
    )
}

/// The platform: the flag, OTEL_PLATFORM (the scale test's variable), the file.
fn platform_of(
    a: &crate::cli::OtlpArgs,
    f: Option<&crate::scenario::OtlpEntry>,
) -> Result<Platform, String> {
    let named = |what: &str, p: &str| {
        <Platform as clap::ValueEnum>::from_str(p.trim(), true).map_err(|_| {
            format!("{what}: '{p}' is not one of otlp, braintrust, langsmith, phoenix, console")
        })
    };
    Ok(
        match (
            a.platform,
            env("OTEL_PLATFORM"),
            f.and_then(|f| f.platform.as_deref()),
        ) {
            (Some(p), ..) => p,
            (None, Some(p), _) => named("OTEL_PLATFORM", &p)?,
            (None, None, Some(p)) => named("otlp.platform", p)?,
            (None, None, None) => Platform::Otlp,
        },
    )
}

/// The protocol a scenario file names: its `protocol`, or `json: true`
/// (OTLP/JSON travels over HTTP).
fn file_protocol(f: Option<&crate::scenario::OtlpEntry>) -> Result<Option<&str>, String> {
    Ok(
        match (
            f.and_then(|f| f.protocol.as_deref()),
            f.and_then(|f| f.json),
        ) {
            (Some(p), Some(true)) if Protocol::parse(p, "otlp.protocol")? != Protocol::HttpJson => {
                return Err(
                    "otlp.json: true and otlp.protocol disagree: OTLP/JSON travels over HTTP"
                        .into(),
                )
            }
            (Some(p), _) => Some(p),
            (None, Some(true)) => Some(Protocol::HttpJson.name()),
            (None, _) => None,
        },
    )
}

/// The query load: flags over the scenario file; none without a rate, and
/// none (noted in the view) when a file's rate has no endpoint to go to.
fn resolve_queries(
    a: &crate::cli::OtlpArgs,
    f: Option<&crate::scenario::OtlpEntry>,
    mock: bool,
    platform: Platform,
    export_headers: &[(String, String)],
    service: &str,
    project: &str,
) -> Result<(Option<QueryPlan>, Option<QueryView>), String> {
    let rate = a
        .queries_per_s
        .or(f.and_then(|f| f.queries_per_s.as_ref().map(|v| v.0)));
    let endpoint = a
        .query_endpoint
        .clone()
        .or_else(|| f.and_then(|f| f.query_endpoint.clone()));
    let given: Vec<String> = if a.queries.is_empty() {
        f.map(|f| f.queries.clone()).unwrap_or_default()
    } else {
        a.queries.clone()
    };
    if let Some(r) = rate {
        if !(r > 0.0 && r.is_finite()) {
            return Err("--queries-per-s must be more than 0".into());
        }
    }
    let Some(rate) = rate else {
        if endpoint.is_some() || !a.queries.is_empty() {
            return Err("--query-endpoint and --query need a rate: add --queries-per-s N".into());
        }
        return Ok((None, None));
    };
    let templates = if given.is_empty() {
        query::default_templates(platform).ok_or_else(|| {
            format!(
                "--platform {}: no default query; give the backend's query path with --query TEMPLATE",
                format!("{platform:?}").to_lowercase()
            )
        })?
    } else {
        given
    };
    let parsed = templates
        .iter()
        .map(|t| query::parse_template(t))
        .collect::<Result<Vec<_>, _>>()?;
    let (endpoint, prefix) = match endpoint {
        Some(e) => {
            let u = reqwest::Url::parse(e.trim()).map_err(|err| {
                format!("--query-endpoint '{e}' is not a URL ({err}): expected e.g. http://tempo:3200")
            })?;
            if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                return Err(format!(
                    "--query-endpoint '{e}' must be an http:// or https:// URL with a host"
                ));
            }
            let prefix = u.path().trim_end_matches('/').to_string();
            (Some(e.trim().trim_end_matches('/').to_string()), prefix)
        }
        None if mock => (None, String::new()),
        None if a.queries_per_s.is_some() => {
            return Err(
                "--queries-per-s needs --query-endpoint URL: the backend's query API, e.g. http://tempo:3200"
                    .into(),
            )
        }
        None => {
            // A profile's query rate, with nowhere to send it.
            let view = QueryView {
                endpoint: None,
                per_s: rate,
                templates,
            };
            return Ok((None, Some(view)));
        }
    };
    let view = QueryView {
        endpoint: Some(
            endpoint
                .clone()
                .unwrap_or_else(|| "http://127.0.0.1 (built-in mock)".into()),
        ),
        per_s: rate,
        templates: templates.clone(),
    };
    let headers = export_headers
        .iter()
        .filter(|(k, _)| {
            !k.eq_ignore_ascii_case("content-type") && !k.eq_ignore_ascii_case("content-encoding")
        })
        .cloned()
        .collect();
    Ok((
        Some(QueryPlan {
            endpoint,
            prefix,
            rate,
            templates: parsed,
            headers,
            service: service.to_string(),
            project: project.to_string(),
        }),
        Some(view),
    ))
}

fn num(name: &str) -> Result<Option<f64>, String> {
    match env(name) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<f64>() {
            Ok(x) if x > 0.0 && x.is_finite() => Ok(Some(x)),
            _ => Err(format!("{name}='{v}' must be a number above 0")),
        },
    }
}

/// The variables of the suites periscope replaces, as an otlp-traces run's
/// flags where none is given (so they count over the scenario file): the
/// Tempo suite's (`MB_PER_SECOND`, `QUERIES_PER_SECOND`, `TRACE_PROFILE`,
/// `VUS_MAX`, `TEMPO_ENDPOINT` as `host:4317` over gRPC,
/// `TEMPO_QUERY_ENDPOINT`), then the AI-observability scale test's
/// ([`scale_test_env`]).
pub fn env_args(
    a: &crate::cli::RunArgs,
    f: &crate::scenario::ScenarioFile,
) -> Result<crate::cli::RunArgs, String> {
    let mut a = a.clone();
    let o = &mut a.otlp;
    if o.mb_per_s.is_none() && a.rate.is_none() {
        o.mb_per_s = num("MB_PER_SECOND")?;
    }
    if o.queries_per_s.is_none() {
        o.queries_per_s = num("QUERIES_PER_SECOND")?;
    }
    if o.mix.is_none() {
        o.mix = env("TRACE_PROFILE");
    }
    if a.max_in_flight.is_none() {
        a.max_in_flight = num("VUS_MAX")?.map(|v| v.round().max(1.0) as u64);
    }
    let o = &mut a.otlp;
    if o.query_endpoint.is_none() {
        o.query_endpoint = env("TEMPO_QUERY_ENDPOINT");
    }
    let given = !a.endpoints.is_empty()
        || f.otlp.as_ref().is_some_and(|o| o.endpoint.is_some())
        || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
    if let (false, false, Some(t)) = (given, a.mock, env("TEMPO_ENDPOINT")) {
        // The suite's OTLP gRPC endpoint, written without a scheme.
        let url = match t.contains("://") {
            true => t.trim().to_string(),
            false => format!("http://{}", t.trim()),
        };
        a.endpoints = vec![url];
        let protocol_given = o.otlp_protocol.is_some()
            || o.otlp_json
            || f.otlp
                .as_ref()
                .is_some_and(|o| o.protocol.is_some() || o.json.is_some())
            || env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").is_some()
            || env("OTEL_EXPORTER_OTLP_PROTOCOL").is_some();
        if !protocol_given {
            o.otlp_protocol = Some("grpc".into());
        }
    }
    scale_test_env(&a, f)
}

/// The AI-observability scale test's variables, as an otlp-traces run's
/// load where no flag sets it (over the scenario file): its
/// `SCALE_TEST_DURATION` seconds, `SCALE_TEST_RATE_LIMIT` requests per
/// second with at most `SCALE_TEST_CONCURRENCY` in flight, or without a
/// rate limit `SCALE_TEST_CONCURRENCY` workers as fast as they go.
fn scale_test_env(
    a: &crate::cli::RunArgs,
    f: &crate::scenario::ScenarioFile,
) -> Result<crate::cli::RunArgs, String> {
    let mut a = a.clone();
    if let (None, Some(s)) = (a.duration, num("SCALE_TEST_DURATION")?) {
        a.duration = Some(std::time::Duration::from_secs_f64(s));
    }
    let paced = a.otlp.mb_per_s.is_some() || f.otlp.as_ref().is_some_and(|o| o.mb_per_s.is_some());
    let shaped = a.vus.is_some() || a.stages.is_some() || a.iterations.is_some();
    if let (None, false, false, Some(r)) = (a.rate, paced, shaped, num("SCALE_TEST_RATE_LIMIT")?) {
        a.rate = Some(r);
    }
    if let Some(c) = num("SCALE_TEST_CONCURRENCY")? {
        let c = c.round().max(1.0) as u64;
        let open = a.rate.is_some() || paced || (f.rate.is_some() && a.vus.is_none());
        if open {
            a.max_in_flight.get_or_insert(c);
        } else if !shaped && a.rate.is_none() {
            a.vus = Some(c);
        }
    }
    Ok(a)
}
