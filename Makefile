# tfqbnn: `make demo` (train -> evaluate -> export -> Cortex-M), `make test` (docs + tests) and `make docs`.
# Both create .venv with the pinned stack on first use.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock setup.cfg | sha256sum | cut -c1-12)

# Offline data: use the shared read-only copy when it exists.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/mnist),)
export TFQBNN_DATA_DIR ?= $(SHARED_DATA)
endif
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.PHONY: venv deps-mcu demo docs test test-fast bench bench-mcu sweep clean

venv: $(STAMP)

$(STAMP): requirements.lock setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*; touch $@

# Debian's gcc-arm-none-eabi + newlib + qemu-system-arm, only when missing.
deps-mcu:
	@bash scripts/install_mcu_tools.sh

DEMO_OUT ?= out/demo

demo: venv deps-mcu
	$(PY) scripts/demo.py --out $(DEMO_OUT)

# The documentation site (docs/, mkdocs.yml) into build/site; --strict turns every warning (a broken link, a
# docstring that does not parse, a stale README results table) into a failure.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

test: venv deps-mcu docs
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m "not slow"

bench: venv
	$(PY) scripts/bench_train.py

# EXPORTS: export directories (default: the demo's), e.g.
#   make bench-mcu EXPORTS="runs/lenet-head/export runs/lenet-all/export" BENCH_ARGS="--boards an386 --sample-tables derived offset"
EXPORTS ?=
BENCH_ARGS ?=
bench-mcu: venv deps-mcu
	$(PY) scripts/bench_mcu.py $(EXPORTS) $(BENCH_ARGS)

SEEDS ?= 0 1 2
sweep: venv
	$(PY) scripts/sweep.py --profile fast --seeds $(SEEDS) --out results/sweep

clean:
	rm -rf out build *.egg-info .pytest_cache
