// The k6 suite's custom test, ported: a client with a model, one chat
// completion per iteration, its content printed.
// Run: periscope run examples/custom-test.js --mock
//      make script SCRIPT=examples/custom-test.js
import * as oai from "periscope";

export const options = {
  vus: 1,
  duration: "30s",
};

const client = oai.createClient({
  options: {
    model: __ENV.OPENAI_COMPLETION_MODEL || "gpt-3.5-turbo",
  },
});

export default function () {
  const response = client.chatComplete({
    messages: [
      {
        role: "user",
        content: "Generate a random number between 1 and 100",
      },
    ],
  });

  console.log(oai.getContent(response));
}
