//! What the server's own metrics say about the run: per scrape target, the
//! raw samples kept (cumulative counters and gauges at every scrape, each
//! histogram at the first and the last), and the figures derived from them
//! over the run's window only, never from totals since the server started:
//! counter increases (resets handled), rates, gauge mean/max, histogram
//! quantiles (as PromQL's `histogram_quantile` interpolates), prefix-cache
//! hit rate, speculative acceptance, CPU. Two results of the same target
//! (segments of one run) merge by the union of their samples, and their
//! figures are derived again: exact, as if one scraper had seen it all.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::catalog::HistAt;

/// The samples a target gave, as the result keeps them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawTarget {
    /// Counter → `[unix seconds, cumulative value]` at every scrape.
    pub counters: BTreeMap<String, Vec<[f64; 2]>>,
    /// Gauge → `[unix seconds, value]` at every scrape.
    pub gauges: BTreeMap<String, Vec<[f64; 2]>>,
    /// Histogram → its first and last scrape of the run.
    pub histograms: BTreeMap<String, Vec<HistAt>>,
}

/// A gauge over the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaugeStats {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub samples: u64,
}

/// A server histogram's increase over the run, in ms (quantiles need
/// buckets: a source of sums and counts gives only the mean).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistStats {
    pub count: f64,
    pub mean: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
}

/// The figures of one target over the run's window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Seconds from the first scrape to the last.
    pub window_s: f64,
    /// Counter increases: `requests`, `prompt_tokens`, `generation_tokens`…
    pub counts: BTreeMap<String, f64>,
    /// The same per second of the window.
    pub per_s: BTreeMap<String, f64>,
    /// `running`, `waiting`, `kv_cache_usage`, `memory_bytes`…
    pub gauges: BTreeMap<String, GaugeStats>,
    /// `ttft`, `queue_time`, `prefill_time`, `decode_time`, `e2e`, `itl` (ms).
    pub latency: BTreeMap<String, HistStats>,
    /// Prompt tokens served from the prefix cache / prompt tokens looked up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_cache_hit_rate: Option<f64>,
    /// Speculative tokens accepted / drafted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_acceptance: Option<f64>,
    /// Prompt tokens processed per second of prompt processing (llama.cpp).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_rate: Option<f64>,
    /// Tokens generated per second of generation (llama.cpp).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_rate: Option<f64>,
    /// CPU seconds of the server's process per second of the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<f64>,
    /// The client's ttft p50 less the server's (ms): the way there and back,
    /// a gateway's share and the client's own queueing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_gap_ms: Option<f64>,
    /// The same gap between the means (exact where the server's buckets
    /// are too coarse for its p50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_gap_mean_ms: Option<f64>,
}

/// One scrape of the run: gauges and the counters' rates since the scrape
/// before.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesRow {
    /// Seconds from the start of the load.
    pub t_s: f64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gauges: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_s: BTreeMap<String, f64>,
}

/// A counter's increase over samples, a reset (a value below the one
/// before: the server restarted) counting from zero.
pub fn increase(s: &[[f64; 2]]) -> f64 {
    s.windows(2)
        .map(|w| {
            let (a, b) = (w[0][1], w[1][1]);
            if b >= a {
                b - a
            } else {
                b
            }
        })
        .sum()
}

/// The histogram's increase between its first and last scrape.
fn hist_increase(h: &[HistAt]) -> Option<HistAt> {
    let last = h.last()?;
    let first = match h.first() {
        Some(f) if h.len() > 1 && last.count >= f.count => f,
        // One scrape, or a reset: what the last one holds is the run's.
        _ => return (h.len() > 1).then(|| last.clone()),
    };
    let buckets = if first.buckets.len() == last.buckets.len()
        && first
            .buckets
            .iter()
            .zip(&last.buckets)
            .all(|(a, b)| a[0] == b[0])
    {
        first
            .buckets
            .iter()
            .zip(&last.buckets)
            .map(|(a, b)| [b[0], b[1] - a[1]])
            .collect()
    } else {
        Vec::new()
    };
    Some(HistAt {
        t: last.t,
        buckets,
        sum: last.sum - first.sum,
        count: last.count - first.count,
    })
}

/// The q-quantile of `total` observations in cumulative finite buckets,
/// interpolated within the bucket as PromQL's `histogram_quantile` does
/// (beyond the last finite bound: that bound).
pub fn quantile(buckets: &[[f64; 2]], total: f64, q: f64) -> Option<f64> {
    if total <= 0.0 || buckets.is_empty() {
        return None;
    }
    let rank = q * total;
    let mut prev = [0.0f64, 0.0f64];
    for (i, b) in buckets.iter().enumerate() {
        if b[1] >= rank {
            // The first bucket starts at 0 (or at its own bound, if negative).
            let lower = if i == 0 { b[0].min(0.0) } else { prev[0] };
            let in_bucket = b[1] - prev[1];
            if in_bucket <= 0.0 {
                return Some(b[0]);
            }
            return Some(lower + (b[0] - lower) * (rank - prev[1]) / in_bucket);
        }
        prev = *b;
    }
    Some(prev[0])
}

