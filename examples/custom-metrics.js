// Custom metrics, as the k6 suite's README shows them: the length of each
// prompt and of each answer as trends, with checks and thresholds on them.
// Run: periscope run examples/custom-metrics.js --mock
import { check } from "k6";
import { Trend, Counter } from "k6/metrics";
import { chat, getContent } from "periscope";

export const options = {
  vus: 2,
  duration: "10s",
  thresholds: {
    checks: ["rate>0.99"],
    response_length: ["p(95)>0"],
    http_req_failed: ["rate<0.01"],
  },
};

// Define custom metrics
const promptLength = new Trend("prompt_length");
const responseLength = new Trend("response_length");
const outputTokens = new Counter("output_tokens_total");

const prompts = [
  "Name three prime numbers.",
  "What is a load balancer?",
  "Write a haiku about latency.",
  "Explain time to first token in one sentence.",
];

export default function () {
  const prompt = prompts[(__VU + __ITER) % prompts.length];
  const response = chat({ messages: [{ role: "user", content: prompt }], max_tokens: 32 });
  const text = getContent(response);

  check(response, {
    "status is 200": (r) => r.status === 200,
    "has content": (r) => getContent(r).length > 0,
  });

  // Record metrics
  promptLength.add(prompt.length);
  responseLength.add(text.length);
  outputTokens.add(response.usage.output_tokens);
}
