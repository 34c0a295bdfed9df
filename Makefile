# The two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.clipinterp-installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

# torch==2.13.0 (the CPU wheel) goes in first, so nothing can pull a CUDA build.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e ".[test]"
	touch $(STAMP)

demo: setup
	$(BIN)/clipinterp report --model shapes-clip --out report

test: setup
	$(BIN)/python -m pytest -q tests

bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) report
