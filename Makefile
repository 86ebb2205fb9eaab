# Two entry points (see README): `make demo` and `make test`.
.PHONY: setup setup-test demo test lint bench
setup:
	bash installer/setup.sh
setup-test:
	bash installer/setup.sh test
# The viewer on the demo patient; headless analysis when there is no display.
demo: setup
	.venv/bin/clinview demo
test: setup-test
	QT_QPA_PLATFORM=offscreen .venv/bin/lint-imports
	QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -q
bench: setup-test
	QT_QPA_PLATFORM=offscreen .venv/bin/python -m benchmarks.run_all
