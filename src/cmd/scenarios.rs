//! `periscope scenarios`: the workloads and built-in scenarios, listed.

use crate::error::{exit, Result};

pub fn main() -> Result<i32> {
    let mut out = String::from("Workloads (periscope run WORKLOAD):\n");
    for k in crate::workload::WorkloadKind::ALL {
        out.push_str(&format!("  {:<20} {}\n", k.name(), k.description()));
    }
    out.push_str("\nScenarios (periscope run WORKLOAD --scenario NAME; `load` is the default):\n");
    out.push_str(&crate::scenario::listing());
    crate::print_stdout(&out);
    Ok(exit::OK)
}
