// k6: check, sleep, group, fail (periscope's port of k6's core module).
const N = globalThis.__native;

export function check(value, sets, tags) {
  let all = true;
  const t = tags ? JSON.stringify(tags) : "";
  for (const name of Object.keys(sets || {})) {
    const c = sets[name];
    const ok = typeof c === "function" ? !!c(value) : !!c;
    N.check(name, ok, t);
    if (!ok) all = false;
  }
  return all;
}

export function sleep(seconds) {
  N.sleep(Number(seconds));
}

export function group(name, fn) {
  const t0 = Date.now();
  try {
    return fn();
  } finally {
    N.metric("trend", "group_duration", Date.now() - t0, JSON.stringify({ group: "::" + name }), true);
  }
}

export function fail(message) {
  throw new Error(message === undefined ? "fail() called" : String(message));
}

export default { check, sleep, group, fail };
