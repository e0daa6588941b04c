//! Thresholds (pass/fail of a run, for CI) and SLOs (per request, for
//! goodput).
//!
//! - A threshold compares a figure of the whole run with a bound:
//!   `ttft.p95<800ms`, `error_rate<0.01`, `tokens_per_s>100`. Any failure
//!   makes the run exit 99; with `--abort-on-fail` the figures are checked
//!   every second and the first failure stops the load.
//! - An SLO bounds one request: `ttft<500ms`, `tpot<50ms`. Goodput is the
//!   rate of ok requests that met every SLO (DistServe's definition).

use serde::{Deserialize, Serialize};

use crate::metrics::Aggregate;
use crate::record::RequestRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

impl Op {
    fn holds(self, x: f64, bound: f64) -> bool {
        match self {
            Op::Lt => x < bound,
            Op::Le => x <= bound,
            Op::Gt => x > bound,
            Op::Ge => x >= bound,
        }
    }
}

/// Split `lhs OP rhs` at its operator.
fn split(expr: &str) -> Option<(&str, Op, &str)> {
    for (tok, op) in [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)] {
        if let Some(i) = expr.find(tok) {
            return Some((expr[..i].trim(), op, expr[i + tok.len()..].trim()));
        }
    }
    None
}

/// A duration bound in ms: `800ms`, `1.5s`, `250us`, or a bare number of ms.
fn parse_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("us").or_else(|| s.strip_suffix("µs")) {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (s, 1.0)
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|x| x * scale)
}

/// A plain number, or a percentage (`1%` = 0.01).
fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok().map(|x| x / 100.0),
        None => s.parse::<f64>().ok(),
    }
    .filter(|x| x.is_finite())
}

/// Latency metrics a threshold may name: every one the aggregates keep.
const LATENCIES: &[&str] = crate::metrics::LATENCY_METRICS;
const STATS: &[&str] = &["mean", "min", "p50", "p90", "p95", "p99", "max"];
/// Run-level figures a threshold may name.
const FIGURES: &[&str] = &[
    "error_rate",
    "tokens_per_s",
    "ok_rps",
    "rps",
    "goodput",
    "goodput_ratio",
    "requests",
    "ok",
    "errors",
    "prefill_rate",
    "decode_rate",
];

#[derive(Debug, Clone, PartialEq)]
enum Figure {
    Latency(String, String),
    Run(String),
    /// A figure of the server's own metrics (`server.queue_time.p95`);
    /// `true` when in ms.
    Server(String, bool),
    /// A statistic of a script's own metric (`prompt_length.p(95)`,
    /// `checks.rate`, `http_req_duration{status:200}.p95`).
    Custom(String, String),
}

/// `name.stat` of a custom metric: the statistic may be k6's `p(99.9)`.
fn split_custom(lhs: &str) -> Option<(&str, &str)> {
    if lhs.ends_with(')') {
        if let Some(i) = lhs.rfind(".p(") {
            return Some((&lhs[..i], &lhs[i + 1..]));
        }
    }
    lhs.rsplit_once('.')
}

/// A figure of a run by the name thresholds use: `ttft.p95`, `ok_rps`, or
/// one group's (`e2e{endpoint:GET /health}.p95`, `ok_rps{endpoint:GET /health}`,
/// `ttft{turn:3}.p95`).
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    figure: Figure,
    /// The group whose figure it is: its kind (`endpoint`, `turn`, `batch`,
    /// `trace_scenario`, `query`) and label (`GET /health`).
    group: Option<(String, String)>,
}

/// Group kinds a selector may name.
const GROUP_KINDS: &[&str] = &["endpoint", "turn", "batch", "trace_scenario", "query"];

/// `e2e{endpoint:GET /health}.p95` → (`e2e.p95`, endpoint, `GET /health`),
/// when the name before the braces is a built-in figure.
fn split_group(lhs: &str) -> Option<(String, String, String)> {
    let open = lhs.find('{')?;
    let close = open + lhs[open..].find('}')?;
    let base = &lhs[..open];
    if !LATENCIES.contains(&base) && !FIGURES.contains(&base) {
        return None;
    }
    let (kind, label) = lhs[open + 1..close].split_once(':')?;
    // `GET:/health` as `--endpoint` writes it, or `GET /health` as reports do.
    let label = label.trim();
    let label = match label.split_once(':') {
        Some((m, p)) if p.starts_with('/') && !m.contains(' ') => format!("{m} {p}"),
        _ => label.to_string(),
    };
    Some((
        format!("{base}{}", &lhs[close + 1..]),
        kind.trim().to_string(),
        label,
    ))
}

