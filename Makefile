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
# A PyTorch package index, e.g. https://download.pytorch.org/whl/cu126 for the CUDA 12.6 build when the
# NVIDIA driver is too old for PyPI's default build (notebooks/0_environment_check.ipynb says which).
TORCH_INDEX ?=

# Jupyter and nbgrader state stays inside the project, never in ~/.jupyter.
export JUPYTER_CONFIG_DIR  := $(CURDIR)/.jupyter/config
export JUPYTER_DATA_DIR    := $(CURDIR)/.jupyter/data
export JUPYTER_RUNTIME_DIR := $(CURDIR)/.jupyter/runtime
# nbgrader runs `alembic` by name, so the venv's scripts come first on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
NBGRADER := $(PY) -m nbgrader
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

VENV_READY := $(VENV)/.installed
# pytest-xdist workers for make test; each test file stays on one worker (its fixtures are costly).
# Each kernel gets one torch thread (OMP_NUM_THREADS=1): workers x threads beyond the cores thrash.
TEST_WORKERS ?= auto

# The student repository (owner/name) and its branch or tag, which every badge and link students see opens
# (defaults: coursepack/notebooks.py). make sync writes them into the notebooks, make publish into DEST.
ifdef REPOSITORY
export COURSEPACK_REPOSITORY := $(REPOSITORY)
endif
ifdef BRANCH
export COURSEPACK_BRANCH := $(BRANCH)
endif

.PHONY: help release test lint sync lab collect autograde feedback grades bench clean distclean venv \
        exchange-release kernel slurm bench-grading publish

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

venv: $(VENV_READY) ## create .venv and install the pack with its test tools (done by every target on first use)

$(VENV_READY): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH_SPEC)$(TORCH_INDEX),$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)") \
	  "$(or $(TORCH_SPEC),torch)")
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

release: $(VENV_READY) sync ## generate release/ from source/ with nbgrader and print the points table
	$(PY) -m coursepack.release

sync: $(VENV_READY) ## write shared snippets and Colab badges (REPOSITORY=owner/name BRANCH=...) into notebooks and README; strip outputs
	$(PY) -m coursepack.sync

# DEST: a git repository (made when missing) holding only exports: each run commits and tags v<version>.
publish: $(VENV_READY) ## write the student repository (no solutions) into DEST=path: commit, tag v<version>
	@test -n "$(DEST)" || { echo "usage: make publish DEST=path/to/student-repository [REPOSITORY=owner/name BRANCH=...]" >&2; exit 2; }
	$(PY) -m coursepack.publish "$(DEST)"

lint: $(VENV_READY) ## ruff on code and notebooks
	$(PY) -m ruff check .

test: $(VENV_READY) lint ## every check: lint, notebook rules, release sync, grading suite, nbval on all notebooks
	COURSEPACK_QUICK=1 COURSEPACK_OFFLINE=1 COURSEPACK_DATA=$(CURDIR)/data MPLBACKEND=Agg OMP_NUM_THREADS=1 \
	  $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15 autograde_tests --nbval-lax source notebooks

lab: $(VENV_READY) ## JupyterLab on the course, with nbgrader's Assignments and Formgrader
	$(VENV)/bin/jupyter lab --notebook-dir=$(CURDIR) $(ALLOW_ROOT)

# Without ARCHIVE: nbgrader collect from the exchange (the Assignments tab). ARCHIVE=bulk.zip: the learning
# platform's bulk download (Colab students), through nbgrader's zip_collect; ROSTER=roster.csv maps user names to ids.
collect: $(VENV_READY) ## file each student's newest hand-in under submitted/: from the exchange, or ARCHIVE=bulk.zip from the learning platform
	$(PY) -m coursepack.grading collect $(ASSIGNMENT) $(if $(ARCHIVE),--archive='$(ARCHIVE)') \
	  $(if $(ROSTER),--roster='$(ROSTER)')

# WORKERS=N parallel graders (default: cores); STUDENT=glob grades only matching students.
autograde: $(VENV_READY) ## autograde submitted/*/$(ASSIGNMENT) in parallel, each kernel sandboxed, into the gradebook
	$(PY) -m coursepack.grading autograde $(ASSIGNMENT) $(if $(WORKERS),--workers=$(WORKERS)) \
	  $(if $(STUDENT),--student='$(STUDENT)')

