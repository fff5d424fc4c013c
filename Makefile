# The two commands of the README: `make run` and `make test`. Everything else they need, they install.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
CHROMIUM := /usr/bin/chromium
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: run test setup schemas bench clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

.venv/.synced: $(UV) uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
	$(UV) sync --frozen --all-packages --python $(PYTHON)
	touch $@

setup: .venv/.synced

# The browser tests (tests/e2e) drive Debian's chromium with Playwright; never `playwright install`, which
# downloads a browser build of its own.
$(CHROMIUM):
	@if command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else echo "warning: no apt-get here: install chromium as $(CHROMIUM) for the browser tests" >&2; fi

run: setup
	.venv/bin/cpts run

test: setup $(CHROMIUM)
	.venv/bin/python -m pytest

schemas: setup
	.venv/bin/cpts schemas

bench: setup
	.venv/bin/python bench/outbox_pipeline.py

clean:
	rm -rf .venv $(TOOLS) var
