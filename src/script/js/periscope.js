// periscope: LLM calls made by periscope's own client, so that every LLM
// metric (ttft, itl, tpot, tokens by usage) is measured as for the
// built-in workloads. Target, token and model come from the run's flags.
const N = globalThis.__native;

function call(kind, body) {
  if (Array.isArray(body)) {
    // embed(['a', 'b']) embeds both; chat([...]) sends those messages.
    body = kind === "embed" ? { input: body } : { messages: body };
  } else if (typeof body === "string") {
    if (kind === "embed") body = { input: body };
    else if (kind === "complete") body = { prompt: body };
    else if (kind === "responses") body = { input: body };
    else body = { messages: [{ role: "user", content: body }] };
  }
  return JSON.parse(N.llm(kind, JSON.stringify(body || {})));
}

export function chat(body) {
  return call("chat", body);
}
export function complete(body) {
  return call("complete", body);
}
export function embed(body) {
  return call("embed", body);
}
export function responses(body) {
  return call("responses", body);
}
export function messages(body) {
  return call("messages", body);
}

/** The generated text of an answer (periscope's, or an OpenAI body). */
export function getContent(r) {
  if (!r) return "";
  if (typeof r.content === "string") return r.content;
  const c = r.choices && r.choices[0];
  if (c && c.message) return c.message.content || "";
  if (c && typeof c.text === "string") return c.text;
  return "";
}

/** The reasoning an answer came with ("" when none): reasoning_content,
 * Responses reasoning items, Anthropic thinking. */
export function getReasoning(r) {
  if (!r) return "";
  if (typeof r.reasoning === "string") return r.reasoning;
  const m = r.choices && r.choices[0] && r.choices[0].message;
  return (m && (m.reasoning_content || m.reasoning)) || "";
}

/** The k6 suite's client: `createClient({options: {model}}).chatComplete({messages})`. */
export function createClient(config) {
  const defaults = (config && config.options) || {};
  const withDefaults = (b) => Object.assign({}, defaults, b || {});
  return {
    chatComplete: (b) => chat(withDefaults(b)),
    complete: (b) => complete(withDefaults(b)),
    embed: (b) => embed(withDefaults(b)),
    responses: (b) => responses(withDefaults(b)),
    messages: (b) => messages(withDefaults(b)),
  };
}

/** Prompts of a dataset: a built-in suite's name or a file (JSONL/CSV). */
export function dataset(name, opts) {
  return JSON.parse(N.dataset(String(name), JSON.stringify(opts || {})));
}

export default { chat, complete, embed, responses, messages, getContent, createClient, dataset };
