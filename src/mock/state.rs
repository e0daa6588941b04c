//! The mock's shared state: its configuration, rate limiter, concurrency
//! slots, prefix cache, stats, and what it received (traceparents, traces).

use super::*;

/// Blocks of the prompt-prefix cache, hashed over their whole prefix.
pub(super) struct PrefixCache {
    pub(super) blocks: std::collections::HashSet<u64>,
    pub(super) order: std::collections::VecDeque<u64>,
}

pub(super) const PREFIX_BLOCK: usize = 16;
pub(super) const PREFIX_CAPACITY: usize = 200_000;

impl PrefixCache {
    /// Tokens at the start of `ids` already seen in a recent prompt; then remember `ids`.
    pub(super) fn lookup_and_insert(&mut self, ids: &[u32]) -> u32 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut cached = 0usize;
        let mut hit = true;
        for (i, block) in ids.chunks(PREFIX_BLOCK).enumerate() {
            if block.len() < PREFIX_BLOCK {
                break;
            }
            for t in block {
                h ^= *t as u64;
                h = h.wrapping_mul(0x100_0000_01b3);
            }
            if hit && self.blocks.contains(&h) {
                cached = (i + 1) * PREFIX_BLOCK;
            } else {
                hit = false;
                if self.blocks.insert(h) {
                    self.order.push_back(h);
                    if self.order.len() > PREFIX_CAPACITY {
                        if let Some(old) = self.order.pop_front() {
                            self.blocks.remove(&old);
                        }
                    }
                }
            }
        }
        cached as u32
    }
}

/// Shared state of a running mock.
pub(super) struct State {
    pub(super) config: MockConfig,
    pub(super) limiter: Option<DefaultDirectRateLimiter>,
    /// `--max-concurrency`: a slot per request being served.
    pub(super) slots: Option<Arc<tokio::sync::Semaphore>>,
    pub(super) prefix: Option<Mutex<PrefixCache>>,
    pub(super) stats: StatsHandle,
    pub(super) proxy: Option<reqwest::Client>,
    pub(super) counter: AtomicU64,
    /// Draws of [`State::coin`].
    pub(super) draws: AtomicU64,
    pub(super) auth: Option<HeaderValue>,
    /// W3C `traceparent` headers received (only requests that carry one
    /// take this lock).
    pub(super) traceparents: Mutex<Traceparents>,
    /// `--count-header`: name → value → requests.
    pub(super) header_counts:
        Mutex<std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>>,
    /// Traces received over OTLP, for the trace query API.
    pub(super) received: Mutex<otlp::Received>,
}

/// The `traceparent` headers received, the most recent kept.
#[derive(Default, serde::Serialize)]
pub(super) struct Traceparents {
    pub(super) received: u64,
    pub(super) recent: std::collections::VecDeque<String>,
}

/// How many `traceparent` values `GET /mock/traceparents` keeps.
pub(super) const TRACEPARENTS_KEPT: usize = 100_000;

impl Traceparents {
    pub(super) fn note(&mut self, v: &HeaderValue) {
        self.received += 1;
        if self.recent.len() == TRACEPARENTS_KEPT {
            self.recent.pop_front();
        }
        self.recent
            .push_back(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
}

impl State {
    pub(super) fn new(config: MockConfig) -> anyhow::Result<Self> {
        let limiter = config.faults.rate_limit.map(|rps| {
            let period = Duration::from_secs_f64(1.0 / rps);
            let burst = ((rps / 10.0).ceil() as u32).max(1);
            let quota = Quota::with_period(period)
                .expect("positive period")
                .allow_burst(std::num::NonZeroU32::new(burst).expect("burst >= 1"));
            RateLimiter::direct(quota)
        });
        let proxy = match &config.upstream {
            Some(_) => Some(
                crate::client::http_builder()
                    .build()
                    .context("building the proxy client")?,
            ),
            None => None,
        };
        let auth = match &config.api_key {
            Some(k) => Some(
                HeaderValue::from_str(&format!("Bearer {k}"))
                    .context("--api-key is not a valid header value")?,
            ),
            None => None,
        };
        let slots = config
            .max_concurrency
            .map(|n| Arc::new(tokio::sync::Semaphore::new(n)));
        Ok(State {
            slots,
            prefix: config.prefix_cache.then(|| {
                Mutex::new(PrefixCache {
                    blocks: Default::default(),
                    order: Default::default(),
                })
            }),
            limiter,
            stats: StatsHandle::spawn(),
            proxy,
            counter: AtomicU64::new(0),
            draws: AtomicU64::new(0),
            auth,
            traceparents: Mutex::default(),
            header_counts: Mutex::default(),
            received: Mutex::default(),
            config,
        })
    }

    pub(super) fn next_id(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// True with probability `p`: a fault's draw that is not tied to a
    /// request's id (seeded with `--seed`, in the order of the draws).
    pub(super) fn coin(&self, p: f64) -> bool {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        self.rng(n ^ 0x5eed_c105e).f64() < p
    }

    pub(super) fn rng(&self, id: u64) -> fastrand::Rng {
        match self.config.seed {
            Some(s) => fastrand::Rng::with_seed(s ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            None => fastrand::Rng::new(),
        }
    }

    pub(super) fn simple_record(
        &self,
        endpoint: Endpoint,
        status: u16,
        fault: Fault,
        arrival: Instant,
    ) -> MockRecord {
        let now = Instant::now();
        MockRecord {
            endpoint,
            status,
            fault,
            stream: false,
            arrival,
            headers_at: now,
            first_token: None,
            last_byte_at: now,
            forwarded_at: None,
            itl_gaps: Vec::new(),
            token_lags: Vec::new(),
            output_tokens: 0,
            prompt_tokens: 0,
            cached_tokens: 0,
            queued: std::time::Duration::ZERO,
            otlp: None,
            body_bytes: 0,
        }
    }
}
