//! Synthetic traces: GenAI agent runs (OpenTelemetry GenAI semantic
//! conventions) and plain microservice traces, at the sizes trace-backend
//! operators plan with.
//!
//! A trace is built in two passes. First its tree: agents that call the
//! model, call tools (a tool may call a downstream service over HTTP) and
//! delegate to sub-agents, down to the scenario's depth. Then its payloads —
//! the messages of each model call, the arguments and results of each tool —
//! sized so that the encoded trace lands on the scenario's byte target and
//! its model calls on the scenario's token count. A scenario may also be
//! declared in a file as workflow steps ([`workflow`]); [`tree`] lays out
//! either kind.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
pub mod console;
mod payload;
mod tree;
pub mod workflow;

use payload::Slot;
use tree::{Node, Placed};

/// The kinds of trace: four agent scenarios, four plain size profiles, and
/// the agent scenarios a file declares.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    SimpleQuery,
    SingleServiceSearch,
    DelegatedBooking,
    MultiServiceComplex,
    Small,
    Medium,
    Large,
    XLarge,
    /// Declared in a scenario file (`otlp.scenarios`).
    Custom(&'static workflow::Custom),
}

impl Kind {
    /// Built-ins first, in their order, then declared ones by name.
    fn rank(&self) -> (usize, &'static str) {
        match self {
            Kind::Custom(c) => (Kind::ALL.len(), c.name),
            k => (
                Kind::ALL
                    .iter()
                    .position(|b| b.name() == k.name())
                    .unwrap_or(0),
                "",
            ),
        }
    }
}

impl PartialEq for Kind {
    fn eq(&self, o: &Self) -> bool {
        self.rank() == o.rank()
    }
}
impl Eq for Kind {}
impl PartialOrd for Kind {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Kind {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&o.rank())
    }
}
impl std::hash::Hash for Kind {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.rank().hash(h)
    }
}

impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What a kind of trace looks like.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Spans per trace, inclusive.
    pub spans: (usize, usize),
    /// Levels of the tree (the root is level 1), inclusive.
    pub depth: (usize, usize),
    /// The encoded size aimed at (protobuf bytes), for the agent scenarios.
    pub bytes: Option<usize>,
    /// The model tokens aimed at (`gen_ai.usage.*` summed), for the agent
    /// scenarios.
    pub tokens: Option<usize>,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::SimpleQuery,
        Kind::SingleServiceSearch,
        Kind::DelegatedBooking,
        Kind::MultiServiceComplex,
        Kind::Small,
        Kind::Medium,
        Kind::Large,
        Kind::XLarge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::SimpleQuery => "simple_query",
            Kind::SingleServiceSearch => "single_service_search",
            Kind::DelegatedBooking => "delegated_booking",
            Kind::MultiServiceComplex => "multi_service_complex",
            Kind::Small => "small",
            Kind::Medium => "medium",
            Kind::Large => "large",
            Kind::XLarge => "xlarge",
            Kind::Custom(c) => c.name,
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s.trim())
    }

    pub fn is_agent(self) -> bool {
        matches!(
            self,
            Kind::SimpleQuery
                | Kind::SingleServiceSearch
                | Kind::DelegatedBooking
                | Kind::MultiServiceComplex
                | Kind::Custom(_)
        )
    }

    /// The AI-observability scale test's figures for its agent scenarios: ~35 KB and ~5K tokens in
    /// 5 spans, ~270 KB and ~18K in 12, ~470 KB and ~40K in 25, ~2.3 MB and
    /// ~185K in 80.
    pub fn shape(self) -> Shape {
        let (spans, depth, bytes, tokens) = match self {
            Kind::SimpleQuery => ((5, 5), (2, 3), Some(35_000), Some(5_000)),
            Kind::SingleServiceSearch => ((11, 13), (3, 4), Some(270_000), Some(18_000)),
            Kind::DelegatedBooking => ((23, 27), (4, 5), Some(470_000), Some(40_000)),
            Kind::MultiServiceComplex => ((72, 88), (5, 8), Some(2_300_000), Some(185_000)),
            Kind::Small => ((8, 15), (3, 4), None, None),
            Kind::Medium => ((25, 40), (4, 6), None, None),
            Kind::Large => ((50, 80), (5, 7), None, None),
            Kind::XLarge => ((100, 150), (6, 9), None, None),
            Kind::Custom(c) => (c.spans, c.depth, Some(c.bytes), Some(c.tokens)),
        };
        Shape {
            spans,
            depth,
            bytes,
            tokens,
        }
    }
}

