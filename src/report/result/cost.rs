//! What a run cost at the prices given (`--price-input`, `--price-output`,
//! US dollars per million tokens): by the tokens the server's usage
//! reported (the tokenizer's count where it reported none), in total, per
//! request and per thousand requests, so that models and deployments can be
//! compared by price as well as by speed.

use serde::{Deserialize, Serialize};

/// Prices per million tokens, as given.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// The run's cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub input_usd: f64,
    pub output_usd: f64,
    pub total_usd: f64,
    /// Per ok request.
    pub per_request_usd: f64,
    pub per_1k_requests_usd: f64,
}

impl Cost {
    /// The cost of `input` and `output` tokens over `ok` requests.
    pub fn of(p: Prices, input: u64, output: u64, ok: u64) -> Cost {
        let input_usd = input as f64 * p.input_per_mtok / 1e6;
        let output_usd = output as f64 * p.output_per_mtok / 1e6;
        let total_usd = input_usd + output_usd;
        let per_request_usd = total_usd / ok.max(1) as f64;
        Cost {
            input_usd,
            output_usd,
            total_usd,
            per_request_usd,
            per_1k_requests_usd: per_request_usd * 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_at_their_prices() {
        let p = Prices {
            input_per_mtok: 0.5,
            output_per_mtok: 1.5,
        };
        // 2M input, 1M output over 1000 requests: $1 + $1.5.
        let c = Cost::of(p, 2_000_000, 1_000_000, 1000);
        assert_eq!(c.total_usd, 2.5);
        assert_eq!(c.per_request_usd, 0.0025);
        assert_eq!(c.per_1k_requests_usd, 2.5);
        assert_eq!(Cost::of(p, 0, 0, 0).total_usd, 0.0);
    }
}
