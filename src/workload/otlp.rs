//! `otlp-traces`: load for the trace ingestion of AI-observability backends.
//!
//! Every request exports one synthetic trace over OTLP/HTTP (protobuf, or
//! JSON with `--otlp-json`; gzip on) or OTLP/gRPC (`--otlp-protocol grpc`:
//! the same gzipped protobuf in a gRPC frame), built with the OpenTelemetry protobuf
//! types. The trace's scenario is drawn from the mix; its encoded size,
//! spans and tokens travel with the request into the record, so the report
//! can say how many bytes and spans the backend took in. With `--mb-per-s`
//! arrivals are paced by bytes: each trace takes the share of the schedule
//! its size asks for, so the byte rate holds whatever the mix draws.

use std::sync::Arc;

use bytes::Bytes;

use super::{Session, Turn, Workload};
use crate::client::{Expect, Prepared};
use crate::otlp::query::RecentTraces;
use crate::otlp::{encode, now_unix_ns, Dress, Generator, Kind, OtlpSpec};
use crate::record::{Group, Payload, RequestRecord};

pub struct OtlpTraces {
    spec: Arc<OtlpSpec>,
    cumulative: Arc<Vec<(u32, Kind)>>,
    dress: Dress,
}

impl OtlpTraces {
    pub fn new(spec: OtlpSpec) -> Self {
        let mut total = 0;
        let cumulative = spec
            .mix
            .iter()
            .map(|(k, w)| {
                total += w;
                (total, *k)
            })
            .collect();
        let dress = spec.dress();
        OtlpTraces {
            spec: Arc::new(spec),
            cumulative: Arc::new(cumulative),
            dress,
        }
    }

    fn session_seeded(&self, seed: u64) -> OtlpSession {
        OtlpSession {
            spec: self.spec.clone(),
            cumulative: self.cumulative.clone(),
            gen: Generator::new(seed, self.dress.clone()),
            rng: fastrand::Rng::with_seed(seed.rotate_left(17) ^ 0x9e37_79b9),
        }
    }
}

struct OtlpSession {
    spec: Arc<OtlpSpec>,
    cumulative: Arc<Vec<(u32, Kind)>>,
    gen: Generator,
    rng: fastrand::Rng,
}

impl OtlpSession {
    fn pick(&mut self) -> Kind {
        let total = self.cumulative.last().map_or(1, |c| c.0);
        let x = self.rng.u32(0..total);
        let i = self.cumulative.partition_point(|c| c.0 <= x);
        self.cumulative[i.min(self.cumulative.len() - 1)].1
    }
}

fn post(spec: &OtlpSpec, body: Bytes) -> Prepared {
    let mut p = Prepared::post("", body, Expect::Otlp);
    p.path = spec.path.clone().into();
    p
}

impl Session for OtlpSession {
    fn next(&mut self, _turn: Turn) -> Option<Prepared> {
        let kind = self.pick();
        let t = self.gen.trace(kind, now_unix_ns());
        let (body, raw) = encode(&t.request, self.spec.json());
        // Over gRPC the gzipped message goes in a frame of 5 bytes more.
        let wire = body.len() as u64 + if self.spec.grpc() { 5 } else { 0 };
        if self.spec.platform == crate::otlp::Platform::Console {
            crate::print_stdout(&crate::otlp::gen::console::render(&t, raw));
        }
        let mut p = post(&self.spec, body);
        p.group = Some(Group::TraceScenario(kind.name().into()));
        p.exported_trace = Some(t.trace_id);
        p.payload = Payload {
            sent_bytes: raw as u64,
            wire_bytes: wire,
            spans: t.spans as u64,
            rejected_spans: 0,
            tokens: t.tokens,
        };
        if let Some(mean) = self.spec.pace_mean_bytes {
            p.weight = raw as f64 / mean.max(1.0);
        }
        Some(p)
    }
}

impl Workload for OtlpTraces {
    fn name(&self) -> &'static str {
        "otlp-traces"
    }

    fn session(&self, vu: u64) -> Box<dyn Session> {
        Box::new(self.session_seeded(vu ^ fastrand::u64(..)))
    }

    fn paced_by_weight(&self) -> bool {
        self.spec.pace_mean_bytes.is_some()
    }

    /// An export with no spans: it checks the endpoint and adds no data.
    fn preflight(&self) -> Prepared {
        let empty =
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::default();
        post(&self.spec, encode(&empty, self.spec.json()).0)
    }
}

/// The ids of the exports the backend accepted, kept as they end, for the
/// trace-query load's `{{trace_id}}`.
pub struct AcceptedTraces(pub Arc<RecentTraces>);

impl crate::metrics::Observer for AcceptedTraces {
    fn record(&mut self, r: &RequestRecord) {
        if let (Some(id), true) = (r.exported_trace, r.is_ok()) {
            self.0.push(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::{parse_mix, Platform, DEFAULT_MIX};

    fn spec() -> OtlpSpec {
        OtlpSpec {
            mix: parse_mix(DEFAULT_MIX).unwrap(),
            platform: Platform::Otlp,
            protocol: Default::default(),
            service_name: "s".into(),
            project: "p".into(),
            path: "/v1/traces".into(),
            pace_mean_bytes: None,
            recent: Arc::default(),
            query_only: None,
        }
    }

    #[test]
    fn the_mix_is_drawn_in_its_proportions() {
        let w = OtlpTraces::new(spec());
        let mut s = w.session_seeded(3);
        let mut n = std::collections::BTreeMap::new();
        for _ in 0..10_000 {
            *n.entry(s.pick()).or_insert(0u32) += 1;
        }
        for (k, want) in [
            (Kind::SimpleQuery, 4000.0),
            (Kind::SingleServiceSearch, 3000.0),
            (Kind::DelegatedBooking, 2000.0),
            (Kind::MultiServiceComplex, 1000.0),
        ] {
            let got = n[&k] as f64;
            assert!((got - want).abs() < 5.0 * want.sqrt(), "{k:?}: {got}");
        }
    }
}
