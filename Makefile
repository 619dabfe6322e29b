# Tessera: the two commands are `make run` and `make test`.
CARGO ?= cargo

.PHONY: run test lint fmt db build migrate tenant help bench fuzz soak

help:
	@echo "make run     start the service on 127.0.0.1:8080 (creates and migrates its database)"
	@echo "make test    run every test (unit, PostgreSQL integration, end-to-end)"
	@echo "make lint    rustfmt check and clippy with warnings as errors"
	@echo "make fmt     format the code"
	@echo "make fuzz    schemathesis against /openapi.json (no 5xx, answers match the document)"
	@echo "make bench   the benchmark (docs/performance.md); make soak: 10 minutes of mixed load"
	@echo "make tenant NAME=acme   create a tenant and print its admin key"

## Make sure the local PostgreSQL is up (starts the Debian cluster if it is down).
db:
	@scripts/ensure-postgres

build:
	$(CARGO) build -p tessera-server --bin tessera

run: db
	$(CARGO) run -p tessera-server --bin tessera -- serve

migrate: db
	$(CARGO) run -p tessera-server --bin tessera -- migrate

tenant: db
	@$(CARGO) run -q -p tessera-server --bin tessera -- tenant create --name "$(NAME)"

## Every test; the end-to-end suite builds the server it drives (tessera-e2e-server).
test: db
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## schemathesis against the served /openapi.json (installed into .venv-fuzz on first
## use); fails on any 5xx or answer outside the document. FUZZ_MAX_EXAMPLES, FUZZ_MAX_TIME.
fuzz: db
	scripts/fuzz

## Performance: bulk issuance, HTTP redemption vs pgbench, latency, memory (docs/performance.md).
bench: db
	scripts/bench

## Stability: 10 minutes of mixed load, RSS and p99 per minute; fails if either grows.
soak: db
	scripts/bench --soak
