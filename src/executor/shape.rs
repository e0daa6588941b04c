//! Load shapes as given: a stage's target (an absolute level or a share of
//! the peak) and `--stages 30s:10,1m:50%:spike,10s:0`, before they are
//! resolved into [`super::Stages`].

use std::time::Duration;

use crate::values::parse_duration;

/// A stage's target: an absolute level (VUs or req/s), or a share of the peak.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Level {
    Abs(f64),
    /// Percent of the peak (`--max-vus`, `--vus` or `--rate`).
    Pct(f64),
}

impl Level {
    /// `10`, `2.5` or `50%`.
    pub fn parse(s: &str) -> Result<Level, String> {
        let t = s.trim();
        let (num, pct) = match t.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (t, false),
        };
        let n: f64 = num
            .parse()
            .map_err(|_| format!("'{t}' is not a number or a percentage (e.g. 10 or 50%)"))?;
        if !n.is_finite() || n < 0.0 {
            return Err(format!("'{t}': a target must be 0 or more"));
        }
        Ok(if pct { Level::Pct(n) } else { Level::Abs(n) })
    }

    /// The level, with percentages taken of `peak`.
    pub fn resolve(self, peak: f64) -> f64 {
        match self {
            Level::Abs(n) => n,
            Level::Pct(p) => peak * p / 100.0,
        }
    }
}

/// One step of `--stages` or a scenario's `stages`, as given.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSpec {
    pub duration: Duration,
    pub target: Level,
    /// A scenario's name for the part of the run this stage belongs to
    /// (`baseline`, `spike`, `after`, …).
    pub phase: Option<String>,
}

/// `--stages` as given.
#[derive(Debug, Clone, PartialEq)]
pub struct StageList(pub Vec<StageSpec>);

/// Parse `30s:10,1m:50%:spike,10s:0` into stages.
pub fn parse_stages(s: &str) -> Result<StageList, String> {
    let expected = "expected DURATION:TARGET[:PHASE],… e.g. 30s:10,1m:10,10s:0";
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut fields = part.splitn(3, ':');
        let d = fields.next().unwrap_or_default();
        let n = fields
            .next()
            .ok_or_else(|| format!("stage '{part}' has no ':': {expected}"))?;
        let phase = fields
            .next()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        let duration = parse_duration(d).map_err(|e| format!("stage '{part}': {e}"))?;
        let target = Level::parse(n).map_err(|e| format!("stage '{part}': {e}: {expected}"))?;
        out.push(StageSpec {
            duration,
            target,
            phase,
        });
    }
    if out.is_empty() {
        return Err(format!("no stages given: {expected}"));
    }
    Ok(StageList(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages() {
        let s = parse_stages("30s:10,1m:50%:spike,10s:0").unwrap().0;
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].target, Level::Abs(10.0));
        assert_eq!(
            s[1],
            StageSpec {
                duration: Duration::from_secs(60),
                target: Level::Pct(50.0),
                phase: Some("spike".into())
            }
        );
        assert_eq!(s[1].target.resolve(40.0), 20.0);
        assert!(parse_stages("30s").unwrap_err().contains("no ':'"));
        assert!(parse_stages("30s:-1").unwrap_err().contains("0 or more"));
        assert!(parse_stages("xx:1").is_err());
        assert!(parse_stages("").is_err());
    }
}
