# The README's two commands: `make book` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PROFILE ?= cpu
# TORCH=cpu installs the CPU-only torch wheels first (a few hundred MB instead of the 5.5 GB CUDA
# build); the default installs from PyPI alone.
TORCH   ?=
# umap-learn / numba compile once and keep their cache on disk
export NUMBA_CACHE_DIR ?= $(CURDIR)/build/numba-cache
# Python's bytecode too: where PYTHONDONTWRITEBYTECODE=1 is set (this project's machines), every
# process compiled torch, pandas and sklearn from source again (9.9 s to import them and mu_lib,
# 4.0 s with the bytecode kept): every chapter's kernel, test worker and `mu audit` paid it.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install book test lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(filter cpu,$(TORCH)),$(PY) -m pip install -q torch torchvision --index-url https://download.pytorch.org/whl/cpu)
	# --no-compile: bytecode is written on first import (of the few modules used) instead of for
	# every file of torch and ray
	$(PY) -m pip install -q --no-compile -e ".[book,test,ray,assign]"
	touch $@

install: $(VENV)/.installed

## Execute every chapter on $(PROFILE) (default cpu) and build the HTML book into _build/html
book: install
	$(VENV)/bin/mu book --profile $(PROFILE)

## Lint, then the test suite on the smoke profile (every chapter runs through papermill)
test: install
	$(VENV)/bin/ruff check mu_lib tests benchmarks
	# one thread per worker and one worker per core (papermill's kernels inherit the thread cap);
	# worksteal: the long chapter runs do not pile up on one worker at the end
	MU_PROFILE=smoke OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --dist worksteal

lint: install
	$(VENV)/bin/ruff check mu_lib tests benchmarks
	$(VENV)/bin/ruff format --check mu_lib tests benchmarks

clean:
	rm -rf _build book/generated build
