//! Custom metrics of scripted runs (k6's `Trend`, `Counter`, `Rate` and
//! `Gauge`), and the k6 built-ins a script records (`checks`,
//! `http_req_duration`, `iterations`, …), with the failed iterations.
//!
//! A VU sends [`CustomSample`]s to the collector, which adds them to the
//! run's [`CustomMetrics`] (and to the second's window). A trend keeps every
//! value, as k6 does, up to [`EXACT_VALUES`]: its percentiles are then
//! exact (k6's linear interpolation between closest ranks) and the values
//! are written into the JSON result. Past that (a soak), its values move
//! into an HDR histogram (thousandths of the unit, 3 significant digits), so
//! memory and the result stay bounded; percentiles are then within 0.1%,
//! and merging stays exact (histograms add). A trend with a negative value
//! stays exact.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Values a trend keeps one by one before it moves to a histogram.
pub const EXACT_VALUES: usize = 100_000;
/// A trend's histogram counts thousandths of its unit.
const HDR_SCALE: f64 = 1000.0;

/// What a custom metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// Values whose distribution matters (min, avg, percentiles, max).
    Trend,
    /// A sum.
    Counter,
    /// The share of non-zero values.
    Rate,
    /// The last value (with min and max).
    Gauge,
}

impl MetricKind {
    pub fn parse(s: &str) -> Option<MetricKind> {
        match s {
            "trend" => Some(MetricKind::Trend),
            "counter" => Some(MetricKind::Counter),
            "rate" => Some(MetricKind::Rate),
            "gauge" => Some(MetricKind::Gauge),
            _ => None,
        }
    }
}

/// One value added to a metric by a script, or one failed iteration.
#[derive(Debug, Clone)]
pub enum CustomSample {
    Value {
        /// `name`, or `name{tag:value,…}` for a tagged sub-metric.
        name: String,
        kind: MetricKind,
        value: f64,
        /// Its values are durations in ms (`new Trend(name, true)`).
        time: bool,
    },
    /// An iteration that threw: its message with the line it came from.
    Failed(String),
}

/// One metric's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomMetric {
    pub kind: Option<MetricKind>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub time: bool,
    pub count: u64,
    pub sum: f64,
    /// Rate: the non-zero values.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trues: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Gauge: the last value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<f64>,
    /// Trend: every value, in the order added (sorted when read), while
    /// there are at most [`EXACT_VALUES`] of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<f64>,
    /// Trend: past [`EXACT_VALUES`], every value in a histogram (as
    /// `counts::encode_histogram` writes it, in thousandths).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_hdr",
        deserialize_with = "de_hdr"
    )]
    pub hdr: Option<Histogram<u64>>,
}

fn ser_hdr<S: Serializer>(h: &Option<Histogram<u64>>, s: S) -> Result<S::Ok, S::Error> {
    match h {
        Some(h) => s.serialize_str(&super::counts::encode_histogram(h)),
        None => s.serialize_none(),
    }
}

fn de_hdr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Histogram<u64>>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| super::counts::decode_histogram(&s).map_err(serde::de::Error::custom))
        .transpose()
}

fn new_hdr() -> Histogram<u64> {
    let mut h = Histogram::new(3).expect("3 significant digits are valid");
    h.auto(true);
    h
}

