#!/usr/bin/env bash
# The mock's speed: req/s of `periscope mock` versus nginx serving the same
# body, driven by the same load client (wrk, 1 thread, 64 connections), in
# one run. The two alternate over ROUNDS short rounds and the medians are
# compared, so a noisy neighbour hits both alike. Target: mock ≥ 0.8 × nginx
# on the whole (non-streamed) body.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN=${BIN:-target/release/periscope}
DUR=${DUR:-4s}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-64}
need nginx nginx-light
need wrk wrk
work=$(mktemp -d)
chmod 755 "$work"  # nginx workers (www-data) read the bodies
trap 'nginx_stop "$work"; kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

capture_bodies "$BIN" "$work"
nport=$(free_port); nginx_static "$work" "$nport"
mport=$(free_port)
"$BIN" mock --listen "127.0.0.1:$mport" --ttft 0ms --itl 0ms 2>/dev/null &
wait_http "http://127.0.0.1:$mport/health"

lua() { # lua BODY → a wrk script that POSTs BODY
  printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[%s]]\n' "$1" > "$work/$2.lua"
  echo "$work/$2.lua"
}
whole=$(lua "$REQ_WHOLE" whole)
stream=$(lua "$REQ_STREAM" stream)

rps() { # rps SCRIPT URL → requests/s
  wrk -t1 -c"$CONNS" -d"$DUR" -s "$1" "$2" | awk '/Requests\/sec/ {print $2}'
}

echo "| body | nginx req/s (median) | mock req/s (median) | mock / nginx (median of rounds) | rounds |"
echo "|---|---|---|---|---|"
for kind in whole stream; do
  script=$whole; npath=/v1/chat/completions
  if [ $kind = stream ]; then script=$stream; npath=/stream/v1/chat/completions; fi
  ns=(); ms=()
  for _ in $(seq "$ROUNDS"); do
    ns+=("$(rps "$script" "http://127.0.0.1:$nport$npath")")
    ms+=("$(rps "$script" "http://127.0.0.1:$mport/v1/chat/completions")")
  done
  python3 - "$kind" "${ns[*]}" "${ms[*]}" <<'PY'
import statistics, sys
kind, ns, ms = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
ratios = [m / n for n, m in zip(ns, ms)]
print(f"| {kind} | {statistics.median(ns):.0f} | {statistics.median(ms):.0f} | {statistics.median(ratios):.2f} | {len(ns)} |")
PY
done
