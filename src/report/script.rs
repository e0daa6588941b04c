//! A scripted run's own figures, as k6's summary shows them: the checks by
//! name (passes and fails), every custom metric (trends with avg, min, med,
//! p90, p95, max; counters with their rate; rates; gauges), and the failed
//! iterations with their message and line. Read from the result's exact
//! sums (`raw.total.custom`), so a merged result shows the same.

use crate::metrics::custom::{CustomMetric, CustomMetrics, MetricKind};

use super::markdown::table;

/// The rows of the custom metrics table: name, kind, then the figures.
pub fn metric_rows(c: &CustomMetrics, duration_s: f64) -> Vec<Vec<String>> {
    let f = |v: Option<f64>| v.map_or_else(|| "-".into(), super::markdown::num);
    c.metrics
        .iter()
        .filter(|(name, _)| !name.starts_with("checks"))
        .map(|(name, m)| {
            let kind = m.kind.unwrap_or(MetricKind::Trend);
            let figures = match kind {
                MetricKind::Trend => format!(
                    "avg={} min={} med={} p(90)={} p(95)={} max={}",
                    f(m.stat("avg", duration_s)),
                    f(m.min),
                    f(m.stat("med", duration_s)),
                    f(m.stat("p(90)", duration_s)),
                    f(m.stat("p(95)", duration_s)),
                    f(m.max),
                ),
                MetricKind::Counter => format!(
                    "{} ({}/s)",
                    super::markdown::num(m.sum),
                    f(m.stat("rate", duration_s))
                ),
                MetricKind::Rate => rate(m),
                MetricKind::Gauge => {
                    format!("value={} min={} max={}", f(m.last), f(m.min), f(m.max))
                }
            };
            vec![
                format!("`{name}`"),
                format!("{kind:?}").to_lowercase() + if m.time { " (ms)" } else { "" },
                figures,
                m.count.to_string(),
            ]
        })
        .collect()
}

fn rate(m: &CustomMetric) -> String {
    format!(
        "{:.2}% ✓ {} ✗ {}",
        100.0 * m.trues as f64 / m.count.max(1) as f64,
        m.trues,
        m.count - m.trues
    )
}

/// The checks by name: `(name, passes, fails)`.
pub fn checks(c: &CustomMetrics) -> Vec<(String, u64, u64)> {
    c.metrics
        .iter()
        .filter_map(|(k, m)| {
            let name = k.strip_prefix("checks{")?.strip_suffix('}')?;
            // Only the check's own row (`checks{check:…}`), not other tags.
            let name = name.strip_prefix("check:")?;
            Some((name.to_string(), m.trues, m.count - m.trues))
        })
        .collect()
}

/// The Markdown section; empty when the run had no script figures.
pub fn markdown(c: &CustomMetrics, duration_s: f64) -> String {
    if c.is_empty() {
        return String::new();
    }
    let mut out = String::from("### Script\n\n");
    let checks = checks(c);
    if !checks.is_empty() {
        let all = c.get("checks").map(rate).unwrap_or_default();
        out.push_str(&format!("Checks: {all}\n\n"));
        out.push_str(&table(
            &["check", "passes", "fails"],
            checks
                .into_iter()
                .map(|(n, p, f)| {
                    vec![
                        format!("{} {n}", if f == 0 { "✓" } else { "✗" }),
                        p.to_string(),
                        f.to_string(),
                    ]
                })
                .collect(),
        ));
        out.push_str("\n\n");
    }
    let rows = metric_rows(c, duration_s);
    if !rows.is_empty() {
        out.push_str(&table(&["metric", "kind", "figures", "count"], rows));
        out.push_str("\n\n");
    }
    if !c.failed.is_empty() {
        out.push_str(&format!("Failed iterations: {}\n\n", c.failed_iterations()));
        out.push_str(&table(
            &["error", "count"],
            c.failed
                .iter()
                .map(|(m, n)| vec![format!("`{}`", m.replace('`', "'")), n.to_string()])
                .collect(),
        ));
        out.push_str("\n\n");
    }
    out
}
