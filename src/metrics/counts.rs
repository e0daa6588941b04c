//! An [`Aggregate`] as it is written into the JSON result: every sum behind
//! the figures and the serialized histograms, so that a result can be read
//! back into the aggregate it came from — what `merge` adds up exactly and
//! `compare` computes its figures from.

use std::collections::BTreeMap;

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{Aggregate, LATENCY_METRICS};
use crate::record::{ErrorClass, TokenSource};

/// Failed requests of one class and status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorCount {
    pub class: ErrorClass,
    pub status: Option<u16>,
    pub count: u64,
    /// The first message seen.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The exact state of an aggregate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub interrupted: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    #[serde(default)]
    pub images: u64,
    #[serde(default)]
    pub image_tokens: u64,
    pub usage_checked: u64,
    pub usage_mismatch: u64,
    pub scheduled: u64,
    pub queued: u64,
    pub texts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dims: Option<u32>,
    #[serde(default, skip_serializing_if = "crate::record::Payload::is_empty")]
    pub payload: crate::record::Payload,
    #[serde(default, skip_serializing_if = "crate::record::Received::is_empty")]
    pub received: crate::record::Received,
    pub prefill_tokens: u64,
    pub prefill_us: u64,
    pub decode_tokens: u64,
    pub decode_us: u64,
    /// Ok requests that met every SLO.
    pub good: u64,
    /// The first send and the last end, µs since the start of the load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_start_us: Option<u64>,
    pub last_end_us: u64,
    /// Requests sent again on a fresh connection (the kept-alive one was
    /// closed by the server).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reconnects: u64,
    /// Requests answered over HTTP/2.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub http2: u64,
    /// What the server reported about itself.
    #[serde(default, skip_serializing_if = "super::ServerCounts::is_empty")]
    pub server: super::ServerCounts,
    #[serde(default)]
    pub statuses: BTreeMap<u16, u64>,
    #[serde(default)]
    pub output_sources: BTreeMap<TokenSource, u64>,
    #[serde(default)]
    pub input_sources: BTreeMap<TokenSource, u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors_by: Vec<ErrorCount>,
    /// A script's own metrics (every trend value: they merge exactly).
    #[serde(
        default,
        skip_serializing_if = "super::custom::CustomMetrics::is_empty"
    )]
    pub custom: super::custom::CustomMetrics,
    /// Non-empty histograms (µs), as [`encode_histogram`] writes them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub histograms: BTreeMap<String, String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Serialize a histogram in HdrHistogram's standard V2 deflate form, base64.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .expect("serializing to memory cannot fail");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// Read a histogram written by [`encode_histogram`] (or any HdrHistogram V2
/// encoder, compressed or not).
pub fn decode_histogram(s: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("not an HdrHistogram: {e:?}"))
}

/// Every non-empty histogram of `a`, encoded.
pub fn encode_histograms(a: &Aggregate) -> BTreeMap<String, String> {
    a.hist
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(k, h)| (k.to_string(), encode_histogram(h)))
        .collect()
}

impl Aggregate {
    /// The exact state of this aggregate; histograms only when `with_histograms`.
    pub fn to_counts(&self, with_histograms: bool) -> Counts {
        Counts {
            requests: self.requests,
            ok: self.ok,
            errors: self.errors,
            interrupted: self.interrupted,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            reasoning_tokens: self.reasoning_tokens,
            images: self.images,
            image_tokens: self.image_tokens,
            usage_checked: self.usage_checked,
            usage_mismatch: self.usage_mismatch,
            scheduled: self.scheduled,
            queued: self.queued,
            texts: self.texts,
            dims: self.dims,
            payload: self.payload,
            received: self.received,
            prefill_tokens: self.prefill_tokens,
            prefill_us: self.prefill_us,
            decode_tokens: self.decode_tokens,
            decode_us: self.decode_us,
            good: self.good,
            first_start_us: self.first_start_us,
            last_end_us: self.last_end_us,
            reconnects: self.reconnects,
            http2: self.http2,
            server: self.server,
            custom: self.custom.clone(),
            statuses: self.statuses.clone(),
            output_sources: self.output_sources.clone(),
            input_sources: self.input_sources.clone(),
            errors_by: self
                .errors_by
                .iter()
                .map(|(&(class, status), &count)| ErrorCount {
                    class,
                    status,
                    count,
                    message: self
                        .error_messages
                        .get(&(class, status))
                        .cloned()
                        .unwrap_or_default(),
                })
                .collect(),
            histograms: if with_histograms {
                encode_histograms(self)
            } else {
                BTreeMap::new()
            },
        }
    }

