# RepairBot — every target sets itself up: a fresh clone needs only Python >= 3.11 and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint demo sandbox clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check repairbot tests
	$(BIN)/mypy repairbot

demo: $(STAMP)
	$(BIN)/repairbot demo

sandbox: $(STAMP)
	$(BIN)/repairbot sandbox --state-dir rb-state

clean:
	rm -rf $(VENV) rb-state .pytest_cache .mypy_cache .ruff_cache