impl Metric {
    /// Parse a figure's name; `ctx` starts the errors (`threshold 'x<1': `).
    fn parse_in(lhs: &str, ctx: &str) -> Result<Metric, String> {
        if let Some((plain, kind, label)) = split_group(lhs) {
            if !GROUP_KINDS.contains(&kind.as_str()) {
                return Err(format!(
                    "{ctx}unknown group '{kind}' (one of {}), e.g. e2e{{endpoint:GET /health}}.p95",
                    GROUP_KINDS.join(", ")
                ));
            }
            let mut m = Metric::parse_in(&plain, ctx)?;
            m.name = lhs.to_string();
            m.group = Some((kind, label));
            return Ok(m);
        }
        if let Some(name) = lhs.strip_prefix("server.") {
            let ms = crate::server_metrics::check_figure(name).map_err(|e| format!("{ctx}{e}"))?;
            return Ok(Metric {
                name: lhs.to_string(),
                figure: Figure::Server(name.to_string(), ms),
                group: None,
            });
        }
        if let Some((m, stat)) = split_custom(lhs) {
            if !LATENCIES.contains(&m)
                && !m.is_empty()
                && crate::metrics::custom::check_stat(stat).is_ok()
            {
                return Ok(Metric {
                    name: lhs.to_string(),
                    figure: Figure::Custom(m.to_string(), stat.to_string()),
                    group: None,
                });
            }
        }
        let figure = match lhs.split_once('.') {
            Some((m, stat)) => {
                if !LATENCIES.contains(&m) {
                    return Err(format!(
                        "{ctx}unknown metric '{m}' (one of {})",
                        LATENCIES.join(", ")
                    ));
                }
                if !STATS.contains(&stat) {
                    return Err(format!(
                        "{ctx}unknown statistic '{stat}' (one of {})",
                        STATS.join(", ")
                    ));
                }
                Figure::Latency(m.into(), stat.into())
            }
            None if FIGURES.contains(&lhs) => Figure::Run(lhs.into()),
            None if LATENCIES.contains(&lhs) => {
                return Err(format!("{ctx}say which statistic of {lhs}, e.g. {lhs}.p95"))
            }
            None => {
                return Err(format!(
                    "{ctx}unknown figure '{lhs}' (a latency such as ttft.p95, or one of {})",
                    FIGURES.join(", ")
                ))
            }
        };
        Ok(Metric {
            name: lhs.to_string(),
            figure,
            group: None,
        })
    }

    /// The group (kind, label) whose figure this is.
    pub fn group(&self) -> Option<(&str, &str)> {
        self.group.as_ref().map(|(k, l)| (k.as_str(), l.as_str()))
    }

    /// The figure's value: the run's, or its group's from `groups`.
    pub fn value_in(
        &self,
        total: &Aggregate,
        groups: &std::collections::BTreeMap<crate::record::Group, Aggregate>,
        duration_s: f64,
    ) -> Option<f64> {
        match &self.group {
            None => self.value(total, duration_s),
            Some((kind, label)) => {
                let agg = groups
                    .iter()
                    .find(|(g, _)| g.kind() == kind && g.label() == *label)
                    .map(|(_, a)| a)?;
                self.value(agg, duration_s)
            }
        }
    }

    /// `ttft.p95`, `e2e.mean`, `ok_rps`, `error_rate`…
    pub fn parse(name: &str) -> Result<Metric, String> {
        Self::parse_in(name.trim(), &format!("metric '{}': ", name.trim()))
    }

    /// The latency metric and statistic of a latency figure.
    pub fn latency(&self) -> Option<(&str, &str)> {
        match &self.figure {
            Figure::Latency(m, s) => Some((m, s)),
            Figure::Run(_) | Figure::Server(..) | Figure::Custom(..) => None,
        }
    }

    /// A statistic of a script's own metric.
    pub fn is_custom(&self) -> bool {
        matches!(self.figure, Figure::Custom(..))
    }

