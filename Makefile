# The README's two commands: `make demo` (set-up + the main job) and `make test` (set-up + tests).
.PHONY: setup test test-unit demo lint
setup:
	scripts/setup.sh
test: setup
	.venv/bin/python -m pytest
test-unit: setup
	.venv/bin/python -m pytest -m unit
demo: setup
	scripts/demo.sh
lint:
	.venv/bin/ruff check ptdm_spark jobs tests benchmarks
