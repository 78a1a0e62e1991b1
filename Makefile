# Two commands do everything on a fresh machine (and are fast when nothing changed):
#   make run    set up if needed, then open the studio
#   make test   set up if needed, then run the whole test suite headless
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.studio-installed

.PHONY: run test setup system gguf lint bench-quick screenshot build clean resources \
	bundle bundle-test bundle-size icons tarball

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
	@$(MAKE) --no-print-directory gguf
	@touch $(STAMP)

# llama.cpp for the chat plugin (the optional gguf extra): on Linux with a C/C++ compiler it is
# compiled from source (about 5 minutes on 2 cores, only when pyproject.toml changed). A failed
# build never fails the set-up: the chat then runs GGUF files through transformers (slower).
gguf:
	@if [ "$$(uname -s)" = Linux ] && command -v cc >/dev/null 2>&1 \
	    && command -v c++ >/dev/null 2>&1; then \
	  if $(BIN)/python -c "import llama_cpp" >/dev/null 2>&1; then \
	    echo "llama.cpp (gguf extra): already installed"; \
	  else \
	    echo "Building llama.cpp for the chat plugin (gguf extra, about 5 minutes)..."; \
	    CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip install --quiet -e '.[gguf]' \
	      || echo "note: llama.cpp (the gguf extra) could not be built; the chat plugin runs GGUF files through transformers instead (slower). The pip output above says why."; \
	  fi; \
	else \
	  echo "note: llama.cpp (the gguf extra) is not built here (it needs Linux and a C/C++ compiler); the chat plugin runs GGUF files through transformers instead (slower)."; \
	fi

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

# Built-in data sets shipped ready to use (checked in; remade only when missing).
resources: setup
	@test -f resources/music/bach-chorales/.complete \
	  || $(BIN)/python -m plugins.music.engine.bach resources/music/bach-chorales

# The installable bundle (studio.spec): dist/GenerativeStudio with the windowed app and the
# `studio` command; PyInstaller works in build/pyinstaller (build/ itself holds the recipes).
# Slow (10-20 minutes on 2 cores) and not part of `make test`.
bundle: setup resources
	$(BIN)/python -m pip install --quiet -e '.[build]'
	$(BIN)/pyinstaller --noconfirm --workpath build/pyinstaller --distpath dist studio.spec
	$(BIN)/python build/bundle_size.py dist/GenerativeStudio --top 15

build: bundle

# The bundle's own selftest from outside the checkout, fresh HOME, network off (unshare -n).
bundle-test:
	build/bundle_test.sh

bundle-size:
	$(BIN)/python build/bundle_size.py dist/GenerativeStudio

# remake resources/icons (PNG, .ico, .icns) after editing resources/icons/generative-studio.svg
icons: setup
	$(BIN)/python build/icons.py

# Linux: dist/GenerativeStudio-<version>-linux-<arch>.tar.gz (build/README.md)
tarball:
	$(BIN)/python build/linux/make_tarball.py

clean:
	rm -rf build/pyinstaller dist .pytest_cache