    /// A figure of the server's metrics, known only at the end of the run.
    pub fn is_server(&self) -> bool {
        matches!(self.figure, Figure::Server(..))
    }

    /// `ms` for latencies, empty otherwise.
    pub fn unit(&self) -> &'static str {
        match self.figure {
            Figure::Latency(..) | Figure::Server(_, true) => "ms",
            Figure::Run(_) | Figure::Server(_, false) | Figure::Custom(..) => "",
        }
    }

    /// Whether the smaller value is the better one (latencies, errors).
    pub fn lower_is_better(&self) -> bool {
        match &self.figure {
            Figure::Latency(..) | Figure::Server(_, true) => true,
            Figure::Run(n) => matches!(n.as_str(), "error_rate" | "errors"),
            Figure::Custom(n, stat) => stat != "rate" || n.contains("fail") || n.contains("error"),
            Figure::Server(n, false) => {
                ["waiting", "usage", "preemptions", "failed", "memory", "cpu"]
                    .iter()
                    .any(|w| n.contains(w))
            }
        }
    }

    /// The figure's value in a run of `duration_s` seconds.
    pub fn value(&self, agg: &Aggregate, duration_s: f64) -> Option<f64> {
        let d = duration_s.max(1e-9);
        match &self.figure {
            Figure::Server(..) => None,
            Figure::Custom(name, stat) => agg.custom.get(name)?.stat(stat, d),
            Figure::Latency(m, stat) => {
                let s = agg.stats(m);
                if s.count == 0 {
                    return None;
                }
                Some(match stat.as_str() {
                    "mean" => s.mean,
                    "min" => s.min,
                    "p50" => s.p50,
                    "p90" => s.p90,
                    "p95" => s.p95,
                    "p99" => s.p99,
                    _ => s.max,
                })
            }
            Figure::Run(name) => match name.as_str() {
                "error_rate" => Some(agg.error_rate()),
                "tokens_per_s" => Some(agg.output_tokens as f64 / d),
                "ok_rps" => Some(agg.ok as f64 / d),
                "rps" => Some(agg.requests as f64 / d),
                "goodput" => Some(agg.good as f64 / d),
                "goodput_ratio" => (agg.ok > 0).then(|| agg.good as f64 / agg.ok as f64),
                "requests" => Some(agg.requests as f64),
                "ok" => Some(agg.ok as f64),
                "errors" => Some(agg.errors as f64),
                "prefill_rate" => agg.prefill_rate(),
                "decode_rate" => agg.decode_rate(),
                _ => None,
            },
        }
    }
}

/// A bound on a figure of the whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub expr: String,
    metric: Metric,
    op: Op,
    /// ms for latencies, the figure's own unit otherwise.
    bound: f64,
}

impl Threshold {
    pub fn parse(expr: &str) -> Result<Threshold, String> {
        let help = "expected e.g. 'ttft.p95<800ms', 'error_rate<0.01' or 'tokens_per_s>100'";
        let (lhs, op, rhs) =
            split(expr).ok_or_else(|| format!("threshold '{expr}' has no < or >: {help}"))?;
        let metric = Metric::parse_in(lhs, &format!("threshold '{expr}': "))?;
        let bound = match &metric.figure {
            Figure::Latency(..) | Figure::Server(_, true) => parse_ms(rhs),
            Figure::Run(_) | Figure::Server(_, false) => parse_number(rhs),
            Figure::Custom(..) => parse_number(rhs).or_else(|| parse_ms(rhs)),
        }
        .ok_or_else(|| {
            format!(
                "threshold '{expr}': '{rhs}' is not a number{}",
                match metric.figure {
                    Figure::Latency(..) | Figure::Server(_, true) | Figure::Custom(..) =>
                        " or duration (800ms, 1.5s)",
                    Figure::Run(_) | Figure::Server(_, false) => "",
                }
            )
        })?;
        Ok(Threshold {
            expr: expr.trim().to_string(),
            metric,
            op,
            bound,
        })
    }

    /// The figure's value in a run of `duration_s` seconds so far (a
    /// group's figure: none; see [`Threshold::check_in`]).
    pub fn actual(&self, agg: &Aggregate, duration_s: f64) -> Option<f64> {
        match self.metric.group {
            Some(_) => None,
            None => self.metric.value(agg, duration_s),
        }
    }

