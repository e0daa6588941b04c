//! OTLP for trace backends: synthetic GenAI agent traces ([`gen`]) and their
//! encoding (protobuf or JSON, gzip), the mixes and platforms of
//! `otlp-traces`, where exports go and the headers they carry, and the
//! queries a backend is asked ([`query`]). No I/O and no load here: the
//! `otlp-traces` workload, the trace-query load and the request-span
//! exporter (`--trace-requests`) are built on it elsewhere.

pub mod gen;
pub mod query;

use std::io::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;

pub use gen::workflow::ScenarioDef;
pub use gen::{Dress, Generator, Kind, Platform, Trace};

/// The agent mix of the sizing, as trace-backend operators use it.
pub const DEFAULT_MIX: &str =
    "simple_query:40,single_service_search:30,delegated_booking:20,multi_service_complex:10";

/// The OTLP/HTTP traces path.
pub const TRACES_PATH: &str = "/v1/traces";

/// How exports travel: OTLP's `OTEL_EXPORTER_OTLP_PROTOCOL` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Protocol {
    /// Unary `TraceService/Export` calls over HTTP/2.
    #[serde(rename = "grpc")]
    Grpc,
    /// Protobuf POSTed to `/v1/traces`.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// OTLP/JSON POSTed to `/v1/traces`.
    #[serde(rename = "http/json")]
    HttpJson,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        }
    }

    /// `grpc`, `http/protobuf` or `http/json`; `what` names the source in
    /// the error.
    pub fn parse(s: &str, what: &str) -> Result<Protocol, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" | "http" | "protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" | "json" => Ok(Protocol::HttpJson),
            other => Err(format!(
                "{what}: '{other}' is not an OTLP protocol: expected grpc, http/protobuf or http/json"
            )),
        }
    }

    /// The protocol of a run: the flag, else `--otlp-json`, else the
    /// scenario file's, else `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, else http/protobuf.
    pub fn resolve(
        flag: Option<&str>,
        json_flag: bool,
        file: Option<&str>,
    ) -> Result<Protocol, String> {
        if let Some(f) = flag {
            let p = Protocol::parse(f, "--otlp-protocol")?;
            if json_flag && p != Protocol::HttpJson {
                return Err(format!(
                    "--otlp-json and --otlp-protocol {} disagree: give one",
                    p.name()
                ));
            }
            return Ok(p);
        }
        if json_flag {
            return Ok(Protocol::HttpJson);
        }
        if let Some(f) = file {
            return Protocol::parse(f, "otlp.protocol");
        }
        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(v) = env(var) {
                return Protocol::parse(&v, var);
            }
        }
        Ok(Protocol::HttpProtobuf)
    }
}

/// What an otlp-traces run does: ingestion, queries, or both at once (the
/// Tempo suite's test types).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TestType {
    /// Trace exports only.
    Ingestion,
    /// Queries only, at `--queries-per-s`, of the traces the backend has.
    Query,
    /// Exports, and the queries beside them.
    Combined,
}

impl TestType {
    pub fn name(self) -> &'static str {
        match self {
            TestType::Ingestion => "ingestion",
            TestType::Query => "query",
            TestType::Combined => "combined",
        }
    }
}

/// What an `otlp-traces` run sends.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OtlpSpec {
    /// Scenarios and their weights.
    pub mix: Vec<(Kind, u32)>,
    pub platform: Platform,
    /// OTLP/HTTP with protobuf or JSON, or gRPC calls (the gzipped
    /// protobuf in a gRPC frame).
    pub protocol: Protocol,
    pub service_name: String,
    pub project: String,
    /// The URL path traces are posted to.
    pub path: String,
    /// Mean encoded bytes of a trace of the mix, measured before the run;
    /// set when arrivals are paced by bytes (`--mb-per-s`).
    pub pace_mean_bytes: Option<f64>,
    /// Trace ids accepted by the backend (the collector keeps them), or
    /// found there (a query-only run), for the queries' `{{trace_id}}`.
    #[serde(skip)]
    pub recent: Arc<query::RecentTraces>,
    /// A query-only run's queries: the run's load, in place of exports.
    #[serde(skip)]
    pub query_only: Option<Arc<query::QueryPlan>>,
}

impl OtlpSpec {
    /// OTLP/JSON instead of protobuf.
    pub fn json(&self) -> bool {
        self.protocol == Protocol::HttpJson
    }

    /// Export calls over gRPC.
    pub fn grpc(&self) -> bool {
        self.protocol == Protocol::Grpc
    }

    /// What every trace of the run is dressed with.
    pub fn dress(&self) -> Dress {
        Dress {
            platform: self.platform,
            service_name: self.service_name.clone(),
            project: self.project.clone(),
        }
    }
}

/// Parse `simple_query:40,multi_service_complex:10` (a bare name weighs 1).
pub fn parse_mix(s: &str) -> Result<Vec<(Kind, u32)>, String> {
    parse_mix_with(s, &[])
}

