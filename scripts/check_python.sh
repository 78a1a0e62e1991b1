#!/usr/bin/env bash
# The studio needs Python 3.11 or newer; say so clearly instead of failing deep inside pip.
py="${1:-python3}"
if ! command -v "$py" >/dev/null 2>&1; then
  echo "Python 3.11+ is needed but '$py' was not found. Install it (https://www.python.org) or run: make PYTHON=/path/to/python3.11 ..." >&2
  exit 1
fi
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "Python 3.11+ is needed; '$py' is $("$py" --version 2>&1). Run: make PYTHON=python3.11 ..." >&2
  exit 1
fi
