# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.flashfas-installed

CORE_SOURCES := $(wildcard core_cpp/src/*.cpp core_cpp/include/flashfas/*.hpp) CMakeLists.txt pyproject.toml

.PHONY: demo test install lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Runtime + dev + training extras; the build backend comes from pip so the compiler is the only
# system requirement. Rebuilds the C++ core when its sources change.
$(STAMP): $(PY) $(CORE_SOURCES)
	$(PIP) install --quiet "scikit-build-core>=0.10" "pybind11>=2.12"
	$(PIP) install --quiet --no-build-isolation -e ".[dev,train]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/flashfas-edge demo

test: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check flashfas_edge tests benchmarks
	$(VENV)/bin/mypy flashfas_edge

bench: $(STAMP)
	$(PY) benchmarks/bench_core.py

clean:
	rm -rf $(VENV) build .cmake .skbuild-info.json