/// [`parse_mix`], knowing the scenarios a file declared besides the
/// built-in ones.
pub fn parse_mix_with(s: &str, declared: &[Kind]) -> Result<Vec<(Kind, u32)>, String> {
    let names = || {
        Kind::ALL
            .iter()
            .chain(declared)
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut mix = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, w) = match part.split_once(':') {
            Some((n, w)) => (
                n,
                w.trim().parse::<u32>().map_err(|_| {
                    format!("--mix: '{part}' needs a whole-number weight, e.g. simple_query:40")
                })?,
            ),
            None => (part, 1),
        };
        let kind = Kind::parse(name)
            .or_else(|| declared.iter().copied().find(|k| k.name() == name.trim()))
            .ok_or_else(|| {
                format!(
                    "--mix: unknown trace scenario '{name}': expected one of {}",
                    names()
                )
            })?;
        if w > 0 {
            mix.push((kind, w));
        }
    }
    if mix.is_empty() {
        return Err(format!(
            "--mix names no scenario with a weight above 0: e.g. {DEFAULT_MIX}"
        ));
    }
    Ok(mix)
}

/// Encode a trace export: (body as sent, payload bytes before compression).
pub fn encode(
    req: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
    json: bool,
) -> (Bytes, usize) {
    let raw = if json {
        serde_json::to_vec(req).expect("a trace always serializes")
    } else {
        req.encode_to_vec()
    };
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 3),
        flate2::Compression::fast(),
    );
    gz.write_all(&raw).expect("writing to memory");
    let body = gz.finish().expect("writing to memory");
    (Bytes::from(body), raw.len())
}

/// Lowercase hex of an id, as OTLP/JSON and trace APIs write trace ids.
pub fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The otlp-traces part of the plan, for `--dry-run` and the result.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OtlpView {
    pub url: String,
    pub mix: String,
    pub platform: String,
    pub json: bool,
    /// grpc, http/protobuf or http/json (older results: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// ingestion, query or combined (older results: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_type: Option<TestType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mb_per_s: Option<f64>,
    /// Mean encoded bytes and spans of a trace of the mix.
    pub mean_trace_bytes: f64,
    pub mean_trace_spans: f64,
    /// The query load, planned or (without an endpoint) not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<QueryView>,
}

/// The query load of the plan.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct QueryView {
    /// Where queries go; none when no query endpoint was given (not sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub per_s: f64,
    pub templates: Vec<String>,
}

impl OtlpView {
    /// `planned traces: …` for `--dry-run`, at `rate` traces/s.
    pub fn planned(&self, rate: Option<f64>) -> String {
        let per = format!(
            "mean trace {:.1} KB, {:.1} spans",
            self.mean_trace_bytes / 1e3,
            self.mean_trace_spans
        );
        match rate {
            Some(r) => format!(
                "{:.2} traces/s, {:.1} spans/s, {:.3} MB/s, {:.1} GB/day ({per})",
                r,
                r * self.mean_trace_spans,
                r * self.mean_trace_bytes / 1e6,
                r * self.mean_trace_bytes * 86_400.0 / 1e9
            ),
            None => format!("as fast as the VUs go ({per})"),
        }
    }

    /// `planned queries: …` for `--dry-run`.
    pub fn planned_queries(&self) -> Option<String> {
        let q = self.queries.as_ref()?;
        Some(match &q.endpoint {
            Some(e) => format!(
                "{} queries/s to {e}, in turn: {}",
                q.per_s,
                q.templates.join("; ")
            ),
            None => format!(
                "none: the scenario's {} queries/s need --query-endpoint URL (the backend's query API)",
                q.per_s
            ),
        })
    }
}

pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `k=v,k2=v2` (values percent-decoded), as `OTEL_EXPORTER_OTLP_HEADERS`.
pub fn parse_otel_headers(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').ok_or_else(|| {
                "OTEL_EXPORTER_OTLP_HEADERS: expected key=value pairs separated by commas"
                    .to_string()
            })?;
            let v = percent_encoding::percent_decode_str(v.trim())
                .decode_utf8()
                .map_err(|_| "OTEL_EXPORTER_OTLP_HEADERS: a value is not UTF-8".to_string())?;
            Ok((k.trim().to_string(), v.into_owned()))
        })
        .collect()
}

/// Where exports go: `--endpoint`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as
/// is), `OTEL_EXPORTER_OTLP_ENDPOINT` (+ `/v1/traces` unless it ends so
/// already), then `--target`. A
/// URL with no path gets `/v1/traces`; over gRPC the URL is the origin of
/// the calls, taken as it is.
pub fn traces_url(
    endpoint: Option<&str>,
    target: Option<&str>,
    grpc: bool,
) -> Result<String, String> {
    let (raw, append) = match (
        endpoint,
        env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        env("OTEL_EXPORTER_OTLP_ENDPOINT"),
        target,
    ) {
        (Some(e), ..) => (e.to_string(), false),
        (None, Some(t), ..) => (t, false),
        (None, None, Some(b), _) => (b, true),
        (None, None, None, Some(t)) => (t.to_string(), false),
        _ => {
            return Err(
                "otlp-traces needs the traces URL: --endpoint http://host:4318/v1/traces (http://host:4317 over gRPC; or OTEL_EXPORTER_OTLP_ENDPOINT), or --mock".into(),
            )
        }
    };
    let mut url = reqwest::Url::parse(raw.trim()).map_err(|e| {
        format!("'{raw}' is not a URL ({e}): expected e.g. http://localhost:4318/v1/traces")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "'{raw}' must be an http:// or https:// URL with a host"
        ));
    }
    if grpc {
        return Ok(url.to_string());
    }
    // A base given whole, as some backends' docs print it
    // (`https://api.braintrust.dev/otel/v1/traces`), is not appended to.
    let whole = url.path().trim_end_matches('/').ends_with(TRACES_PATH);
    if append && !whole {
        let path = format!("{}{TRACES_PATH}", url.path().trim_end_matches('/'));
        url.set_path(&path);
    } else if url.path() == "/" || url.path().is_empty() {
        url.set_path(TRACES_PATH);
    }
    Ok(url.to_string())
}

