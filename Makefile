# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test lint bench clean constraints

# constraints.txt pins every package of that install (no torch: the local embedder runs on onnxruntime or numpy);
# `make constraints` rewrites it from a fresh resolve.
$(BIN)/memscope: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[all,dev]"
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

constraints:
	rm -rf /tmp/memscope-constraints && $(PY) -m venv /tmp/memscope-constraints
	/tmp/memscope-constraints/bin/pip install --quiet --upgrade pip
	/tmp/memscope-constraints/bin/pip install --quiet ".[all,dev]"
	/tmp/memscope-constraints/bin/pip freeze --exclude-editable | grep -v '^memscope-ai' > constraints.txt
	rm -rf /tmp/memscope-constraints

clean:
	rm -rf $(VENV) build *.egg-info
