# periscope — make targets. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release/periscope

.PHONY: help build test lint bench bench-mock report-demo

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-22s %s\n", $$1, $$2}'

build: ## Build the release binary (target/release/periscope)
	$(CARGO) build --release --locked

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

test: lint ## The whole suite: lint, then every test (installs what the tests need first)
	eval "$$(scripts/test-env.sh)" && $(CARGO) test --profile ci --locked

report-demo: build ## A mock run's HTML report (target/report-demo/) and its screenshot docs/report.png
	scripts/report-demo.sh

bench: build ## periscope vs oha on nginx-served bodies; periscope's RSS with 1000 VUs
	scripts/bench-generator.sh

bench-mock: build ## The mock's req/s vs nginx serving the same body, same load client
	scripts/bench-mock.sh
