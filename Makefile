# Provenant: the two commands of the quick start are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080
export PROVENANT_DATABASE_URL ?= sqlite:///./var/provenant.db
export PROVENANT_POLICY_DIR ?= ./policies

.PHONY: run test install install-test migrate lint bench clean wheel lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install only when the package metadata changed.
# The distribution was once named `provenant`, a name that belongs to someone else on the index:
# drop that old metadata (and whatever else answers to that name) before installing ours.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip uninstall --quiet --yes provenant 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip uninstall --quiet --yes provenant 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

migrate: install
	mkdir -p var
	$(BIN)/provenant migrate

run: migrate
	@$(BIN)/provenant token hint
	$(BIN)/provenant serve --host $(HOST) --port $(PORT)

test: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install-test
	$(BIN)/python bench/ingest.py

# Our own wheel and its hash, the CLI artifact docs/ci.md pins (never the index's `provenant`).
wheel: install
	rm -rf dist
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist .
	cd dist && sha256sum *.whl > SHA256SUMS && cat SHA256SUMS

# requirements.lock: every runtime dependency pinned with its hashes, for the image
# (pip install --require-hashes); run after changing dependencies in pyproject.toml.
lock: install
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --no-emit-package provenant-server \
		-o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache dist
