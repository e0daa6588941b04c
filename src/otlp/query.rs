//! Queries to a trace backend (`otlp-traces --query-endpoint URL
//! --queries-per-s N --query TEMPLATE`): the templates, their placeholders,
//! and the trace ids of this run they may ask for. The load that sends them
//! is `workload::trace_query`, run by the executor beside ingestion.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::Platform;

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("service", "the traces' service.name"),
    ("project", "the backend's project"),
    ("trace_id", "a trace exported in this run (32 hex digits)"),
    ("start", "the run's start, Unix seconds"),
    ("end", "now, Unix seconds"),
    ("start_ms", "the run's start, Unix ms"),
    ("end_ms", "now, Unix ms"),
    ("start_ns", "the run's start, Unix ns"),
    ("end_ns", "now, Unix ns"),
];

/// The default templates of a platform: Tempo's search and trace-by-id for
/// plain OTLP, the REST API's span and trace lists for Phoenix.
pub fn default_templates(platform: Platform) -> Option<Vec<String>> {
    match platform {
        Platform::Otlp | Platform::Console => Some(vec![
            "/api/search?tags=service.name%3D{{service}}&start={{start}}&end={{end}}&limit=20"
                .into(),
            "/api/traces/{{trace_id}}".into(),
        ]),
        Platform::Phoenix => Some(vec![
            "/v1/projects/{{project}}/spans?limit=100".into(),
            "/v1/projects/{{project}}/traces?limit=20".into(),
        ]),
        Platform::Langsmith | Platform::Braintrust => None,
    }
}

/// A query template, parsed: `PATH` (a GET, spaces allowed, as TraceQL
/// has them), `GET PATH`, or `POST PATH [BODY]` with a JSON body (GraphQL,
/// LangSmith's run queries, Braintrust's BTQL).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// As given: the label of its rows and points.
    pub text: String,
    pub method: reqwest::Method,
    pub path: String,
    pub body: Option<String>,
}

