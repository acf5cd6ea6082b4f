# The README's commands. `make test` and `make demo` do all set-up themselves.
.PHONY: setup test unit lint demo demo-down bench bench-peers

setup:
	scripts/setup.sh

test:
	scripts/test.sh

unit: setup
	.venv/bin/pytest -m "not sim and not root"

lint: setup
	.venv/bin/ruff check src tests bench && .venv/bin/ruff format --check src tests bench && .venv/bin/mypy

demo:
	scripts/demo.sh

# `make bench` lists the benchmarks; `make bench BENCH=render` runs one (bench/__main__.py).
bench: setup
	.venv/bin/python -m bench $(BENCH)

# piherd up beside Ansible and pyinfra on a head + 8 sim cluster (root; about an hour on
# a loaded 2-core machine). Creates the tools' pinned venvs under /var/cache/piherd.
bench-peers: setup
	.venv/bin/python -m bench.peers --repeat 2 --write --down
