# The two commands: `make run` and `make test`. Each does all set-up it needs first.
# `make test` is Python 3.11 with torch; .ci/run adds the torch-free Python 3.13 run.
.PHONY: setup run test lint bench dist clean declarations

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

# regenerate what is generated from the elements' declarations (tests fail while it is stale)
declarations: setup
	$(PY) -m rxaudio.pipeline.declarations --write
	$(VENV)/bin/rxaudio inspect --markdown > docs/elements.md

bench: setup
	$(PY) -m benchmarks.run_all

# an sdist and a wheel (the compiled kernel inside) in dist/
dist: setup
	$(PY) -m build --no-isolation --outdir dist .

clean:
	rm -rf $(VENV) .venv313 dist .pytest_cache .mypy_cache .ruff_cache build *.egg-info
