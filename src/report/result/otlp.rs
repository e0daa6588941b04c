//! The figures of an otlp-traces run: traces and spans the backend
//! accepted, bytes sent and on the wire, one row per trace scenario of the
//! mix, and one per query template of the query load beside it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::{Aggregate, LatencyStats};
use crate::record::Group;

/// What an otlp-traces run sent and the backend accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtlpFigures {
    /// Exports the backend accepted (2xx), one trace each.
    pub traces: u64,
    pub traces_per_s: f64,
    /// Spans of accepted exports, less those it said it rejected.
    pub spans_accepted: u64,
    pub spans_per_s: f64,
    /// Spans rejected in partial successes.
    pub rejected_spans: u64,
    /// Exports answered with an HTTP error or not answered.
    pub failed_exports: u64,
    /// Encoded payload sent (before compression), bytes and MB/s.
    pub payload_bytes: u64,
    pub payload_mb_per_s: f64,
    /// Bytes on the wire (gzip), and MB/s.
    pub wire_bytes: u64,
    pub wire_mb_per_s: f64,
    /// Model tokens the accepted traces record.
    pub tokens: u64,
    /// One row per trace scenario.
    pub mix: Vec<MixRow>,
    /// The query load: one row per query template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<QueryRow>,
}

/// One query template of the query load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryRow {
    pub query: String,
    /// Queries answered (ok or not).
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    /// Answered queries per second, over the time they were sent.
    pub per_s: f64,
    /// Scheduled send → end of the answer, ms (ok queries).
    pub latency: LatencyStats,
    /// How many of each status.
    pub statuses: BTreeMap<String, u64>,
}

/// One trace scenario of the mix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MixRow {
    pub scenario: String,
    /// Exports sent, and accepted.
    pub sent: u64,
    pub traces: u64,
    /// Share of the exports sent.
    pub share: f64,
    /// Export latency, ms.
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Mean encoded size of a trace, bytes.
    pub mean_bytes: f64,
    /// Spans accepted, and per trace.
    pub spans: u64,
    pub spans_per_trace: f64,
    pub tokens: u64,
}

impl OtlpFigures {
    pub(super) fn of(t: &Aggregate, by_group: &BTreeMap<Group, Aggregate>, dur: f64) -> Self {
        let p = &t.payload;
        // In the order of the mix: simple to complex, then the size profiles.
        let mut groups: Vec<(&Group, &Aggregate)> = by_group
            .iter()
            .filter(|(g, _)| g.kind() == "trace_scenario")
            .collect();
        groups.sort_by_key(|(g, _)| crate::otlp::Kind::parse(&g.label()));
        let scenarios = || groups.iter().copied();
        let sent_total: u64 = scenarios().map(|(_, a)| a.ok + a.errors).sum();
        let mix = scenarios()
            .map(|(g, a)| {
                let e2e = a.stats("e2e");
                let sent = a.ok + a.errors;
                MixRow {
                    scenario: g.label(),
                    sent,
                    traces: a.ok,
                    share: sent as f64 / sent_total.max(1) as f64,
                    p50_ms: e2e.p50,
                    p95_ms: e2e.p95,
                    mean_bytes: a.payload.sent_bytes as f64 / sent.max(1) as f64,
                    spans: a.payload.accepted_spans(),
                    spans_per_trace: a.payload.spans as f64 / a.ok.max(1) as f64,
                    tokens: a.payload.tokens,
                }
            })
            .collect();
        OtlpFigures {
            traces: t.ok,
            traces_per_s: t.ok as f64 / dur,
            spans_accepted: p.accepted_spans(),
            spans_per_s: p.accepted_spans() as f64 / dur,
            rejected_spans: p.rejected_spans,
            failed_exports: t.errors,
            payload_bytes: p.sent_bytes,
            payload_mb_per_s: p.sent_bytes as f64 / dur / 1e6,
            wire_bytes: p.wire_bytes,
            wire_mb_per_s: p.wire_bytes as f64 / dur / 1e6,
            tokens: p.tokens,
            mix,
            queries: by_group
                .iter()
                .filter(|(g, _)| g.kind() == "query")
                .map(|(g, a)| QueryRow {
                    query: g.label(),
                    sent: a.ok + a.errors,
                    ok: a.ok,
                    errors: a.errors,
                    per_s: (a.ok + a.errors) as f64 / dur,
                    latency: a.stats("latency"),
                    statuses: a
                        .statuses
                        .iter()
                        .map(|(k, v)| (k.to_string(), *v))
                        .collect(),
                })
                .collect(),
        }
    }
}
