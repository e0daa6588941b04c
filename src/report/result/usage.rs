//! The generator's own cost (CPU seconds, peak RSS of the periscope
//! process) and the summary's notes on what crossed the wire: the
//! protocol, and the answers' bytes as sent and decoded.

use serde::{Deserialize, Serialize};

use super::Summary;

/// CPU and memory of the periscope process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GeneratorUsage {
    /// User + system CPU seconds of the process.
    pub cpu_seconds: f64,
    /// Peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// The built-in mock ran in the same process, so these include it.
    pub includes_mock: bool,
}

impl GeneratorUsage {
    /// The summary's note: `generator: 0.92 CPU-s, peak RSS 85.8 MiB`.
    pub fn note(&self) -> String {
        let mock = match self.includes_mock {
            true => " (includes the in-process mock)",
            false => "",
        };
        format!(
            "generator: {:.2} CPU-s, peak RSS {:.1} MiB{mock}",
            self.cpu_seconds, self.peak_rss_mib
        )
    }
}

impl Summary {
    /// What compressed answers weighed, decoded and on the wire (none
    /// when nothing came compressed).
    pub fn received_note(&self) -> Option<String> {
        let r = &self.received;
        let mb = |b: u64| b as f64 / 1e6;
        match r.compressed {
            0 => None,
            n => Some(format!(
                "received: {:.3} MB of answer bodies, {:.3} MB on the wire ({n} of {} answers compressed, {:.1}× smaller)",
                mb(r.bytes),
                mb(r.wire_bytes),
                self.requests,
                r.bytes as f64 / r.wire_bytes as f64
            )),
        }
    }

    /// The protocol the answers came over, when any came over HTTP/2.
    pub fn protocol_note(&self) -> Option<String> {
        (self.http2 > 0).then(|| {
            format!(
                "protocol: HTTP/2 for {} requests, HTTP/1.1 or none for {}",
                self.http2,
                self.requests - self.http2
            )
        })
    }
}

/// Read the process's CPU time and peak RSS.
pub fn generator_usage(includes_mock: bool) -> GeneratorUsage {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0;
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    GeneratorUsage {
        cpu_seconds: if ok {
            secs(ru.ru_utime) + secs(ru.ru_stime)
        } else {
            0.0
        },
        // ru_maxrss is in KiB on Linux.
        peak_rss_mib: if ok {
            ru.ru_maxrss as f64 / 1024.0
        } else {
            0.0
        },
        includes_mock,
    }
}
