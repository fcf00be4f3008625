#!/usr/bin/env python3
"""`make bench-gpu`: issue #30's GPU timings on a machine with its own CUDA torch and no network.

Shaped as `make gpu-check` (scripts/gpu_check.py, docs/gpu-check.md), and run in the same session:
with the GPU machine's own ``python3``, it installs (``--no-deps``, into a folder put first on
``PYTHONPATH``) only the lodabench dependencies that interpreter lacks, from the wheel folder
``make gpu-wheels`` made, keeping the machine's torch; then runs ``python -m lodabench.bench.gpu``
(src/lodabench/bench/gpu.py says what it measures: PEFT's LoRA step beside ours; train steps of LoRA,
LoDA, LoDA+, CondLoRA, FT^{Wq,Wv} on a random-init GPT-2 medium at the LoRA E2E recipe's 8 x 512,
eager / fused optimizer / compiled; beam-10 decoding; S-LoDA dense / sparse_csr / semi24 at keep
0.4-0.6; operator counts; and, when ``LORA_REPO`` names a checkout of microsoft/LoRA, its gpt2_ft.py
step and its gpt2_beam.py beam search beside ours). peft comes from the wheel folder too
(scripts/gpu_wheel_plan.py BENCH_EXTRAS); where it cannot be imported the PEFT section is skipped.

The record goes to ``results/bench/<stamp>-cuda-bench-gpu.json`` (``--out``); its log beside it.
``--budget-s`` (default 240) stops starting new sections and timed rounds after that many seconds, so
with ``make gpu-check``'s 4 minutes the GPU session stays within issue #30's 9 minutes. ``--smoke``
runs the same path on the CPU with tiny-gpt2 (tests/test_bench_gpu.py). Standard library only at
import, as gpu_check.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def gpu_check_module():
    """scripts/gpu_check.py, for its wheel-folder install (one implementation of the offline install)."""
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def install(wheels: Path, site: Path) -> str:
    """The dependencies this interpreter lacks, from ``wheels`` (gpu_check's plan); what was done."""
    gc = gpu_check_module()
    specs = gc.runtime_requirements((REPO / "pyproject.toml").read_text())
    found = gc.wheel_files(wheels) if wheels.is_dir() else {}
    todo = gc.install_plan(found, {n: gc.installed_version(n) for n in found}, specs)
    return gc.install_wheels([found[n] for n in todo], site) if todo else "nothing to install"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny-gpt2 on the CPU: the path, not the numbers")
    p.add_argument("--out", type=Path, help="record path (default results/bench/<stamp>-<device>-bench-gpu.json)")
    p.add_argument("--wheels", type=Path, default=REPO / "gpu-wheels", help="the folder `make gpu-wheels` made")
    p.add_argument("--lora-repo", default=os.environ.get("LORA_REPO"), help="microsoft/LoRA checkout (LORA_REPO)")
    p.add_argument("--budget-s", type=float, default=240.0, help="no section or round starts after this many seconds")
    p.add_argument("--reps", type=int, help="timed rounds (default 10; --smoke 2)")
    p.add_argument("--work", type=Path, help="folder for the installed wheels (default: a new temporary folder)")
    args = p.parse_args(argv)
    started = time.monotonic()
    args.work = args.work or Path(tempfile.mkdtemp(prefix="bench-gpu-site-"))
    print(f"bench-gpu: install: {install(args.wheels, args.work)}", flush=True)
    path = os.pathsep.join([str(args.work), str(REPO / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "lodabench.bench.gpu", "--budget-s", str(args.budget_s)]
    cmd += ["--smoke"] if args.smoke else []
    cmd += ["--out", str(args.out)] if args.out else []
    cmd += ["--lora-repo", str(args.lora_repo)] if args.lora_repo else []
    cmd += ["--reps", str(args.reps)] if args.reps else []
    rc = subprocess.run(cmd, cwd=REPO, env=env).returncode
    print(f"bench-gpu: exit {rc} in {time.monotonic() - started:.0f} s", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
