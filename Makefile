# The two commands of the README:
#   make run   - set up everything and run Amicus
#   make test  - set up everything and run the full test suite
# Everything installs into .venv. llama-cpp-python is compiled from source once (about 7
# minutes on 2 cores) by packaging/gpu-build.sh cpu: a portable build (GGML_NATIVE=OFF,
# AVX2), the same wheel an offline bundle carries. A native build would use whatever the
# build machine has, e.g. AMX on a Xeon, whose llama.cpp kernels crash on small models, or
# AVX-512 that most laptops lack. The wheel is kept in ~/.cache/amicus (pip's own cache
# cannot be used: it does not know the CMake arguments a wheel was built with).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
JOBS   := $(shell nproc 2>/dev/null || echo 2)
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(JOBS)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
LLAMA_VERSION := $(shell sed -n 's/.*"llama-cpp-python==\([0-9][0-9.]*\)".*/\1/p' pyproject.toml | head -n 1)
LLAMA_WHEELS  ?= $(HOME)/.cache/amicus/llama-cpu-$(LLAMA_VERSION)

.PHONY: run test lint typecheck bench clean go-toolchain tmux-tool

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-llama: pyproject.toml | $(BIN)/python
	@ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || \
	  PYTHON=$(BIN)/python packaging/gpu-build.sh cpu --out $(LLAMA_WHEELS)
	$(BIN)/python -m pip install --progress-bar off --no-deps --force-reinstall \
	  $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	touch $@

$(VENV)/.installed-run: pyproject.toml $(VENV)/.installed-llama | $(BIN)/python
	$(BIN)/python -m pip install --progress-bar off -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-llama | $(BIN)/python
	$(BIN)/python -m pip install --progress-bar off -e '.[test,reference]'
	touch $@ $(VENV)/.installed-run

# The template-agreement tests render Modelfile TEMPLATEs with Go's own text/template
# (tests/tools/ollama_template); Debian's golang-go is installed only when `go` is missing.
SUDO := $(if $(filter 0,$(shell id -u 2>/dev/null)),,sudo)
go-toolchain:
	@command -v go >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go; \
	  else echo "error: install Go (the template agreement tests need it)" >&2; exit 1; fi; }

# The terminal app's real-terminal test drives it in tmux; Debian's tmux is installed only
# when `tmux` is missing.
tmux-tool:
	@command -v tmux >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux; \
	  else echo "error: install tmux (the real-terminal test needs it)" >&2; exit 1; fi; }

run: $(VENV)/.installed-run
	$(BIN)/amicus demo
	$(BIN)/amicus

test: $(VENV)/.installed-test go-toolchain tmux-tool
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

# ruff's linter and mypy over app/ and converters/ ([tool.mypy] in pyproject.toml). The
# code keeps its own line layout (hanging indents), so `ruff format` is not enforced.
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy

# Benchmarks print figures (README "Measured"); they are never part of `make test`.
bench: $(VENV)/.installed-test
	$(BIN)/python tests/bench/convert.py
	$(BIN)/python tests/bench/engine.py
	@if [ -f tests/bench/startup.py ]; then $(BIN)/python tests/bench/startup.py; fi
	$(BIN)/python tests/bench/store.py
	$(BIN)/python tests/bench/servers.py

# Offline bundle for clinic laptops (packaging/README.md): one archive with every wheel,
# the named installed models, SHA256SUMS and the installers. BUNDLE_ARGS passes options on,
# e.g. --from-venv (no network: repack .venv) or --wheel PATH (a GPU llama-cpp-python).
MODELS ?=
BUNDLE_ARGS ?=
.PHONY: bundle bundle-usage
bundle: bundle-usage $(VENV)/.installed-run
	$(BIN)/python packaging/bundle.py --models $(MODELS) $(BUNDLE_ARGS)

bundle-usage:
	@test -n "$(MODELS)" || { echo 'usage: make bundle MODELS="moral-audit sentencing" (or MODELS=all) [BUNDLE_ARGS=...]' >&2; exit 2; }

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
