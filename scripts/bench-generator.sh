#!/usr/bin/env bash
# The generator's speed: periscope and oha drive the same endpoints (nginx
# serving static bodies: a whole chat completion and an SSE stream of 64
# tokens) at concurrency 64 for 10 s each, alternating over ROUNDS rounds
# (medians), in one run. Prints req/s and
# CPU-seconds per 1000 requests for both, and periscope's peak RSS with
# 1000 VUs against the mock. Targets: periscope ≥ 0.9 × oha's req/s and
# ≤ 1.2 × its CPU per request on the whole body; RSS ≤ 100 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN=${BIN:-target/release/periscope}
DUR=${DUR:-10}
ROUNDS=${ROUNDS:-3}
CONC=${CONC:-64}
need nginx nginx-light
[ -x /usr/bin/time ] || need /usr/bin/time time
if ! command -v oha >/dev/null; then
  echo "installing oha (cargo install oha --locked)" >&2
  cargo install oha --locked >&2
fi
work=$(mktemp -d)
chmod 755 "$work"  # nginx workers (www-data) read the bodies
trap 'nginx_stop "$work"; kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

capture_bodies "$BIN" "$work"
port=$(free_port); nginx_static "$work" "$port"
wait_http "http://127.0.0.1:$port/v1/chat/completions"

cpu() { # cpu FILE → user+sys seconds written by /usr/bin/time -f "%U %S"
  awk '{print $1 + $2}' "$1"
}

one_oha() { # one_oha PATH BODY → "req/s requests cpu-s"
  local path=$1 body=$2
  /usr/bin/time -f "%U %S" -o "$work/oha.time" \
    oha -z "${DUR}s" -c "$CONC" -m POST -H "Content-Type: application/json" -d "$body" \
    --no-tui --output-format json "http://127.0.0.1:$port$path" > "$work/oha.json" 2>/dev/null
  python3 -c "import json;d=json.load(open('$work/oha.json'));print(d['summary']['requestsPerSec'], sum(d['statusCodeDistribution'].values()))" | tr '\n' ' '
  cpu "$work/oha.time"
}

one_periscope() { # one_periscope PATH FLAG → "req/s requests cpu-s"
  local path=$1 flag=$2
  /usr/bin/time -f "%U %S" -o "$work/p.time" \
    "$BIN" run --target "http://127.0.0.1:$port${path%/chat/completions}" --vus "$CONC" --duration "${DUR}s" \
    $flag --no-preflight --progress-every 3600 --json "$work/p.json" > "$work/p.out" 2>&1 || { cat "$work/p.out" >&2; exit 1; }
  python3 -c "import json;d=json.load(open('$work/p.json'))['summary'];print(d['ok_rps'], d['ok'])" | tr '\n' ' '
  cpu "$work/p.time"
}

row() { # row KIND PATH BODY STREAMFLAG: ROUNDS alternating rounds, medians
  local kind=$1 path=$2 body=$3 flag=$4 rounds=""
  for i in $(seq "$ROUNDS"); do
    if [ $((i % 2)) = 1 ]; then
      o=$(one_oha "$path" "$body"); p=$(one_periscope "$path" "$flag")
    else
      p=$(one_periscope "$path" "$flag"); o=$(one_oha "$path" "$body")
    fi
    rounds="$rounds $o $p"
  done
  python3 - "$kind" $rounds <<'PY'
import statistics, sys
kind, v = sys.argv[1], list(map(float, sys.argv[2:]))
rs = [v[i:i + 6] for i in range(0, len(v), 6)]
med = lambda xs: statistics.median(xs)
orps = med([r[0] for r in rs]); prps = med([r[3] for r in rs])
ocpk = med([r[2] / r[1] * 1000 for r in rs]); pcpk = med([r[5] / r[4] * 1000 for r in rs])
rps_ratio = med([r[3] / r[0] for r in rs]); cpu_ratio = med([(r[5] / r[4]) / (r[2] / r[1]) for r in rs])
print(f"| {kind} | {orps:.0f} | {prps:.0f} | {rps_ratio:.2f} | {ocpk:.3f} | {pcpk:.3f} | {cpu_ratio:.2f} | {len(rs)} |")
PY
}

echo "| body | oha req/s | periscope req/s | req/s ratio | oha CPU-s/1000 req | periscope CPU-s/1000 req | CPU ratio | rounds |"
echo "|---|---|---|---|---|---|---|---|"
row whole /v1/chat/completions "$REQ_WHOLE" --no-stream
row stream /stream/v1/chat/completions "$REQ_STREAM" --stream
echo "(medians over alternating rounds; ratios are periscope / oha, taken per round)"

# Memory with 1000 VUs against the mock (in its own process).
mport=$(free_port)
"$BIN" mock --listen "127.0.0.1:$mport" --ttft 50ms --itl 10ms 2>/dev/null &
wait_http "http://127.0.0.1:$mport/health"
ulimit -n 65536 2>/dev/null || true
"$BIN" run --target "http://127.0.0.1:$mport" --vus 1000 --duration "${DUR}s" --no-preflight \
  --progress-every 3600 --json "$work/rss.json" > /dev/null 2>&1
python3 - "$work/rss.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"\nperiscope with 1000 VUs against the mock: peak RSS {d['generator']['peak_rss_mib']:.1f} MiB, "
      f"{d['summary']['ok']} ok requests, {d['summary']['ok_rps']:.0f} req/s, {d['summary']['tokens_per_s']:.0f} tokens/s")
PY
