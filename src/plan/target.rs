//! The target part of a plan: where requests go — the built-in mock,
//! started in-process with its own flags, or a base URL normalized to end
//! in the API root (`http://host:port` → `http://host:port/v1`). A whole
//! endpoint (`…/v1/chat/completions`) is taken as its base, once checked
//! against the API the workload sends to.

use crate::cli::RunArgs;
use crate::client::normalize_base;
use crate::endpoint::{self, Api};
use crate::error::{Error, Result};
use crate::mock::MockConfig;
use crate::scenario::ScenarioFile;
use crate::usage;

/// Where requests go.
#[derive(Debug, Clone)]
pub enum Target {
    /// The built-in mock, started in-process, and the flags it was given.
    Mock {
        config: Box<MockConfig>,
        flags: Option<String>,
    },
    /// A base URL, normalized to end in the API root (e.g. `/v1`).
    Remote(String),
}

impl Target {
    /// `--mock` (with `--mock-args`), else the URL otlp-traces exports to,
    /// `--target`, or the file's target; `apis` are the endpoints the
    /// workload (`what`) sends to, which a whole endpoint URL must be one of.
    pub fn from_args(
        a: &RunArgs,
        f: &ScenarioFile,
        traces_url: Option<&String>,
        anthropic_base: Option<&String>,
        apis: &[Api],
        what: &str,
    ) -> Result<Self> {
        if a.mock {
            // The environment's target gives way to --mock; a flag's does not.
            let from_env = std::env::var("OPENAI_BASE_URL").ok() == a.target;
            if a.target.is_some() && !from_env {
                return Err(usage!(
                    "--mock and --target can't be combined: the mock is the target"
                ));
            }
            let config = MockConfig::from_flag_string(a.mock_args.as_deref().unwrap_or(""))
                .map_err(Error::Usage)?;
            return Ok(Target::Mock {
                config: Box::new(config),
                flags: a.mock_args.clone(),
            });
        }
        if let Some(t) = traces_url {
            return Ok(Target::Remote(normalize_base(t).map_err(Error::Usage)?));
        }
        let given = match (anthropic_base, &a.target, &f.target) {
            (Some(u), ..) => Some(("ANTHROPIC_BASE_URL", u)),
            (None, Some(u), _) => Some((a.target_flag.unwrap_or("--target"), u)),
            (None, None, Some(u)) => Some(("the scenario's target", u)),
            (None, None, None) => None,
        };
        match given {
            Some((flag, t)) => {
                let url = endpoint::split(flag, t).map_err(Error::Usage)?;
                url.check(flag, what, apis).map_err(Error::Usage)?;
                Ok(Target::Remote(url.base))
            }
            None => Err(usage!(
                "no target: pass --target URL (or set OPENAI_BASE_URL), or --mock for the built-in mock"
            )),
        }
    }

    pub fn is_mock(&self) -> bool {
        matches!(self, Target::Mock { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{plan, usage_error};

    #[test]
    fn the_mock_with_its_flags_or_a_url_ending_in_the_api_root() {
        let p = plan(&["--mock", "--mock-args", "--ttft 7ms --itl 2ms"]).unwrap();
        let Target::Mock { config, flags } = &p.target else {
            panic!("{:?}", p.target)
        };
        assert_eq!(config.latency.ttft, std::time::Duration::from_millis(7));
        assert_eq!(flags.as_deref(), Some("--ttft 7ms --itl 2ms"));
        assert!(p.target.is_mock());
        for (url, want) in [
            ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
            ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1"),
            ("http://gw/openai/v1", "http://gw/openai/v1"),
        ] {
            let p = plan(&["--target", url]).unwrap();
            assert!(
                matches!(&p.target, Target::Remote(u) if u == want),
                "{url}: {:?}",
                p.target
            );
        }
        assert!(usage_error(&["--mock", "--mock-args", "--ttft soon"]).contains("--ttft"));
        assert!(usage_error(&["--target", "ftp://x"]).contains("http://"));
    }
}
