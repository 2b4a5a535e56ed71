# dlbasics: `make train` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# torch first, from a range the local CPU wheel (2.13.0) satisfies; a looser spec would let
# pip fetch a newer build with several GB of CUDA libraries.
TORCH_SPEC := torch>=2.4,<2.14
LOGDIR ?= .

.PHONY: install train test test-slow lint bench tb clean

# editable_mode=compat: a plain editable install (PEP 660) hides the hydra_plugins namespace
# package from Hydra's plugin scan (hydra issues #2359, #3252), and hydra/launcher=stacked with it.
$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -e ".[dev,sweep]" --config-settings editable_mode=compat
	touch $@

install: $(INSTALLED)

train: install  ## train the default model (an MLP on digits); extra overrides: make train ARGS="act=tanh"
	$(PY) scripts/train.py $(ARGS)

test: install  ## the test suite without the tests marked slow, one worker per core
	$(PY) -m pytest -m "not slow" -n auto $(ARGS)

test-slow: install  ## only the slow tests (full accuracy targets, long runs)
	$(PY) -m pytest -m slow -n auto $(ARGS)

lint: install
	$(VENV)/bin/ruff check .

bench: install  ## the Trainer against a hand loop, scikit-learn and Lightning (5-6 min; the GPU too if there is one), then data=csv on a million-row table (1-2 min), then ensembles against scikit-learn's and 16 small MLPs stacked against one by one (13 min on a busy 2-core machine, most of it stacked on two threads): make bench ARGS="mlp_digits --rounds 11"
	$(PY) scripts/bench.py $(ARGS)
	$(PY) scripts/bench_table.py
	$(PY) scripts/bench_ensembles.py

tb: install  ## TensorBoard over every run below LOGDIR (default: the whole checkout; multirun/latest: the newest sweep); its options: make tb ARGS="--port 6007"
	logdir="$$($(PY) -m dlbasics.latest $(LOGDIR))" && $(VENV)/bin/tensorboard --logdir "$$logdir" $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
