# The two commands: `make run` and `make test`. Each does all set-up it needs first.
.PHONY: setup run test lint bench clean

VENV := .venv
PY := $(VENV)/bin/python

setup:
	@bash scripts/setup.sh

run: setup
	@$(VENV)/bin/rxaudio run

test: setup
	@bash scripts/test.sh

lint: setup
	$(VENV)/bin/ruff check rxaudio tests benchmarks
	$(VENV)/bin/ruff format --check rxaudio tests benchmarks
	$(VENV)/bin/mypy --strict rxaudio
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
