# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench check-config clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/upload-status-exporter --demo --web.listen-address=:9877

test: $(STAMP) lint
	scripts/ensure-test-tools
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	# The example refers to secrets as {env: NAME}: give each a placeholder value.
	env $$(grep -o '{env: [A-Z0-9_]*}' config.example.yaml | sed 's/{env: \(.*\)}/\1=example/') \
		$(BIN)/upload-status-exporter --check-config --config.file=config.example.yaml

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
