#!/usr/bin/env bash
# The Tempo performance suite's runner, as its make targets ran it (make
# perf-test, perf-test-dry-run, k6-ingestion, k6-query, k6-combined): each
# profile in turn, ingestion and queries as two runs side by side (its two
# k6 Jobs), each with its log and JSON, into $RESULTS:
#   PROFILE-k6-ingestion.log, PROFILE-k6-ingestion-metrics.json,
#   PROFILE-k6-query.log, PROFILE-k6-query-metrics.json,
#   PROFILE-metrics.csv (the backend's Prometheus metrics, scraped from the
#   query endpoint's /metrics while it ran), PROFILE-dashboard.html.
#
# usage: scripts/perf-test.sh [--dry-run] PROFILE[,PROFILE…]
# A profile is a built-in (otlp-PROFILE, see `periscope scenarios`) or a
# file PROFILES_DIR/PROFILE.yaml (the suite's own profile schema is read).
# Environment: PERISCOPE (the binary), RESULTS (results), TEST_TYPE
# (ingestion, query or combined; default combined when a query endpoint is
# known, else ingestion), QUERY_ENDPOINT or TEMPO_QUERY_ENDPOINT, the OTLP
# endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or TEMPO_ENDPOINT, read by
# periscope), MOCK=1 (a `periscope mock` process takes both loads instead),
# PROFILES_DIR (profiles), ARGS (more flags for every run), INFLUX_OUT.
set -euo pipefail
# Paths (RESULTS, PROFILES_DIR) are the caller's, from where make ran.
. "$(dirname "$0")/lib.sh"

dry=""
if [ "${1:-}" = "--dry-run" ]; then
  dry=--dry-run
  shift
fi
PERISCOPE=${PERISCOPE:-target/release/periscope}
RESULTS=${RESULTS:-results}
PROFILES_DIR=${PROFILES_DIR:-profiles}
query=${QUERY_ENDPOINT:-${TEMPO_QUERY_ENDPOINT:-}}
mock=""
case "${MOCK:-}" in 1 | true | yes) mock=1 ;; esac
read -r -a extra <<<"${ARGS:-}"
read -r -a influx <<<"${INFLUX_OUT:-}"
mkdir -p "$RESULTS"

target=()
if [ -n "$mock" ] && [ -z "$dry" ]; then
  # One mock for both runs, as one Tempo takes both loads.
  port=$(free_port)
  "$PERISCOPE" mock --listen "127.0.0.1:$port" >"$RESULTS/.perf-test-mock.log" 2>&1 &
  mock_pid=$!
  trap 'kill $mock_pid 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$port/mock/stats" && break
    sleep 0.05
  done
  target=(--endpoint "http://127.0.0.1:$port/v1/traces")
  query=${query:-http://127.0.0.1:$port}
elif [ -n "$mock" ] || { [ -n "$dry" ] && [ -z "${OTEL_EXPORTER_OTLP_ENDPOINT:-}${OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:-}${TEMPO_ENDPOINT:-}" ]; }; then
  # A dry run sends nothing: with no endpoint it plans against the mock.
  target=(--mock)
elif [ -z "${OTEL_EXPORTER_OTLP_ENDPOINT:-}${OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:-}${TEMPO_ENDPOINT:-}" ]; then
  echo "error: no OTLP endpoint: set OTEL_EXPORTER_OTLP_ENDPOINT (or TEMPO_ENDPOINT=host:4317), or MOCK=1 for the built-in mock" >&2
  exit 1
fi

# The scenario of a profile: a built-in, else a file of the profiles folder.
scenario_of() {
  if "$PERISCOPE" scenarios 2>/dev/null | grep -qE "^ +otlp-$1 "; then
    echo "otlp-$1"
  elif [ -f "$PROFILES_DIR/$1.yaml" ]; then
    echo "$PROFILES_DIR/$1.yaml"
  else
    echo "error: unknown profile '$1': no built-in otlp-$1 and no $PROFILES_DIR/$1.yaml" >&2
    return 1
  fi
}

IFS=, read -r -a profiles <<<"$1"
for p in "${profiles[@]}"; do
  sc=$(scenario_of "$p")
  type=${TEST_TYPE:-}
  if [ -z "$type" ]; then
    if [ -n "$query" ]; then type=combined; else type=ingestion; fi
  fi
  q=()
  [ -n "$query" ] && q=(--query-endpoint "$query")
  if [ -n "$dry" ]; then
    "$PERISCOPE" run --scenario "$sc" "${target[@]}" --test-type "$type" "${q[@]}" --dry-run "${extra[@]}"
    continue
  fi
  echo "== profile $p ($sc): $type"
  pids=()
  if [ "$type" != query ]; then
    metrics=()
    if [ -n "$query" ]; then
      # The backend's own metrics while it ran (Tempo serves them beside its API).
      origin=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(f"{p.scheme}://{p.netloc}")' "$query")
      metrics=(--server-metrics "$origin/metrics" --server-csv "$RESULTS/$p-metrics.csv")
    fi
    "$PERISCOPE" run --scenario "$sc" "${target[@]}" --test-type ingestion "${metrics[@]}" "${influx[@]}" \
      --json "$RESULTS/$p-k6-ingestion-metrics.json" --html "$RESULTS/$p-dashboard.html" \
      --progress-every 10 "${extra[@]}" >"$RESULTS/$p-k6-ingestion.log" 2>&1 &
    pids+=($!)
  fi
  if [ "$type" != ingestion ]; then
    if [ -z "$query" ]; then
      echo "error: TEST_TYPE=$type needs the query API: QUERY_ENDPOINT=http://tempo:3200 (or TEMPO_QUERY_ENDPOINT)" >&2
      exit 1
    fi
    "$PERISCOPE" run --scenario "$sc" "${target[@]}" --test-type query "${q[@]}" "${influx[@]}" \
      --json "$RESULTS/$p-k6-query-metrics.json" \
      --progress-every 10 "${extra[@]}" >"$RESULTS/$p-k6-query.log" 2>&1 &
    pids+=($!)
  fi
  failed=0
  for pid in "${pids[@]}"; do
    wait "$pid" || failed=$?
  done
  for f in "$RESULTS/$p"-k6-*.log; do
    echo "-- $f"
    # The summary, as the suite printed the end of its k6 logs.
    sed -n '/^## periscope/,$p' "$f"
  done
  if [ "$failed" != 0 ]; then
    echo "error: profile $p failed (exit $failed): see $RESULTS/$p-k6-*.log" >&2
    exit "$failed"
  fi
done
