# The course pack's one entry point. `make help` lists the targets; README.md explains them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON     ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
ASSIGNMENT ?= practical1
# Empty: pip picks this platform's torch from the range in pyproject.toml (CUDA, MPS or CPU build).
# CI sets TORCH_SPEC=torch==2.13.0 so that it installs the CPU build and never a multi-GB CUDA one.
TORCH_SPEC ?=

# Jupyter and nbgrader state stays inside the project, never in ~/.jupyter.
export JUPYTER_CONFIG_DIR  := $(CURDIR)/.jupyter/config
export JUPYTER_DATA_DIR    := $(CURDIR)/.jupyter/data
export JUPYTER_RUNTIME_DIR := $(CURDIR)/.jupyter/runtime
# nbgrader runs `alembic` by name, so the venv's scripts come first on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
NBGRADER := $(PY) -m nbgrader
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

VENV_READY := $(VENV)/.installed

.PHONY: help release test lint sync lab autograde feedback grades bench clean distclean venv

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

venv: $(VENV_READY) ## create .venv and install the pack with its test tools (done by every target on first use)

$(VENV_READY): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH_SPEC),$(PY) -m pip install --quiet "$(TORCH_SPEC)")
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

release: $(VENV_READY) sync ## generate release/ from source/ with nbgrader and print the points table
	$(PY) -m coursepack.release

sync: $(VENV_READY) ## write shared snippets into notebooks and strip their outputs
	$(PY) -m coursepack.sync

lint: $(VENV_READY) ## ruff on code and notebooks
	$(PY) -m ruff check .

test: $(VENV_READY) lint ## every check: lint, notebook rules, release sync, grading suite, nbval on all notebooks
	COURSEPACK_QUICK=1 COURSEPACK_OFFLINE=1 MPLBACKEND=Agg \
	  $(PY) -m pytest autograde_tests --nbval-lax source notebooks

lab: $(VENV_READY) ## JupyterLab on the course, with nbgrader's Assignments and Formgrader
	$(VENV)/bin/jupyter lab --notebook-dir=$(CURDIR) $(ALLOW_ROOT)

autograde: $(VENV_READY) ## autograde submitted/*/$(ASSIGNMENT) into autograded/ and the gradebook
	$(NBGRADER) autograde $(ASSIGNMENT)

feedback: $(VENV_READY) ## feedback HTML for every autograded submission, under feedback/
	$(NBGRADER) generate_feedback $(ASSIGNMENT)

grades: $(VENV_READY) ## export the gradebook to grades.csv
	$(NBGRADER) export --to grades.csv

bench: $(VENV_READY) ## time the training loop against a naive one (see coursepack/bench.py)
	COURSEPACK_OFFLINE=1 $(PY) -m coursepack.bench

clean: ## remove grading state and caches (keeps .venv)
	rm -rf submitted autograded feedback gradebook.db grades.csv .jupyter .pytest_cache data
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean ## also remove .venv
	rm -rf $(VENV) *.egg-info
