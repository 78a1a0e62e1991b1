# Two commands do everything on a fresh machine (and are fast when nothing changed):
#   make run    set up if needed, then open the studio
#   make test   set up if needed, then run the whole test suite headless
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.studio-installed

.PHONY: run test setup system lint bench-quick screenshot build clean

run: setup
	$(BIN)/studio

test: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP) system

# Re-install only when the dependencies changed (the stamp is older than pyproject.toml).
$(STAMP): pyproject.toml
	@scripts/check_python.sh $(PYTHON)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

system:
	@scripts/check_system.sh

# ruff, the import contracts (pyproject.toml) and the type checker over the host and
# plugins/common (the code every plugin builds on).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

screenshot: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/studio screenshot --plugin levels --out docs/screenshot.png

build: setup
	$(BIN)/python -m pip install --quiet -e '.[build]'
	$(BIN)/pyinstaller --noconfirm studio.spec

clean:
	rm -rf build dist .pytest_cache