/// The project spans go to: the one given, else the platform's usual
/// environment variable, else `periscope`.
pub fn project_name(given: Option<String>, platform: Platform) -> String {
    given
        .or_else(|| match platform {
            Platform::Langsmith => env("LANGSMITH_PROJECT"),
            Platform::Phoenix => env("PHOENIX_PROJECT_NAME"),
            _ => None,
        })
        .unwrap_or_else(|| "periscope".into())
}

/// The headers of an export: content type and encoding, the platform's
/// (keys from their usual environment variables), and
/// `OTEL_EXPORTER_OTLP_HEADERS`.
pub fn export_headers(
    platform: Platform,
    project: &str,
    json: bool,
) -> Result<Vec<(String, String)>, String> {
    let mut headers = vec![
        (
            "Content-Type".to_string(),
            if json {
                "application/json"
            } else {
                "application/x-protobuf"
            }
            .to_string(),
        ),
        ("Content-Encoding".to_string(), "gzip".to_string()),
    ];
    match platform {
        Platform::Langsmith => {
            if let Some(k) = env("LANGSMITH_API_KEY") {
                headers.push(("x-api-key".into(), k));
            }
            headers.push(("Langsmith-Project".into(), project.to_string()));
        }
        Platform::Braintrust => {
            if let Some(k) = env("BRAINTRUST_API_KEY") {
                headers.push(("Authorization".into(), format!("Bearer {k}")));
            }
            headers.push(("x-bt-parent".into(), format!("project_name:{project}")));
        }
        Platform::Phoenix => {
            if let Some(k) = env("PHOENIX_API_KEY") {
                headers.push(("Authorization".into(), format!("Bearer {k}")));
            }
        }
        Platform::Otlp | Platform::Console => {}
    }
    // The variable's headers replace the platform's of the same name
    // (`x-bt-parent=project_name:…` in the Braintrust example).
    if let Some(h) = env("OTEL_EXPORTER_OTLP_HEADERS") {
        let given = parse_otel_headers(&h)?;
        headers.retain(|(k, _)| !given.iter().any(|(g, _)| g.eq_ignore_ascii_case(k)));
        headers.extend(given);
    }
    Ok(headers)
}

/// What the mix sends on average: (encoded bytes, spans) per trace, from a
/// few traces of each scenario weighted by the mix.
pub fn expected(spec: &OtlpSpec) -> (f64, f64) {
    let mut g = Generator::new(0x5eed, spec.dress());
    let total: u32 = spec.mix.iter().map(|(_, w)| w).sum();
    let (mut bytes, mut spans) = (0.0, 0.0);
    const EACH: usize = 4;
    for (kind, w) in &spec.mix {
        let share = *w as f64 / total.max(1) as f64;
        for _ in 0..EACH {
            let t = g.trace(*kind, now_unix_ns());
            let len = if spec.json() {
                serde_json::to_vec(&t.request).map_or(0, |v| v.len())
            } else {
                t.request.encoded_len()
            };
            bytes += share * len as f64 / EACH as f64;
            spans += share * t.spans as f64 / EACH as f64;
        }
    }
    (bytes, spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_bad_ones_say_what_to_fix() {
        assert_eq!(
            parse_mix("simple_query:3,large").unwrap(),
            vec![(Kind::SimpleQuery, 3), (Kind::Large, 1)]
        );
        assert!(parse_mix("simple:3").unwrap_err().contains("simple_query"));
        assert!(parse_mix("simple_query:x").unwrap_err().contains("weight"));
        assert!(parse_mix("simple_query:0").is_err());
    }

    #[test]
    fn json_traces_follow_otlp_json() {
        let mut g = Generator::new(
            1,
            Dress {
                platform: Platform::Otlp,
                service_name: "s".into(),
                project: "p".into(),
            },
        );
        let t = g.trace(Kind::SimpleQuery, now_unix_ns());
        let v = serde_json::to_value(&t.request).unwrap();
        let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        // Hex ids and string-encoded 64-bit times, as OTLP/JSON asks.
        assert_eq!(span["traceId"].as_str().unwrap().len(), 32, "{span}");
        assert!(span["startTimeUnixNano"].is_string(), "{span}");
    }
}
