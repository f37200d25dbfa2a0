# revmodel: `make plan` runs the main job on the embedded sample company, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLE := data/sample
PARAMS ?= parameters/FY2027-Q1.yaml
PORT   ?= 8866

.PHONY: venv sample plan cube test test-fast lint format bench app clean

# The environment is created from the hashed lock, so everyone gets the same versions.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

$(SAMPLE)/opportunities.csv: $(STAMP) revmodel/sample.py
	$(BIN)/revmodel sample --out $(SAMPLE)

sample: $(SAMPLE)/opportunities.csv

# Validate the sample company, build the cube and summarise it.
cube: sample
	$(BIN)/revmodel validate $(SAMPLE)
	$(BIN)/revmodel cube $(SAMPLE) --out build/sample-cube.nc

# The main job: run the planning notebooks and publish the quarterly plan pack (prints plan.html's path).
plan: sample
	$(BIN)/revmodel plan --params $(PARAMS)

# The Voila apps on 127.0.0.1 (prints the URL with its token).
app: sample
	$(BIN)/revmodel serve --port $(PORT)

# Two workers (pytest-xdist; tests sharing a module's fixture stay on one: tests/conftest.py).
test: $(STAMP)
	$(BIN)/pytest -n 2 --durations=30

# Skips the slow notebook, browser and property tests.
test-fast: $(STAMP)
	$(BIN)/pytest -n 2 -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check revmodel tests benchmarks
	$(BIN)/ruff format --check revmodel tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format revmodel tests benchmarks

# Every benchmark; each prints a table and writes benchmarks/results/<script>.json.
# bench_forecast_m3 reads the M3 data from ../shared/data/m3-monthly (or REVMODEL_M3_PATH).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_cube.py
	$(BIN)/python benchmarks/bench_whatif.py
	$(BIN)/python benchmarks/bench_territory.py
	$(BIN)/python benchmarks/bench_forecast_m3.py
	$(BIN)/python benchmarks/bench_forecast_hierarchy.py
	$(BIN)/python benchmarks/bench_forecast_scale.py
	$(BIN)/python benchmarks/bench_apps.py
	$(BIN)/python benchmarks/bench_cluster.py
	$(BIN)/python benchmarks/bench_scale.py

clean:
	rm -rf build data/sample .pytest_cache