fn hist_stats(h: &HistAt) -> Option<HistStats> {
    if h.count <= 0.0 {
        return None;
    }
    let q = |p: f64| quantile(&h.buckets, h.count, p).map(|s| s * 1000.0);
    Some(HistStats {
        count: h.count,
        mean: h.sum / h.count * 1000.0,
        p50: q(0.5),
        p90: q(0.9),
        p95: q(0.95),
        p99: q(0.99),
    })
}

impl RawTarget {
    /// Unix seconds of the first and last scrape.
    pub fn window(&self) -> Option<(f64, f64)> {
        let times = self
            .counters
            .values()
            .chain(self.gauges.values())
            .flat_map(|s| s.iter().map(|p| p[0]))
            .chain(self.histograms.values().flatten().map(|h| h.t));
        times.fold(None, |acc, t| match acc {
            None => Some((t, t)),
            Some((a, b)) => Some((f64::min(a, t), f64::max(b, t))),
        })
    }

    /// Add a later (or another segment's) set of samples of the same target.
    pub fn merge(&mut self, other: &RawTarget) {
        let union = |mine: &mut BTreeMap<String, Vec<[f64; 2]>>,
                     theirs: &BTreeMap<String, Vec<[f64; 2]>>| {
            for (k, v) in theirs {
                let s = mine.entry(k.clone()).or_default();
                s.extend_from_slice(v);
                s.sort_by(|a, b| a[0].total_cmp(&b[0]));
                s.dedup_by(|a, b| a[0] == b[0]);
            }
        };
        union(&mut self.counters, &other.counters);
        union(&mut self.gauges, &other.gauges);
        for (k, v) in &other.histograms {
            let h = self.histograms.entry(k.clone()).or_default();
            h.extend(v.iter().cloned());
            h.sort_by(|a, b| a.t.total_cmp(&b.t));
            h.dedup_by(|a, b| a.t == b.t);
            if h.len() > 2 {
                let last = h.pop();
                h.truncate(1);
                h.extend(last);
            }
        }
    }

    /// The figures over the window of these samples.
    pub fn figures(&self) -> Figures {
        let mut f = Figures::default();
        let Some((start, end)) = self.window() else {
            return f;
        };
        f.window_s = end - start;
        for (name, s) in &self.counters {
            if s.len() < 2 {
                continue;
            }
            let inc = increase(s);
            f.counts.insert(name.clone(), inc);
            let span = s[s.len() - 1][0] - s[0][0];
            if span > 0.0 {
                f.per_s.insert(name.clone(), inc / span);
            }
        }
        for (name, s) in &self.gauges {
            // The scrapes taken while the load ran; the one before it and
            // the one after only when there were no others.
            let inner: Vec<f64> = s
                .iter()
                .filter(|p| p[0] > start && p[0] < end)
                .map(|p| p[1])
                .collect();
            let vals: Vec<f64> = if inner.is_empty() {
                s.iter().map(|p| p[1]).collect()
            } else {
                inner
            };
            if vals.is_empty() {
                continue;
            }
            f.gauges.insert(
                name.clone(),
                GaugeStats {
                    mean: vals.iter().sum::<f64>() / vals.len() as f64,
                    min: vals.iter().copied().fold(f64::INFINITY, f64::min),
                    max: vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    samples: vals.len() as u64,
                },
            );
        }
        for (name, h) in &self.histograms {
            if let Some(s) = hist_increase(h).as_ref().and_then(hist_stats) {
                f.latency.insert(name.clone(), s);
            }
        }
        let ratio = |a: &str, b: &str| match (f.counts.get(a), f.counts.get(b)) {
            (Some(a), Some(b)) if *b > 0.0 => Some(a / b),
            _ => None,
        };
        f.prefix_cache_hit_rate = ratio("prefix_cache_hits", "prefix_cache_queries")
            .or_else(|| f.gauges.get("prefix_cache_hit_rate").map(|g| g.mean));
        f.spec_acceptance = ratio("spec_accepted", "spec_drafted");
        f.prefill_rate = ratio("prompt_tokens_processed", "prompt_seconds");
        f.decode_rate = ratio("generation_tokens", "generation_seconds");
        f.cpu_cores = f.per_s.get("cpu_seconds").copied();
        f
    }

