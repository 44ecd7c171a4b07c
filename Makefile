# Two entry points for a fresh clone: `make test` and `make demo`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data

.PHONY: test demo lint install clean

$(BIN)/pseudoedgenet: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,onnx]'
	touch $@

install: $(BIN)/pseudoedgenet

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

demo: install
	$(BIN)/python -m pseudoedgenet.demo --out demo_out

clean:
	rm -rf $(VENV) demo_out .pytest_cache .mypy_cache .ruff_cache
