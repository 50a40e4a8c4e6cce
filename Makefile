.PHONY: setup test test-fast lint demo
setup:
	scripts/setup.sh
test:
	.venv/bin/python -m pytest
test-fast:
	.venv/bin/python -m pytest -m unit
lint:
	.venv/bin/ruff check ptdm_spark jobs tests scripts benchmarks
demo:
	scripts/demo.sh
