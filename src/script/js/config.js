// The k6 suite's shared configuration (`import config from "./config.js"`),
// for its scripts that import it and have no config.js of their own: the
// target, key and models from the same variables, with the same defaults.
// periscope's own calls (the `periscope` module) take these from the run.
const env = globalThis.__ENV || {};

export const openai = {
  url: env.OPENAI_BASE_URL || "https://api.openai.com",
  key: env.OPENAI_API_KEY || "",
  completionModel: env.OPENAI_COMPLETION_MODEL || "gpt-3.5-turbo",
  embeddingModel: env.OPENAI_EMBEDDING_MODEL || "text-embedding-3-small",
  codingModel: env.OPENAI_CODING_MODEL || "gpt-3.5-turbo",
  maxTokens: parseInt(env.MAX_TOKENS || "64", 10),
};

export const load = {
  vus: parseInt(env.VUS || "1", 10),
  duration: env.DURATION || "30s",
  batchMode: env.ENABLE_BATCH_MODE === "true",
};

export default { openai, load };