    /// The aggregate back from its counts; `histograms` when they are kept
    /// apart from the counts (the result's top-level `histograms`).
    pub fn from_counts(
        c: &Counts,
        histograms: Option<&BTreeMap<String, String>>,
    ) -> Result<Aggregate, String> {
        let mut a = Aggregate {
            requests: c.requests,
            ok: c.ok,
            errors: c.errors,
            interrupted: c.interrupted,
            input_tokens: c.input_tokens,
            output_tokens: c.output_tokens,
            reasoning_tokens: c.reasoning_tokens,
            images: c.images,
            image_tokens: c.image_tokens,
            usage_checked: c.usage_checked,
            usage_mismatch: c.usage_mismatch,
            scheduled: c.scheduled,
            queued: c.queued,
            texts: c.texts,
            dims: c.dims,
            payload: c.payload,
            received: c.received,
            prefill_tokens: c.prefill_tokens,
            prefill_us: c.prefill_us,
            decode_tokens: c.decode_tokens,
            decode_us: c.decode_us,
            good: c.good,
            first_start_us: c.first_start_us,
            last_end_us: c.last_end_us,
            reconnects: c.reconnects,
            http2: c.http2,
            server: c.server,
            custom: c.custom.clone(),
            statuses: c.statuses.clone(),
            output_sources: c.output_sources.clone(),
            input_sources: c.input_sources.clone(),
            ..Aggregate::default()
        };
        for e in &c.errors_by {
            a.errors_by.insert((e.class, e.status), e.count);
            if !e.message.is_empty() {
                a.error_messages
                    .insert((e.class, e.status), e.message.clone());
            }
        }
        for (name, enc) in histograms.unwrap_or(&c.histograms) {
            let Some(key) = LATENCY_METRICS.iter().find(|m| **m == name) else {
                return Err(format!("unknown histogram '{name}'"));
            };
            let h = decode_histogram(enc).map_err(|e| format!("histogram '{name}': {e}"))?;
            a.hist.insert(key, h);
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Outcome, RequestRecord};

    #[test]
    fn an_aggregate_survives_its_json_form_exactly() {
        let mut a = Aggregate::default();
        for i in 0..500u64 {
            let mut r = RequestRecord::new(i * 1000, i * 1000 + 7);
            r.end_us = r.start_us + 300_000 + i * 97;
            r.ttft_us = Some(40_000 + i * 13);
            r.output_tokens = 20;
            r.input_tokens = 100;
            r.itl_us = vec![9_000 + i as u32; 19];
            r.status = Some(200);
            a.add_judged(&r, true, i % 3 == 0);
        }
        let mut e = RequestRecord::new(0, 0);
        e.status = Some(503);
        e.outcome = Outcome::Error(ErrorClass::Http5xx);
        e.error_message = Some("overloaded".into());
        a.add(&e, true);

        let json = serde_json::to_string(&a.to_counts(true)).unwrap();
        let back: Counts = serde_json::from_str(&json).unwrap();
        let b = Aggregate::from_counts(&back, None).unwrap();
        assert_eq!(b.to_counts(true), a.to_counts(true));
        for m in ["ttft", "itl", "tpot", "e2e", "latency", "schedule_lag"] {
            assert_eq!(a.stats(m), b.stats(m), "{m}");
        }
        assert_eq!(b.error_messages.values().next().unwrap(), "overloaded");
        assert_eq!(b.prefill_rate(), a.prefill_rate());
    }

    #[test]
    fn garbage_histograms_are_refused_with_their_name() {
        let mut c = Counts::default();
        c.histograms
            .insert("ttft".into(), "bm90IGEgaGlzdG9ncmFt".into());
        let err = Aggregate::from_counts(&c, None).unwrap_err();
        assert!(err.starts_with("histogram 'ttft'"), "{err}");
        c.histograms.clear();
        c.histograms.insert("speed".into(), String::new());
        assert!(Aggregate::from_counts(&c, None)
            .unwrap_err()
            .contains("unknown histogram 'speed'"));
    }
}
