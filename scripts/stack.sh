#!/usr/bin/env bash
# The metrics stack behind `make setup|start|stop|restart|status|logs|clean|purge`:
# InfluxDB 1.8 (database `periscope`) and Grafana with periscope's dashboards.
#
#   STACK=docker  docker compose with docker-compose.yaml (InfluxDB and Grafana)
#   STACK=native  Debian's influxd as a plain process, data in $STACK_DIR
#                 (InfluxDB only: Grafana is not in Debian's archive)
#   (unset)       docker when a Docker engine answers, else native
#
# INFLUX_PORT (8086) and GRAFANA_PORT (3000) are the loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

INFLUX_PORT=${INFLUX_PORT:-8086}
GRAFANA_PORT=${GRAFANA_PORT:-3000}
STACK_DIR=${STACK_DIR:-.periscope-stack}
INFLUX_URL=http://127.0.0.1:$INFLUX_PORT
GRAFANA_URL=http://127.0.0.1:$GRAFANA_PORT
export INFLUX_PORT GRAFANA_PORT

die() {
  echo "error: $*" >&2
  exit 1
}

compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose -p periscope "$@"
  else
    docker-compose -p periscope "$@"
  fi
}

docker_ready() {
  { docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; } &&
    docker info >/dev/null 2>&1
}

mode() {
  case ${STACK:-} in
    docker | native) echo "$STACK" ;;
    "") if docker_ready; then echo docker; else echo native; fi ;;
    *) die "STACK=$STACK: use STACK=docker or STACK=native" ;;
  esac
}

up() { curl -fsS -m 2 -o /dev/null "$1" 2>/dev/null; }

# wait_up URL WHAT SECONDS
wait_up() {
  for _ in $(seq $(($3 * 10))); do
    up "$1" && return 0
    sleep 0.1
  done
  die "$2 did not answer at $1 within $3 s (make logs shows why)"
}

influx_pid() {
  local f=$STACK_DIR/influxd.pid
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

native_start() {
  command -v influxd >/dev/null 2>&1 ||
    die "influxd is not installed: run 'make setup' (Debian's influxdb package) or install Docker"
  if influx_pid >/dev/null; then
    echo "InfluxDB already running (pid $(influx_pid)) at $INFLUX_URL"
    return
  fi
  up "$INFLUX_URL/ping" && die "port $INFLUX_PORT is taken by another server: set INFLUX_PORT=…"
  mkdir -p "$STACK_DIR/influxdb"
  local d rpc
  d=$(cd "$STACK_DIR" && pwd)/influxdb
  rpc=$(free_port)
  cat >"$STACK_DIR/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$rpc"
[meta]
  dir = "$d/meta"
[data]
  dir = "$d/data"
  wal-dir = "$d/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  log-enabled = false
[monitor]
  store-enabled = false
CONF
  nohup influxd -config "$STACK_DIR/influxdb.conf" >>"$STACK_DIR/influxd.log" 2>&1 &
  echo $! >"$STACK_DIR/influxd.pid"
  wait_up "$INFLUX_URL/ping" InfluxDB 30
  curl -fsS -o /dev/null -XPOST "$INFLUX_URL/query" --data-urlencode "q=CREATE DATABASE periscope"
  echo "InfluxDB (native, data in $STACK_DIR) at $INFLUX_URL, database periscope"
  echo "Grafana: not started (STACK=native runs InfluxDB only; with Docker, make start runs both)"
}

native_stop() {
  local pid
  if pid=$(influx_pid); then
    kill "$pid"
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    echo "InfluxDB stopped"
  else
    echo "InfluxDB is not running"
  fi
  rm -f "$STACK_DIR/influxd.pid"
}

status() {
  local m=$1 bad=0
  echo "stack: $m"
  if up "$INFLUX_URL/ping"; then
    echo "InfluxDB  up    $INFLUX_URL (periscope run … --out influxdb=$INFLUX_URL/periscope)"
  else
    echo "InfluxDB  down  $INFLUX_URL"
    bad=1
  fi
  if up "$GRAFANA_URL/api/health"; then
    echo "Grafana   up    $GRAFANA_URL"
  elif [ "$m" = docker ]; then
    echo "Grafana   down  $GRAFANA_URL"
    bad=1
  else
    echo "Grafana   none  (STACK=native runs InfluxDB only)"
  fi
  [ "$m" = docker ] && compose ps
  return $bad
}

main() {
  local cmd=${1:-} m
  m=$(mode)
  case $m:$cmd in
    docker:setup) compose pull ;;
    native:setup)
      need influxd influxdb || die "could not install Debian's influxdb package (run as root, or install Docker)"
      echo "influxd: $(command -v influxd)"
      ;;
    docker:start)
      compose up -d
      wait_up "$INFLUX_URL/ping" InfluxDB 60
      wait_up "$GRAFANA_URL/api/health" Grafana 120
      echo "InfluxDB at $INFLUX_URL, Grafana at $GRAFANA_URL (make grafana-dashboard)"
      ;;
    native:start) native_start ;;
    docker:stop) compose stop ;;
    native:stop) native_stop ;;
    *:status) status "$m" ;;
    docker:logs) compose logs --tail=200 ;;
    native:logs)
      [ -f "$STACK_DIR/influxd.log" ] || die "no logs in $STACK_DIR: the stack was never started"
      tail -n 200 "$STACK_DIR/influxd.log"
      ;;
    docker:clean) compose down --remove-orphans ;;
    native:clean)
      native_stop
      rm -f "$STACK_DIR/influxd.log" "$STACK_DIR/influxdb.conf"
      ;;
    docker:purge) compose down --volumes --remove-orphans --rmi all ;;
    native:purge)
      native_stop
      rm -rf "$STACK_DIR"
      echo "removed $STACK_DIR"
      ;;
    *:dashboard)
      local url=$GRAFANA_URL/d/periscope-load-test
      echo "periscope — load test:  $url"
      echo "periscope — LLM tokens: $GRAFANA_URL/d/periscope-llm-tokens"
      echo "periscope — OTLP traces: $GRAFANA_URL/d/periscope-otlp-traces"
      echo "periscope — server metrics: $GRAFANA_URL/d/periscope-server"
      echo "periscope — script metrics: $GRAFANA_URL/d/periscope-script"
      up "$GRAFANA_URL/api/health" || echo "Grafana does not answer at $GRAFANA_URL: make start (needs Docker)"
      if [ -z "${CI:-}" ]; then
        if command -v xdg-open >/dev/null 2>&1; then
          xdg-open "$url" >/dev/null 2>&1 || true
        elif command -v open >/dev/null 2>&1; then
          open "$url" || true
        fi
      fi
      ;;
    *) die "usage: scripts/stack.sh setup|start|stop|status|logs|clean|purge|dashboard" ;;
  esac
}

main "$@"
