# The two README commands: `make demo` and `make test`. Each sets up .venv from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

TRITON_VENV ?= .venv-triton
TRITON_STAMP := $(TRITON_VENV)/.installed

.PHONY: demo test test-fast proto bench clean node-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench,ray]'
	touch $(STAMP)

# tritonclient needs protobuf < 7, the server's venv has 7: a client process of its own, as a
# KServe user would run (tests/test_clients.py calls it; it skips only when this is absent).
$(TRITON_STAMP):
	$(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install --quiet 'tritonclient[grpc]'
	touch $(TRITON_STAMP)

## demo: simulate 1M contacts, train, serve, score them over gRPC, print a summary
demo: $(STAMP)
	$(VENV)/bin/scorecast demo

## test: every test, slow ones included (what CI runs)
test: $(STAMP) $(TRITON_STAMP) node-deps
	$(PY) -m pytest -m 'slow or not slow'

# The Node.js client's test runs whenever node is installed (CI installs it); without it, it skips.
node-deps:
	@if command -v node >/dev/null; then cd clients/node && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "make test: node is not installed: the Node.js client tests (tests/test_clients.py) will SKIP"; fi

## test-fast: the fast tests only
test-fast: $(STAMP)
	$(PY) -m pytest

## proto: regenerate the gRPC stubs from proto/*.proto (scorecast.v1 and the Open Inference Protocol)
proto: $(STAMP)
	$(PY) proto/generate.py

## bench: the end-to-end benchmark on 1M simulated contacts
bench: $(STAMP)
	$(PY) benchmarks/e2e.py

clean:
	rm -rf $(VENV) $(TRITON_VENV) demo-data build *.egg-info
