//! The Tempo performance suite's profile files, read as they are: its
//! `k6:` section (`duration`, `vus.min`/`max`, `ingestion.mbPerSecond` and
//! `traceProfile`, `query.queriesPerSecond`) becomes an otlp-traces
//! scenario; its `tempo:` section (the variant and resources of the Tempo
//! it deployed) is accepted and left aside, as periscope does not deploy the
//! system under test.

use serde::Deserialize;

use super::{OtlpEntry, ScenarioFile, Val};

/// `k6:` of a Tempo profile.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K6Profile {
    pub duration: Option<Val<std::time::Duration>>,
    pub vus: Option<VuRange>,
    pub ingestion: Option<Ingestion>,
    pub query: Option<Query>,
}

/// k6's VU range: its open-model executor preallocates `min` and may grow
/// to `max`; periscope's open model needs no preallocation, so `max` caps
/// the exports in flight.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VuRange {
    pub min: Option<Val<u64>>,
    pub max: Option<Val<u64>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ingestion {
    pub mb_per_second: Option<Val<f64>>,
    pub trace_profile: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Query {
    pub queries_per_second: Option<Val<f64>>,
}

/// The Tempo profile's duration when it names none: the suite's `DURATION`
/// default.
pub const DEFAULT_DURATION: std::time::Duration = std::time::Duration::from_secs(300);

impl ScenarioFile {
    /// A file with a `k6:` section, as the otlp-traces scenario it stands
    /// for; the keys of periscope's own schema, where given, win.
    pub(super) fn with_tempo_profile(mut self) -> Result<ScenarioFile, String> {
        let Some(k6) = self.k6.take() else {
            return Ok(self);
        };
        match self.workload.as_deref() {
            None => self.workload = Some("otlp-traces".into()),
            Some("otlp-traces") => {}
            Some(w) => {
                return Err(format!(
                    "k6: (a Tempo profile) describes otlp-traces, not workload {w}"
                ))
            }
        }
        if self.duration.is_none() {
            self.duration = Some(k6.duration.unwrap_or(Val(DEFAULT_DURATION)));
        }
        if let Some(max) = k6.vus.as_ref().and_then(|v| v.max.clone()) {
            self.max_in_flight.get_or_insert(max);
        }
        let otlp = self.otlp.get_or_insert_with(OtlpEntry::default);
        if let Some(i) = k6.ingestion {
            if otlp.mb_per_s.is_none() {
                otlp.mb_per_s = i.mb_per_second;
            }
            if otlp.mix.is_none() {
                otlp.mix = i.trace_profile;
            }
        }
        if let Some(q) = k6.query {
            if otlp.queries_per_s.is_none() {
                otlp.queries_per_s = q.queries_per_second;
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::parse;

    /// The suite's custom profile, as its README prints it.
    const CUSTOM: &str = r#"# profiles/custom.yaml
name: custom
description: "Custom high-throughput profile"

tempo:
  variant: stack
  resources:
    memory: "16Gi"
    cpu: "2000m"

k6:
  duration: "10m"
  vus:
    min: 30
    max: 150
  ingestion:
    mbPerSecond: 10
    traceProfile: large
  query:
    queriesPerSecond: 75
"#;

    #[test]
    fn a_tempo_profile_reads_as_an_otlp_scenario() {
        let sc = parse(CUSTOM, "profiles/custom.yaml").unwrap();
        let f = &sc.file;
        assert_eq!(sc.name, "custom");
        assert_eq!(f.workload.as_deref(), Some("otlp-traces"));
        assert_eq!(
            f.duration.as_ref().unwrap().0,
            std::time::Duration::from_secs(600)
        );
        assert_eq!(f.max_in_flight.as_ref().unwrap().0, 150);
        let o = f.otlp.as_ref().unwrap();
        assert_eq!(o.mb_per_s.as_ref().unwrap().0, 10.0);
        assert_eq!(o.mix.as_deref(), Some("large"));
        assert_eq!(o.queries_per_s.as_ref().unwrap().0, 75.0);
        // Without a duration: the suite's DURATION default, 5m.
        let sc = parse(&CUSTOM.replace("  duration: \"10m\"\n", ""), "p.yaml").unwrap();
        assert_eq!(
            sc.file.duration.as_ref().unwrap().0,
            std::time::Duration::from_secs(300)
        );
        // A misspelt key is still an error at its line.
        let e = parse(&CUSTOM.replace("mbPerSecond", "mbPerSec"), "p.yaml").unwrap_err();
        assert!(e.to_string().contains("p.yaml:17"), "{e}");
    }
}
