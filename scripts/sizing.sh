#!/usr/bin/env bash
# Sizing a segment: what one periscope process holds and uses at a given
# load, measured against the mock (its own process) on this machine.
# For each level: streaming chat at N VUs (closed model: one connection per
# VU) and an arrival rate (open model), DUR seconds each. Prints, per level:
# requests/s, peak TCP connections to the target and file descriptors of the
# periscope process (sampled every 200 ms from /proc), its CPU-seconds per
# second of load (cores) and per 1000 requests, its peak RSS, and the bytes
# each stream in flight costs: (peak RSS - the RSS of a 1-VU run) / the
# streams in flight (req/s x mean e2e, Little's law).
# The mock streams 16 tokens, ttft 100ms, itl 20ms: ≈ 0.4 s per request.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN=${BIN:-target/release/periscope}
DUR=${DUR:-10}
VUS_LEVELS=${VUS_LEVELS:-"64 256 1024"}
RATE_LEVELS=${RATE_LEVELS:-"200 1000"}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
ulimit -n 65536 2>/dev/null || true
port=$(free_port)
"$BIN" mock --listen "127.0.0.1:$port" --ttft 100ms --itl 20ms --output-tokens 16 2>/dev/null &
wait_http "http://127.0.0.1:$port/health"

# sample PID → "peak-connections peak-fds" while PID lives
sample() {
  local pid=$1 conns=0 fds=0 c f
  while kill -0 "$pid" 2>/dev/null; do
    f=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    # Established connections to the mock's port, from the kernel's table.
    c=$(awk -v p="$(printf ':%04X' "$port")" '$3 ~ p"$" && $4 == "01"' /proc/net/tcp /proc/net/tcp6 2>/dev/null | wc -l)
    ((f > fds)) && fds=$f
    ((c > conns)) && conns=$c
    sleep 0.2
  done
  echo "$conns $fds"
}

one() { # one LABEL FLAGS… → a table row
  local label=$1; shift
  "$BIN" run --target "http://127.0.0.1:$port/v1" --duration "${DUR}s" --no-preflight \
    --progress-every 3600 --json "$work/r.json" "$@" >"$work/out" 2>&1 &
  local pid=$!
  local peaks; peaks=$(sample "$pid")
  wait "$pid" || { cat "$work/out" >&2; exit 1; }
  python3 - "$work/r.json" "$label" $peaks "$DUR" "$base_rss" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
label, conns, fds, dur = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
base = float(sys.argv[6])
s, g = r["summary"], r["generator"]
cpu = g["cpu_seconds"]
in_flight = s["ok_rps"] * r["latency"]["e2e"]["mean"] / 1000
per = (g["peak_rss_mib"] - base) * 1024 / max(in_flight, 1)
print(f"| {label} | {s['ok_rps']:.0f} | {conns} | {fds} | {cpu / dur:.2f} | "
      f"{1000 * cpu / max(s['ok'], 1):.3f} | {g['peak_rss_mib']:.0f} | {in_flight:.0f} | {per:.1f} | {s['errors']} |")
PY
}

# The RSS of one VU: what a process holds before any stream.
"$BIN" run --target "http://127.0.0.1:$port/v1" --duration 2s --no-preflight \
  --progress-every 3600 --json "$work/base.json" --vus 1 >/dev/null 2>&1
base_rss=$(python3 -c "import json;print(json.load(open('$work/base.json'))['generator']['peak_rss_mib'])")

echo "periscope $("$BIN" --version | awk '{print $2}'), $(nproc) cores, ${DUR}s per level, mock: 16 tokens, ttft 100ms, itl 20ms"
echo
echo "RSS of one VU: ${base_rss} MiB"
echo
echo "| load | ok req/s | peak connections | peak fds | CPU (cores) | CPU-s / 1000 req | peak RSS MiB | streams in flight | KiB per stream in flight | errors |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for v in $VUS_LEVELS; do one "$v VUs, streaming" --vus "$v"; done
for r in $RATE_LEVELS; do one "$r req/s, streaming" --rate "$r"; done
