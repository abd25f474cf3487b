# The two commands of the README: `make demo` (the main one) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo lint bench

setup:
	scripts/setup.sh dev,demo

test: setup
	$(VENV)/bin/pytest -q --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg tests notebooks

demo: setup
	$(VENV)/bin/perfkit demo

lint: setup
	$(VENV)/bin/ruff check perfkit tests benchmarks

bench:
	scripts/setup.sh dev,demo,bench
	for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done
