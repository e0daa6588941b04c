//! The sweep's statistics over raw requests: nearest-rank quantiles, means,
//! bootstrap intervals of the proxy's overhead, and where ok_rps stops
//! growing.

use crate::metrics::Sample;
use crate::report::sweep::{level_name, Row};

/// A level whose ok_rps grows less than this over the one before has saturated.
const SATURATION_GAIN: f64 = 0.10;

/// A level that lasted less than this is not judged for saturation: its
/// ok_rps is dominated by what happens at its edges (a rate limiter's burst,
/// a cache warming up), not by the rate the target sustains.
pub const JUDGED_LEVEL_S: f64 = 1.0;

/// The exact q-quantile of sorted values (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

pub fn sorted_ok(samples: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Vec<f64> {
    let mut v: Vec<f64> = samples.iter().filter(|s| s.ok).filter_map(f).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// 95% percentile-bootstrap intervals of median(b) − median(a) and
/// mean(b) − mean(a), resampling each side's requests with replacement.
pub fn bootstrap(a: &[f64], b: &[f64], resamples: u32, seed: u64) -> ((f64, f64), (f64, f64)) {
    if a.is_empty() || b.is_empty() {
        return ((0.0, 0.0), (0.0, 0.0));
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut da = Vec::with_capacity(a.len());
    let mut db = Vec::with_capacity(b.len());
    let mut p50s = Vec::with_capacity(resamples as usize);
    let mut means = Vec::with_capacity(resamples as usize);
    let median = |v: &mut Vec<f64>| {
        let mid = (v.len() - 1) / 2;
        *v.select_nth_unstable_by(mid, f64::total_cmp).1
    };
    for _ in 0..resamples.max(1) {
        da.clear();
        db.clear();
        da.extend((0..a.len()).map(|_| a[rng.usize(..a.len())]));
        db.extend((0..b.len()).map(|_| b[rng.usize(..b.len())]));
        means.push(mean(&db) - mean(&da));
        p50s.push(median(&mut db) - median(&mut da));
    }
    p50s.sort_by(f64::total_cmp);
    means.sort_by(f64::total_cmp);
    let ci = |v: &[f64]| (quantile(v, 0.025), quantile(v, 0.975));
    (ci(&p50s), ci(&means))
}

/// The level after which ok_rps stops growing (by less than 10%) while
/// latency climbs or errors appear, among the levels that lasted long
/// enough to be judged ([`JUDGED_LEVEL_S`]).
pub fn saturation(rows: &[&Row]) -> Option<(usize, String)> {
    let judged: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.duration_s >= JUDGED_LEVEL_S)
        .collect();
    judged.windows(2).enumerate().find_map(|(i, w)| {
        let (a, b) = (w[0], w[1]);
        let err = |r: &Row| r.errors as f64 / r.requests.max(1) as f64;
        let flat = b.ok_rps < a.ok_rps * (1.0 + SATURATION_GAIN);
        let worse = b.p50 > a.p50 * (1.0 + SATURATION_GAIN) || err(b) > err(a) + 0.01;
        (a.ok_rps > 0.0 && flat && worse).then(|| {
            (
                i,
                format!(
                    "saturation at {} {}: ok_rps {:.1}, and at {} only {:.1} ({:+.0}%) while p50 went {:.1} → {:.1} ms and errors {:.1}% → {:.1}%",
                    level_name(a.level),
                    a.level.label(),
                    a.ok_rps,
                    b.level.label(),
                    b.ok_rps,
                    (b.ok_rps / a.ok_rps - 1.0) * 100.0,
                    a.p50,
                    b.p50,
                    err(a) * 100.0,
                    err(b) * 100.0
                ),
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_interval_contains_a_known_shift() {
        let mut rng = fastrand::Rng::with_seed(1);
        let a: Vec<f64> = (0..400).map(|_| 20.0 + rng.f64() * 4.0).collect();
        let b: Vec<f64> = (0..400).map(|_| 25.0 + rng.f64() * 4.0).collect();
        let ((lo, hi), (mlo, mhi)) = bootstrap(&a, &b, 1000, 7);
        assert!(lo < 5.0 && 5.0 < hi, "[{lo}, {hi}]");
        assert!(mlo < 5.0 && 5.0 < mhi, "[{mlo}, {mhi}]");
        assert!(hi - lo < 1.5, "narrow with 400 requests: [{lo}, {hi}]");
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), 2.0);
        assert_eq!(quantile(&v, 0.99), 4.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
    }
}
