//! `periscope trace summarize FILE`: what a timestamped trace holds, before
//! it is replayed with `run --replay FILE`.

use crate::cli::{TraceArgs, TraceCommand};
use crate::error::{exit, Error, Result};
use crate::print_stdout;
use crate::replay::summary;

pub fn main(a: TraceArgs) -> Result<i32> {
    match a.command {
        TraceCommand::Summarize { file, json } => {
            let out = json
                .as_deref()
                .map(|p| crate::report::json::OutputFile::open_for(p, "--json"))
                .transpose()?;
            let s = summary::summarize(&file).map_err(Error::Usage)?;
            print_stdout(&summary::markdown(&file, &s));
            if let Some(o) = out {
                o.write(&s)?;
            }
            Ok(exit::OK)
        }
    }
}
