# The two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.clipinterp-installed

.PHONY: setup demo test bench browser widgets7 clean

setup: $(STAMP)

# torch==2.13.0 goes in first, so nothing can pull another build. PyPI's Linux wheel of torch needs
# CUDA packages (gigabytes), so the CPU build comes from PyTorch's CPU index when that index answers
# a 5-second probe; where it does not, pip's own configuration decides (a local CPU wheel, here).
# `make setup TORCH_INDEX=<url>` chooses the index (a CUDA one on a GPU machine); TORCH_INDEX= none.
PROBE := import socket; socket.create_connection(('download.pytorch.org', 443), 3).close(); print('https://download.pytorch.org/whl/cpu')
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	index="$(TORCH_INDEX)"; \
	if [ "$(origin TORCH_INDEX)" = undefined ]; then index=$$(timeout 5 $(PYTHON) -c "$(PROBE)" 2>/dev/null); fi; \
	$(BIN)/python -m pip install --quiet torch==2.13.0 $${index:+--index-url "$$index"}
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e ".[test]"
	touch $(STAMP)

demo: setup
	$(BIN)/clipinterp report --model shapes-clip --out report

test: setup browser widgets7
	$(BIN)/python -m pytest -q tests

# Headless-browser test set-up (tests/test_browser.py): Debian's chromium and require.js, and the
# offline copy of the ipywidgets embed manager (npm package, pinned) in tests/artifacts/web.
# Best effort: where apt or npm is missing the browser test skips and says why.
WEB := tests/artifacts/web
browser:
	-command -v chromium >/dev/null && test -f /usr/share/javascript/requirejs/require.min.js || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium libjs-requirejs)
	-test -f $(WEB)/html-manager/embed-amd.js || (mkdir -p $(WEB) && cd $(WEB) && npm pack --silent @jupyter-widgets/html-manager@1.0.15 && tar xzf jupyter-widgets-html-manager-1.0.15.tgz package/dist && mv package/dist html-manager && rm -rf package *.tgz)

# Colab's ipywidgets (7.7.1, with the ipython_genutils it imports) in tests/artifacts/ipywidgets7:
# tests/test_widgets.py runs once more with it on the path. Best effort: without it that test skips.
W7 := tests/artifacts/ipywidgets7
widgets7: setup
	-test -f $(W7)/ipywidgets/__init__.py || $(BIN)/python -m pip install --quiet --timeout 10 --retries 1 --no-deps --target $(W7) ipywidgets==7.7.1 ipython_genutils==0.2.0

bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) report
