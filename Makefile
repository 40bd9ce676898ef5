# The commands the README and CI call. Everything runs inside .venv.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
MODEL_DIR ?= models/mnist
export BENTOML_DO_NOT_TRACK := true

.PHONY: setup serve train test lint format load capacity bench bench-protocols bench-overload clean image test-containers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the declared dependencies change. tensorflow-serving-api (TF Serving's
# protobuf messages, which the tests check our TF Serving JSON with) comes without its own
# dependencies: they would pull a TensorFlow and protobuf of its choosing.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps -c constraints.txt tensorflow-serving-api
	touch $@

setup: $(VENV)/.installed

train: setup
	$(BIN)/mnist-train --model-dir $(MODEL_DIR)

serve: setup
	@if ! ls -d $(MODEL_DIR)/[0-9]* >/dev/null 2>&1; then $(MAKE) train; fi
	$(BIN)/mnist-serve

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Locust, headless, against a fresh service unless URL=... is given (see README).
load: setup
	@if [ -z "$(URL)" ] && ! ls -d $(MODEL_DIR)/[0-9]* >/dev/null 2>&1; then $(MAKE) train; fi
	$(BIN)/python -m load.run --model-dir $(MODEL_DIR) $(if $(URL),--url $(URL)) $(LOAD_ARGS)

# Step load until the SLO breaks: reports/capacity.{csv,json,png,html} (see README).
capacity: setup
	@if [ -z "$(URL)" ] && ! ls -d $(MODEL_DIR)/[0-9]* >/dev/null 2>&1; then $(MAKE) train; fi
	$(BIN)/python -m load.capacity --model-dir $(MODEL_DIR) $(if $(URL),--url $(URL)) $(CAPACITY_ARGS)

# Mixed traffic at saturation, a row a minute (SOAK_ARGS=--short for a quick one).
soak: setup
	@if [ -z "$(URL)" ] && ! ls -d $(MODEL_DIR)/[0-9]* >/dev/null 2>&1; then $(MAKE) train; fi
	$(BIN)/python -m load.soak --model-dir $(MODEL_DIR) $(if $(URL),--url $(URL)) $(SOAK_ARGS)

# The benchmark harness: writes reports/bench.md and reports/bench.json, then measures the
# standard protocols against the native paths (BENCH_PROTOCOLS_ARGS).
bench: setup
	@if ! ls -d $(MODEL_DIR)/[0-9]* >/dev/null 2>&1; then $(MAKE) train; fi
	$(BIN)/python -m load.bench --model-dir $(MODEL_DIR) $(BENCH_ARGS)
	$(BIN)/python -m load.bench_protocols --model-dir $(MODEL_DIR) $(BENCH_PROTOCOLS_ARGS)

# The standard protocols (V2, binary and JSON) against the native paths they stand in for.
bench-protocols: setup
	@if ! ls -d $(MODEL_DIR)/[0-9]* >/dev/null 2>&1; then $(MAKE) train; fi
	$(BIN)/python -m load.bench_protocols --model-dir $(MODEL_DIR) $(BENCH_PROTOCOLS_ARGS)

# The latency of what is answered at 4x the saturating load (see README, Faults).
bench-overload: setup
	@if ! ls -d $(MODEL_DIR)/[0-9]* >/dev/null 2>&1; then $(MAKE) train; fi
	$(BIN)/python -m load.bench_overload --model-dir $(MODEL_DIR) $(BENCH_OVERLOAD_ARGS)

# The image (see README, Containers), with podman where it is installed, else docker.
# OFFLINE=1 builds without a registry or package index: a Debian bookworm stand-in base
# (deploy/containers/base-image.sh) and ./wheelhouse (deploy/containers/wheelhouse.sh).
# TARGET=load IMAGE=mnist-serving-load:latest builds the Locust image.
ENGINE ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
IMAGE ?= mnist-serving:latest
TARGET ?= serve
PYTHON_IMAGE ?= $(if $(OFFLINE),localhost/mnist-base:bookworm,python:3.11-slim-bookworm)
image:
ifdef OFFLINE
	ENGINE=$(ENGINE) deploy/containers/base-image.sh $(PYTHON_IMAGE)
	PYTHON=$(PYTHON) deploy/containers/wheelhouse.sh
endif
	$(ENGINE) build $(if $(findstring podman,$(notdir $(ENGINE))),--format docker) --target $(TARGET) \
		--build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) $(if $(OFFLINE),--build-arg PIP_NO_INDEX=1) \
		-t $(IMAGE) .

# The container tests (tests/containers, marked `containers`; `make test` skips them):
# build the image offline, train into a volume, serve from it read-only, stop it.
test-containers: setup
	$(BIN)/pytest -m containers tests/containers $(PYTEST_ARGS)

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) reports .pytest_cache .mypy_cache .ruff_cache