/// Which backend the spans are dressed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Plain OTLP with the GenAI semantic conventions.
    #[default]
    Otlp,
    /// Arize Phoenix: OpenInference attributes (`openinference.span.kind`,
    /// `input.value`, `llm.token_count.*`) and a project name.
    Phoenix,
    /// LangSmith: `langsmith.span.kind`, `x-api-key` and `Langsmith-Project` headers.
    Langsmith,
    /// Braintrust: `braintrust.span_attributes`, `x-bt-parent` header.
    Braintrust,
    /// Print each trace as a tree on stdout (plain OTLP attributes); with
    /// no endpoint, the built-in mock takes the exports.
    Console,
}

/// Settings that hold for every trace of a run.
#[derive(Debug, Clone)]
pub struct Dress {
    pub platform: Platform,
    pub service_name: String,
    /// The project (Phoenix, LangSmith, Braintrust).
    pub project: String,
}

/// One generated trace and what it holds.
pub struct Trace {
    pub request: ExportTraceServiceRequest,
    pub trace_id: [u8; 16],
    pub spans: u32,
    pub depth: u32,
    /// Model tokens the trace records (`gen_ai.usage.*`).
    pub tokens: u64,
    pub kind: Kind,
}

const MODELS: [&str; 3] = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"];
pub(crate) const AGENTS: [&str; 8] = [
    "travel_assistant",
    "flight_agent",
    "hotel_agent",
    "car_rental_agent",
    "payments_agent",
    "itinerary_agent",
    "loyalty_agent",
    "support_agent",
];
pub(crate) const TOOLS: [&str; 8] = [
    "search_flights",
    "search_hotels",
    "book_flight",
    "book_hotel",
    "get_weather",
    "lookup_customer",
    "check_availability",
    "charge_card",
];
const SERVICES: [&str; 6] = [
    "api-gateway",
    "flights-service",
    "hotels-service",
    "payments-service",
    "inventory-service",
    "users-service",
];
const CITIES: [&str; 10] = [
    "SFO", "JFK", "LHR", "CDG", "NRT", "SIN", "FRA", "AMS", "BCN", "SYD",
];
const WORDS: [&str; 48] = [
    "the",
    "flight",
    "departs",
    "from",
    "terminal",
    "with",
    "a",
    "layover",
    "in",
    "and",
    "arrives",
    "before",
    "noon",
    "hotel",
    "near",
    "city",
    "center",
    "offers",
    "free",
    "breakfast",
    "cancellation",
    "policy",
    "allows",
    "changes",
    "until",
    "hours",
    "prior",
    "customer",
    "prefers",
    "window",
    "seat",
    "loyalty",
    "status",
    "gold",
    "upgrade",
    "available",
    "fare",
    "class",
    "economy",
    "business",
    "total",
    "price",
    "includes",
    "taxes",
    "fees",
    "booking",
    "confirmed",
    "itinerary",
];

pub(crate) fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}
pub(crate) fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}
pub(crate) fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}
pub(crate) fn d(key: &str, v: f64) -> KeyValue {
    kv(key, any_value::Value::DoubleValue(v))
}

