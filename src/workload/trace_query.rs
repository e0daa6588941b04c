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

use std::sync::Arc;

use bytes::Bytes;

use super::{Session, Turn, Workload};
use crate::client::{Expect, Prepared};
use crate::otlp::now_unix_ns;
use crate::otlp::query::{QueryPlan, RecentTraces, Values};
use crate::record::Group;

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

impl TraceQueries {
    pub fn new(plan: Arc<QueryPlan>, recent: Arc<RecentTraces>, start_ns: u64) -> Self {
        let groups = plan
            .templates
            .iter()
            .map(|t| Group::Query(t.text.as_str().into()))
            .collect();
        TraceQueries(Arc::new(Inner {
            plan,
            recent,
            start_ns,
            groups,
        }))
    }
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

    fn session(&self, vu: u64) -> Box<dyn Session> {
        Box::new(QuerySession {
            w: self.0.clone(),
            rng: fastrand::Rng::with_seed(vu ^ 0x7a11),
        })
    }

    fn preflight(&self) -> Prepared {
        self.0.query(0, &mut fastrand::Rng::new())
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
