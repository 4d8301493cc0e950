# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test lint bench clean

$(BIN)/memscope: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[local,dev]"
	touch $(BIN)/memscope

setup: $(BIN)/memscope

demo: setup
	$(BIN)/memscope demo

test: setup
	$(BIN)/ruff check memscope workers tests benchmarks
	$(BIN)/mypy memscope
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check memscope workers tests benchmarks
	$(BIN)/mypy memscope

clean:
	rm -rf $(VENV) build *.egg-info
