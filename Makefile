# Two commands on a fresh machine with Python 3.11:
#   make book   install into .venv, run the notebooks on $(PROFILE), build _build/html
#   make test   install the same plus test tools, run pytest
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= laptop
PYTEST_ARGS ?=
STAMP := $(VENV)/.installed-stamp

.PHONY: install book test test-fast browser clean help

help:
	@echo "make book     # run every chapter on PROFILE=$(PROFILE) and build _build/html"
	@echo "make test     # run the test suite (slow end-to-end tests at the ci profile included)"
	@echo "make test-fast  # skip tests marked slow"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
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

clean:
	rm -rf _build book/chapters/*.ipynb book/_generated
