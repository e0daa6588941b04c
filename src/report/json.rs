//! The JSON result file. The path is opened before the run, so a bad path
//! fails before anything is sent.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::error::{Error, Result};

/// A JSON result file opened before the run.
pub struct JsonOutput {
    path: PathBuf,
    file: File,
}

impl JsonOutput {
    /// Create (truncate) `path` now; a failure is a usage error naming the flag.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_for(path, "--json")
    }

    /// The same, for the flag `flag`.
    pub fn open_for(path: &Path, flag: &str) -> Result<Self> {
        let file = File::create(path)
            .map_err(|e| Error::Usage(format!("{flag}: cannot write {}: {e}", path.display())))?;
        Ok(JsonOutput {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Write `text` as the file's whole content.
    pub fn write_str(self, text: &str) -> anyhow::Result<()> {
        let mut w = BufWriter::new(self.file);
        w.write_all(text.as_bytes())
            .and_then(|_| w.flush())
            .with_context(|| format!("writing {}", self.path.display()))
    }

    pub fn write<T: serde::Serialize>(self, result: &T) -> anyhow::Result<()> {
        let mut w = BufWriter::new(self.file);
        serde_json::to_writer_pretty(&mut w, result)
            .and_then(|_| w.write_all(b"\n").map_err(serde_json::Error::io))
            .with_context(|| format!("writing {}", self.path.display()))?;
        w.flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}
