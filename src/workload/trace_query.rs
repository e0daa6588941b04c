//! The query load of `otlp-traces`: searches and trace lookups sent to the
//! backend's query API beside ingestion (`--query-endpoint URL
//! --queries-per-s N --query TEMPLATE`).
//!
//! The executor runs it as an open-model side load: the k-th query leaves
//! at k/N seconds whatever the ones before it are doing, and its latency
//! counts from that time. The templates take turns; `{{trace_id}}` is one
//! of the traces the backend accepted so far. Records are grouped by
//! template (`Group::Query`) and stay out of the run's totals: the report
//! gives them their own table.
//!
//! A query-only run (`--test-type query`) runs them as its load (grouped
//! as `Group::QueryOnly`, so they are the run's totals too). Its
//! `{{trace_id}}` comes from the traces the backend already has, found by
//! the templates' searches before the load, and `{{start}}` is an hour
//! before the run: the traces it asks about were sent before it.

use std::sync::Arc;

use bytes::Bytes;

use super::{Session, Turn, Workload};
use crate::client::{Expect, Prepared};
use crate::otlp::now_unix_ns;
use crate::otlp::query::{QueryPlan, RecentTraces, Values};
use crate::record::{Group, RequestRecord};

/// Most queries in flight at once; beyond it a query waits for a slot (its
/// latency still counts from its scheduled time).
pub const MAX_IN_FLIGHT: u64 = 512;

pub struct TraceQueries(Arc<Inner>);

struct Inner {
    plan: Arc<QueryPlan>,
    recent: Arc<RecentTraces>,
    /// The run's start, Unix ns (`{{start}}`).
    start_ns: u64,
    groups: Vec<Group>,
}

/// How far back a query-only run's `{{start}}` is: its traces are older
/// than the run.
pub const QUERY_ONLY_LOOKBACK: std::time::Duration = std::time::Duration::from_secs(3600);

impl TraceQueries {
    pub fn new(plan: Arc<QueryPlan>, recent: Arc<RecentTraces>, start_ns: u64) -> Self {
        Self::with_groups(plan, recent, start_ns, |t| Group::Query(t.into()))
    }

    /// The queries of a query-only run: its load, `{{start}}` an hour ago.
    pub fn query_only(plan: Arc<QueryPlan>, recent: Arc<RecentTraces>) -> Self {
        let start_ns = now_unix_ns().saturating_sub(QUERY_ONLY_LOOKBACK.as_nanos() as u64);
        Self::with_groups(plan, recent, start_ns, |t| Group::QueryOnly(t.into()))
    }

    fn with_groups(
        plan: Arc<QueryPlan>,
        recent: Arc<RecentTraces>,
        start_ns: u64,
        group: impl Fn(&str) -> Group,
    ) -> Self {
        let groups = plan.templates.iter().map(|t| group(&t.text)).collect();
        TraceQueries(Arc::new(Inner {
            plan,
            recent,
            start_ns,
            groups,
        }))
    }
}

