// A plain k6 script: k6/http against an OpenAI-compatible endpoint, no
// periscope module. It runs unchanged under k6 and under periscope.
// Run: OPENAI_BASE_URL=http://127.0.0.1:8000/v1 periscope run examples/k6-http.js
import http from "k6/http";
import { check, sleep } from "k6";

export const options = {
  vus: 2,
  iterations: 20,
  thresholds: {
    http_req_failed: ["rate<0.01"],
    http_req_duration: ["p(95)<2000"],
  },
};

const base = __ENV.OPENAI_BASE_URL || "http://127.0.0.1:8000/v1";

export default function () {
  const res = http.post(
    `${base}/chat/completions`,
    JSON.stringify({
      model: __ENV.OPENAI_COMPLETION_MODEL || "gpt-3.5-turbo",
      messages: [{ role: "user", content: "Say hello." }],
      max_tokens: 16,
    }),
    {
      headers: {
        "Content-Type": "application/json",
        Authorization: `Bearer ${__ENV.OPENAI_API_KEY || "none"}`,
      },
      tags: { name: "chat" },
    },
  );
  check(res, {
    "status is 200": (r) => r.status === 200,
    "has a choice": (r) => r.json("choices.0.message.content") !== undefined,
  });
  sleep(0.1);
}
