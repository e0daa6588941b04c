//! The shape of a generated trace before it becomes spans: which node hangs
//! under which, at what level, with what name, and which siblings run at
//! once. Built-in agent scenarios grow a random tree to their span count
//! and depth (a router's decision at the top of multi-agent runs, tool
//! calls batched in parallel); a scenario defined in a file is laid out
//! from its workflow steps; plain size profiles are service call chains.
//! Then every span gets its start and end: children one after another
//! inside their parent, a parallel batch side by side.

use super::workflow::{Branch, Step};
use super::{Generator, Shape, AGENTS, TOOLS};

/// A node of the tree before it becomes a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Node {
    Agent,
    Chat,
    Tool,
    /// A router's decision: which agent takes the request.
    Router,
    /// A downstream call made by a tool (HTTP client).
    Downstream,
    /// Plain microservice spans (size profiles).
    Server,
    Client,
    Db,
    Internal,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Placed {
    pub node: Node,
    pub parent: Option<usize>,
    /// From 1 (the root).
    pub level: usize,
    /// The agent's or tool's name, when the layout chose it (else the
    /// attributes draw one).
    pub name: Option<&'static str>,
    /// Siblings with the same batch run at the same time.
    pub batch: Option<u32>,
}

#[derive(Debug, Default)]
pub(super) struct Tree {
    pub nodes: Vec<Placed>,
    batches: u32,
}

impl Tree {
    pub fn push(&mut self, node: Node, parent: Option<usize>) -> usize {
        self.place(node, parent, None, None)
    }

    pub fn place(
        &mut self,
        node: Node,
        parent: Option<usize>,
        name: Option<&'static str>,
        batch: Option<u32>,
    ) -> usize {
        let level = parent.map_or(1, |p| self.nodes[p].level + 1);
        self.nodes.push(Placed {
            node,
            parent,
            level,
            name,
            batch,
        });
        self.nodes.len() - 1
    }

    fn new_batch(&mut self) -> u32 {
        self.batches += 1;
        self.batches
    }

    pub fn depth(&self) -> usize {
        self.nodes.iter().map(|n| n.level).max().unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }
}

