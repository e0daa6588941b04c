//! Trace scenarios defined in a scenario file (`otlp.scenarios`): an agent
//! run declared as workflow steps — model calls, tool calls, a tool's
//! downstream call, delegation to a sub-agent, a router choosing among
//! agents, steps run in parallel — with the encoded size and the model
//! tokens each trace should carry. The AI-observability scale test
//! periscope replaces declared its scenarios this way.
//!
//! ```yaml
//! otlp:
//!   scenarios:
//!     - name: lounge_lookup
//!       bytes: 120000
//!       tokens: 9000
//!       steps:
//!         - llm
//!         - route:
//!             - {agent: flight_agent, steps: [llm, {tool: search_flights}]}
//!             - {agent: hotel_agent, steps: [llm, {call: search_hotels}]}
//!         - parallel: [{tool: get_weather}, {tool: lookup_customer}]
//!         - llm
//! ```

use serde::Deserialize;

use super::{Kind, AGENTS};

/// One step of a workflow, as the file writes it: `llm`, or a map of one
/// key (`tool: NAME`, `call: NAME`, `delegate: {agent, steps}`, `route:
/// [...]`, `parallel: [...]`).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A model call (`chat` span with its messages).
    Llm,
    /// A tool call (`execute_tool`, its arguments and result).
    Tool(ToolName),
    /// A tool call that calls a downstream service over HTTP.
    Call(ToolName),
    /// A sub-agent doing its own steps.
    Delegate(Branch),
    /// A router's decision, then one of the branches (drawn per trace).
    Route(Vec<Branch>),
    /// Steps run at the same time.
    Parallel(Vec<Step>),
}

const STEPS: &str =
    "llm, tool: NAME, call: NAME, delegate: {agent, steps}, route: [...] or parallel: [...]";

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Step;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a step: {STEPS}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Step, E> {
                match v.trim() {
                    "llm" => Ok(Step::Llm),
                    other => Err(E::custom(format!(
                        "unknown step '{other}': expected {STEPS}"
                    ))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Step, A::Error> {
                use serde::de::Error;
                let key: String = m
                    .next_key()?
                    .ok_or_else(|| A::Error::custom(format!("an empty step: expected {STEPS}")))?;
                let step = match key.as_str() {
                    "tool" => Step::Tool(m.next_value()?),
                    "call" => Step::Call(m.next_value()?),
                    "delegate" => Step::Delegate(m.next_value()?),
                    "route" => Step::Route(m.next_value()?),
                    "parallel" => Step::Parallel(m.next_value()?),
                    "llm" => {
                        m.next_value::<serde::de::IgnoredAny>()?;
                        Step::Llm
                    }
                    other => {
                        return Err(A::Error::custom(format!(
                            "unknown step '{other}': expected {STEPS}"
                        )))
                    }
                };
                if let Some(k) = m.next_key::<String>()? {
                    return Err(A::Error::custom(format!(
                        "a step has one key ('{key}'), not also '{k}': write each step as its own list item"
                    )));
                }
                Ok(step)
            }
        }
        d.deserialize_any(V)
    }
}

/// A tool's or an agent's name (any; the built-in tool names get realistic
/// results).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToolName {
    pub name: &'static str,
}

impl<'de> Deserialize<'de> for ToolName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(serde::de::Error::custom("a tool or agent needs a name"));
        }
        Ok(ToolName {
            name: intern(s.trim()),
        })
    }
}

/// An agent and its steps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    pub agent: ToolName,
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// Names live as long as the run: a file's scenarios are read once.
fn intern(s: &str) -> &'static str {
    match AGENTS.iter().find(|a| **a == s) {
        Some(a) => a,
        None => Box::leak(s.to_string().into_boxed_str()),
    }
}

/// A scenario as the file declares it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioDef {
    pub name: String,
    /// The encoded size each trace aims at, bytes (±10%).
    pub bytes: usize,
    /// Model tokens each trace records (`gen_ai.usage.*`, ±10%).
    pub tokens: usize,
    /// The root agent (default travel_assistant).
    #[serde(default)]
    pub agent: Option<String>,
    /// Its weight in the mix when the file gives no `mix` (default 1).
    #[serde(default)]
    pub weight: Option<u32>,
    pub steps: Vec<Step>,
}

/// A declared scenario, checked: what [`Kind::Custom`] points at.
#[derive(Debug, PartialEq)]
pub struct Custom {
    pub name: &'static str,
    pub agent: &'static str,
    pub steps: Vec<Step>,
    pub bytes: usize,
    pub tokens: usize,
    /// Spans and depth a trace can have (the routes' extremes).
    pub spans: (usize, usize),
    pub depth: (usize, usize),
}