/// One export of `spans` from a resource dressed for the platform, under
/// the instrumentation scope `scope`.
pub(crate) fn export_request(
    dress: &Dress,
    scope: &str,
    spans: Vec<Span>,
) -> ExportTraceServiceRequest {
    let mut resource = vec![
        s("service.name", dress.service_name.clone()),
        s("telemetry.sdk.name", "periscope"),
        s("telemetry.sdk.language", "rust"),
        s("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
    ];
    if dress.platform == Platform::Phoenix {
        resource.push(s("openinference.project.name", dress.project.clone()));
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: scope.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                schema_url: "https://opentelemetry.io/schemas/1.37.0".into(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Builds traces; one per VU (its own random stream).
pub struct Generator {
    rng: fastrand::Rng,
    dress: Dress,
}

impl Generator {
    pub fn new(seed: u64, dress: Dress) -> Self {
        Generator {
            rng: fastrand::Rng::with_seed(seed),
            dress,
        }
    }

    /// A new trace of this kind, ending now.
    pub fn trace(&mut self, kind: Kind, now_unix_ns: u64) -> Trace {
        let shape = kind.shape();
        let tree = match kind {
            Kind::Custom(c) => self.workflow_tree(c.agent, &c.steps),
            k if k.is_agent() => self.agent_tree(shape),
            _ => self.service_tree(shape),
        };
        let mut trace_id = [0u8; 16];
        self.fill(&mut trace_id);
        let mut ids: Vec<[u8; 8]> = Vec::with_capacity(tree.nodes.len());
        for _ in 0..tree.nodes.len() {
            let mut id = [0u8; 8];
            self.fill(&mut id);
            ids.push(id);
        }
        let times = self.times(&tree, now_unix_ns);
        let model = MODELS[self.rng.usize(..MODELS.len())];
        let conversation = format!("conv_{:016x}", self.rng.u64(..));
        let mut spans: Vec<Span> = Vec::with_capacity(tree.nodes.len());
        let mut slots: Vec<(usize, Slot)> = Vec::new();
        let mut agent_names: Vec<&'static str> = Vec::new();
        for (k, placed) in tree.nodes.iter().enumerate() {
            let (node, parent) = (placed.node, placed.parent);
            let (name, span_kind, mut attrs) =
                self.attributes(kind, placed, model, &conversation, &mut agent_names);
            attrs.push(s("periscope.scenario", kind.name()));
            match node {
                Node::Chat => {
                    slots.push((k, Slot::Input));
                    slots.push((k, Slot::Output));
                }
                Node::Tool => {
                    slots.push((k, Slot::Arguments));
                    slots.push((k, Slot::Result));
                }
                _ => {}
            }
            let (start, end) = times[k];
            let mut events = Vec::new();
            if node == Node::Chat {
                // First token, as instrumentations record it.
                events.push(Event {
                    time_unix_nano: start + (end - start) / 5,
                    name: "gen_ai.content.first_token".into(),
                    attributes: Vec::new(),
                    dropped_attributes_count: 0,
                });
            }
            spans.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: ids[k].to_vec(),
                parent_span_id: parent.map(|p| ids[p].to_vec()).unwrap_or_default(),
                name,
                kind: span_kind as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes: attrs,
                events,
                status: Some(Status {
                    message: String::new(),
                    code: 1, // OK
                }),
                flags: 0x100, // the parent's remote flag known: local
                ..Default::default()
            });
        }
        let mut request = export_request(&self.dress, "periscope.otlp-traces", spans);
        let tokens = match (shape.bytes, shape.tokens) {
            (Some(bytes), Some(tokens)) => {
                // Aim within ±10% of the targets, so every trace lands inside
                // the ±15% a backend operator plans with.
                let spread = 0.9 + 0.2 * self.rng.f64();
                let bytes = (bytes as f64 * spread) as usize;
                let tokens = (tokens as f64 * spread) as usize;
                self.fill_payloads(&mut request, &slots, bytes, tokens)
            }
            _ => 0,
        };
        Trace {
            request,
            trace_id,
            spans: tree.len() as u32,
            depth: tree.depth() as u32,
            tokens,
            kind,
        }
    }

    fn fill(&mut self, b: &mut [u8]) {
        for x in b.iter_mut() {
            *x = self.rng.u8(..);
        }
        if b.iter().all(|x| *x == 0) {
            b[0] = 1; // all zeroes is an invalid id
        }
    }

    pub(super) fn between(&mut self, (lo, hi): (usize, usize)) -> usize {
        self.rng.usize(lo..=hi)
    }

    fn attributes(
        &mut self,
        kind: Kind,
        placed: &Placed,
        model: &str,
        conversation: &str,
        agent_names: &mut Vec<&'static str>,
    ) -> (String, SpanKind, Vec<KeyValue>) {
        let p = self.dress.platform;
        let (node, level) = (placed.node, placed.level);
        let mut a = Vec::with_capacity(12);
        let (name, kind_) = match node {
            Node::Agent => {
                let agent = match placed.name {
                    Some(n) => n,
                    None if agent_names.is_empty() => AGENTS[0],
                    None => AGENTS[1 + self.rng.usize(..AGENTS.len() - 1)],
                };
                agent_names.push(agent);
                a.push(s("gen_ai.operation.name", "invoke_agent"));
                a.push(s("gen_ai.agent.name", agent));
                a.push(s("gen_ai.agent.id", format!("agent_{agent}_{level}")));
                a.push(s("gen_ai.conversation.id", conversation));
                a.push(s("gen_ai.provider.name", "openai"));
                a.push(s("gen_ai.request.model", model));
                (format!("invoke_agent {agent}"), SpanKind::Internal)
            }
            Node::Chat => {
                self.chat_attributes(model, &mut a);
                (format!("chat {model}"), SpanKind::Client)
            }
            Node::Router => {
                // The decision a router (a classifier or a model call) makes:
                // which agent takes the request.
                let to = placed
                    .name
                    .unwrap_or_else(|| AGENTS[1 + self.rng.usize(..AGENTS.len() - 1)]);
                a.push(s("periscope.step", "routing"));
                a.push(s("router.decision", to));
                a.push(d("router.confidence", 0.5 + 0.5 * self.rng.f64()));
                a.push(s("gen_ai.conversation.id", conversation));
                ("route request".to_string(), SpanKind::Internal)
            }
            Node::Tool => {
                let tool = self.tool_name(placed);
                a.push(s("gen_ai.operation.name", "execute_tool"));
                a.push(s("gen_ai.tool.name", tool));
                a.push(s("gen_ai.tool.type", "function"));
                a.push(s(
                    "gen_ai.tool.call.id",
                    format!("call_{:x}", self.rng.u64(..)),
                ));
                (format!("execute_tool {tool}"), SpanKind::Internal)
            }
            Node::Downstream | Node::Client => {
                let svc = SERVICES[1 + self.rng.usize(..SERVICES.len() - 1)];
                a.push(s("http.request.method", "POST"));
                a.push(s("url.full", format!("http://{svc}:8080/v1/search")));
                a.push(s("server.address", svc));
                a.push(i("http.response.status_code", 200));
                (format!("POST {svc}"), SpanKind::Client)
            }
            Node::Server => {
                let svc = SERVICES[self.rng.usize(..SERVICES.len())];
                a.push(s("http.request.method", "POST"));
                a.push(s("http.route", "/v1/search"));
                a.push(s("service.instance", format!("{svc}-{}", self.rng.u8(..))));
                a.push(i("http.response.status_code", 200));
                ("POST /v1/search".to_string(), SpanKind::Server)
            }
            Node::Db => {
                a.push(s("db.system.name", "postgresql"));
                a.push(s("db.operation.name", "SELECT"));
                a.push(s(
                    "db.query.text",
                    "SELECT id, price, seats FROM fares WHERE route = $1 AND day = $2",
                ));
                ("SELECT fares".to_string(), SpanKind::Client)
            }
            Node::Internal => {
                a.push(s("code.function.name", "rank_results"));
                ("rank_results".to_string(), SpanKind::Internal)
            }
        };
        if kind.is_agent() {
            platform_attributes(p, node, model, &mut a);
        }
        (name, kind_, a)
    }

    /// A model call's span: GenAI's request and response attributes.
    fn chat_attributes(&mut self, model: &str, a: &mut Vec<KeyValue>) {
        a.push(s("gen_ai.operation.name", "chat"));
        a.push(s("gen_ai.provider.name", "openai"));
        a.push(s("gen_ai.request.model", model));
        a.push(s("gen_ai.response.model", format!("{model}-2024-08-06")));
        a.push(s(
            "gen_ai.response.id",
            format!("chatcmpl-{:x}", self.rng.u64(..)),
        ));
        a.push(kv(
            "gen_ai.request.temperature",
            any_value::Value::DoubleValue(0.2),
        ));
        a.push(i("gen_ai.request.max_tokens", 1024));
        a.push(kv(
            "gen_ai.response.finish_reasons",
            any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: vec![AnyValue {
                    value: Some(any_value::Value::StringValue("stop".into())),
                }],
            }),
        ));
        a.push(s("server.address", "api.openai.com"));
    }
}

