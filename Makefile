# Capstan — every target installs what it needs into the checkout (.venv/, .tools/).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
LISTEN_GRPC ?= 127.0.0.1:50051
LISTEN_HTTP ?= 127.0.0.1:8080
DATA_DIR    ?= .data

.PHONY: setup registry run test protos protos-check lint unit fuzz bench clean

setup: $(STAMP) .tools/.installed registry

# The OCI registry of the tests (Debian's docker-registry); skipped where not root or no apt.
registry:
	@sh scripts/install_registry.sh

$(STAMP): pyproject.toml kubesim/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./kubesim -e ".[dev]"
	touch $@

.tools/.installed: scripts/install_tools.py | $(STAMP)
	$(BIN)/python scripts/install_tools.py --dest .tools
	touch $@

run: setup
	$(BIN)/capstan-server --dev --grpc-listen $(LISTEN_GRPC) --http-listen $(LISTEN_HTTP) --data-dir $(DATA_DIR)

protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

protos-check: $(STAMP)
	$(BIN)/python scripts/gen_protos.py --check

lint: $(STAMP)
	$(BIN)/ruff check client server kubesim tests scripts bench
	$(BIN)/mypy server client/capstan/client client/capstan/cli kubesim/kubesim bench

unit: setup
	$(BIN)/pytest -q

# schemathesis over /openapi.json against a test server, every check, about two minutes
# (scripts/fuzz.py; FUZZ_ARGS="--max-time 30 --seed 1" for a short, reproducible run).
fuzz: setup
	$(BIN)/python scripts/fuzz.py $(FUZZ_ARGS)

# fuzz before unit: pytest's closing line ends the output, as CI reads it.
test: setup protos-check lint fuzz unit

# bench/run.py runs every bench/*_bench.py in turn (its docstring lists them; BENCH_ARGS=--quick
# for a smoke run).
bench: setup
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .tools .data