fn record(h: &mut Histogram<u64>, v: f64) {
    // Auto-resizing: any finite value up to u64's range fits.
    let _ = h.record((v * HDR_SCALE).round() as u64);
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The statistics a threshold may name on a custom metric, k6's and
/// periscope's spellings: `p(95)`, `p95`, `avg`, `mean`, `med`, `min`,
/// `max`, `count`, `rate`, `value`.
pub fn check_stat(stat: &str) -> Result<(), String> {
    if percentile(stat).is_some()
        || [
            "avg", "mean", "med", "min", "max", "count", "rate", "value", "sum",
        ]
        .contains(&stat)
    {
        Ok(())
    } else {
        Err(format!(
            "unknown statistic '{stat}' of a custom metric (p(95), p95, avg, med, min, max, count, rate or value)"
        ))
    }
}

/// `p(99.9)` or `p95` → 0.999 / 0.95.
fn percentile(stat: &str) -> Option<f64> {
    let n = stat
        .strip_prefix("p(")
        .and_then(|s| s.strip_suffix(')'))
        .or_else(|| stat.strip_prefix('p'))?;
    let p: f64 = n.trim().parse().ok()?;
    (0.0..=100.0).contains(&p).then_some(p / 100.0)
}

impl CustomMetric {
    fn add(&mut self, kind: MetricKind, value: f64, time: bool) {
        self.kind.get_or_insert(kind);
        self.time |= time;
        self.count += 1;
        self.sum += value;
        self.min = Some(self.min.map_or(value, |m| m.min(value)));
        self.max = Some(self.max.map_or(value, |m| m.max(value)));
        match kind {
            MetricKind::Rate if value != 0.0 => self.trues += 1,
            MetricKind::Gauge => self.last = Some(value),
            MetricKind::Trend => match &mut self.hdr {
                Some(h) if value >= 0.0 => record(h, value),
                _ => {
                    self.values.push(value);
                    self.spill();
                }
            },
            _ => {}
        }
    }

    /// Past [`EXACT_VALUES`], or once there is a histogram, move the
    /// values into it (not when one is negative: a histogram cannot hold it).
    fn spill(&mut self) {
        let over = self.values.len() > EXACT_VALUES || self.hdr.is_some();
        if !over || self.min.is_some_and(|m| m < 0.0) {
            return;
        }
        let h = self.hdr.get_or_insert_with(new_hdr);
        for v in self.values.drain(..) {
            record(h, v);
        }
    }

    fn merge(&mut self, o: &CustomMetric) {
        if self.kind.is_none() {
            self.kind = o.kind;
        }
        self.time |= o.time;
        self.count += o.count;
        self.sum += o.sum;
        self.trues += o.trues;
        self.min = match (self.min, o.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, o.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.last = o.last.or(self.last);
        self.values.extend_from_slice(&o.values);
        if let Some(oh) = &o.hdr {
            let _ = self.hdr.get_or_insert_with(new_hdr).add(oh);
        }
        self.spill();
    }

    /// The `q` quantile (0..=1) of a trend, as k6 computes it: linear
    /// interpolation between the closest ranks.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if let Some(h) = &self.hdr {
            // Values left beside a histogram (a negative one kept a part
            // exact, and a merge met a histogram): read with it, negatives
            // as 0.
            let mut all = h.clone();
            for v in &self.values {
                record(&mut all, v.max(0.0));
            }
            return (!all.is_empty())
                .then(|| all.value_at_quantile(q.clamp(0.0, 1.0)) as f64 / HDR_SCALE);
        }
        let mut v = self.values.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let i = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
        let (lo, hi) = (v[i.floor() as usize], v[i.ceil() as usize]);
        Some(lo + (hi - lo) * (i - i.floor()))
    }

    /// A statistic by a threshold's name; `duration_s` turns a counter into
    /// its rate.
    pub fn stat(&self, stat: &str, duration_s: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        if let Some(q) = percentile(stat) {
            return self.quantile(q);
        }
        match stat {
            "avg" | "mean" => Some(self.sum / self.count as f64),
            "med" => self.quantile(0.5),
            "min" => self.min,
            "max" => self.max,
            "count" => Some(match self.kind {
                Some(MetricKind::Counter) => self.sum,
                _ => self.count as f64,
            }),
            "sum" => Some(self.sum),
            "rate" => Some(match self.kind {
                Some(MetricKind::Rate) => self.trues as f64 / self.count as f64,
                _ => self.sum / duration_s.max(1e-9),
            }),
            "value" => self.last.or(Some(self.sum)),
            _ => None,
        }
    }
}

/// Every custom metric of a set of samples, and the failed iterations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomMetrics {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, CustomMetric>,
    /// Failed iterations by message (with the line that threw): the first
    /// [`KEPT_ERRORS`] kinds by name, the rest under one entry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed: BTreeMap<String, u64>,
}

/// Kinds of iteration errors kept by message.
pub const KEPT_ERRORS: usize = 20;
const OTHER_ERRORS: &str = "(other errors)";