    /// One row per scrape after the first: its gauges, and its counters'
    /// rates since the scrape before; `t_s` from `origin` (Unix seconds).
    pub fn series(&self, origin: f64) -> Vec<SeriesRow> {
        let mut rows: BTreeMap<u64, SeriesRow> = BTreeMap::new();
        fn at(rows: &mut BTreeMap<u64, SeriesRow>, t: f64, origin: f64) -> &mut SeriesRow {
            rows.entry(t.to_bits()).or_insert_with(|| SeriesRow {
                t_s: ((t - origin) * 1000.0).round() / 1000.0,
                ..SeriesRow::default()
            })
        }
        for (name, s) in &self.gauges {
            for p in s {
                at(&mut rows, p[0], origin)
                    .gauges
                    .insert(name.clone(), p[1]);
            }
        }
        for (name, s) in &self.counters {
            for w in s.windows(2) {
                let dt = w[1][0] - w[0][0];
                if dt > 0.0 {
                    at(&mut rows, w[1][0], origin)
                        .per_s
                        .insert(name.clone(), increase(w) / dt);
                }
            }
        }
        let mut out: Vec<SeriesRow> = rows.into_values().collect();
        out.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A histogram whose last bucket (any bound) gives the count; only the
    /// finite ones are kept, as a scrape keeps them.
    fn hist(t: f64, buckets: &[[f64; 2]], sum: f64) -> HistAt {
        HistAt {
            t,
            buckets: buckets
                .iter()
                .filter(|b| b[0].is_finite())
                .copied()
                .collect(),
            sum,
            count: buckets.last().unwrap()[1],
        }
    }

    #[test]
    fn counters_increase_over_resets_and_quantiles_interpolate_as_promql() {
        assert_eq!(
            increase(&[[0.0, 10.0], [1.0, 15.0], [2.0, 3.0], [3.0, 7.0]]),
            12.0
        );
        let b = [[0.1, 2.0], [0.2, 6.0]];
        // rank 4 of 8: half way through the second bucket.
        assert!((quantile(&b, 8.0, 0.5).unwrap() - 0.15).abs() < 1e-12);
        // In the +Inf bucket: the highest finite bound.
        assert_eq!(quantile(&b, 8.0, 0.99), Some(0.2));
        assert_eq!(quantile(&[[0.1, 0.0]], 0.0, 0.5), None);
    }

    #[test]
    fn figures_are_the_windows_increase_not_the_servers_totals() {
        let mut raw = RawTarget::default();
        raw.counters.insert(
            "requests".into(),
            vec![[100.0, 1000.0], [101.0, 1004.0], [102.0, 1010.0]],
        );
        raw.counters.insert(
            "prefix_cache_hits".into(),
            vec![[100.0, 50.0], [102.0, 80.0]],
        );
        raw.counters.insert(
            "prefix_cache_queries".into(),
            vec![[100.0, 500.0], [102.0, 600.0]],
        );
        raw.gauges.insert(
            "waiting".into(),
            vec![[100.0, 0.0], [101.0, 8.0], [101.5, 6.0], [102.0, 0.0]],
        );
        raw.histograms.insert(
            "ttft".into(),
            vec![
                hist(
                    100.0,
                    &[[0.1, 100.0], [0.2, 100.0], [f64::INFINITY, 100.0]],
                    5.0,
                ),
                hist(
                    102.0,
                    &[[0.1, 102.0], [0.2, 110.0], [f64::INFINITY, 110.0]],
                    6.5,
                ),
            ],
        );
        let f = raw.figures();
        assert_eq!(f.window_s, 2.0);
        assert_eq!(f.counts["requests"], 10.0);
        assert_eq!(f.per_s["requests"], 5.0);
        assert_eq!(f.prefix_cache_hit_rate, Some(0.3));
        // The scrapes before and after the load are left out of the gauge.
        assert_eq!(
            (f.gauges["waiting"].max, f.gauges["waiting"].mean),
            (8.0, 7.0)
        );
        let t = &f.latency["ttft"];
        assert_eq!(t.count, 10.0);
        assert!((t.mean - 150.0).abs() < 1e-9);
        assert!((t.p50.unwrap() - 137.5).abs() < 1e-9, "{t:?}");
        let rows = raw.series(100.0);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1].t_s, 1.0);
        assert_eq!(rows[1].per_s["requests"], 4.0);
        assert_eq!(rows[1].gauges["waiting"], 8.0);
    }

    #[test]
    fn two_segments_of_one_target_merge_as_one_scraper_would_have_seen_them() {
        let mut whole = RawTarget::default();
        whole.counters.insert(
            "requests".into(),
            vec![[0.0, 0.0], [1.0, 3.0], [2.0, 7.0], [3.0, 9.0]],
        );
        whole.histograms.insert(
            "e2e".into(),
            vec![
                hist(0.0, &[[1.0, 0.0], [f64::INFINITY, 0.0]], 0.0),
                hist(3.0, &[[1.0, 5.0], [f64::INFINITY, 9.0]], 12.0),
            ],
        );
        let mut a = RawTarget::default();
        a.counters
            .insert("requests".into(), vec![[0.0, 0.0], [2.0, 7.0]]);
        a.histograms.insert(
            "e2e".into(),
            vec![
                hist(0.0, &[[1.0, 0.0], [f64::INFINITY, 0.0]], 0.0),
                hist(2.0, &[[1.0, 4.0], [f64::INFINITY, 7.0]], 9.0),
            ],
        );
        let mut b = RawTarget::default();
        b.counters
            .insert("requests".into(), vec![[1.0, 3.0], [3.0, 9.0]]);
        b.histograms.insert(
            "e2e".into(),
            vec![
                hist(1.0, &[[1.0, 2.0], [f64::INFINITY, 3.0]], 4.0),
                hist(3.0, &[[1.0, 5.0], [f64::INFINITY, 9.0]], 12.0),
            ],
        );
        a.merge(&b);
        assert_eq!(a, whole);
        assert_eq!(a.figures(), whole.figures());
    }
}