/// Parse a template and check its placeholders (each one known, every `{{`
/// closed), its path and its body (JSON once filled in).
pub fn parse_template(t: &str) -> Result<Template, String> {
    if let Err(e) = substitute(t, |name| value_of(name, &Values::example(), enc)) {
        return Err(match e {
            Unfilled::Unclosed => format!("--query '{t}': a '{{{{' is not closed by '}}}}'"),
            Unfilled::Unknown(name) => format!(
                "--query '{t}': unknown placeholder {{{{{name}}}}}: expected one of {}",
                PLACEHOLDERS
                    .iter()
                    .map(|(p, _)| format!("{{{{{p}}}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let trimmed = t.trim();
    let (method, path, body) = if let Some(r) = trimmed.strip_prefix("POST ") {
        let r = r.trim_start();
        let (path, body) = r.split_once(char::is_whitespace).unwrap_or((r, ""));
        let body = body.trim();
        (
            reqwest::Method::POST,
            path,
            (!body.is_empty()).then(|| body.to_string()),
        )
    } else if let Some(r) = trimmed.strip_prefix("GET ") {
        (reqwest::Method::GET, r.trim_start(), None)
    } else {
        (reqwest::Method::GET, trimmed, None)
    };
    if !path.starts_with('/') {
        return Err(format!(
            "--query '{t}': expected a path under --query-endpoint (e.g. /api/search?q=…), or POST PATH BODY"
        ));
    }
    if let Some(b) = &body {
        let filled = fill(b, &Values::example(), json_escape);
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&filled) {
            return Err(format!(
                "--query '{t}': the body is not JSON ({e}); put placeholders inside strings, e.g. {{\"project\": \"{{{{project}}}}\"}}"
            ));
        }
    }
    Ok(Template {
        text: t.to_string(),
        method,
        path: path.to_string(),
        body,
    })
}

/// Trace ids exported in this run, the most recent kept, shared by the
/// export sessions and the query load.
#[derive(Debug, Default)]
pub struct RecentTraces {
    ids: Mutex<VecDeque<[u8; 16]>>,
}

const RECENT_KEPT: usize = 1024;

impl RecentTraces {
    pub fn push(&self, id: [u8; 16]) {
        if let Ok(mut ids) = self.ids.lock() {
            if ids.len() == RECENT_KEPT {
                ids.pop_front();
            }
            ids.push_back(id);
        }
    }

    /// No id yet.
    pub fn is_empty(&self) -> bool {
        self.ids.lock().map_or(true, |ids| ids.is_empty())
    }

    /// One of the recent ids, at random; a random id before the first export.
    pub fn pick(&self, rng: &mut fastrand::Rng) -> [u8; 16] {
        if let Ok(ids) = self.ids.lock() {
            if !ids.is_empty() {
                return ids[rng.usize(..ids.len())];
            }
        }
        rng.u128(1..).to_be_bytes()
    }
}

/// The query load of a run.
#[derive(Debug, Clone)]
pub struct QueryPlan {
    /// The query API's base URL; `None` for the in-process mock's.
    pub endpoint: Option<String>,
    /// The endpoint's path, put before every template's.
    pub prefix: String,
    pub rate: f64,
    pub templates: Vec<Template>,
    /// Headers of every query (the platform's credentials).
    pub headers: Vec<(String, String)>,
    pub service: String,
    pub project: String,
}

impl QueryPlan {
    /// Where queries go: the endpoint given, else the origin of the target
    /// `base` (the in-process mock answers them there).
    pub fn endpoint_for(&self, base: &str) -> String {
        self.endpoint.clone().unwrap_or_else(|| {
            reqwest::Url::parse(base)
                .map(|mut u| {
                    u.set_path("");
                    u.to_string().trim_end_matches('/').to_string()
                })
                .unwrap_or_else(|_| base.to_string())
        })
    }
}

/// The values placeholders take for one query.
pub struct Values<'a> {
    pub service: &'a str,
    pub project: &'a str,
    pub trace_id: [u8; 16],
    pub start_ns: u64,
    pub now_ns: u64,
}

impl Values<'static> {
    /// Values of the right shapes, to check a template with.
    fn example() -> Self {
        Values {
            service: "service",
            project: "project",
            trace_id: [0xab; 16],
            start_ns: 1_700_000_000_000_000_000,
            now_ns: 1_700_000_060_000_000_000,
        }
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `s` as the inside of a JSON string.
fn json_escape(s: &str) -> String {
    let quoted = serde_json::Value::from(s).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// A path template with its placeholders replaced (values percent-encoded),
/// safe in a URI.
fn render(t: &str, v: &Values) -> String {
    uri_safe(&fill(t, v, enc))
}

/// A checked template with its placeholders filled in, text values
/// through `esc`.
fn fill(t: &str, v: &Values, esc: fn(&str) -> String) -> String {
    substitute(t, |name| value_of(name, v, esc)).unwrap_or_else(|_| t.to_string())
}

/// What keeps a template from being filled in.
enum Unfilled {
    Unclosed,
    Unknown(String),
}

/// `t` with each `{{ name }}` replaced by `value(name)`.
fn substitute(t: &str, mut value: impl FnMut(&str) -> Option<String>) -> Result<String, Unfilled> {
    let mut out = String::with_capacity(t.len() + 32);
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after.find("}}").ok_or(Unfilled::Unclosed)?;
        let name = after[..j].trim();
        out.push_str(&value(name).ok_or_else(|| Unfilled::Unknown(name.to_string()))?);
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A placeholder's value (one of [`PLACEHOLDERS`]), text values through
/// `esc`; `None` for a name that is not one.
fn value_of(name: &str, v: &Values, esc: fn(&str) -> String) -> Option<String> {
    Some(match name {
        "service" => esc(v.service),
        "project" => esc(v.project),
        "trace_id" => super::hex(&v.trace_id),
        "start" => (v.start_ns / 1_000_000_000).to_string(),
        "end" => v.now_ns.div_ceil(1_000_000_000).to_string(),
        "start_ms" => (v.start_ns / 1_000_000).to_string(),
        "end_ms" => v.now_ns.div_ceil(1_000_000).to_string(),
        "start_ns" => v.start_ns.to_string(),
        "end_ns" => v.now_ns.to_string(),
        _ => return None,
    })
}

/// Percent-encode what may not appear in a URI as is (TraceQL's braces,
/// quotes and spaces written plainly in a template).
fn uri_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_graphic() && !"\"{}|<>\\^`".contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

impl Template {
    /// The query with its placeholders filled in: its path (under the
    /// endpoint's path `prefix`) and its body.
    pub fn fill(&self, prefix: &str, v: &Values) -> (String, Option<String>) {
        (
            format!("{prefix}{}", render(&self.path, v)),
            self.body.as_deref().map(|b| fill(b, v, json_escape)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(service: &'a str, project: &'a str) -> Values<'a> {
        Values {
            service,
            project,
            trace_id: [0xab; 16],
            start_ns: 1_700_000_000_123_456_789,
            now_ns: 1_700_000_060_000_000_001,
        }
    }

    #[test]
    fn templates_render_their_placeholders_percent_encoded() {
        let v = values("my agent", "p/1");
        assert_eq!(
            render(
                "/api/search?tags=service.name%3D{{service}}&start={{start}}&end={{end}}",
                &v
            ),
            "/api/search?tags=service.name%3Dmy%20agent&start=1700000000&end=1700000061"
        );
        assert_eq!(
            render("/api/traces/{{trace_id}}", &v),
            format!("/api/traces/{}", "ab".repeat(16))
        );
        assert_eq!(
            render("/v1/projects/{{ project }}/spans?since={{start_ms}}", &v),
            "/v1/projects/p%2F1/spans?since=1700000000123"
        );
    }

    #[test]
    fn bad_templates_say_what_to_fix() {
        assert!(parse_template("/api/search?q={{service}}").is_ok());
        assert!(parse_template("http://tempo:3200/api/traces/{{trace_id}}").is_err());
        let e = parse_template("/api/search?q={{svc}}").unwrap_err();
        assert!(
            e.contains("unknown placeholder {{svc}}") && e.contains("{{service}}"),
            "{e}"
        );
        assert!(parse_template("/x/{{service")
            .unwrap_err()
            .contains("not closed"));
        assert!(parse_template("api/search").unwrap_err().contains("a path"));
        // TraceQL's own braces are not placeholders, and leave encoded.
        let q = "/api/search?q={ span.http.status_code = 500 }";
        assert!(parse_template(q).is_ok());
        assert_eq!(
            render(q, &values("", "")),
            "/api/search?q=%7B%20span.http.status_code%20=%20500%20%7D"
        );
    }

    #[test]
    fn post_templates_carry_a_json_body_with_placeholders_escaped_for_it() {
        let t = parse_template(
            r#"POST /graphql {"query": "{ trace(id: \"{{trace_id}}\") { spans } }", "project": "{{project}}", "from": {{start_ms}}}"#,
        )
        .unwrap();
        assert_eq!(t.method, reqwest::Method::POST);
        assert_eq!(t.path, "/graphql");
        let v = values("a \"quoted\" agent", "p/1");
        let (path, body) = t.fill("/phoenix", &v);
        assert_eq!(path, "/phoenix/graphql");
        let body: serde_json::Value = serde_json::from_str(&body.unwrap()).unwrap();
        assert_eq!(
            body["query"],
            format!("{{ trace(id: \"{}\") {{ spans }} }}", "ab".repeat(16))
        );
        assert_eq!(body["project"], "p/1");
        assert_eq!(body["from"], 1_700_000_000_123u64);
        // A service name with quotes stays inside its string.
        let t = parse_template(r#"POST /api/v1/runs/query {"filter": "{{service}}"}"#).unwrap();
        let (_, body) = t.fill("", &v);
        let body: serde_json::Value = serde_json::from_str(&body.unwrap()).unwrap();
        assert_eq!(body["filter"], "a \"quoted\" agent");
        // Without a body, and GET spelled out.
        let t = parse_template("POST /btql").unwrap();
        assert_eq!((t.path.as_str(), t.body.as_deref()), ("/btql", None));
        let t = parse_template("GET /api/traces/{{trace_id}}").unwrap();
        assert_eq!(
            (t.method, t.path.as_str()),
            (reqwest::Method::GET, "/api/traces/{{trace_id}}")
        );
        // A GET path keeps its spaces (TraceQL).
        let t = parse_template("/api/search?q={ .a = 1 }").unwrap();
        assert_eq!(t.method, reqwest::Method::GET);
        let (path, body) = t.fill("", &v);
        assert_eq!(path, "/api/search?q=%7B%20.a%20=%201%20%7D");
        assert!(body.is_none());
        // A body that is not JSON, or a placeholder outside a string.
        let e = parse_template(r#"POST /graphql {"query": "#).unwrap_err();
        assert!(e.contains("the body is not JSON"), "{e}");
        let e = parse_template(r#"POST /q {"p": {{project}}}"#).unwrap_err();
        assert!(e.contains("inside strings"), "{e}");
        let e = parse_template("DELETE /api/traces").unwrap_err();
        assert!(e.contains("POST PATH BODY"), "{e}");
    }

    #[test]
    fn recent_traces_pick_an_exported_id() {
        let r = RecentTraces::default();
        let mut rng = fastrand::Rng::with_seed(1);
        assert_ne!(r.pick(&mut rng), [0; 16]);
        r.push([7; 16]);
        assert_eq!(r.pick(&mut rng), [7; 16]);
        for i in 0..2000u32 {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            r.push(id);
        }
        assert_eq!(r.ids.lock().unwrap().len(), RECENT_KEPT);
    }
}
