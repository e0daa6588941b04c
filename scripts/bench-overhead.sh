#!/usr/bin/env bash
# vLLM's client-overhead study, reproduced on this machine (make
# bench-overhead): a mock that sends the first token at 50 ms and one token
# every 10 ms, 100 tokens, 32-token prompts; the client at 1, 10, 100, 500
# and 1000 concurrent streams, TRIALS trials each. The mock runs in a process
# of its own on the same cores (its CPU share is printed).
#
# Per level, the mean over the trials of:
# - ttft error: the client's mean ttft − 50 ms (vLLM's definition), and
#   − the mock's own mean (request arrival → first token sent, its stamps):
#   the second is the client's and the kernel's share alone;
# - itl error: the client's mean itl − the mock's mean gap between sends;
# - the client's itl p99, max and σ (the mock's σ beside it);
# - the client's CPU-seconds per 1000 requests and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN=${BIN:-target/release/periscope}
TRIALS=${TRIALS:-3}
# concurrency:requests
LEVELS=${LEVELS:-"1:50 10:100 100:500 500:1000 1000:1000"}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
ulimit -n 65536 2>/dev/null || true
port=$(free_port)
"$BIN" mock --listen "127.0.0.1:$port" --ttft 50ms --itl 10ms --output-tokens 100 2>/dev/null &
mock=$!
wait_http "http://127.0.0.1:$port/health"
base="http://127.0.0.1:$port"

cpu_of() { # PID → CPU-seconds so far (user + system)
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}

trial() { # C N T → a JSON line of the trial's figures
  local c=$1 n=$2 t=$3 m0 m1 t0 t1
  curl -s -X DELETE "$base/mock/stats" >/dev/null
  m0=$(cpu_of "$mock"); t0=$(date +%s.%N)
  "$BIN" run --target "$base/v1" --vus "$c" --iterations "$n" --max-tokens 100 \
    --input-tokens 32 --no-preflight --progress-every 3600 --json "$work/r.json" \
    >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
  t1=$(date +%s.%N); m1=$(cpu_of "$mock")
  curl -s "$base/mock/stats" >"$work/mock.json"
  python3 - "$work/r.json" "$work/mock.json" "$c" "$t" "$m0" "$m1" "$t0" "$t1" <<'PY'
import json, sys
r, m = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
c, t = int(sys.argv[3]), int(sys.argv[4])
m0, m1, t0, t1 = map(float, sys.argv[5:9])
lat, s, g = r["latency"], r["summary"], r["generator"]
assert s["errors"] == 0, f"{s['errors']} errors at {c} streams"
assert m["requests"] == s["requests"], (m["requests"], s["requests"])
print(json.dumps({
    "c": c, "n": s["requests"],
    "ttft_err": lat["ttft"]["mean"] - 50.0,
    "ttft_err_mock": lat["ttft"]["mean"] - m["ttft_us"]["mean"] / 1000,
    "itl_err": lat["itl"]["mean"] - m["itl_us"]["mean"] / 1000,
    "itl_p99": lat["itl"]["p99"], "itl_max": lat["itl"]["max"], "itl_std": lat["itl"]["std"],
    "mock_itl_std": m["itl_us"]["std"] / 1000,
    "cpu_per_1000": 1000 * g["cpu_seconds"] / max(s["requests"], 1),
    "rss": g["peak_rss_mib"],
    "mock_share": (m1 - m0) / max(t1 - t0, 1e-9),
}))
PY
}

for level in $LEVELS; do
  c=${level%%:*}; n=${level##*:}
  for t in $(seq "$TRIALS"); do trial "$c" "$n" "$t"; done
done >"$work/trials.jsonl"

cores=$(nproc)
model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
python3 - "$work/trials.jsonl" "$cores" "$model" "$("$BIN" --version | awk '{print $2}')" "$TRIALS" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
cores, model, version, trials = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
# vLLM's published row (its Rust client, 4 cores, client and mock on one machine).
vllm = {1: 2.6, 10: 2.7, 100: 3.5, 500: 19.9, 1000: 28.1}
print(f"periscope {version} on {cores} cores ({model}), client and mock sharing them; "
      f"mock: ttft 50 ms, itl 10 ms, 100 tokens, 32-token prompts; mean of {trials} trials\n")
print("| streams | requests | ttft error (ms) | vLLM's | ttft error vs the mock's stamps | itl error | itl p99 | itl max | itl σ | mock's itl σ | CPU-s / 1000 req | peak RSS MiB | mock's CPU (cores) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for c in sorted({r["c"] for r in rows}):
    rs = [r for r in rows if r["c"] == c]
    a = lambda k: st.mean(r[k] for r in rs)
    spread = max(r["ttft_err"] for r in rs) - min(r["ttft_err"] for r in rs)
    print(f"| {c} | {rs[0]['n']} | {a('ttft_err'):.2f} (±{spread / 2:.2f}) | {vllm.get(c, '')} | "
          f"{a('ttft_err_mock'):.2f} | {a('itl_err'):.3f} | {a('itl_p99'):.2f} | {max(r['itl_max'] for r in rs):.2f} | "
          f"{a('itl_std'):.3f} | {a('mock_itl_std'):.3f} | {a('cpu_per_1000'):.2f} | {max(r['rss'] for r in rs):.0f} | {a('mock_share'):.2f} |")
print("\nvLLM's figures are its published study's (4 cores): ITL σ 0.53 ms at 1000 streams.")
PY

# Startup: exec → the first byte of the first request at a listener of its
# own (Python's, on one clock: CLOCK_MONOTONIC), median of 20 on a warm disk;
# and `periscope --version` to its exit.
echo
python3 - "$BIN" <<'PY'
import json, socket, statistics, subprocess, sys, threading, time
bin_ = sys.argv[1]
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(64)
port = srv.getsockname()[1]
body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9}}).encode()
first = []
def serve():
    while True:
        c, _ = srv.accept()
        c.recv(1)
        first.append(time.monotonic_ns())
        c.recv(65536)
        c.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                  b"content-length: %d\r\n\r\n" % len(body) + body)
        c.close()
threading.Thread(target=serve, daemon=True).start()
def startup(args):
    out = []
    for _ in range(21):
        n = len(first)
        t0 = time.monotonic_ns()
        subprocess.run([bin_, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append((first[n] - t0) / 1e6)
    return statistics.median(out[1:])
run = ["run", "--target", f"http://127.0.0.1:{port}/v1", "--model", "m", "--iterations", "1",
       "--vus", "1", "--no-stream", "--max-tokens", "1"]
pre = startup(run)
nopre = startup(run + ["--no-preflight"])
v = []
for _ in range(21):
    t0 = time.monotonic_ns(); subprocess.run([bin_, "--version"], stdout=subprocess.DEVNULL); v.append((time.monotonic_ns() - t0) / 1e6)
print("| startup (median of 20) | ms |\n|---|---|")
print(f"| `periscope run …` exec → its first request at the server | {pre:.1f} |")
print(f"| the same with `--no-preflight` | {nopre:.1f} |")
print(f"| `periscope --version` exec → exit | {statistics.median(v[1:]):.1f} |")
PY