/// Trace ids in an answer of a trace API, wherever they are: the values of
/// `traceID`, `traceId` and `trace_id` keys that are 32 hex digits
/// (Tempo's and Jaeger's searches, Phoenix's span and trace lists).
pub fn trace_ids_in(body: &[u8]) -> Vec<[u8; 16]> {
    fn walk(v: &serde_json::Value, out: &mut Vec<[u8; 16]>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if matches!(k.as_str(), "traceID" | "traceId" | "trace_id") {
                        if let Some(id) = v.as_str().and_then(parse_id) {
                            out.push(id);
                            continue;
                        }
                    }
                    walk(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    fn parse_id(s: &str) -> Option<[u8; 16]> {
        let v = u128::from_str_radix(s, 16).ok().filter(|_| s.len() == 32)?;
        Some(v.to_be_bytes())
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        walk(&v, &mut out);
    }
    out.sort_unstable();
    out.dedup();
    out
}

impl Inner {
    /// Query `k` of the load: its template in turn, filled in now.
    fn query(&self, k: u64, rng: &mut fastrand::Rng) -> Prepared {
        let i = k as usize % self.plan.templates.len();
        let t = &self.plan.templates[i];
        let values = Values {
            service: &self.plan.service,
            project: &self.plan.project,
            trace_id: self.recent.pick(rng),
            start_ns: self.start_ns,
            now_ns: now_unix_ns(),
        };
        let (path, body) = t.fill(&self.plan.prefix, &values);
        let mut p = Prepared::post(
            "",
            body.map(Bytes::from).unwrap_or_default(),
            Expect::Status,
        );
        p.method = t.method.clone();
        p.path = path.into();
        p.group = Some(self.groups[i].clone());
        // A search's answer names traces the next lookups can ask for.
        p.keep_body = !t.text.contains("trace_id");
        p
    }
}

struct QuerySession {
    w: Arc<Inner>,
    rng: fastrand::Rng,
}

impl Session for QuerySession {
    fn next(&mut self, turn: Turn) -> Option<Prepared> {
        // The open model's arrival index.
        Some(self.w.query(turn.iteration, &mut self.rng))
    }
}

impl Workload for TraceQueries {
    fn name(&self) -> &'static str {
        "trace-queries"
    }

    /// The traces a search found during the load join those to look up
    /// (a query-only run beside another's ingestion finds them as they
    /// arrive).
    fn answered(&self, rec: &RequestRecord) {
        if let (Some(body), true) = (&rec.body, rec.is_ok()) {
            for id in trace_ids_in(body) {
                self.0.recent.push(id);
            }
        }
    }

    fn session(&self, vu: u64) -> Box<dyn Session> {
        Box::new(QuerySession {
            w: self.0.clone(),
            rng: fastrand::Rng::with_seed(vu ^ 0x7a11),
        })
    }

    fn preflight(&self) -> Prepared {
        self.0.query(0, &mut fastrand::Rng::new())
    }

    /// The templates that do not ask for a trace id (the searches), once.
    fn discovery(&self) -> Vec<Prepared> {
        let mut rng = fastrand::Rng::new();
        (0..self.0.plan.templates.len())
            .filter(|&i| !self.0.plan.templates[i].text.contains("trace_id"))
            .map(|i| {
                let mut p = self.0.query(i as u64, &mut rng);
                p.keep_body = true;
                p
            })
            .collect()
    }

    fn discovered(&self, body: &[u8]) -> usize {
        let ids = trace_ids_in(body);
        for id in &ids {
            self.0.recent.push(*id);
        }
        ids.len()
    }

    fn missing(&self) -> Option<String> {
        let asks = self
            .0
            .plan
            .templates
            .iter()
            .any(|t| t.text.contains("trace_id"));
        (asks && self.0.recent.is_empty()).then(|| {
            "the query API's searches found no trace: {{trace_id}} queries ask for random ids (expect 404s); send traces first, or widen the searches".to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::query::parse_template;

    #[test]
    fn templates_take_turns_with_their_placeholders_filled() {
        let plan = QueryPlan {
            endpoint: None,
            prefix: "/tempo".into(),
            rate: 10.0,
            templates: vec![
                parse_template("/api/search?tags=service.name%3D{{service}}").unwrap(),
                parse_template(r#"POST /q {"trace": "{{trace_id}}"}"#).unwrap(),
            ],
            headers: vec![],
            service: "agent".into(),
            project: "p".into(),
        };
        let recent = Arc::new(RecentTraces::default());
        recent.push([0xcd; 16]);
        let w = TraceQueries::new(Arc::new(plan), recent, 1);
        let mut s = w.session(0);
        let turn = |k| Turn {
            vu: k,
            iteration: k,
            stage: 0,
        };
        let a = s.next(turn(0)).unwrap();
        assert_eq!(a.method, reqwest::Method::GET);
        assert_eq!(a.path, "/tempo/api/search?tags=service.name%3Dagent");
        assert!(matches!(&a.group, Some(Group::Query(q)) if q.starts_with("/api/search")));
        let b = s.next(turn(1)).unwrap();
        assert_eq!(b.method, reqwest::Method::POST);
        let body: serde_json::Value = serde_json::from_slice(&b.body).unwrap();
        assert_eq!(body["trace"], "cd".repeat(16));
        assert_eq!(s.next(turn(2)).unwrap().path, a.path);
    }
}
