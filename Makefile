# periscope — make targets. `make help` lists them.
#
# The test-* targets keep the names of the k6 suite periscope replaces. They
# run against OPENAI_BASE_URL (OpenAI's API when only OPENAI_API_KEY is set;
# the built-in mock only with MOCK=1), write
# each result to $(RESULTS)/WORKLOAD-SCENARIO.{json,html}, and stream live to
# InfluxDB when `make start` is up (without it they still run).
SHELL := /bin/bash
.NOTPARALLEL:
# This Makefile's folder (the project), also when another Makefile includes it.
HERE := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
CARGO ?= cargo
BIN := target/release/periscope
# The binary the test-* targets run; built here unless you name another one
# (make test-completions PERISCOPE=periscope).
PERISCOPE ?= $(BIN)
RESULTS ?= results
# Extra flags for every run: make test-completions ARGS='--duration 5m'
ARGS ?=
INFLUX_PORT ?= 8086
GRAFANA_PORT ?= 3000
INFLUX_URL ?= http://127.0.0.1:$(INFLUX_PORT)
INFLUX_DB ?= periscope

# Settings the runs read from the environment; given as variables or
# arguments (make test-completions OPENAI_COMPLETION_MODEL=gpt-4 MAX_TOKENS=128)
# they reach periscope too. Only those set are passed on.
PASS_ENV := OPENAI_API_KEY OPENAI_BASE_URL ANTHROPIC_API_KEY ANTHROPIC_BASE_URL OPENAI_COMPLETION_MODEL \
  OPENAI_EMBEDDING_MODEL OPENAI_CODING_MODEL MAX_TOKENS MAX_OUTPUT_TOKENS VUS \
  DURATION ENABLE_BATCH_MODE SOAK_DURATION INFLUX_TOKEN INFLUX_USERNAME \
  INFLUX_PASSWORD STACK STACK_DIR INFLUX_PORT GRAFANA_PORT OTEL_EXPORTER_OTLP_ENDPOINT \
  OTEL_EXPORTER_OTLP_PROTOCOL OTLP_DURATION
$(foreach v,$(PASS_ENV),$(if $(strip $(value $(v))),$(eval export $(v))))

