# The two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.clipinterp-installed

.PHONY: setup demo test bench browser clean

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

test: setup browser
	$(BIN)/python -m pytest -q tests

# Headless-browser test set-up (tests/test_browser.py): Debian's chromium and require.js, and the
# offline copy of the ipywidgets embed manager (npm package, pinned) in tests/artifacts/web.
# Best effort: where apt or npm is missing the browser test skips and says why.
WEB := tests/artifacts/web
browser:
	-command -v chromium >/dev/null && test -f /usr/share/javascript/requirejs/require.min.js || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium libjs-requirejs)
	-test -f $(WEB)/html-manager/embed-amd.js || (mkdir -p $(WEB) && cd $(WEB) && npm pack --silent @jupyter-widgets/html-manager@1.0.15 && tar xzf jupyter-widgets-html-manager-1.0.15.tgz package/dist && mv package/dist html-manager && rm -rf package *.tgz)

bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) report
