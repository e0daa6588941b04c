#!/usr/bin/env bash
# What `--dashboard` costs the load, in one run: periscope on nginx's
# 64-token SSE stream, CONC VUs for DUR seconds, plain; with --dashboard;
# and with --dashboard and a page reading its events (curl -N, as a browser
# would); in turn over ROUNDS rounds (the order rotates). Prints req/s and
# CPU-seconds per 1000 requests of each, and each one's ratio to the plain
# run taken within a round (medians). `make bench` runs it last.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN=${BIN:-target/release/periscope}
DUR=${DUR:-8}
ROUNDS=${ROUNDS:-3}
CONC=${CONC:-64}
need nginx nginx-light
[ -x /usr/bin/time ] || need /usr/bin/time time
work=$(mktemp -d)
chmod 755 "$work"  # nginx workers (www-data) read the bodies
trap 'nginx_stop "$work"; kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

capture_bodies "$BIN" "$work"
port=$(free_port); nginx_static "$work" "$port"
wait_http "http://127.0.0.1:$port/v1/chat/completions"

# one MODE → "req/s requests cpu-s"
one() {
  local mode=$1 dash=() t=$work/time reader=""
  local dport
  dport=$(free_port)
  case $mode in
    plain) ;;
    dashboard) dash=(--dashboard "127.0.0.1:$dport") ;;
    page)
      dash=(--dashboard "127.0.0.1:$dport")
      # A page from the start: retries until the run serves it.
      : > "$work/events.txt"
      (for _ in $(seq 200); do
         # 7: nothing listens yet; anything else: it read until the run's end.
         rc=0; curl -sN "http://127.0.0.1:$dport/events" >> "$work/events.txt" 2>/dev/null || rc=$?
         [ "$rc" = 7 ] || break
         sleep 0.05
       done) &
      reader=$!
      ;;
  esac
  /usr/bin/time -f "%U %S" -o "$t" \
    "$BIN" run --target "http://127.0.0.1:$port/stream/v1" --vus "$CONC" --duration "${DUR}s" \
    --stream --no-preflight --progress-every 3600 "${dash[@]}" --json "$work/p.json" > "$work/p.out" 2>&1 \
    || { cat "$work/p.out" >&2; exit 1; }
  if [ -n "$reader" ]; then
    wait "$reader" || true
    local windows
    windows=$(grep -c '^event: window' "$work/events.txt" || true)
    [ "$windows" -ge "$DUR" ] || { echo "the page read $windows windows of a ${DUR}s run" >&2; exit 1; }
  fi
  python3 -c "import json;d=json.load(open('$work/p.json'))['summary'];assert d['errors']==0, d;print(d['ok_rps'], d['ok'])" | tr '\n' ' '
  awk '{print $1 + $2}' "$t"
}

MODES=(plain dashboard page)
results=$work/results.txt
: > "$results"
for r in $(seq "$ROUNDS"); do
  for k in 0 1 2; do
    mode=${MODES[$(((k + r) % 3))]}
    echo "$r $mode $(one "$mode")" >> "$results"
  done
done

python3 - "$results" "$CONC" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(dict)  # round -> mode -> (rps, cpu per 1000)
for line in open(sys.argv[1]):
    r, mode, rps, n, cpu = line.split()
    rows[r][mode] = (float(rps), float(cpu) / float(n) * 1000)
med = statistics.median
print(f"| SSE (nginx, {sys.argv[2]} VUs) | req/s | CPU-s per 1000 req | CPU / plain | req/s / plain |")
print("|---|---|---|---|---|")
for mode, label in (("plain", "periscope"), ("dashboard", "with --dashboard"), ("page", "with --dashboard and a page reading")):
    rps = med(x[mode][0] for x in rows.values())
    cpk = med(x[mode][1] for x in rows.values())
    cr = med(x[mode][1] / x["plain"][1] for x in rows.values())
    rr = med(x[mode][0] / x["plain"][0] for x in rows.values())
    shown = ("", "") if mode == "plain" else (f"{cr:.3f}", f"{rr:.3f}")
    print(f"| {label} | {rps:.0f} | {cpk:.4f} | {shown[0]} | {shown[1]} |")
print()
print("(medians over rounds; each ratio is taken within a round, then the median)")
PY
