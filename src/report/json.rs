//! An output file (the JSON result, the HTML page, …), created before the
//! run, so a bad path fails before anything is sent, and written whole at
//! the end.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::error::{Error, Result};

/// An output file opened before the run.
pub struct OutputFile {
    path: PathBuf,
    file: File,
}

impl OutputFile {
    /// Create (truncate) `path` now; a failure is a usage error naming the flag.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_for(path, "--json")
    }

    /// The same, for the flag `flag`.
    pub fn open_for(path: &Path, flag: &str) -> Result<Self> {
        let file = File::create(path)
            .map_err(|e| Error::Usage(format!("{flag}: cannot write {}: {e}", path.display())))?;
        Ok(OutputFile {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Write `text` as the file's whole content.
    pub fn write_str(self, text: &str) -> anyhow::Result<()> {
        self.replace_with(|w| w.write_all(text.as_bytes()))
    }

    pub fn write<T: serde::Serialize>(self, result: &T) -> anyhow::Result<()> {
        self.replace_with(|w| {
            serde_json::to_writer_pretty(&mut *w, result)?;
            w.write_all(b"\n")
        })
    }

    /// Write the content beside the file, then rename it over the file: a
    /// reader polling the path (`periscope merge --wait`) never sees half
    /// of it. A path that is not a regular file (`/dev/stdout`), or one with
    /// no room beside it, is written in place.
    fn replace_with(
        self,
        fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
    ) -> anyhow::Result<()> {
        let mut partial = self.path.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let regular = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.is_file());
        let (file, staged) = match regular.then(|| File::create(&partial)) {
            Some(Ok(f)) => (f, true),
            _ => (self.file, false),
        };
        let mut w = BufWriter::new(file);
        fill(&mut w)
            .and_then(|_| w.flush())
            .with_context(|| format!("writing {}", self.path.display()))?;
        drop(w);
        if staged {
            std::fs::rename(&partial, &self.path)
                .with_context(|| format!("writing {}", self.path.display()))?;
        }
        Ok(())
    }
}
