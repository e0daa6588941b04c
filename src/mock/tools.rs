//! Tool calls as the mock answers them: a request that defines tools (and
//! does not say `tool_choice: "none"`) is answered with one call of its
//! first tool, whose arguments are the generated tokens (`{"input":"…"}`,
//! valid JSON once whole). Streamed, each token is one arguments delta
//! (chat's `tool_calls` deltas, the Responses API's
//! `response.function_call_arguments.delta`), on the latency model's
//! schedule like text.

use std::borrow::Cow;
use std::cell::Cell;

use bytes::{BufMut, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

/// What a request says about tools.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct ToolsIn<'a> {
    #[serde(borrow, default)]
    pub tools: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub tool_choice: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    /// The Responses API's flat shape.
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    /// Chat completions' shape.
    #[serde(borrow, default)]
    function: Option<Named<'a>>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

impl ToolsIn<'_> {
    /// The tool to call, when the request defines tools and allows calls;
    /// `Err` when `tools` is not a list of tools.
    pub fn call(&self) -> Result<Option<String>, String> {
        let Some(raw) = self.tools else {
            return Ok(None);
        };
        if self.tool_choice.is_some_and(|c| c.get() == "\"none\"") {
            return Ok(None);
        }
        let tools: Vec<Tool<'_>> = serde_json::from_str(raw.get())
            .map_err(|_| "'tools' must be an array of tools".to_string())?;
        let Some(first) = tools.first() else {
            return Ok(None);
        };
        let name = first
            .function
            .as_ref()
            .map(|f| f.name.clone())
            .or_else(|| first.name.clone())
            .ok_or("a tool has no name")?;
        Ok(Some(name.into_owned()))
    }

    /// The tool definitions' text, counted as prompt (servers count them).
    pub fn text(&self) -> &str {
        self.tools.map_or("", |t| t.get())
    }
}

/// Where the arguments open and close around the tokens.
const OPEN: &str = "{\"input\":\"";
const CLOSE: &str = "\"}";

/// The whole arguments of a call whose tokens are `tokens`.
pub fn arguments(tokens: &str) -> String {
    format!("{OPEN}{tokens}{CLOSE}")
}

/// The call being streamed: its name, id, and where its arguments are.
pub struct Call {
    pub name: String,
    pub id: String,
    total: u32,
    sent: Cell<u32>,
}

impl Call {
    pub fn new(name: String, id: u64, tokens: u32) -> Self {
        Call {
            name,
            id: format!("call_{id:016x}"),
            total: tokens,
            sent: Cell::new(0),
        }
    }

    /// A token's piece of the arguments: the first opens them, the last
    /// closes them.
    pub fn piece(&self, token: &str) -> String {
        let i = self.sent.get();
        self.sent.set(i + 1);
        let open = if i == 0 { OPEN } else { "" };
        let close = if i + 1 >= self.total { CLOSE } else { "" };
        format!("{open}{token}{close}")
    }

    /// A chat chunk of one token: the first carries the call's id and name.
    pub fn put_chat_token(&self, b: &mut BytesMut, head: &[u8], token: &str) {
        let first = self.sent.get() == 0;
        let piece = serde_json::to_string(&self.piece(token)).expect("json string");
        b.put_slice(head);
        if first {
            let name = serde_json::to_string(&self.name).expect("json string");
            b.put_slice(
                format!(
                    "{{\"tool_calls\":[{{\"index\":0,\"id\":\"{}\",\"type\":\"function\",\"function\":{{\"name\":{name},\"arguments\":{piece}}}}}]}}",
                    self.id
                )
                .as_bytes(),
            );
        } else {
            b.put_slice(b"{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":");
            b.put_slice(piece.as_bytes());
            b.put_slice(b"}}]}");
        }
        b.put_slice(b",\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    }
}

/// A whole chat message calling `name` with `args`.
pub fn chat_message(name: &str, id: u64, args: &str) -> String {
    let j = |s: &str| serde_json::to_string(s).expect("json string");
    format!(
        "{{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{{\"id\":\"call_{id:016x}\",\"type\":\"function\",\"function\":{{\"name\":{},\"arguments\":{}}}}}],\"refusal\":null}}",
        j(name),
        j(args)
    )
}

/// A Responses API function call item.
pub fn responses_item(
    item_id: &str,
    call_id: &str,
    name: &str,
    args: &str,
    status: &str,
) -> String {
    let j = |s: &str| serde_json::to_string(s).expect("json string");
    format!(
        "{{\"id\":\"{item_id}\",\"type\":\"function_call\",\"status\":\"{status}\",\"arguments\":{},\"call_id\":\"{call_id}\",\"name\":{}}}",
        j(args),
        j(name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_tool_is_called_unless_the_request_says_none() {
        let t: ToolsIn = serde_json::from_str(
            r#"{"tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}],"tool_choice":"auto"}"#,
        )
        .unwrap();
        assert_eq!(t.call().unwrap().as_deref(), Some("get_weather"));
        let t: ToolsIn =
            serde_json::from_str(r#"{"tools":[{"type":"function","name":"flat"}]}"#).unwrap();
        assert_eq!(t.call().unwrap().as_deref(), Some("flat"));
        let t: ToolsIn = serde_json::from_str(
            r#"{"tools":[{"type":"function","name":"f"}],"tool_choice":"none"}"#,
        )
        .unwrap();
        assert_eq!(t.call().unwrap(), None);
        let t: ToolsIn = serde_json::from_str(r#"{"tools":"nope"}"#).unwrap();
        assert!(t.call().is_err());
        let t: ToolsIn = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(t.call().unwrap(), None);
    }

    #[test]
    fn streamed_pieces_make_valid_json_arguments() {
        for n in [1u32, 2, 5] {
            let c = Call::new("f".into(), 1, n);
            let mut b = BytesMut::new();
            let mut args = String::new();
            for i in 0..n {
                c.put_chat_token(
                    &mut b,
                    b"data: {\"choices\":[{\"index\":0,\"delta\":",
                    if i == 0 { "a" } else { " b" },
                );
            }
            for line in std::str::from_utf8(&b)
                .unwrap()
                .split("\n\n")
                .filter(|l| !l.is_empty())
            {
                let v: serde_json::Value = serde_json::from_str(&line[6..]).unwrap();
                let call = &v["choices"][0]["delta"]["tool_calls"][0];
                args.push_str(call["function"]["arguments"].as_str().unwrap());
            }
            let v: serde_json::Value = serde_json::from_str(&args).unwrap();
            assert!(v["input"].as_str().unwrap().starts_with('a'), "{args}");
        }
    }
}
