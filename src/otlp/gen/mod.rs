//! Synthetic traces: GenAI agent runs (OpenTelemetry GenAI semantic
//! conventions) and plain microservice traces, at the sizes trace-backend
//! operators plan with.
//!
//! A trace is built in two passes. First its tree: agents that call the
//! model, call tools (a tool may call a downstream service over HTTP) and
//! delegate to sub-agents, down to the scenario's depth. Then its payloads —
//! the messages of each model call, the arguments and results of each tool —
//! sized so that the encoded trace lands on the scenario's byte target.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
mod payload;

use payload::Slot;

/// The kinds of trace: four agent scenarios and four plain size profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    SimpleQuery,
    SingleServiceSearch,
    DelegatedBooking,
    MultiServiceComplex,
    Small,
    Medium,
    Large,
    XLarge,
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
        )
    }

    pub fn shape(self) -> Shape {
        let (spans, depth, bytes) = match self {
            Kind::SimpleQuery => ((5, 5), (2, 3), Some(35_000)),
            Kind::SingleServiceSearch => ((11, 13), (3, 4), Some(270_000)),
            Kind::DelegatedBooking => ((23, 27), (4, 5), Some(470_000)),
            Kind::MultiServiceComplex => ((72, 88), (5, 8), Some(2_300_000)),
            Kind::Small => ((8, 15), (3, 4), None),
            Kind::Medium => ((25, 40), (4, 6), None),
            Kind::Large => ((50, 80), (5, 7), None),
            Kind::XLarge => ((100, 150), (6, 9), None),
        };
        Shape {
            spans,
            depth,
            bytes,
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

/// A node of the tree before it becomes a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Agent,
    Chat,
    Tool,
    /// A downstream call made by a tool (HTTP client).
    Downstream,
    /// Plain microservice spans (size profiles).
    Server,
    Client,
    Db,
    Internal,
}

struct Tree {
    /// (node, parent index, level from 1)
    nodes: Vec<(Node, Option<usize>, usize)>,
}

impl Tree {
    fn push(&mut self, n: Node, parent: Option<usize>) -> usize {
        let level = parent.map_or(1, |p| self.nodes[p].2 + 1);
        self.nodes.push((n, parent, level));
        self.nodes.len() - 1
    }
    fn depth(&self) -> usize {
        self.nodes.iter().map(|n| n.2).max().unwrap_or(0)
    }
}

const MODELS: [&str; 3] = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"];
const AGENTS: [&str; 8] = [
    "travel_assistant",
    "flight_agent",
    "hotel_agent",
    "car_rental_agent",
    "payments_agent",
    "itinerary_agent",
    "loyalty_agent",
    "support_agent",
];
const TOOLS: [&str; 8] = [
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
        let tree = if kind.is_agent() {
            self.agent_tree(shape)
        } else {
            self.service_tree(shape)
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
        for (k, &(node, parent, level)) in tree.nodes.iter().enumerate() {
            let (name, span_kind, mut attrs) =
                self.attributes(kind, node, level, model, &conversation, &mut agent_names);
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
        let tokens = match shape.bytes {
            Some(target) => {
                // Aim within ±10% of the target, so every trace lands inside
                // the ±15% a backend operator plans with.
                let target = (target as f64 * (0.9 + 0.2 * self.rng.f64())) as usize;
                self.fill_payloads(&mut request, &slots, target)
            }
            None => 0,
        };
        Trace {
            request,
            trace_id,
            spans: tree.nodes.len() as u32,
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

    fn between(&mut self, (lo, hi): (usize, usize)) -> usize {
        self.rng.usize(lo..=hi)
    }

    /// An agent run: a chain of delegations down to the depth, then model
    /// calls, tool calls (some with a downstream call) and more delegations
    /// hung on the agents until the span count is reached.
    fn agent_tree(&mut self, shape: Shape) -> Tree {
        let n = self.between(shape.spans);
        let depth = self.between(shape.depth);
        let mut t = Tree {
            nodes: Vec::with_capacity(n),
        };
        let root = t.push(Node::Agent, None);
        let mut agents = vec![root];
        // The deepest path: agents delegating, ending in a tool whose
        // downstream call is the last level when there is room for it.
        let mut last = root;
        let spine_agents = depth.saturating_sub(2).max(1);
        for _ in 1..spine_agents {
            last = t.push(Node::Agent, Some(last));
            agents.push(last);
        }
        if depth >= 2 {
            let tool = t.push(Node::Tool, Some(last));
            if t.nodes[tool].2 < depth {
                t.push(Node::Downstream, Some(tool));
            }
        }
        // Every agent calls the model at least once.
        for a in agents.clone() {
            if t.nodes.len() < n {
                t.push(Node::Chat, Some(a));
            }
        }
        while t.nodes.len() < n {
            let a = agents[self.rng.usize(..agents.len())];
            let level = t.nodes[a].2;
            let room = n - t.nodes.len();
            match self.rng.u32(0..10) {
                0..=3 => {
                    t.push(Node::Chat, Some(a));
                }
                4..=7 => {
                    let tool = t.push(Node::Tool, Some(a));
                    if room >= 2 && level + 2 <= depth && self.rng.bool() {
                        t.push(Node::Downstream, Some(tool));
                    }
                }
                _ if room >= 2 && level + 2 <= depth => {
                    let sub = t.push(Node::Agent, Some(a));
                    agents.push(sub);
                    t.push(Node::Chat, Some(sub));
                }
                _ => {
                    t.push(Node::Chat, Some(a));
                }
            }
        }
        t
    }

    /// A plain request through services: a server span per hop, client
    /// calls between them, database calls and internal work.
    fn service_tree(&mut self, shape: Shape) -> Tree {
        let n = self.between(shape.spans);
        let depth = self.between(shape.depth);
        let mut t = Tree {
            nodes: Vec::with_capacity(n),
        };
        let root = t.push(Node::Server, None);
        let mut last = root;
        while t.depth() < depth && t.nodes.len() < n {
            let c = t.push(Node::Client, Some(last));
            if t.depth() == depth || t.nodes.len() == n {
                break;
            }
            last = t.push(Node::Server, Some(c));
        }
        while t.nodes.len() < n {
            let servers: Vec<usize> = (0..t.nodes.len())
                .filter(|k| t.nodes[*k].0 == Node::Server && t.nodes[*k].2 < depth)
                .collect();
            let p = servers[self.rng.usize(..servers.len())];
            let node = if self.rng.bool() {
                Node::Db
            } else {
                Node::Internal
            };
            t.push(node, Some(p));
        }
        t
    }

    /// Start and end of every span, children one after another inside
    /// their parent, the whole trace ending at `end_ns`.
    fn times(&mut self, t: &Tree, end_ns: u64) -> Vec<(u64, u64)> {
        let n = t.nodes.len();
        let mut own: Vec<u64> = t
            .nodes
            .iter()
            .map(|(node, _, _)| {
                let ms = match node {
                    Node::Chat => self.rng.u64(300..3000),
                    Node::Tool => self.rng.u64(20..400),
                    Node::Downstream | Node::Client => self.rng.u64(5..200),
                    Node::Db => self.rng.u64(1..30),
                    _ => self.rng.u64(1..20),
                };
                ms * 1_000_000
            })
            .collect();
        // A parent lasts its children plus its own work (children come
        // after their parent in the list).
        for k in (1..n).rev() {
            if let Some(p) = t.nodes[k].1 {
                own[p] += own[k];
            }
        }
        let mut start = vec![0u64; n];
        let mut cursor = vec![0u64; n];
        start[0] = end_ns.saturating_sub(own[0]);
        cursor[0] = start[0] + 1_000_000;
        for k in 1..n {
            let p = t.nodes[k].1.unwrap_or(0);
            start[k] = cursor[p];
            cursor[p] += own[k];
            cursor[k] = start[k] + 500_000;
        }
        (0..n).map(|k| (start[k], start[k] + own[k])).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn attributes(
        &mut self,
        kind: Kind,
        node: Node,
        level: usize,
        model: &str,
        conversation: &str,
        agent_names: &mut Vec<&'static str>,
    ) -> (String, SpanKind, Vec<KeyValue>) {
        let p = self.dress.platform;
        let mut a = Vec::with_capacity(12);
        let (name, kind_) = match node {
            Node::Agent => {
                let agent = if agent_names.is_empty() {
                    AGENTS[0]
                } else {
                    AGENTS[1 + self.rng.usize(..AGENTS.len() - 1)]
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
                    any_value::Value::ArrayValue(
                        opentelemetry_proto::tonic::common::v1::ArrayValue {
                            values: vec![AnyValue {
                                value: Some(any_value::Value::StringValue("stop".into())),
                            }],
                        },
                    ),
                ));
                a.push(s("server.address", "api.openai.com"));
                (format!("chat {model}"), SpanKind::Client)
            }
            Node::Tool => {
                let tool = TOOLS[self.rng.usize(..TOOLS.len())];
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
            match p {
                Platform::Phoenix => {
                    let k = match node {
                        Node::Agent => "AGENT",
                        Node::Chat => "LLM",
                        Node::Tool => "TOOL",
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
                Platform::Otlp => {}
            }
        }
        (name, kind_, a)
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