    /// The group this bound is on (`{endpoint:GET /health}`).
    pub fn group(&self) -> Option<(&str, &str)> {
        self.metric.group()
    }

    /// Pass or fail on the run's figures and its groups'.
    pub fn check_in(
        &self,
        total: &Aggregate,
        groups: &std::collections::BTreeMap<crate::record::Group, Aggregate>,
        duration_s: f64,
    ) -> ThresholdResult {
        let actual = self.metric.value_in(total, groups, duration_s);
        ThresholdResult {
            threshold: self.expr.clone(),
            actual,
            unit: self.metric.unit().to_string(),
            pass: actual.is_some_and(|x| self.op.holds(x, self.bound)),
        }
    }

    /// A bound on a figure of the server's metrics.
    pub fn is_server(&self) -> bool {
        self.metric.is_server()
    }

    /// A bound on a script's own metric.
    pub fn is_custom(&self) -> bool {
        self.metric.is_custom()
    }

    /// Pass or fail of a server figure: it must hold at every scrape
    /// target that has it; the value shown is the first that fails (else
    /// the first). No target with the figure fails.
    pub fn check_server(
        &self,
        server: Option<&crate::server_metrics::ServerMetrics>,
    ) -> ThresholdResult {
        let Figure::Server(name, _) = &self.metric.figure else {
            return self.check(&Aggregate::default(), 0.0);
        };
        let values = server.map(|s| s.values(name)).unwrap_or_default();
        let failing = values.iter().find(|v| !self.op.holds(**v, self.bound));
        ThresholdResult {
            threshold: self.expr.clone(),
            actual: failing.or(values.first()).copied(),
            unit: self.metric.unit().to_string(),
            pass: !values.is_empty() && failing.is_none(),
        }
    }

    /// Pass or fail; a figure with no data fails (nothing was measured).
    pub fn check(&self, agg: &Aggregate, duration_s: f64) -> ThresholdResult {
        let actual = self.actual(agg, duration_s);
        ThresholdResult {
            threshold: self.expr.clone(),
            actual,
            unit: self.metric.unit().to_string(),
            pass: actual.is_some_and(|x| self.op.holds(x, self.bound)),
        }
    }
}

/// One threshold's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub threshold: String,
    pub actual: Option<f64>,
    pub unit: String,
    pub pass: bool,
}

/// A bound on each request, for goodput.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slo {
    pub expr: String,
    #[serde(skip)]
    metric: String,
    #[serde(skip)]
    op: Op,
    #[serde(skip)]
    bound_us: f64,
}

impl Slo {
    pub fn parse(expr: &str) -> Result<Slo, String> {
        let help = "expected e.g. 'ttft<500ms' or 'tpot<50ms'";
        let (lhs, op, rhs) =
            split(expr).ok_or_else(|| format!("SLO '{expr}' has no < or >: {help}"))?;
        const PER_REQUEST: &[&str] = &["ttft", "ttfo", "tpot", "e2e", "latency", "itl"];
        if !PER_REQUEST.contains(&lhs) {
            return Err(format!(
                "SLO '{expr}': unknown metric '{lhs}' (one of {}; itl bounds every gap)",
                PER_REQUEST.join(", ")
            ));
        }
        let ms = parse_ms(rhs)
            .ok_or_else(|| format!("SLO '{expr}': '{rhs}' is not a duration (500ms, 1.5s)"))?;
        Ok(Slo {
            expr: expr.trim().to_string(),
            metric: lhs.into(),
            op,
            bound_us: ms * 1000.0,
        })
    }

    /// Whether one request met this SLO (a missing figure does not).
    pub fn met(&self, r: &RequestRecord) -> bool {
        let v = match self.metric.as_str() {
            "ttft" => r.ttft_us,
            "ttfo" => r.ttfo_us,
            "tpot" => r.tpot_us(),
            "e2e" => Some(r.e2e_us()),
            "latency" => Some(r.latency_us()),
            "itl" => {
                return r
                    .itl_us
                    .iter()
                    .all(|g| self.op.holds(*g as f64, self.bound_us))
            }
            _ => None,
        };
        v.is_some_and(|x| self.op.holds(x as f64, self.bound_us))
    }
}

