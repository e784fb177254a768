# celeriac's top-level tasks. The benchmarks need Redis, RabbitMQ and PostgreSQL on
# 127.0.0.1; bench/run.py makes its own environment in bench/.venv (see docs/performance.md).

PYTHON ?= python3

.PHONY: bench bench-quick

bench:
	$(PYTHON) bench/run.py

bench-quick:
	$(PYTHON) bench/run.py --quick
