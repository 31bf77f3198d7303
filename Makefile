# Two commands on a fresh machine with Python 3.11:
#   make book   install into .venv, run the notebooks on $(PROFILE), build _build/html
#   make test   install the same plus test tools, run pytest
#   make lock   refresh requirements.lock (exact versions + hashes) after editing pyproject.toml
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= laptop
PYTEST_ARGS ?=
STAMP := $(VENV)/.installed-stamp
# requirements.lock: every package of `pip install -e .[$(LOCK_EXTRAS)]` pinned to one version
# with its sha256 hashes, for Python 3.11 on x86_64 Linux, made by uv (`make lock`).
LOCK := requirements.lock
LOCK_EXTRAS ?= test pm
UV_VERSION := 0.13.9
UV_TARGET := --python-version 3.11 --python-platform x86_64-unknown-linux-gnu

.PHONY: install book test test-fast browser lock clean help

help:
	@echo "make book     # run every chapter on PROFILE=$(PROFILE) and build _build/html"
	@echo "make test     # run the test suite (slow end-to-end tests at the ci profile included)"
	@echo "make test-fast  # skip tests marked slow"
	@echo "make lock     # re-pin requirements.lock from pyproject.toml (UPGRADE=1: newest versions)"

# Exact versions from the lock (hash-checked), then zoa itself without resolving anything.
# uv installs the lock's wheels in parallel: ~15 s where pip took ~4 min (2 cores, cold caches).
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --no-config --python $(BIN)/python --require-hashes --compile-bytecode -r $(LOCK)
	$(BIN)/uv pip install --quiet --no-config --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

book: install
	$(BIN)/zoa run --profile $(PROFILE)
	$(BIN)/zoa book
	@echo "The book is in _build/html/index.html (profile $(PROFILE))"

# Debian's Chromium and ChromeDriver for the headless-browser test of the built book.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && ldconfig -p | grep -q libEGL_mesa || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver libegl1 libegl-mesa0 libgl1-mesa-dri >/dev/null) \
	      || echo "warning: could not install chromium; the browser test will not run"; \
	    else echo "warning: chromium not found and not root; the browser test will not run"; fi; }

test: install browser
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

# Re-resolve pyproject.toml's dependencies (and the extras in LOCK_EXTRAS) into $(LOCK).
# Versions already pinned there are kept where they still fit; UPGRADE=1 takes the newest.
# After adding a dependency or an extra: `make lock` (or `make lock LOCK_EXTRAS="test pm"`),
# then `make install`, and commit requirements.lock.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile pyproject.toml $(foreach e,$(LOCK_EXTRAS),--extra $(e)) --generate-hashes \
	  $(UV_TARGET) --no-config --quiet $(if $(UPGRADE),--upgrade) -o $(LOCK)

clean:
	rm -rf _build book/chapters/*.ipynb book/_generated
