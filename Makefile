# `make run` starts Slimforge on this machine; `make test` runs the tests (ARGS="..." goes to pytest);
# `make screenshots` refreshes docs/screenshots/ for the README.
# All make .venv first, and install requirements.txt again whenever it is newer than the last install.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
ARGS ?=

.PHONY: run test test-faults venv screenshots bench-live bench-load bench-workers bench-multi-host

run: $(STAMP)
	$(PY) -m launcher run

test: $(STAMP)
	$(PY) -m launcher test -- $(ARGS)

# The fault and multi-host scenarios (killed workers and hosts, restarted PostgreSQL, Redis and web server, a full
# disk, time limits): each starts processes of its own, so they take long; CI runs them after make test.
test-faults: $(STAMP)
	$(PY) -m launcher test -- -m faults -n 0 $(ARGS)

# The README's pictures: the browser tests that walk through an experiment and a comparison save them here.
screenshots: $(STAMP)
	SLIMFORGE_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(PY) -m launcher test -- -n 0 \
		tests/webapp/pages/test_browser.py::test_upload_quantize_watch_and_download tests/webapp/pages/test_browser_compare.py \
		tests/webapp/pages/test_browser_charts_readable.py tests/webapp/pages/test_browser_first_run.py

# Event latency with 1 and 200 open pages, first draw of a 100,000-point series, sampler overhead, and the page's
# first draw in Chromium with 10 series of 20,000 points (bench/RESULTS.md).
bench-live: $(STAMP)
	$(PY) -m launcher test -- bench/live.py bench/charts.py -m slow -s -p no:cacheprovider -n 0

# 200 open pages and 20 streaming jobs for 5 minutes; a burst of 1,000 submits by 10 users (bench/RESULTS.md, "Load").
bench-load: $(STAMP)
	$(PY) -m launcher test -- bench/load.py -m slow -s -p no:cacheprovider -n 0

# A burst of small jobs on one worker host and on two (bench/RESULTS.md, "Workers").
bench-workers: $(STAMP)
	$(PY) -m launcher test -- bench/workers.py -m slow -s -p no:cacheprovider -n 0

# One prune fine-tuned on one worker host and on two as one DDP group (bench/RESULTS.md, "Multi-host training").
bench-multi-host: $(STAMP)
	$(PY) -m launcher test -- bench/multi_host.py -m slow -s -p no:cacheprovider -n 0

venv: $(STAMP)

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Slimforge needs Python 3.11 or newer as $(PYTHON) (make PYTHON=python3.12 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt | $(PY)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e .
	touch $@
