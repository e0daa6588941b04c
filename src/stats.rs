//! Small-sample statistics the reports share: mean, standard deviation and
//! coefficient of variation of repeated figures, Student's t intervals of a
//! mean (repeated runs, paired blocks of a sweep), and Newcombe's interval
//! of a difference of two proportions (error rates). A leaf.

/// Mean and sample standard deviation (n − 1) of `v`; the deviation is 0
/// for fewer than two values.
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// The coefficient of variation, sd / |mean| (0 when the mean is 0).
pub fn cv(v: &[f64]) -> f64 {
    let (m, sd) = mean_sd(v);
    if m == 0.0 {
        0.0
    } else {
        sd / m.abs()
    }
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom (the
/// factor of a two-sided 95% interval).
pub fn t_975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => T[df - 1],
        31..=60 => 2.042 - (df - 30) as f64 * (2.042 - 2.000) / 30.0,
        61..=120 => 2.000 - (df - 60) as f64 * (2.000 - 1.980) / 60.0,
        _ => 1.960,
    }
}

/// The 95% interval of the mean of `v` (Student's t); none for fewer than
/// two values.
pub fn mean_ci(v: &[f64]) -> Option<(f64, f64)> {
    if v.len() < 2 {
        return None;
    }
    let (m, sd) = mean_sd(v);
    let half = t_975(v.len() - 1) * sd / (v.len() as f64).sqrt();
    Some((m - half, m + half))
}

/// Wilson's 95% score interval of a proportion of `k` in `n`.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_964f64;
    let n = n as f64;
    let p = k as f64 / n;
    let d = 1.0 + z * z / n;
    let center = (p + z * z / (2.0 * n)) / d;
    let half = z / d * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// The 95% interval of the difference of two proportions, `k1/n1 − k2/n2`
/// (Newcombe's hybrid score method: good at rates near 0, as error rates
/// are).
pub fn diff_of_proportions_ci(k1: u64, n1: u64, k2: u64, n2: u64) -> (f64, f64) {
    let p = |k: u64, n: u64| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let (p1, p2) = (p(k1, n1), p(k2, n2));
    let (l1, u1) = wilson(k1, n1);
    let (l2, u2) = wilson(k2, n2);
    let d = p1 - p2;
    (
        d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt(),
        d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_sd_and_cv_of_known_values() {
        let (m, sd) = mean_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m, 5.0);
        assert!((sd - 2.138).abs() < 1e-3, "{sd}");
        assert!((cv(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) - 0.4276).abs() < 1e-3);
        assert_eq!(mean_sd(&[3.0]), (3.0, 0.0));
        assert_eq!(cv(&[0.0, 0.0]), 0.0);
    }

    #[test]
    fn t_intervals_widen_with_few_values() {
        assert_eq!(t_975(4), 2.776);
        assert!(t_975(1000) == 1.96);
        let (lo, hi) = mean_ci(&[10.0, 12.0, 11.0, 13.0, 9.0]).unwrap();
        // mean 11, sd 1.581, t(4) 2.776 → ±1.963
        assert!(
            (lo - 9.037).abs() < 1e-2 && (hi - 12.963).abs() < 1e-2,
            "{lo} {hi}"
        );
        assert!(mean_ci(&[1.0]).is_none());
    }

    #[test]
    fn proportions_follow_newcombe() {
        // Newcombe (1998), example (a): 56/70 − 48/80 → [0.0524, 0.3339].
        let (lo, hi) = diff_of_proportions_ci(56, 70, 48, 80);
        assert!(
            (lo - 0.0524).abs() < 1e-3 && (hi - 0.3339).abs() < 1e-3,
            "{lo} {hi}"
        );
        // No errors on either side: an interval around 0.
        let (lo, hi) = diff_of_proportions_ci(0, 100, 0, 100);
        assert!(lo < 0.0 && hi > 0.0 && hi < 0.05, "{lo} {hi}");
        let (lo, hi) = wilson(0, 10);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.2775).abs() < 1e-3, "{hi}");
    }
}