feedback: $(VENV_READY) ## feedback HTML for every autograded submission, under feedback/, without hidden test code
	$(PY) -m coursepack.grading feedback $(ASSIGNMENT)

# ROSTER=roster.csv (id,username) also writes Blackboard's Grade Centre import file.
grades: $(VENV_READY) ## export the gradebook: grades.csv, grades-items.csv per test cell, ROSTER=... grades-blackboard.csv
	$(NBGRADER) export --to grades.csv
	$(PY) -m coursepack.grading grades $(if $(ROSTER),--blackboard='$(ROSTER)')

bench: $(VENV_READY) ## time the training loop against a naive one (see coursepack/bench.py)
	COURSEPACK_OFFLINE=1 $(PY) -m coursepack.bench

bench-grading: $(VENV_READY) ## stock nbgrader autograde vs make autograde on a generated class (STUDENTS=40: full)
	COURSEPACK_OFFLINE=1 $(PY) -m coursepack.grading.bench $(if $(STUDENTS),--students $(STUDENTS)) \
	  $(if $(WORKERS),--workers $(WORKERS))

clean: ## remove grading state and caches (keeps .venv)
	rm -rf submitted autograded feedback gradebook.db grades.csv grades-*.csv .jupyter .pytest_cache .grading data
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean ## also remove .venv
	rm -rf $(VENV) *.egg-info

# Delivery: JupyterHub's Assignments tab (the nbgrader exchange), a Jupyter kernel, SLURM batch jobs.
exchange-release: $(VENV_READY) ## publish release/ to the exchange behind the Assignments tab (root: NBGRADER_EXCHANGE)
	$(NBGRADER) release_assignment $(ASSIGNMENT) --force

# student-makefile:start (make publish copies this block into the student repository's Makefile)
# `make kernel` runs before any environment exists, so it uses $(PYTHON), not .venv. The kernel is
# registered in the user's own Jupyter data folder (~/.local/share/jupyter), where JupyterHub looks,
# not in this project's .jupyter/: hence the env -u. The defaults of these settings live once, in
# coursepack/kernel.py (~/.venvs/comp3547, "comp3547") and coursepack/slurm.py (ug-gpu-small, 1 GPU,
# 01:00:00, slurm-out/): set them here only to override.
KERNEL_VENV     ?=
KERNEL_NAME     ?=
KERNEL_DISPLAY  ?=
KERNEL_FLAGS    ?=
SLURM_PARTITION ?=
SLURM_GPUS      ?=
SLURM_TIME      ?=
SLURM_OUT       ?=
NOTEBOOK        ?=
SUBMIT          ?=
option = $(if $(2),$(1) "$(2)")

kernel: ## a virtual environment (KERNEL_VENV) with the pack's requirements, as Jupyter kernel KERNEL_NAME
	env -u JUPYTER_CONFIG_DIR -u JUPYTER_DATA_DIR -u JUPYTER_RUNTIME_DIR $(PYTHON) -m coursepack.kernel \
	  --python $(PYTHON) $(call option,--venv,$(KERNEL_VENV)) $(call option,--name,$(KERNEL_NAME)) \
	  $(call option,--display-name,$(KERNEL_DISPLAY)) $(call option,--torch-spec,$(TORCH_SPEC)) \
	  $(call option,--torch-index,$(TORCH_INDEX)) $(KERNEL_FLAGS)

slurm: ## sbatch script running NOTEBOOK=... on a GPU node (in SLURM_OUT); SUBMIT=1 also submits it
	@test -n "$(NOTEBOOK)" || { echo "usage: make slurm NOTEBOOK=path/to/notebook.ipynb [SUBMIT=1]" >&2; exit 2; }
	$(PYTHON) -m coursepack.slurm $(call option,--partition,$(SLURM_PARTITION)) $(call option,--gpus,$(SLURM_GPUS)) \
	  $(call option,--time,$(SLURM_TIME)) $(call option,--venv,$(KERNEL_VENV)) \
	  $(call option,--output-dir,$(SLURM_OUT)) --write $(if $(filter 1,$(SUBMIT)),--submit) "$(NOTEBOOK)"
# student-makefile:end
