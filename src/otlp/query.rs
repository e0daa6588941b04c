//! Query load for trace backends: searches and trace lookups sent at a fixed
//! rate alongside ingestion (`otlp-traces --query-endpoint URL
//! --queries-per-s N --query TEMPLATE`).
//!
//! Queries are an open-model side load: the k-th leaves at k/N seconds
//! whatever the ones before it are doing, and its latency counts from that
//! time. Their records go to the same collector as the exports, grouped by
//! template, and stay out of the run's totals: the report gives them their
//! own table.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Platform;
use crate::client::{Client, Expect, Prepared};
use crate::record::{Group, RequestRecord};

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
        Platform::Otlp => Some(vec![
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

/// Check a template's placeholders: each one known, every `{{` closed.
pub fn check_template(t: &str) -> Result<(), String> {
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let j = after
            .find("}}")
            .ok_or_else(|| format!("--query '{t}': a '{{{{' is not closed by '}}}}'"))?;
        let name = after[..j].trim();
        if !PLACEHOLDERS.iter().any(|(p, _)| *p == name) {
            return Err(format!(
                "--query '{t}': unknown placeholder {{{{{name}}}}}: expected one of {}",
                PLACEHOLDERS
                    .iter()
                    .map(|(p, _)| format!("{{{{{p}}}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        rest = &after[j + 2..];
    }
    if !t.starts_with('/') {
        return Err(format!(
            "--query '{t}': expected a path under --query-endpoint, e.g. /api/search?q=…"
        ));
    }
    Ok(())
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
    pub templates: Vec<String>,
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
struct Values<'a> {
    service: &'a str,
    project: &'a str,
    trace_id: [u8; 16],
    start_ns: u64,
    now_ns: u64,
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A template with its placeholders replaced (values percent-encoded).
fn render(t: &str, v: &Values) -> String {
    let mut out = String::with_capacity(t.len() + 32);
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            out.push_str(&rest[i..]);
            return out;
        };
        let value = match after[..j].trim() {
            "service" => enc(v.service),
            "project" => enc(v.project),
            "trace_id" => super::hex(&v.trace_id),
            "start" => (v.start_ns / 1_000_000_000).to_string(),
            "end" => v.now_ns.div_ceil(1_000_000_000).to_string(),
            "start_ms" => (v.start_ns / 1_000_000).to_string(),
            "end_ms" => v.now_ns.div_ceil(1_000_000).to_string(),
            "start_ns" => v.start_ns.to_string(),
            "end_ns" => v.now_ns.to_string(),
            other => format!("{{{{{other}}}}}"),
        };
        out.push_str(&value);
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    uri_safe(&out)
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

/// A GET of one rendered template, under the endpoint's path.
fn prepared(path: String, group: &Group) -> Prepared {
    let mut p = Prepared::post("", bytes::Bytes::new(), Expect::Status);
    p.method = reqwest::Method::GET;
    p.path = path.into();
    p.group = Some(group.clone());
    p
}

/// Most queries in flight at once; beyond it a query waits for a slot (its
/// latency still counts from its scheduled time).
const MAX_IN_FLIGHT: usize = 512;

/// Send the queries until `stop`; their records go to `records`. `hard`
/// cancels those in flight.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    plan: Arc<QueryPlan>,
    client: Arc<Client>,
    recent: Arc<RecentTraces>,
    records: std::sync::mpsc::Sender<RequestRecord>,
    origin: Instant,
    start_ns: u64,
    stop: CancellationToken,
    hard: CancellationToken,
) {
    let groups: Vec<Group> = plan
        .templates
        .iter()
        .map(|t| Group::Query(t.as_str().into()))
        .collect();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let tasks = tokio_util::task::TaskTracker::new();
    let mut rng = fastrand::Rng::new();
    let gap = 1.0 / plan.rate;
    // The first query leaves one gap in, once the first exports are out.
    for k in 1u64.. {
        let due = origin + Duration::from_secs_f64(k as f64 * gap);
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = crate::timer::sleep_until(due) => {}
        }
        let i = (k - 1) as usize % plan.templates.len();
        let now_ns = super::now_unix_ns();
        let path = plan.prefix.clone()
            + &render(
                &plan.templates[i],
                &Values {
                    service: &plan.service,
                    project: &plan.project,
                    trace_id: recent.pick(&mut rng),
                    start_ns,
                    now_ns,
                },
            );
        let req = prepared(path, &groups[i]);
        let scheduled_us = due.saturating_duration_since(origin).as_micros() as u64;
        let (client, records, slots, hard) =
            (client.clone(), records.clone(), slots.clone(), hard.clone());
        tasks.spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            let rec = tokio::select! {
                r = client.send(&req, Some(scheduled_us)) => r,
                _ = hard.cancelled() => return,
            };
            let _ = records.send(rec);
        });
    }
    tasks.close();
    tasks.wait().await;
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
        assert!(check_template("/api/search?q={{service}}").is_ok());
        assert!(check_template("http://tempo:3200/api/traces/{{trace_id}}").is_err());
        let e = check_template("/api/search?q={{svc}}").unwrap_err();
        assert!(
            e.contains("unknown placeholder {{svc}}") && e.contains("{{service}}"),
            "{e}"
        );
        assert!(check_template("/x/{{service")
            .unwrap_err()
            .contains("not closed"));
        assert!(check_template("api/search").unwrap_err().contains("a path"));
        // TraceQL's own braces are not placeholders, and leave encoded.
        let q = "/api/search?q={ span.http.status_code = 500 }";
        assert!(check_template(q).is_ok());
        assert_eq!(
            render(q, &values("", "")),
            "/api/search?q=%7B%20span.http.status_code%20=%20500%20%7D"
        );
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