# The target: the built-in mock only when asked (MOCK=1); else
# OPENAI_BASE_URL (ANTHROPIC_BASE_URL for messages); with only a key,
# OpenAI's API (Anthropic's for messages), as the k6 suite defaulted to it;
# with neither, stop and say what to set.
MOCK ?=
mock_asked = $(filter 1 true yes,$(MOCK))
no_target = $(error no target: set OPENAI_BASE_URL (and OPENAI_API_KEY), or MOCK=1 for the built-in mock)
# $(call target_for,WORKLOAD)
target_for = $(if $(mock_asked),--mock,$(if $(filter messages,$(1)),$(anthropic_target),$(openai_target)))
openai_target = $(if $(strip $(OPENAI_BASE_URL)),,$(if $(strip $(OPENAI_API_KEY)),--target https://api.openai.com/v1,$(no_target)))
anthropic_target = $(if $(strip $(ANTHROPIC_BASE_URL)$(OPENAI_BASE_URL)),,$(if $(strip $(ANTHROPIC_API_KEY)),--target https://api.anthropic.com/v1,$(if $(strip $(OPENAI_API_KEY)),--target https://api.openai.com/v1,$(no_target))))
target_flag = $(call target_for,completions)
# Under MOCK=1 the environment's target gives way (periscope's --mock wins
# over OPENAI_BASE_URL, not over ANTHROPIC_BASE_URL).
mock_env = $(if $(mock_asked),env -u ANTHROPIC_BASE_URL)
# The k6 suite's default load: 1 VU (VUS=N for more) where a target runs
# the steady `load` scenario.
# $(call vus_for,SCENARIO)
vus_for = $(if $(filter load,$(1)),$(if $(strip $(VUS)),,--vus 1))
# Live metrics when InfluxDB answers (make start).
influx_out = $(shell curl -fsS -m 2 -o /dev/null $(INFLUX_URL)/ping 2>/dev/null && echo --out influxdb=$(INFLUX_URL)/$(INFLUX_DB))
# A k6-style script's file, given as SCRIPT= or script= (read by `test`
# and `script`).
script_file = $(or $(SCRIPT),$(script))
# $(call periscope,WORKLOAD,SCENARIO): one run, its result in $(RESULTS)/.
periscope = $(mock_env) $(PERISCOPE) run $(1) --scenario $(2) $(call target_for,$(1)) $(call vus_for,$(2)) $(influx_out) \
  --json $(RESULTS)/$(1)-$(2).json --html $(RESULTS)/$(1)-$(2).html $(ARGS)
RUN_DEPS := $(if $(filter $(BIN),$(PERISCOPE)),build) | $(RESULTS)

.PHONY: help build test suite lint bench bench-dashboard bench-overhead bench-mock soak sizing report-demo test-llama-cpp-python \
  perf-test perf-test-dry-run k6-ingestion k6-query k6-combined validate-profiles check format deps \
  setup start stop restart status logs clean purge grafana-dashboard run script \
  test-completions test-responses test-messages test-tool-calls test-vision test-rerank test-embeddings test-prefix-caching test-benchmark test-all \
  test-completions-smoke test-completions-stress test-completions-spike \
  test-completions-soak test-completions-recovery \
  test-embeddings-smoke test-embeddings-stress test-embeddings-spike \
  test-embeddings-soak test-embeddings-recovery \
  test-smoke-all test-stress-all test-spike-all test-soak-all test-recovery-all \
  test-completions-prefill-heavy test-completions-decode-heavy \
  test-completions-heavy-all

help: ## List the targets and the variables they read
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-32s %s\n", $$1, $$2}'
	@echo
	@echo "Variables (as arguments or from the environment):"
	@echo "  OPENAI_BASE_URL      the target (unset: https://api.openai.com/v1 when OPENAI_API_KEY is set)"
	@echo "  MOCK=1               run against the built-in mock instead (never used unless asked)"
	@echo "  OPENAI_API_KEY       API key (never printed or stored)"
	@echo "  OPENAI_COMPLETION_MODEL, OPENAI_EMBEDDING_MODEL, OPENAI_CODING_MODEL"
	@echo "  MAX_TOKENS, MAX_OUTPUT_TOKENS (decode-heavy), VUS, DURATION, SOAK_DURATION"
	@echo "  ENABLE_BATCH_MODE    true: embeddings send batches"
	@echo "  ARGS                 extra periscope run flags, e.g. ARGS='--threshold ttft.p95<2s'"
	@echo "  RESULTS              where results go (results/); PERISCOPE: the binary to run"
	@echo "  STACK                docker or native (InfluxDB only, Debian's influxd); default: docker if it runs"
	@echo "  INFLUX_PORT, GRAFANA_PORT  the stack's loopback ports (8086, 3000)"

# — The project —

build: ## Build the release binary (target/release/periscope)
	$(CARGO) build --release --locked

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

# `make test script=my-test.js` (the k6 suite's way to run a script) runs
# that script; `make test` alone is periscope's own suite.
test: $(if $(strip $(script_file)),script,suite) ## The whole suite (make suite); with script=FILE, that k6-style script instead (make script)

suite: lint ## periscope's own suite: lint, then every test (installs what the tests need first)
	eval "$$(scripts/test-env.sh)" && \
	if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --cargo-profile ci --locked; \
	else \
	  $(CARGO) test --profile ci --locked; \
	fi

# llama-cpp-python's server is on PyPI as source only: its wheel is built
# once (10-20 CPU-minutes) into ~/.cache/periscope/wheels and reused.
test-llama-cpp-python: ## periscope against llama-cpp-python's server (a second implementation: no usage in streams)
	bash -c '. scripts/real-servers.sh && llama_cpp_python_install'
	eval "$$(scripts/test-env.sh)" && \
	export PERISCOPE_LLAMA_CPP_PYTHON=$(CURDIR)/.venv-llama-cpp-python/bin/python && \
	if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --cargo-profile ci --locked --run-ignored only -E 'test(/llama_cpp_python/)'; \
	else \
	  $(CARGO) test --profile ci --locked --test it llama_cpp_python -- --ignored; \
	fi

# An hour at 200 streams with every output on (tests/it/soak.rs; the suite
# runs the same test for 40 s): RSS flat, every request in every output.
soak: ## 60 minutes at 200 streams against the mock, every output on: RSS flat, every request in every output (PERISCOPE_SOAK=60m)
	eval "$$(scripts/test-env.sh)" && export PERISCOPE_SOAK=$${PERISCOPE_SOAK:-60m} && \
	if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --cargo-profile ci --locked --profile soak --no-capture -E 'test(/^soak::/)'; \
	else \
	  $(CARGO) test --profile ci --locked --test it soak:: -- --nocapture; \
	fi

report-demo: build ## A mock run's HTML report (target/report-demo/) and its screenshot docs/report.png
	scripts/report-demo.sh

bench: build ## periscope vs wrk, oha and k6 on nginx-served JSON and SSE (CPU and req/s ratios, targets); RSS at 1400 and 10 000 streams; what --dashboard costs
	scripts/bench-generator.sh
	scripts/bench-dashboard.sh

bench-dashboard: build ## What --dashboard (and a page reading it) costs the load: CPU per request and req/s against a plain run
	scripts/bench-dashboard.sh

bench-overhead: build ## vLLM's client-overhead study: ttft and itl error at 1-1000 streams against a 50 ms / 10 ms mock, CPU and RSS
	scripts/bench-overhead.sh

bench-mock: build ## The mock's req/s vs nginx serving the same body, same load client
	scripts/bench-mock.sh

sizing: build ## One segment's connections, file descriptors, CPU and RSS by load, on the mock
	scripts/sizing.sh

# — The metrics stack: InfluxDB 1.8 and Grafana (scripts/stack.sh) —

setup: build ## Build periscope and get the stack's images (Docker) or Debian's influxd (native)
	scripts/stack.sh setup

start: ## Start InfluxDB and Grafana on loopback (docker compose; STACK=native: InfluxDB only)
	scripts/stack.sh start

stop: ## Stop the stack, keeping its data
	scripts/stack.sh stop

restart: stop start ## Stop and start the stack

status: ## Whether InfluxDB and Grafana answer
	scripts/stack.sh status

logs: ## The stack's recent logs
	scripts/stack.sh logs

clean: ## Stop the stack and remove its containers (data is kept)
	scripts/stack.sh clean

purge: ## Remove the stack with its data, and the results/ folder
	scripts/stack.sh purge
	rm -rf $(RESULTS)

grafana-dashboard: ## Open the Grafana dashboards (prints their URLs)
	scripts/stack.sh dashboard

$(RESULTS):
	mkdir -p $@

# — Load tests (the k6 suite's names) —

test-completions: $(RUN_DEPS) ## Chat completions at a steady load (scenario load)
	$(call periscope,completions,load)

test-responses: $(RUN_DEPS) ## OpenAI's Responses API (POST /v1/responses) at a steady load
	$(call periscope,responses,load)

test-messages: $(RUN_DEPS) ## Anthropic's Messages API (POST /v1/messages; ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL)
	$(call periscope,messages,load)

test-tool-calls: $(RUN_DEPS) ## An agent's loop with tools (TOOL_TURNS=3 turns, each answering the calls; API=responses)
	$(call periscope,tool-calls,load) $(if $(TOOL_TURNS),--tool-turns $(TOOL_TURNS)) $(if $(API),--api $(API))

test-vision: $(RUN_DEPS) ## Chat with pictures (IMAGES=2 IMAGE_SIZE=1024x768 per request, new each time; API=responses)
	$(call periscope,vision,load) $(if $(IMAGES),--images $(IMAGES)) $(if $(IMAGE_SIZE),--image-size $(IMAGE_SIZE)) $(if $(API),--api $(API))

test-rerank: $(RUN_DEPS) ## Rerank (POST /v1/rerank, DOCUMENTS=10 per request; OPENAI_RERANK_MODEL)
	$(call periscope,rerank,load) $(if $(DOCUMENTS),--documents $(DOCUMENTS))

test-embeddings: $(RUN_DEPS) ## Embeddings at a steady load (ENABLE_BATCH_MODE=true: batches)
	$(call periscope,embeddings,load)

test-prefix-caching: $(RUN_DEPS) ## IDE-style growing code buffer: ttft by turn (OPENAI_CODING_MODEL)
	$(call periscope,prefix-caching,load)

test-benchmark: $(RUN_DEPS) ## Chat completions, then embeddings, at 1, 2, 4, 8, 16 VUs: where throughput peaks, side by side
	$(call periscope,completions,benchmark)
	$(call periscope,embeddings,benchmark)
	$(if $(findstring --dry-run,$(ARGS)),,$(PERISCOPE) report $(RESULTS)/completions-benchmark.json $(RESULTS)/embeddings-benchmark.json)

test-all: test-completions test-embeddings test-prefix-caching test-benchmark ## The four above, one after another

test-completions-smoke: $(RUN_DEPS) ## Chat completions: 1 VU, 5 requests, no error allowed
	$(call periscope,completions,smoke)

test-completions-stress: $(RUN_DEPS) ## Chat completions: VU steps up to the peak; capacity
	$(call periscope,completions,stress)

test-completions-spike: $(RUN_DEPS) ## Chat completions: a sudden jump in VUs and back
	$(call periscope,completions,spike)

test-completions-soak: $(RUN_DEPS) ## Chat completions: steady load for SOAK_DURATION (1h); drift
	$(call periscope,completions,soak)

test-completions-recovery: $(RUN_DEPS) ## Chat completions: overload, then time to recover
	$(call periscope,completions,recovery)

test-embeddings-smoke: $(RUN_DEPS) ## Embeddings: 1 VU, 5 requests, no error allowed
	$(call periscope,embeddings,smoke)

test-embeddings-stress: $(RUN_DEPS) ## Embeddings: VU steps up to the peak; capacity
	$(call periscope,embeddings,stress)

test-embeddings-spike: $(RUN_DEPS) ## Embeddings: a sudden jump in VUs and back
	$(call periscope,embeddings,spike)

test-embeddings-soak: $(RUN_DEPS) ## Embeddings: steady load for SOAK_DURATION (1h); drift
	$(call periscope,embeddings,soak)

test-embeddings-recovery: $(RUN_DEPS) ## Embeddings: overload, then time to recover
	$(call periscope,embeddings,recovery)

test-smoke-all: test-completions-smoke test-embeddings-smoke ## Smoke tests of completions and embeddings

test-stress-all: test-completions-stress test-embeddings-stress ## Stress tests of completions and embeddings

test-spike-all: test-completions-spike test-embeddings-spike ## Spike tests of completions and embeddings

test-soak-all: test-completions-soak test-embeddings-soak ## Soak tests of completions and embeddings

test-recovery-all: test-completions-recovery test-embeddings-recovery ## Recovery tests of completions and embeddings

test-completions-prefill-heavy: $(RUN_DEPS) ## Long prompts, short answers: the prefill rate
	$(call periscope,prefill-heavy,load)

test-completions-decode-heavy: $(RUN_DEPS) ## Short prompts, long answers (MAX_OUTPUT_TOKENS): the decode rate
	$(call periscope,decode-heavy,load)

test-completions-heavy-all: test-completions-prefill-heavy test-completions-decode-heavy ## Both heavy workloads

# A scenario file (the k6 suite's `make test script=…`), or a built-in one by name.
run: $(RUN_DEPS) ## Run a scenario: make run SCENARIO=my.yaml (or SCENARIO=stress WORKLOAD=embeddings)
	$(if $(strip $(SCENARIO)),,$(error give the scenario: make run SCENARIO=file.yaml (or a built-in name such as stress)))
	$(PERISCOPE) run $(scenario_args) $(influx_out) --json $(RESULTS)/$(scenario_name).json --html $(RESULTS)/$(scenario_name).html $(ARGS)

# The Tempo suite's runner ($(HERE)scripts/perf-test.sh): its sizing profiles (the
# otlp-PROFILE scenarios, or PROFILES_DIR/PROFILE.yaml in its own schema)
# one after another; ingestion and queries as two runs side by side, each
# with its log and JSON in $(RESULTS); to OTEL_EXPORTER_OTLP_ENDPOINT or
# TEMPO_ENDPOINT and QUERY_ENDPOINT (or TEMPO_QUERY_ENDPOINT); MOCK=1: a
# periscope mock takes both.
PROFILES_DIR ?= profiles
PROFILES ?= 1x-demo,1x-extra-small,1x-small,1x-medium,small,medium,large,xlarge$(foreach f,$(wildcard $(PROFILES_DIR)/*.yaml),$(comma)$(basename $(notdir $(f))))
TEST_TYPE ?=
QUERY_ENDPOINT ?=
K6_SIZE ?= $(or $(SIZE),medium)
comma := ,
perf_env = PERISCOPE=$(PERISCOPE) RESULTS=$(RESULTS) PROFILES_DIR=$(PROFILES_DIR) MOCK=$(MOCK) \
  TEST_TYPE=$(1) QUERY_ENDPOINT=$(QUERY_ENDPOINT) ARGS="$(ARGS)" INFLUX_OUT="$(influx_out)"
perf-test: $(RUN_DEPS) ## The Tempo suite's profiles in turn: PROFILES=1x-small,medium TEST_TYPE=ingestion|query|combined QUERY_ENDPOINT=URL
	$(call perf_env,$(TEST_TYPE)) $(HERE)scripts/perf-test.sh $(PROFILES)
perf-test-dry-run: $(RUN_DEPS) ## What make perf-test would run, planned (--dry-run)
	$(call perf_env,$(TEST_TYPE)) $(HERE)scripts/perf-test.sh --dry-run $(PROFILES)
k6-ingestion: $(RUN_DEPS) ## Ingestion only of one size against a running backend: K6_SIZE=small|medium|large|xlarge (TEMPO_ENDPOINT)
	$(call perf_env,ingestion) $(HERE)scripts/perf-test.sh $(K6_SIZE)
k6-query: $(RUN_DEPS) ## Queries only of one size: K6_SIZE=… (TEMPO_QUERY_ENDPOINT)
	$(call perf_env,query) $(HERE)scripts/perf-test.sh $(K6_SIZE)
k6-combined: $(RUN_DEPS) ## Ingestion and queries side by side: K6_SIZE=… (TEMPO_ENDPOINT, TEMPO_QUERY_ENDPOINT)
	$(call perf_env,combined) $(HERE)scripts/perf-test.sh $(K6_SIZE)
validate-profiles: $(RUN_DEPS) ## Check every profile (the built-in otlp-* and PROFILES_DIR/*.yaml) by planning it
	@set -e; for p in $(subst $(comma), ,$(PROFILES)); do \
	  if [ -f $(PROFILES_DIR)/$$p.yaml ]; then s=$(PROFILES_DIR)/$$p.yaml; else s=otlp-$$p; fi; \
	  if out=$$($(PERISCOPE) run --scenario $$s --mock --dry-run 2>&1); then echo "ok    $$s"; \
	  else echo "FAIL  $$s: $$(echo "$$out" | tail -1)"; exit 1; fi; done

# The Tempo suite's development targets, for this project.
check: lint ## cargo fmt --check and clippy (the Tempo suite's format-check + vet)
format: ## cargo fmt
	$(CARGO) fmt --all
deps: ## Fetch the locked dependencies (cargo fetch --locked)
	$(CARGO) fetch --locked

# A k6-style JavaScript test, as the k6 suite's `make test script=…` ran one
# (SCRIPT= or script=); its target as the test-* targets'.
# A name without a folder is looked for as given, then in scripts/ (where
# the k6 suite kept its scripts) and examples/.
script_path = $(firstword $(wildcard $(script_file) scripts/$(script_file) examples/$(script_file)) $(script_file))
script: $(RUN_DEPS) ## Run a k6-style JavaScript test: make script SCRIPT=examples/custom-test.js (or make test script=…)
	$(if $(strip $(script_file)),,$(error give the script: make script SCRIPT=my-test.js))
	$(mock_env) $(PERISCOPE) run $(script_path) $(target_flag) $(influx_out) --json $(RESULTS)/$(basename $(notdir $(script_file))).json --html $(RESULTS)/$(basename $(notdir $(script_file))).html $(ARGS)

# A file names its own target, else OPENAI_BASE_URL or the mock; a built-in
# scenario runs WORKLOAD (completions by default).
scenario_args = $(if $(filter %.yaml %.yml,$(SCENARIO)),$(SCENARIO) $(file_target),$(WORKLOAD) --scenario $(SCENARIO) $(target_flag))
file_target = $(if $(mock_asked),--mock,$(if $(strip $(OPENAI_BASE_URL))$(shell grep -qE '^target:' $(SCENARIO) 2>/dev/null && echo yes),,$(target_flag)))
scenario_name = $(if $(strip $(WORKLOAD)),$(WORKLOAD)-)$(basename $(notdir $(SCENARIO)))
