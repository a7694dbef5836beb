# genlab: the front door. `make demo` and `make test` each work alone on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.genlab-setup
# The CPU build of torch must go in before anything that depends on torch (see README, "Set-up").
TORCH  := torch==2.13.0
RUN    ?= demo
# Test workers: one per core. Each test runs torch on one thread (tests/conftest.py), so one process would leave the
# other cores idle. Whole files are shared out (--dist loadfile: a module's fixture runs once) in collection order
# (--no-loadscope-reorder), so the longest file, tests/acceptance/test_core_quality.py, starts first.
# At most 8 workers: each loads torch and trains small models (a core-demo process held ~0.6 GB resident here).
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n < 8 ? n : 8 )))
PYTEST = $(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder

.PHONY: setup demo molecules markets worlds art test test-fast lint format bench clean-runs help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

setup: $(STAMP)  ## create .venv, install torch (CPU) first, then genlab editable with dev tools; a second call costs nothing

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: setup  ## core families on real small data, then short markets, molecules, worlds and art runs; reports under runs/
	$(BIN)/python -m apps.core_demo --run-name $(RUN)
	$(BIN)/python -m apps.markets all --run-name demo --tickers AAPL,MSFT,JPM,XOM,KO --source bundled \
		--start 2004-01-01 --split 2012-01-01 --end 2016-12-31 --train.steps 1000 --eval-paths 40 --scenarios 500
	$(BIN)/python -m apps.molecules all --run-name demo --data.n-train 50000 --data.n-props 10000 \
		--lm-train.steps 600 --vae-train.steps 300 --n-samples 5000 --n-recon 200
	$(BIN)/python -m apps.worlds run --env CartPole-v1 --run-name demo --seeds 0 --rounds 2 --eval-episodes 10
	$(BIN)/python -m apps.art all --preset demo --run-name demo

molecules: setup  ## MOSES: prepare, train the LM and VAE (~20 min on 2 cores), evaluate: runs/molecules/default/report.html
	$(BIN)/python -m apps.molecules all --run-name default

worlds: setup  ## world models: CartPole-v1 then Pendulum-v1, 3 seeds each, agents trained in the dream: runs/worlds/*/report.html
	$(BIN)/python -m apps.worlds run --env CartPole-v1 --run-name cartpole
	$(BIN)/python -m apps.worlds run --env Pendulum-v1 --run-name pendulum

art: setup  ## few-shot art: emoji at 32 px, diffusion + VAE + GAN, metrics and report: runs/art/default/report.html
	$(BIN)/python -m apps.art all --run-name default

markets: setup  ## scenario generation on the bundled 20-stock universe: runs/markets/default/report.html
	$(BIN)/python -m apps.markets all --run-name default

test: setup  ## the whole suite: unit, smoke, slow (gpu tests skip without CUDA), one worker per core (TEST_JOBS=1: serial)
	$(PYTEST)

test-fast: setup  ## unit and smoke tiers only
	$(PYTEST) -m "not slow"

lint: setup  ## ruff check
	$(BIN)/ruff check .

format: setup  ## ruff format and import sorting
	$(BIN)/ruff check --fix --select I .
	$(BIN)/ruff format .

bench: setup  ## benchmarks against peers; writes benchmarks/results/<machine>-<date>.json and .md
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python -m benchmarks

clean-runs:  ## delete runs/ (checkpoints, samples, reports)
	rm -rf runs
