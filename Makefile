# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# Separate stamps: `make demo` installs the runtime only (a kiosk needs no PyTorch); `make test`
# later adds the dev + train extras to the same venv without rebuilding what is there.
RUNTIME_STAMP := $(VENV)/.flashfas-runtime
FULL_STAMP    := $(VENV)/.flashfas-dev-train

CORE_SOURCES := $(wildcard core_cpp/src/*.cpp core_cpp/include/flashfas/*.hpp) CMakeLists.txt pyproject.toml

.PHONY: demo test install install-runtime lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The runtime set (ONNX Runtime, OpenCV, FastAPI, ...): what `make demo` and a kiosk need. The build
# backend comes from pip so the compiler is the only system requirement. Rebuilds the C++ core when
# its sources change.
$(RUNTIME_STAMP): $(PY) $(CORE_SOURCES)
	$(PIP) install --quiet "scikit-build-core>=0.10" "pybind11>=2.12"
	$(PIP) install --quiet --no-build-isolation -e .
	touch $(RUNTIME_STAMP)

# Runtime + dev (pytest, ruff, mypy, ...) + train (PyTorch): what the tests and the linters need.
$(FULL_STAMP): $(RUNTIME_STAMP)
	$(PIP) install --quiet --no-build-isolation -e ".[dev,train]"
	touch $(FULL_STAMP)

install-runtime: $(RUNTIME_STAMP)

install: $(FULL_STAMP)

demo: $(RUNTIME_STAMP)
	$(VENV)/bin/flashfas-edge demo

test: $(FULL_STAMP)
	$(PY) -m pytest -q tests

lint: $(FULL_STAMP)
	$(VENV)/bin/ruff check flashfas_edge tests benchmarks
	$(VENV)/bin/mypy flashfas_edge

bench: $(RUNTIME_STAMP)
	$(PY) benchmarks/bench_core.py

clean:
	rm -rf $(VENV) build .cmake .skbuild-info.json