/// Whether an ok request met every one of `slos` (goodput), for the
/// collector; None without SLOs.
pub fn judge(slos: Vec<Slo>) -> Option<crate::metrics::Judge> {
    (!slos.is_empty()).then(|| {
        Box::new(move |r: &RequestRecord| slos.iter().all(|s| s.met(r))) as crate::metrics::Judge
    })
}

/// abort-on-fail's verdict, read after the run: the threshold that failed
/// and the second it failed in.
pub type Fired = std::sync::Arc<std::sync::Mutex<Option<(String, u64)>>>;

/// `--abort-on-fail`: the thresholds checked at every closed second; the
/// first that fails stops the load.
pub struct AbortOnFail {
    thresholds: Vec<Threshold>,
    stop: tokio_util::sync::CancellationToken,
    origin: std::time::Instant,
    /// The threshold that failed, and the second: read after the run.
    pub fired: Fired,
}

impl AbortOnFail {
    pub fn new(
        thresholds: Vec<Threshold>,
        stop: tokio_util::sync::CancellationToken,
        origin: std::time::Instant,
    ) -> Self {
        AbortOnFail {
            thresholds,
            stop,
            origin,
            fired: Default::default(),
        }
    }
}

impl crate::metrics::Observer for AbortOnFail {
    fn window(&mut self, w: &crate::metrics::WindowSummary, total: &Aggregate) {
        let mut fired = self.fired.lock().unwrap_or_else(|p| p.into_inner());
        if fired.is_some() || total.requests == 0 {
            return;
        }
        let elapsed = self.origin.elapsed().as_secs_f64();
        // The server's figures are known only at the end of the run.
        if let Some(t) = self
            .thresholds
            .iter()
            .filter(|t| !t.is_server() && t.group().is_none())
            .find(|t| !t.check(total, elapsed).pass)
        {
            *fired = Some((t.expr.clone(), w.t + 1));
            self.stop.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg() -> Aggregate {
        let mut a = Aggregate::default();
        for i in 0..100u64 {
            let mut r = RequestRecord::new(0, 0);
            r.end_us = 400_000;
            r.ttft_us = Some(100_000 + i * 1000);
            r.output_tokens = 10;
            a.add(&r, false);
        }
        let mut e = RequestRecord::new(0, 0);
        e.outcome = crate::record::Outcome::Error(crate::record::ErrorClass::Http5xx);
        a.add(&e, false);
        a
    }

    #[test]
    fn thresholds_parse_and_judge() {
        let a = agg();
        let t = |e: &str| Threshold::parse(e).unwrap().check(&a, 10.0);
        assert!(t("ttft.p95<800ms").pass);
        assert!(!t("ttft.p95<150ms").pass);
        assert!(t("ttft.p50<=0.2s").pass);
        assert!(!t("error_rate<0.005").pass);
        assert!(t("error_rate<2%").pass);
        assert!(t("tokens_per_s>99").pass);
        assert!(!t("tokens_per_s>101").pass);
        // tpot = (400 − ~150) / 9 ≈ 28 ms.
        assert!(t("tpot.p50<40ms").pass);
        // Nothing measured fails.
        assert!(
            !Threshold::parse("queue_wait.p99<1s")
                .unwrap()
                .check(&a, 10.0)
                .pass
        );
    }

    #[test]
    fn bad_thresholds_say_what_to_write() {
        for bad in [
            "ttft<1s",
            "ttft.p42<1s",
            "foo<1",
            "ttft.p95 800ms",
            "error_rate<lots",
        ] {
            let e = Threshold::parse(bad).unwrap_err();
            assert!(e.contains(bad.split(['<', ' ']).next().unwrap()), "{e}");
        }
    }

    #[test]
    fn slos_judge_each_request() {
        let slo = Slo::parse("ttft<500ms").unwrap();
        let mut r = RequestRecord::new(0, 0);
        r.ttft_us = Some(499_000);
        assert!(slo.met(&r));
        r.ttft_us = Some(501_000);
        assert!(!slo.met(&r));
        r.ttft_us = None;
        assert!(!slo.met(&r));
        let itl = Slo::parse("itl<=20ms").unwrap();
        r.itl_us = vec![10_000, 20_000];
        assert!(itl.met(&r));
        r.itl_us.push(25_000);
        assert!(!itl.met(&r));
        assert!(Slo::parse("tokens<5").is_err());
    }
}