impl CustomMetrics {
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty() && self.failed.is_empty()
    }

    pub fn add(&mut self, s: &CustomSample) {
        match s {
            CustomSample::Value {
                name,
                kind,
                value,
                time,
            } => {
                if let Some(m) = self.metrics.get_mut(name.as_str()) {
                    m.add(*kind, *value, *time);
                } else {
                    let mut m = CustomMetric::default();
                    m.add(*kind, *value, *time);
                    self.metrics.insert(name.clone(), m);
                }
            }
            CustomSample::Failed(msg) => self.fail(msg, 1),
        }
    }

    fn fail(&mut self, msg: &str, n: u64) {
        let key = if self.failed.contains_key(msg) || self.failed.len() < KEPT_ERRORS {
            msg
        } else {
            OTHER_ERRORS
        };
        *self.failed.entry(key.to_string()).or_default() += n;
    }

    pub fn merge(&mut self, o: &CustomMetrics) {
        for (k, m) in &o.metrics {
            self.metrics.entry(k.clone()).or_default().merge(m);
        }
        for (msg, n) in &o.failed {
            self.fail(msg, *n);
        }
    }

    pub fn get(&self, name: &str) -> Option<&CustomMetric> {
        self.metrics.get(name)
    }

    /// Failed iterations.
    pub fn failed_iterations(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// The name of a sub-metric: `name{k:v,…}` with the tags sorted by key, as
/// k6's thresholds spell them.
pub fn tagged(name: &str, tags: &[(String, String)]) -> String {
    let mut t: Vec<&(String, String)> = tags.iter().collect();
    t.sort();
    let inner: Vec<String> = t.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(name: &str, kind: MetricKind, value: f64) -> CustomSample {
        CustomSample::Value {
            name: name.into(),
            kind,
            value,
            time: false,
        }
    }

    #[test]
    fn a_trend_has_k6s_percentiles_and_merges_exactly() {
        let mut a = CustomMetrics::default();
        let mut b = CustomMetrics::default();
        for i in 1..=100 {
            let s = value("len", MetricKind::Trend, i as f64);
            a.add(&s);
            if i <= 50 {
                b.add(&s);
            }
        }
        let t = a.get("len").unwrap();
        // k6: p(95) of 1..=100 = 95.05 (rank 94.05 between 95 and 96).
        assert!((t.stat("p(95)", 1.0).unwrap() - 95.05).abs() < 1e-9);
        assert_eq!(t.stat("p95", 1.0), t.stat("p(95)", 1.0));
        assert_eq!(t.stat("avg", 1.0), Some(50.5));
        assert_eq!(t.stat("med", 1.0), Some(50.5));
        assert_eq!(t.stat("max", 1.0), Some(100.0));
        let mut c = CustomMetrics::default();
        for i in 51..=100 {
            c.add(&value("len", MetricKind::Trend, i as f64));
        }
        b.merge(&c);
        let merged = b.get("len").unwrap();
        assert_eq!(merged.stat("p(95)", 1.0), t.stat("p(95)", 1.0));
        assert_eq!(merged.count, 100);
    }

    #[test]
    fn a_long_trend_moves_to_a_histogram_within_a_thousandth_and_merges_exactly() {
        let n = EXACT_VALUES + 50_000;
        let (mut whole, mut a, mut b) = Default::default();
        let v = |i: usize| (i % 9973) as f64 * 0.37 + 1.0;
        for i in 0..n {
            let s = value("t", MetricKind::Trend, v(i));
            CustomMetrics::add(&mut whole, &s);
            CustomMetrics::add(if i % 3 == 0 { &mut a } else { &mut b }, &s);
        }
        let t: &CustomMetric = whole.get("t").unwrap();
        assert!(t.values.is_empty() && t.hdr.is_some(), "bounded");
        assert_eq!(t.count, n as u64);
        let mut sorted: Vec<f64> = (0..n).map(v).collect();
        sorted.sort_by(f64::total_cmp);
        for q in [0.5, 0.95, 0.99] {
            let exact = sorted[((q * n as f64).ceil() as usize).max(1) - 1];
            let got = t.quantile(q).unwrap();
            assert!(
                (got - exact).abs() <= exact * 1e-3 + 1e-3,
                "p{q}: {got} vs {exact}"
            );
        }
        // Two parts (one still exact) merge into the same histogram, and
        // the JSON round trip keeps it.
        let mut m: CustomMetrics = CustomMetrics::default();
        m.merge(&a);
        m.merge(&b);
        let back: CustomMetrics =
            serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        let mt = back.get("t").unwrap();
        assert_eq!(mt.hdr, t.hdr);
        assert_eq!((mt.count, mt.max), (t.count, t.max));
        // A negative value keeps a trend exact.
        let mut neg = CustomMetrics::default();
        neg.add(&value("t", MetricKind::Trend, -1.0));
        for i in 0..n {
            neg.add(&value("t", MetricKind::Trend, v(i)));
        }
        assert_eq!(neg.get("t").unwrap().values.len(), n + 1);
    }

    #[test]
    fn rates_counters_gauges_and_failures() {
        let mut m = CustomMetrics::default();
        for ok in [1.0, 1.0, 0.0, 1.0] {
            m.add(&value("checks", MetricKind::Rate, ok));
        }
        m.add(&value("n", MetricKind::Counter, 3.0));
        m.add(&value("n", MetricKind::Counter, 2.0));
        m.add(&value("g", MetricKind::Gauge, 7.0));
        m.add(&value("g", MetricKind::Gauge, 4.0));
        assert_eq!(m.get("checks").unwrap().stat("rate", 1.0), Some(0.75));
        assert_eq!(m.get("n").unwrap().stat("count", 1.0), Some(5.0));
        assert_eq!(m.get("n").unwrap().stat("rate", 2.0), Some(2.5));
        assert_eq!(m.get("g").unwrap().stat("value", 1.0), Some(4.0));
        assert_eq!(m.get("g").unwrap().stat("max", 1.0), Some(7.0));
        for i in 0..30 {
            m.add(&CustomSample::Failed(format!("Error: {i} at x.js:1:1")));
        }
        m.add(&CustomSample::Failed("Error: 0 at x.js:1:1".into()));
        assert_eq!(m.failed_iterations(), 31);
        assert_eq!(m.failed.len(), KEPT_ERRORS + 1);
        assert_eq!(m.failed["Error: 0 at x.js:1:1"], 2);
        assert!(check_stat("p(99.9)").is_ok() && check_stat("p101").is_err());
        assert!(check_stat("avg").is_ok() && check_stat("median").is_err());
        assert_eq!(
            tagged("d", &[("z".into(), "1".into()), ("a".into(), "2".into())]),
            "d{a:2,z:1}"
        );
    }
}