/// The attributes an agent's span carries for the platform it is sent to
/// (OpenInference's span kinds for Phoenix, LangSmith's, Braintrust's).
fn platform_attributes(p: Platform, node: Node, model: &str, a: &mut Vec<KeyValue>) {
    match p {
        Platform::Phoenix => {
            let k = match node {
                Node::Agent => "AGENT",
                Node::Chat => "LLM",
                Node::Tool => "TOOL",
                Node::Router => "CHAIN",
                _ => "CHAIN",
            };
            a.push(s("openinference.span.kind", k));
            if node == Node::Chat {
                a.push(s("llm.model_name", model));
                a.push(s("llm.provider", "openai"));
            }
        }
        Platform::Langsmith => {
            let k = match node {
                Node::Chat => "llm",
                Node::Tool => "tool",
                _ => "chain",
            };
            a.push(s("langsmith.span.kind", k));
        }
        Platform::Braintrust => {
            let k = match node {
                Node::Chat => "llm",
                Node::Tool => "tool",
                _ => "task",
            };
            a.push(s(
                "braintrust.span_attributes",
                format!("{{\"type\":\"{k}\"}}"),
            ));
        }
        Platform::Otlp | Platform::Console => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn dress(platform: Platform) -> Dress {
        Dress {
            platform,
            service_name: "svc".into(),
            project: "p".into(),
        }
    }

    #[test]
    fn every_kind_has_its_span_count_depth_and_size() {
        let mut g = Generator::new(7, dress(Platform::Otlp));
        for kind in Kind::ALL {
            let shape = kind.shape();
            for _ in 0..20 {
                let t = g.trace(kind, 1_800_000_000_000_000_000);
                let spans = &t.request.resource_spans[0].scope_spans[0].spans;
                assert_eq!(spans.len() as u32, t.spans);
                assert!(
                    (shape.spans.0..=shape.spans.1).contains(&spans.len()),
                    "{kind:?}: {} spans",
                    spans.len()
                );
                assert!(
                    (shape.depth.0..=shape.depth.1).contains(&(t.depth as usize)),
                    "{kind:?}: depth {}",
                    t.depth
                );
                if let Some(b) = shape.bytes {
                    let len = t.request.encoded_len() as f64;
                    assert!(
                        (len / b as f64 - 1.0).abs() < 0.15,
                        "{kind:?}: {len} bytes for {b}"
                    );
                }
                // Children sit inside their parent's time.
                for sp in spans.iter().skip(1) {
                    let p = spans
                        .iter()
                        .find(|x| x.span_id == sp.parent_span_id)
                        .expect("parent");
                    assert!(sp.start_time_unix_nano >= p.start_time_unix_nano);
                    assert!(sp.end_time_unix_nano <= p.end_time_unix_nano);
                }
            }
        }
    }
}
