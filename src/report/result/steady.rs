//! The steady state of a result: the figures of the run's plateau at full
//! load beside the whole run's (`metrics::plateau` finds it), or why it
//! had none.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::plateau::{NoPlateau, PlateauTarget, Steady, AT_LOAD};
use crate::metrics::LatencyStats;

/// The run at full load only: ramp-up and drain left out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SteadyState {
    /// Whether the run reached a plateau.
    pub found: bool,
    /// How it was found, or why there is none, in words.
    pub note: String,
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub figures: Option<SteadyFigures>,
}

/// The plateau's figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SteadyFigures {
    /// Seconds from the start of the load: [start_s, end_s).
    pub start_s: f64,
    pub end_s: f64,
    pub duration_s: f64,
    /// Mean requests in flight over it.
    pub in_flight: f64,
    /// Requests that ended in it.
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub ok_rps: f64,
    /// Output tokens of ok requests per second.
    pub tokens_per_s: f64,
    /// Ok requests that met every SLO, per second (only with SLOs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<f64>,
    /// Latencies in ms: `ttft`, `itl`, `tpot`, `e2e` where measured.
    pub latency: BTreeMap<String, LatencyStats>,
}

fn target_words(t: PlateauTarget) -> String {
    use crate::fmt::fmt_num;
    match t {
        PlateauTarget::Vus { peak, idle: false } => {
            format!(
                "in flight ≥ {:.0}% of {} VUs",
                AT_LOAD * 100.0,
                fmt_num(peak)
            )
        }
        PlateauTarget::Vus { peak, idle: true } => {
            format!("running VUs ≥ {:.0}% of {}", AT_LOAD * 100.0, fmt_num(peak))
        }
        PlateauTarget::Rate { peak, .. } => format!(
            "completions ≥ {:.0}% of {} req/s (the in-flight the rate holds)",
            AT_LOAD * 100.0,
            fmt_num(peak)
        ),
    }
}

impl SteadyState {
    /// From the collector's plateau; `has_slos`: goodput applies.
    pub fn of(found: Result<Steady, NoPlateau>, has_slos: bool) -> Self {
        match found {
            Err(e) => SteadyState {
                found: false,
                note: format!("no plateau: {e}"),
                figures: None,
            },
            Ok(s) => {
                let a = &s.agg;
                let d = (s.end_s - s.start_s) as f64;
                let latency = ["ttft", "itl", "tpot", "e2e"]
                    .into_iter()
                    .filter_map(|m| {
                        let h = a.hist.get(m).filter(|h| !h.is_empty())?;
                        Some((m.to_string(), LatencyStats::of(h)))
                    })
                    .collect();
                SteadyState {
                    found: true,
                    note: format!(
                        "{} from {} s to {} s; ramp-up and drain left out",
                        target_words(s.target),
                        s.start_s,
                        s.end_s
                    ),
                    figures: Some(SteadyFigures {
                        start_s: s.start_s as f64,
                        end_s: s.end_s as f64,
                        duration_s: d,
                        in_flight: (s.in_flight * 100.0).round() / 100.0,
                        requests: a.requests,
                        ok: a.ok,
                        errors: a.errors,
                        error_rate: a.error_rate(),
                        ok_rps: a.ok as f64 / d.max(1e-9),
                        tokens_per_s: a.output_tokens as f64 / d.max(1e-9),
                        goodput: has_slos.then(|| a.good as f64 / d.max(1e-9)),
                        latency,
                    }),
                }
            }
        }
    }
}
