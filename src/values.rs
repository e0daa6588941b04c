//! Reading what people type: durations (`250ms`, `1m30s`), percentages
//! (`10%`), RFC 3339 times, `Name: value` headers and `key=value` tags. Each
//! parser's error names what it expected, for the flag or file key that
//! uses it.

use std::time::Duration;

/// Parse a whole number of something (VUs, requests, tokens), saying what is
/// wrong with a negative or fractional one.
pub fn count<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err("must not be negative".into());
    }
    t.parse()
        .map_err(|_| format!("'{t}' is not a whole number (0, 1, 2, …)"))
}

/// Parse a human duration: 250ms, 30s, 1m30s, 2h.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
    }
    humantime::parse_duration(t)
        .map_err(|_| format!("'{s}' is not a duration: expected e.g. 250ms, 30s, 1m30s or 2h"))
}

/// `10%` → 0.10. The % sign is required, so `10` and `0.1` are never confused.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let num = s
        .trim()
        .strip_suffix('%')
        .ok_or_else(|| format!("'{s}' needs a % sign, e.g. 10%"))?;
    num.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|x| x / 100.0)
        .ok_or_else(|| format!("'{s}' is not a percentage, e.g. 10%"))
}

/// An RFC 3339 time in UTC: 2026-11-23T12:00:00Z (fractions allowed).
pub fn parse_rfc3339(s: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339_weak(s.trim())
        .map_err(|e| format!("'{s}' is not an RFC 3339 time ({e}): e.g. 2026-11-23T12:00:00Z"))
}

/// Parse `K: V` into a header pair.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once(':')
        .ok_or_else(|| format!("header '{s}' has no ':': expected 'Name: value'"))?;
    let k = k.trim();
    if k.is_empty() || reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
        return Err(format!(
            "'{k}' is not a valid header name: expected 'Name: value'"
        ));
    }
    if reqwest::header::HeaderValue::from_str(v.trim()).is_err() {
        return Err(format!("the value of header '{k}' is not valid"));
    }
    Ok((k.to_string(), v.trim().to_string()))
}

/// Parse `k=v` into a tag pair.
pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("tag '{s}': expected KEY=VALUE")),
    }
}

/// `--progress-every`: a plain progress line every so many seconds, or
/// every so many completed requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    Seconds(u64),
    Requests(u64),
}

fn parse_every(s: &str, bare_is_requests: bool) -> Result<Every, String> {
    let t = s.trim();
    let expected = "expected N (a whole number), Ns (seconds) or Nreq (completed requests)";
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a progress interval: {expected}"))?;
    if n == 0 {
        return Err(format!("'{s}': the interval must be at least 1"));
    }
    match unit.trim() {
        "" if bare_is_requests => Ok(Every::Requests(n)),
        "" | "s" => Ok(Every::Seconds(n)),
        "m" => Ok(Every::Seconds(n * 60)),
        "req" | "requests" | "r" => Ok(Every::Requests(n)),
        _ => Err(format!("'{s}' is not a progress interval: {expected}")),
    }
}

/// `run`'s `--progress-every`: a bare number is seconds.
pub fn parse_every_seconds(s: &str) -> Result<Every, String> {
    parse_every(s, false)
}

/// `sweep`'s and `probe`'s `--progress-every`: a bare number is completed
/// requests, as the overhead bench they replace counted them.
pub fn parse_every_requests(s: &str) -> Result<Every, String> {
    parse_every(s, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("ten seconds")
            .unwrap_err()
            .contains("expected e.g."));
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn headers_and_tags() {
        assert_eq!(
            parse_header("X-LLMTrace-Agent-ID: bench").unwrap(),
            ("X-LLMTrace-Agent-ID".into(), "bench".into())
        );
        assert!(parse_header("nocolon").is_err());
        assert!(parse_header("bad name: v").is_err());
        assert_eq!(parse_tag("env=ci").unwrap(), ("env".into(), "ci".into()));
        assert!(parse_tag("=x").is_err());
    }

    #[test]
    fn progress_intervals_in_seconds_or_requests() {
        assert_eq!(parse_every_seconds("5"), Ok(Every::Seconds(5)));
        assert_eq!(parse_every_seconds("2m"), Ok(Every::Seconds(120)));
        assert_eq!(parse_every_seconds("100req"), Ok(Every::Requests(100)));
        assert_eq!(parse_every_requests("100"), Ok(Every::Requests(100)));
        assert_eq!(parse_every_requests("10s"), Ok(Every::Seconds(10)));
        assert!(parse_every_requests("0")
            .unwrap_err()
            .contains("at least 1"));
        assert!(parse_every_requests("-3").unwrap_err().contains("expected"));
        assert!(parse_every_seconds("5x").unwrap_err().contains("Nreq"));
    }
}
