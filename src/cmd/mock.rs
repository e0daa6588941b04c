//! `periscope mock`: the built-in OpenAI-compatible server, on its own
//! until Ctrl-C.

use crate::error::{exit, Error, Result};
use crate::mock::{self, MockArgs};

/// Serve until Ctrl-C.
pub async fn main(a: MockArgs) -> Result<i32> {
    let config = mock::MockConfig::from_args(&a).map_err(Error::Usage)?;
    // The vocabulary every prompt is counted with, loaded before the banner
    // says the mock listens: its first requests wait for nothing.
    crate::tokenizer::warm_up();
    let listener = mock::bind(&a.listen)
        .await
        .map_err(|e| Error::Usage(format!("--listen {}: {e}", a.listen)))?;
    let addr = listener.local_addr().map_err(anyhow::Error::from)?;
    match &config.upstream {
        Some(up) => eprintln!(
            "periscope mock: proxying http://{addr} → {up} with {} added",
            crate::fmt::fmt_dur(config.added_latency)
        ),
        None => eprintln!(
            "periscope mock: listening on http://{addr}/v1 (stats at http://{addr}/mock/stats)"
        ),
    }
    mock::serve(listener, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(exit::OK)
}