/// Spans (min, max) and depth (min, max) of `steps` under one agent at `level`.
fn extent(steps: &[Step], level: usize) -> ((usize, usize), (usize, usize)) {
    let mut spans = (0, 0);
    let mut depth = (level, level);
    let mut add = |(s, d): ((usize, usize), (usize, usize))| {
        spans = (spans.0 + s.0, spans.1 + s.1);
        depth = (depth.0.max(d.0), depth.1.max(d.1));
    };
    for step in steps {
        match step {
            Step::Llm | Step::Tool(_) => add(((1, 1), (level + 1, level + 1))),
            Step::Call(_) => add(((2, 2), (level + 2, level + 2))),
            Step::Delegate(b) => add(branch_extent(b, level + 1)),
            Step::Route(bs) => {
                let each: Vec<_> = bs.iter().map(|b| branch_extent(b, level + 1)).collect();
                let min_s = each.iter().map(|e| e.0 .0).min().unwrap_or(0);
                let max_s = each.iter().map(|e| e.0 .1).max().unwrap_or(0);
                let min_d = each.iter().map(|e| e.1 .0).min().unwrap_or(level + 1);
                let max_d = each.iter().map(|e| e.1 .1).max().unwrap_or(level + 1);
                add((
                    (1 + min_s, 1 + max_s),
                    (min_d.max(level + 1), max_d.max(level + 1)),
                ));
            }
            Step::Parallel(inner) => add(extent(inner, level)),
        }
    }
    (spans, depth)
}

fn branch_extent(b: &Branch, level: usize) -> ((usize, usize), (usize, usize)) {
    let ((s0, s1), d) = extent(&b.steps, level);
    ((s0 + 1, s1 + 1), d)
}

impl ScenarioDef {
    /// Check it and give it the run's lifetime; `taken` are the names
    /// already in use.
    pub fn into_kind(self, taken: &[String]) -> Result<Kind, String> {
        let name = self.name.trim().to_string();
        let at = format!("otlp.scenarios '{name}'");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "otlp.scenarios: name '{name}' must be letters, digits and '_'"
            ));
        }
        if Kind::parse(&name).is_some() || taken.contains(&name) {
            return Err(format!(
                "{at}: the name is taken (a built-in or another scenario)"
            ));
        }
        if self.steps.is_empty() {
            return Err(format!(
                "{at}: give its steps (llm, tool: NAME, call: NAME, delegate, route, parallel)"
            ));
        }
        if self.bytes < 1_000 {
            return Err(format!("{at}: bytes must be at least 1000"));
        }
        let (spans, depth) = extent(&self.steps, 1);
        let (spans, depth) = ((spans.0 + 1, spans.1 + 1), depth);
        if self.tokens * 4 > self.bytes {
            return Err(format!(
                "{at}: {} tokens need about {} bytes of messages, more than its {} bytes",
                self.tokens,
                self.tokens * 4,
                self.bytes
            ));
        }
        let custom = Custom {
            name: Box::leak(name.into_boxed_str()),
            agent: intern(self.agent.as_deref().unwrap_or(AGENTS[0])),
            steps: self.steps,
            bytes: self.bytes,
            tokens: self.tokens,
            spans,
            depth,
        };
        Ok(Kind::Custom(Box::leak(Box::new(custom))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(yaml: &str) -> Result<Kind, String> {
        let d: ScenarioDef = yaml_serde::from_str(yaml).map_err(|e| e.to_string())?;
        d.into_kind(&[])
    }

    #[test]
    fn steps_read_from_yaml_and_their_extent() {
        let k = def(
            "name: lounge\nbytes: 50000\ntokens: 4000\nsteps:\n  - llm\n  - route:\n      - {agent: flight_agent, steps: [llm, {tool: search_flights}]}\n      - {agent: hotel_agent, steps: [llm, {call: search_hotels}, llm]}\n  - parallel: [{tool: get_weather}, {tool: lookup_customer}]\n",
        )
        .unwrap();
        let Kind::Custom(c) = k else { panic!() };
        assert_eq!(c.name, "lounge");
        assert_eq!(c.agent, "travel_assistant");
        // root + llm + router + (agent + 2 | agent + 4) + 2 tools
        assert_eq!(c.spans, (8, 10));
        // root 1, agent 2, its tool 3, the call's downstream 4
        assert_eq!(c.depth, (3, 4));
        assert!(matches!(&c.steps[2], Step::Parallel(p) if p.len() == 2));
    }

    #[test]
    fn bad_scenarios_say_what_to_fix() {
        assert!(
            def("name: x\nbytes: 50000\ntokens: 10\nsteps: [{dance: 3}]\n")
                .unwrap_err()
                .contains("unknown step 'dance'")
        );
        assert!(
            def("name: simple_query\nbytes: 50000\ntokens: 10\nsteps: [llm]\n")
                .unwrap_err()
                .contains("taken")
        );
        assert!(def("name: x\nbytes: 5000\ntokens: 10000\nsteps: [llm]\n")
            .unwrap_err()
            .contains("more than its"));
        assert!(def("name: x\nbytes: 5000\ntokens: 10\nsteps: []\n")
            .unwrap_err()
            .contains("give its steps"));
    }
}
