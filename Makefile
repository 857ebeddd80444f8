# The two commands: `make run` starts a demo node, `make test` runs everything.
# Both set up what they need first (Debian packages when missing, then .venv).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Debian packages the tests drive: SIPp, Redis, Chromium, text to speech,
# coturn (TURN for WebRTC legs) and opus-tools (an independent reader of the
# recorder's Ogg Opus files), a Chinese font for the webphone's screenshots, and
# PostgreSQL (the records' scale-out database).
TEST_PACKAGES := sip-tester redis-server chromium espeak-ng libopus0 coturn opus-tools \
	fonts-wqy-microhei postgresql

.PHONY: install run test lint format bench bench-smoke clean

# The webphone (webphone/, JsSIP and the page) is built into static files the
# node serves at /phone/; rebuilt when its sources change.
WEBPHONE_STAMP := switch/web/static/phone/.built
WEBPHONE_SOURCES := webphone/package.json webphone/package-lock.json webphone/build.mjs \
	webphone/index.html $(wildcard webphone/src/*)

install: $(STAMP) $(WEBPHONE_STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || bash scripts/ensure-packages.sh python3-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

$(WEBPHONE_STAMP): $(WEBPHONE_SOURCES)
	@command -v npm >/dev/null 2>&1 || bash scripts/ensure-packages.sh nodejs npm
	cd webphone && npm ci --no-audit --no-fund --loglevel=error && npm run build
	@touch $@

run: install
	$(BIN)/switch run $(ARGS)

test: install
	@bash scripts/ensure-packages.sh $(TEST_PACKAGES) || true
	$(BIN)/ruff check switch tests bench
	$(BIN)/ruff format --check switch tests bench
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check switch tests bench
	$(BIN)/ruff format --check switch tests bench

format: install
	$(BIN)/ruff format switch tests bench
	$(BIN)/ruff check --fix switch tests bench

# Full benchmark: figures go to bench/results/ (JSON and Markdown) and stdout.
bench: install
	@bash scripts/ensure-packages.sh sip-tester || true
	$(BIN)/python -m bench $(BENCH_ARGS)

# A short run of every benchmark, to prove they work (CI runs this).
bench-smoke: install
	$(BIN)/python -m bench --smoke $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis bench/results test-output \
		switch/web/static/phone webphone/node_modules
