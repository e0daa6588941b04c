//! The target part of a plan: where requests go — the built-in mock,
//! started in-process with its own flags, or a base URL normalized to end
//! in the API root (`http://host:port` → `http://host:port/v1`).

use crate::cli::RunArgs;
use crate::client::normalize_base;
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
    /// `--target`, or the file's target.
    pub fn from_args(a: &RunArgs, f: &ScenarioFile, traces_url: Option<&String>) -> Result<Self> {
        if a.mock {
            let config = MockConfig::from_flag_string(a.mock_args.as_deref().unwrap_or(""))
                .map_err(Error::Usage)?;
            return Ok(Target::Mock {
                config: Box::new(config),
                flags: a.mock_args.clone(),
            });
        }
        match traces_url.or(a.target.as_ref()).or(f.target.as_ref()) {
            Some(t) => Ok(Target::Remote(normalize_base(t).map_err(Error::Usage)?)),
            None => Err(usage!(
                "no target: pass --target URL (or set OPENAI_BASE_URL), or --mock for the built-in mock"
            )),
        }
    }

    pub fn is_mock(&self) -> bool {
        matches!(self, Target::Mock { .. })
    }
}