impl Generator {
    /// An agent run: a chain of delegations down to the depth, then model
    /// calls, tool calls (some with a downstream call, some batched to run
    /// in parallel) and more delegations hung on the agents until the span
    /// count is reached. A run deep enough for sub-agents starts with the
    /// router choosing the first of them.
    pub(super) fn agent_tree(&mut self, shape: Shape) -> Tree {
        let n = self.between(shape.spans);
        let depth = self.between(shape.depth);
        let mut t = Tree {
            nodes: Vec::with_capacity(n),
            batches: 0,
        };
        let root = t.place(Node::Agent, None, Some(AGENTS[0]), None);
        let mut agents = vec![root];
        // The deepest path: agents delegating, ending in a tool whose
        // downstream call is the last level when there is room for it. The
        // router, when there is one, decides for the first of them.
        let mut last = root;
        let spine_agents = depth.saturating_sub(2).max(1);
        for i in 1..spine_agents {
            let name = AGENTS[1 + self.rng.usize(..AGENTS.len() - 1)];
            if i == 1 && depth >= 4 && n >= 10 {
                t.place(Node::Router, Some(root), Some(name), None);
            }
            last = t.place(Node::Agent, Some(last), Some(name), None);
            agents.push(last);
        }
        if depth >= 2 {
            let tool = t.push(Node::Tool, Some(last));
            if t.nodes[tool].level < depth {
                t.push(Node::Downstream, Some(tool));
            }
        }
        // Every agent calls the model at least once.
        for a in agents.clone() {
            if t.len() < n {
                t.push(Node::Chat, Some(a));
            }
        }
        while t.len() < n {
            let a = agents[self.rng.usize(..agents.len())];
            let level = t.nodes[a].level;
            let room = n - t.len();
            match self.rng.u32(0..10) {
                0..=3 => {
                    t.push(Node::Chat, Some(a));
                }
                // Searches fanned out at once (flights and hotels together).
                4 if room >= 2 => {
                    let batch = Some(t.new_batch());
                    for _ in 0..self.rng.usize(2..=room.min(3)) {
                        t.place(Node::Tool, Some(a), None, batch);
                    }
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

    /// A scenario's workflow laid out under its root agent.
    pub(super) fn workflow_tree(&mut self, root_agent: &'static str, steps: &[Step]) -> Tree {
        let mut t = Tree::default();
        let root = t.place(Node::Agent, None, Some(root_agent), None);
        self.lay_out(&mut t, root, steps, None);
        t
    }

    fn lay_out(&mut self, t: &mut Tree, parent: usize, steps: &[Step], batch: Option<u32>) {
        for step in steps {
            match step {
                Step::Llm => {
                    t.place(Node::Chat, Some(parent), None, batch);
                }
                Step::Tool(tool) => {
                    t.place(Node::Tool, Some(parent), Some(tool.name), batch);
                }
                Step::Call(tool) => {
                    let k = t.place(Node::Tool, Some(parent), Some(tool.name), batch);
                    t.push(Node::Downstream, Some(k));
                }
                Step::Delegate(b) => self.branch(t, parent, b, batch),
                Step::Route(branches) if !branches.is_empty() => {
                    let b = &branches[self.rng.usize(..branches.len())];
                    t.place(Node::Router, Some(parent), Some(b.agent.name), batch);
                    self.branch(t, parent, b, batch);
                }
                Step::Route(_) => {}
                Step::Parallel(inner) => {
                    let b = t.new_batch();
                    self.lay_out(t, parent, inner, Some(b));
                }
            }
        }
    }

    fn branch(&mut self, t: &mut Tree, parent: usize, b: &Branch, batch: Option<u32>) {
        let agent = t.place(Node::Agent, Some(parent), Some(b.agent.name), batch);
        self.lay_out(t, agent, &b.steps, None);
    }

    /// A plain request through services: a server span per hop, client
    /// calls between them, database calls and internal work.
    pub(super) fn service_tree(&mut self, shape: Shape) -> Tree {
        let n = self.between(shape.spans);
        let depth = self.between(shape.depth);
        let mut t = Tree {
            nodes: Vec::with_capacity(n),
            batches: 0,
        };
        let root = t.push(Node::Server, None);
        let mut last = root;
        while t.depth() < depth && t.len() < n {
            let c = t.push(Node::Client, Some(last));
            if t.depth() == depth || t.len() == n {
                break;
            }
            last = t.push(Node::Server, Some(c));
        }
        while t.len() < n {
            let servers: Vec<usize> = (0..t.len())
                .filter(|k| t.nodes[*k].node == Node::Server && t.nodes[*k].level < depth)
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

    /// Start and end of every span, the whole trace ending at `end_ns`:
    /// children one after another inside their parent, the members of a
    /// parallel batch starting together (the batch lasting its longest).
    pub(super) fn times(&mut self, t: &Tree, end_ns: u64) -> Vec<(u64, u64)> {
        let n = t.len();
        let mut own: Vec<u64> = t
            .nodes
            .iter()
            .map(|p| {
                let ms = match p.node {
                    Node::Chat => self.rng.u64(300..3000),
                    Node::Tool => self.rng.u64(20..400),
                    Node::Downstream | Node::Client => self.rng.u64(5..200),
                    Node::Router => self.rng.u64(2..40),
                    Node::Db => self.rng.u64(1..30),
                    _ => self.rng.u64(1..20),
                };
                ms * 1_000_000
            })
            .collect();
        // A parent lasts its own work plus its children's: a sequence adds
        // up, a batch counts once as its longest member (children come
        // after their parent in the list).
        let mut batch_len: std::collections::HashMap<(usize, u32), u64> = Default::default();
        for k in (0..n).rev() {
            // Every child of k is done: each of its batches counts once.
            own[k] += batch_len
                .iter()
                .filter(|((p, _), _)| *p == k)
                .map(|(_, len)| *len)
                .sum::<u64>();
            if let Some(p) = t.nodes[k].parent {
                match t.nodes[k].batch {
                    Some(b) => {
                        let e = batch_len.entry((p, b)).or_insert(0);
                        *e = (*e).max(own[k]);
                    }
                    None => own[p] += own[k],
                }
            }
        }
        let mut start = vec![0u64; n];
        let mut cursor = vec![0u64; n];
        // Where the batch open under each parent started, and how long it
        // lasts.
        let mut open: Vec<Option<(u32, u64, u64)>> = vec![None; n];
        start[0] = end_ns.saturating_sub(own[0]);
        cursor[0] = start[0] + 1_000_000;
        for k in 1..n {
            let p = t.nodes[k].parent.unwrap_or(0);
            match t.nodes[k].batch {
                Some(b) => {
                    let (_, at, _) = match open[p] {
                        Some(o) if o.0 == b => o,
                        _ => {
                            let len = batch_len.get(&(p, b)).copied().unwrap_or(0);
                            let o = (b, cursor[p], len);
                            cursor[p] += len;
                            open[p] = Some(o);
                            o
                        }
                    };
                    start[k] = at;
                }
                None => {
                    open[p] = None;
                    start[k] = cursor[p];
                    cursor[p] += own[k];
                }
            }
            cursor[k] = start[k] + 500_000;
        }
        (0..n).map(|k| (start[k], start[k] + own[k])).collect()
    }

    /// A tool's name: the one the layout chose, else one drawn.
    pub(super) fn tool_name(&mut self, p: &Placed) -> &'static str {
        p.name
            .unwrap_or_else(|| TOOLS[self.rng.usize(..TOOLS.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Dress, Generator, Kind, Platform};
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::Span;

    fn gen() -> Generator {
        Generator::new(
            11,
            Dress {
                platform: Platform::Otlp,
                service_name: "svc".into(),
                project: "p".into(),
            },
        )
    }

    fn attr<'a>(sp: &'a Span, key: &str) -> Option<&'a Value> {
        sp.attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref()?.value.as_ref())
    }

    fn int(sp: &Span, key: &str) -> i64 {
        match attr(sp, key) {
            Some(Value::IntValue(v)) => *v,
            _ => 0,
        }
    }

    /// The scale test's token counts per scenario (±15%), summed over the model
    /// calls' `gen_ai.usage.*`, besides the sizes the mod's test checks.
    #[test]
    fn agent_scenarios_record_their_token_counts() {
        let mut g = gen();
        for (kind, want) in [
            (Kind::SimpleQuery, 5_000.0),
            (Kind::SingleServiceSearch, 18_000.0),
            (Kind::DelegatedBooking, 40_000.0),
            (Kind::MultiServiceComplex, 185_000.0),
        ] {
            for _ in 0..10 {
                let t = g.trace(kind, 1_800_000_000_000_000_000);
                let spans = &t.request.resource_spans[0].scope_spans[0].spans;
                let sum: i64 = spans
                    .iter()
                    .map(|sp| {
                        int(sp, "gen_ai.usage.input_tokens") + int(sp, "gen_ai.usage.output_tokens")
                    })
                    .sum();
                assert_eq!(sum as u64, t.tokens);
                assert!(
                    (sum as f64 / want - 1.0).abs() < 0.15,
                    "{kind:?}: {sum} tokens for {want}"
                );
            }
        }
    }

    /// Deep runs start with a router's decision; some tool calls run side
    /// by side (overlapping in time under one parent), and hotel tools
    /// return hotels.
    #[test]
    fn routers_parallel_tools_and_hotel_results() {
        let mut g = gen();
        let (mut routed, mut overlapping, mut hotels) = (0, 0, 0);
        for _ in 0..40 {
            let t = g.trace(Kind::MultiServiceComplex, 1_800_000_000_000_000_000);
            let spans = &t.request.resource_spans[0].scope_spans[0].spans;
            routed += spans.iter().filter(|s| s.name == "route request").count();
            for (i, a) in spans.iter().enumerate() {
                if let Some(Value::StringValue(n)) = attr(a, "gen_ai.tool.name") {
                    if n.contains("hotel") {
                        if let Some(Value::StringValue(r)) = attr(a, "gen_ai.tool.call.result") {
                            assert!(r.starts_with("{\"hotels\":["), "{n}: {}", &r[..40]);
                            hotels += 1;
                        }
                    }
                }
                for b in &spans[i + 1..] {
                    let tools =
                        a.name.starts_with("execute_tool") && b.name.starts_with("execute_tool");
                    if tools
                        && a.parent_span_id == b.parent_span_id
                        && a.start_time_unix_nano == b.start_time_unix_nano
                    {
                        overlapping += 1;
                    }
                }
            }
        }
        assert_eq!(routed, 40, "one router per multi-agent run");
        // …whose decision is the agent that follows it.
        for _ in 0..10 {
            let t = g.trace(Kind::DelegatedBooking, 1_800_000_000_000_000_000);
            let spans = &t.request.resource_spans[0].scope_spans[0].spans;
            let r = spans
                .iter()
                .position(|s| s.name == "route request")
                .unwrap();
            let Some(Value::StringValue(to)) = attr(&spans[r], "router.decision") else {
                panic!()
            };
            assert_eq!(spans[r + 1].name, format!("invoke_agent {to}"));
        }
        assert!(overlapping > 10, "{overlapping} parallel tool pairs");
        assert!(hotels > 5, "{hotels} hotel results");
    }

    /// A declared workflow becomes exactly its spans: names, the route
    /// taken, the parallel steps side by side, all inside the root's time.
    #[test]
    fn a_declared_workflow_is_laid_out_as_written() {
        let def: super::super::workflow::ScenarioDef = yaml_serde::from_str(
            "name: lounge\nbytes: 60000\ntokens: 6000\nsteps:\n  - llm\n  - route:\n      - {agent: hotel_agent, steps: [llm, {call: search_hotels}]}\n  - parallel: [{tool: get_weather}, {tool: lookup_customer}]\n",
        )
        .unwrap();
        let kind = def.into_kind(&[]).unwrap();
        let mut g = gen();
        let t = g.trace(kind, 1_800_000_000_000_000_000);
        let spans = &t.request.resource_spans[0].scope_spans[0].spans;
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names[..4],
            [
                "invoke_agent travel_assistant",
                names[1],
                "route request",
                "invoke_agent hotel_agent"
            ]
        );
        assert!(names[1].starts_with("chat "));
        assert!(names.contains(&"execute_tool search_hotels"));
        assert!(
            names.iter().any(|n| n.starts_with("POST ")),
            "the call's downstream"
        );
        let w = spans
            .iter()
            .find(|s| s.name == "execute_tool get_weather")
            .unwrap();
        let c = spans
            .iter()
            .find(|s| s.name == "execute_tool lookup_customer")
            .unwrap();
        assert_eq!(w.start_time_unix_nano, c.start_time_unix_nano);
        let root = &spans[0];
        assert!(spans
            .iter()
            .all(|s| s.end_time_unix_nano <= root.end_time_unix_nano));
        assert!(
            (t.tokens as f64 / 6000.0 - 1.0).abs() < 0.15,
            "{}",
            t.tokens
        );
        assert_eq!(t.kind.name(), "lounge");
    }
}
