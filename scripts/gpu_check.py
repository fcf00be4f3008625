#!/usr/bin/env python3
"""`make gpu-check`: is this checkout ready to train on a GPU machine that has its own CUDA torch?

Run with the GPU machine's own ``python3`` (its torch, e.g. 2.11+cu130), no network needed. It
installs, ``--no-deps`` into a target folder put first on ``PYTHONPATH``, only the lodabench
dependencies that interpreter lacks (or holds at a version pyproject.toml refuses) from the wheel
folder ``make gpu-wheels`` made (``gpu-wheels/``), keeps the machine's torch and transformers when
they fit, records the versions it ran on, then runs the real CLI (``python -m lodabench``), each
launch under a timeout, all in about 4 minutes on an H100:

* ``refusal``: ``trainer.device=auto`` with a GPU visible to ``nvidia-smi`` and torch unable to use
  it (``CUDA_VISIBLE_DEVICES=`` hides it from torch) stops before training and names
  ``trainer.device=cpu`` (lodabench.train.device); once with a stand-in ``nvidia-smi``, once with the real one;
* ``train_fp32`` / ``train_bf16`` / ``train_fp16``: 2 optimizer steps of LoDA (``experiment=e2e_loda``)
  on a random-init GPT-2 medium (24 x 1024, 16 heads: huggingface.co/gpt2-medium config.json), then
  one beam-search batch decoded and scored; the record must say ``"device": "cuda:0"``, which
  ``auto`` picked;
* ``resume``: the run dies after step 1 (``LODABENCH_FAULT_AFTER_STEP=1``, as tests/test_run_e2e.py
  does), the relaunch resumes from step 1's checkpoint and ends at step 2.

The data are E2E CSVs in the official layout generated here (a few rows), given as
``paths.data_root``; the scorer is sacrebleu BLEU as a plugin (docs/extending.md's example): the
official E2E scorer needs Java and pycocoevalcap's 101 MB of jars, which the wheel folder leaves out.

``--cpu-smoke`` runs the same checks on the CPU with tiny-gpt2 in fp32 (bf16/fp16 and the real
``nvidia-smi`` are skipped, with the reason), so the script is known to work before a GPU session
spends its time. ``--wheel-plan`` prints the pins ``make gpu-wheels`` downloads (scripts/gpu_wheels.sh;
the plan itself is scripts/gpu_wheel_plan.py: lodabench's runtime closure plus ``BENCH_EXTRAS``, peft for
``make bench-gpu``).

Output: ``<out>/gpu_check.json`` (versions, one entry per check: PASS/FAIL/SKIP, seconds, detail)
and ``<out>/gpu_check.log`` (every launch's output); exit status 0 only when nothing failed.
Standard library only at import: it must start on a machine that has none of our dependencies.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(Path(__file__).resolve().parent) not in sys.path:  # gpu_wheel_plan beside it, however this file is loaded
    sys.path.append(str(Path(__file__).resolve().parent))
from gpu_wheel_plan import (BENCH_EXTRAS, SKIPPED, TORCH_FAMILY, Pin, normalize, parse_lock,  # noqa: E402,F401
                            read_freeze, runtime_closure, runtime_requirements, satisfies, wheel_plan)

# gpt2-medium's config.json (huggingface.co/gpt2-medium): 24 layers, width 1024, 16 heads; vocabulary
# 50257 and 1024 positions as tiny-gpt2 already sets. Random init: the check needs no weights.
GPT2_MEDIUM = {"n_layer": 24, "n_embd": 1024, "n_head": 16}


# ---------------------------------------------------------------------------------------------
# On the GPU machine: install what is missing from the wheel folder.

def wheel_files(folder: Path) -> dict[str, Path]:
    """``{name: wheel}`` of a folder (a wheel file is ``<name>-<version>-<tags>.whl``)."""
    return {normalize(p.name.split("-")[0]): p for p in sorted(folder.glob("*.whl"))}


def installed_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def install_plan(wheels: dict[str, Path], installed: dict[str, str | None],
                 specs: dict[str, str]) -> list[str]:
    """Names to install: absent here, or here at a version pyproject.toml refuses. The machine's
    own copy wins otherwise (its torch, and its transformers when inside ``>=4.57,<5.40``)."""
    return sorted(n for n in wheels if not satisfies(installed.get(n), specs.get(n, "")))


def install_wheels(files: list[Path], site: Path) -> str:
    """``pip install --no-index --no-deps --target``; without pip, unzip (what pip does for --target)."""
    site.mkdir(parents=True, exist_ok=True)
    if not files:
        return "nothing to install"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, files)]
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"pip install failed: {proc.stderr[-2000:]}")
        return f"pip installed {len(files)} wheel(s) into {site}"
    for wheel in files:
        zipfile.ZipFile(wheel).extractall(site)
    return f"unzipped {len(files)} wheel(s) into {site} (no pip here)"


# ---------------------------------------------------------------------------------------------
# The data, the tokenizer and the scorer the runs need, made or found here (no network there).

_NAMES = ("Blue Spice", "The Vaults", "Aromi", "The Wrestlers", "Cotto", "Fitzbillies", "Zizzi", "The Punter")
_FOODS = ("Italian", "French", "English", "Chinese")
_AREAS = ("city centre", "riverside")


def e2e_rows(n: int, offset: int = 0) -> list[tuple[str, str]]:
    """``n`` (MR, reference) rows in the official E2E CSV's MR syntax, made from small lists."""
    rows = []
    for i in range(offset, offset + n):
        name, food, area = _NAMES[i % len(_NAMES)], _FOODS[i % len(_FOODS)], _AREAS[i % len(_AREAS)]
        mr = f"name[{name}], eatType[restaurant], food[{food}], area[{area}]"
        rows.append((mr, f"{name} is a {food} restaurant in the {area}."))
    return rows


def write_e2e(root: Path) -> Path:
    """``<root>/e2e/{trainset,devset,testset_w_refs}.csv``: the layout lodabench.tasks.e2e reads."""
    import csv

    folder = root / "e2e"
    folder.mkdir(parents=True, exist_ok=True)
    for file, rows in (("trainset.csv", e2e_rows(16)), ("devset.csv", e2e_rows(4, 16)),
                       ("testset_w_refs.csv", e2e_rows(4, 20))):
        with (folder / file).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
            writer.writerow(["mr", "ref"])
            writer.writerows(rows)
    return root


SCORER_PLUGIN = '''"""data.scorer=gpucheck_bleu: sacrebleu corpus BLEU (docs/extending.md's example scorer), Java-free."""
import sacrebleu

import lodabench


def score(hyps, refs, data_config):
    width = max(len(group) for group in refs)
    streams = [[group[i] if i < len(group) else group[0] for group in refs] for i in range(width)]
    return {"BLEU": sacrebleu.corpus_bleu(hyps, streams).score}


lodabench.register_scorer(lodabench.ScorerSpec("gpucheck_bleu", score, primary_metric="BLEU",
                                               description="sacrebleu corpus_bleu (scripts/gpu_check.py)"))
'''

FAKE_NVIDIA_SMI = """#!/bin/sh
# A stand-in nvidia-smi (scripts/gpu_check.py): one GPU listed, as the driver would list it.
if [ "$1" = "-L" ]; then echo "GPU 0: Stand-in GPU (UUID: GPU-00000000-0000-0000-0000-000000000000)"; exit 0; fi
echo "| NVIDIA-SMI 580.00    Driver Version: 580.00    CUDA Version: 13.0 |"
"""


def find_tokenizer(explicit: str | None, wheels: Path) -> Path | None:
    """The GPT-2 BPE files: --tokenizer, $LODABENCH_GPT2_TOKENIZER, the wheel folder's copy, or
    ../shared/tokenizers/gpt2 (models.default_gpt2_tokenizer_location's first choice)."""
    for value in (explicit, os.environ.get("LODABENCH_GPT2_TOKENIZER"), wheels / "gpt2-tokenizer",
                  REPO.parent / "shared" / "tokenizers" / "gpt2"):
        if value and (Path(value) / "vocab.json").is_file():
            return Path(value).resolve()
    return None


# ---------------------------------------------------------------------------------------------
# The checks.

@dataclass
class Check:
    name: str
    status: str            # PASS | FAIL | SKIP
    seconds: float = 0.0
    detail: str = ""
    facts: dict = field(default_factory=dict)


@dataclass
class Context:
    gpu: bool
    work: Path
    log: Path
    env: dict[str, str]
    model_args: list[str]
    deadline: float
    checks: list[Check] = field(default_factory=list)

    def left(self) -> float:
        return self.deadline - time.monotonic()


def launch(ctx: Context, name: str, args: list[str], cap_s: float, env: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess:
    """``python -m lodabench <args>`` under min(cap, time left); its output goes to the log."""
    timeout = max(1.0, min(cap_s, ctx.left()))
    full_env = {**ctx.env, "LODABENCH_RESULTS_DIR": str(ctx.work / name), **(env or {})}
    cmd = [sys.executable, "-m", "lodabench", *args]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        timed_out = f"\ntimed out after {timeout:.0f} s"
        proc = subprocess.CompletedProcess(cmd, 124, _text(exc.stdout), _text(exc.stderr) + timed_out)
    with ctx.log.open("a", encoding="utf-8") as handle:
        handle.write(f"\n===== {name}: {' '.join(cmd)} -> exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}\n")
    return proc


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def run_args(ctx: Context, precision: str, steps: int = 2) -> list[str]:
    """A 2-step LoDA run on the generated E2E rows: one dev-loss batch, one decode batch of 4 items."""
    return ["experiment=e2e_loda", *ctx.model_args, f"paths.data_root={ctx.work / 'data'}",
            "data.eval_split=dev", "data.max_eval_items=4", "data.scorer=gpucheck_bleu",
            f"trainer.max_steps={steps}", "trainer.batch_size=4", "trainer.warmup_steps=0",
            "trainer.checkpoint_every=1", "trainer.max_dev_batches=1", f"trainer.precision={precision}",
            "trainer.device=auto", "trainer.progress=false", "decoding.max_new_tokens=16",
            "decoding.progress=false", "logger=none"]


def the_record(ctx: Context, name: str) -> dict:
    records = sorted((ctx.work / name / "runs").rglob("record.json"))
    return json.loads(records[0].read_text()) if len(records) == 1 else {}


def expected_device(ctx: Context) -> str:
    return "cuda:0" if ctx.gpu else "cpu"


def judge_run(ctx: Context, name: str, proc: subprocess.CompletedProcess) -> tuple[bool, str, dict]:
    """A finished 2-step run on the expected device with a decoded, scored batch."""
    record = the_record(ctx, name)
    attempt = (record.get("attempts") or [{}])[-1]
    run_dir = next(iter((ctx.work / name / "runs").rglob("record.json")), Path("")).parent
    hyps = (run_dir / "hyp.txt").read_text(encoding="utf-8").splitlines() if (run_dir / "hyp.txt").is_file() else []
    facts = {"status": record.get("status"), "global_step": (record.get("train") or {}).get("global_step"),
             "device": attempt.get("device"), "decoded_items": len(hyps), "metrics": record.get("metrics"),
             "trainable_params": record.get("trainable_params"), "machine": attempt.get("machine")}
    problems = [f"exit {proc.returncode}: {_last_error(proc)}"] if proc.returncode else []
    problems += [f"{k} is {facts[k]!r}, expected {v!r}" for k, v in
                 (("status", "complete"), ("global_step", 2), ("device", expected_device(ctx)), ("decoded_items", 4))
                 if facts[k] != v]
    return not problems, "; ".join(problems) or f"2 steps on {facts['device']}, 4 items decoded and scored", facts


def _last_error(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in (proc.stderr or proc.stdout or "").splitlines() if line.strip()]
    return lines[-1][-400:] if lines else "no output"


def timed(ctx: Context, name: str, body) -> Check:
    """Run one check; an exception or a spent budget is its FAIL, never the script's crash."""
    start = time.monotonic()
    if ctx.left() <= 1:
        check = Check(name, "FAIL", 0.0, "not run: the time budget was spent (--budget-s)")
    else:
        try:
            ok, detail, facts = body()
            check = Check(name, "PASS" if ok else "FAIL", detail=detail, facts=facts)
        except Exception as exc:  # a check's own bug or a missing file: reported, the rest still run
            check = Check(name, "FAIL", detail=f"{type(exc).__name__}: {exc}")
    check.seconds = round(time.monotonic() - start, 1)
    ctx.checks.append(check)
    print(f"{check.status:4}  {name:<20} {check.seconds:6.1f} s  {check.detail}", flush=True)
    return check


def skip(ctx: Context, name: str, why: str) -> None:
    ctx.checks.append(Check(name, "SKIP", detail=why))
    print(f"SKIP  {name:<20}   0.0 s  {why}", flush=True)


def check_train(ctx: Context, precision: str) -> Check:
    name = f"train_{precision}"
    return timed(ctx, name, lambda: judge_run(ctx, name, launch(ctx, name, run_args(ctx, precision), 150)))


def check_refusal(ctx: Context, name: str, smi_dir: Path | None) -> Check:
    """auto with a GPU listed by nvidia-smi and none usable by torch: refused before training."""
    def body():
        path = f"{smi_dir}{os.pathsep}{ctx.env['PATH']}" if smi_dir else ctx.env["PATH"]
        proc = launch(ctx, name, run_args(ctx, "fp32"), 90, env={"PATH": path, "CUDA_VISIBLE_DEVICES": ""})
        trained = any((ctx.work / name).rglob("trainable.safetensors"))
        err = proc.stdout + proc.stderr
        ok = proc.returncode not in (0, 124) and "trainer.device=cpu" in err and not trained
        detail = (f"refused before training, naming trainer.device=cpu: {_last_error(proc)[:200]}" if ok else
                  f"exit {proc.returncode}, names trainer.device=cpu: {'trainer.device=cpu' in err}, "
                  f"trained: {trained}: {_last_error(proc)}")
        return ok, detail, {"exit": proc.returncode}
    return timed(ctx, name, body)


def check_resume(ctx: Context) -> Check:
    """Killed after step 1 (its checkpoint on disk), relaunched: resumes at step 1, ends at step 2."""
    def body():
        first = launch(ctx, "resume", run_args(ctx, "fp32"), 120, env={"LODABENCH_FAULT_AFTER_STEP": "1"})
        if first.returncode != 75:  # trainer._maybe_inject_fault exits 75
            return False, f"first launch exit {first.returncode}, expected 75 (fault after step 1): {_last_error(first)}", {}
        second = launch(ctx, "resume", run_args(ctx, "fp32"), 120)
        ok, detail, facts = judge_run(ctx, "resume", second)
        attempts = the_record(ctx, "resume").get("attempts") or []
        starts = [a.get("start") for a in attempts]
        resumed = re.search(r"resumed from \S+ \(epoch \d+, batch \d+, step (\d+)\)", second.stdout + second.stderr)
        facts.update(attempts=starts, resumed_at_step=int(resumed[1]) if resumed else None)
        if starts != ["step 0", "resume"] or facts["resumed_at_step"] != 1:
            return False, f"attempts {starts}, resumed at step {facts['resumed_at_step']} (expected 1); {detail}", facts
        return ok, f"resumed at step 1 in attempt 2; {detail}" if ok else detail, facts
    return timed(ctx, "resume", body)


# ---------------------------------------------------------------------------------------------
# Versions and the install step.

def nvidia_smi_facts() -> dict:
    """GPU name, driver and the driver's CUDA version as nvidia-smi reports them (empty without it)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {}
    try:
        query = subprocess.run([exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=20).stdout.strip().splitlines()
        header = subprocess.run([exe], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": str(exc)}
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", header)
    return {"gpus": query, "driver_cuda": cuda[1] if cuda else None}


PROBE = """import json, platform, sys, importlib.metadata as md
import torch
def v(n):
    try: return md.version(n)
    except md.PackageNotFoundError: return None
print(json.dumps({"python": platform.python_version(), "executable": sys.executable, "torch": torch.__version__,
  "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
  "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
  "packages": {n: v(n) for n in NAMES}, "lodabench_from": __import__("lodabench").__file__}))
"""


def probe_versions(ctx: Context, names: list[str]) -> dict:
    """What the runs import, asked of the interpreter with the runs' PYTHONPATH."""
    code = PROBE.replace("NAMES", repr(["transformers", "tokenizers", "huggingface-hub", "safetensors", *names]))
    proc = subprocess.run([sys.executable, "-c", code], env=ctx.env, capture_output=True, text=True, timeout=120)
    if proc.returncode:
        raise RuntimeError(f"probe failed: {_last_error(proc)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def lodabench_commit(wheels: Path) -> dict:
    """The checkout's commit (git), else the one `make gpu-wheels` recorded (a copy without .git)."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=20)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True, timeout=20)
        if head.returncode == 0:
            return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip()), "from": "git"}
    except (OSError, subprocess.SubprocessError):
        pass
    source = wheels / "SOURCE.json"
    if source.is_file():
        return {**json.loads(source.read_text()), "from": str(source)}
    return {"commit": None, "from": "no .git and no gpu-wheels/SOURCE.json"}


def runtime_closure_names(specs: dict[str, str]) -> list[str]:
    """The direct runtime dependencies other than torch (their own needs are the folder's business)."""
    return sorted(n for n in specs if not TORCH_FAMILY.match(n) and n not in SKIPPED)


def check_import(ctx: Context, summary: dict) -> Check:
    def body():
        facts = probe_versions(ctx, runtime_closure_names(runtime_requirements((REPO / "pyproject.toml").read_text())))
        summary["versions"].update(facts)
        transformers = facts["packages"].get("transformers")
        ok = satisfies(transformers, runtime_requirements((REPO / "pyproject.toml").read_text())["transformers"])
        return ok, f"torch {facts['torch']} (CUDA {facts['torch_cuda']}, available: {facts['cuda_available']}), " \
                   f"transformers {transformers}, lodabench from {facts['lodabench_from']}", {}
    return timed(ctx, "versions", body)


# ---------------------------------------------------------------------------------------------

def prepare(args: argparse.Namespace, work: Path) -> tuple[Context, Path | None]:
    """The work folder: data, scorer plugin, stand-in nvidia-smi; the runs' environment."""
    write_e2e(work / "data")
    (work / "plugins").mkdir(parents=True, exist_ok=True)
    (work / "plugins" / "gpucheck_bleu.py").write_text(SCORER_PLUGIN)
    smi = work / "fake-smi"
    smi.mkdir(exist_ok=True)
    (smi / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (smi / "nvidia-smi").chmod(0o755)
    site = work / "site"
    path = os.pathsep.join([str(site), str(REPO / "src"), str(work / "plugins"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path.rstrip(os.pathsep), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
           "TOKENIZERS_PARALLELISM": "false", "LODABENCH_PLUGINS": "gpucheck_bleu", "PYTHONUNBUFFERED": "1"}
    env.pop("LODABENCH_DATA_ROOT", None)
    tokenizer = find_tokenizer(args.tokenizer, args.wheels)
    model = ["model=tiny-gpt2", f"model.tokenizer={tokenizer}"]
    if not args.cpu_smoke:
        model += ["model.name=gpt2-medium-random", "trainer.num_threads=8",
                  *(f"model.config_overrides.{k}={v}" for k, v in GPT2_MEDIUM.items())]
    log = args.out / "gpu_check.log"
    log.write_text("")
    ctx = Context(not args.cpu_smoke, work, log, env, model, time.monotonic() + args.budget_s)
    return ctx, tokenizer


def run_checks(ctx: Context, args: argparse.Namespace, tokenizer: Path | None, summary: dict) -> None:
    if not timed(ctx, "install", lambda: _install_body(ctx, args)).status == "PASS":
        return
    if tokenizer is None:
        ctx.checks.append(Check("tokenizer", "FAIL", detail="no GPT-2 tokenizer files (vocab.json, merges.txt): "
                                "make gpu-wheels copies them into gpu-wheels/gpt2-tokenizer; or --tokenizer DIR"))
        return
    if check_import(ctx, summary).status != "PASS":
        return
    check_refusal(ctx, "refusal_standin_smi", ctx.work / "fake-smi")
    if ctx.gpu and shutil.which("nvidia-smi"):
        check_refusal(ctx, "refusal_real_smi", None)
    else:
        skip(ctx, "refusal_real_smi", "no GPU run (--cpu-smoke) or no nvidia-smi on PATH")
    check_train(ctx, "fp32")
    for precision in ("bf16", "fp16"):
        if ctx.gpu:
            check_train(ctx, precision)
        else:
            skip(ctx, f"train_{precision}", "--cpu-smoke runs fp32 only (fp16 autocast needs CUDA)")
    check_resume(ctx)


def _install_body(ctx: Context, args: argparse.Namespace):
    specs = runtime_requirements((REPO / "pyproject.toml").read_text())
    found = wheel_files(args.wheels) if args.wheels.is_dir() else {}
    todo = install_plan(found, {n: installed_version(n) for n in found}, specs)
    done = install_wheels([found[n] for n in todo], ctx.work / "site")
    missing = [n for n in runtime_closure_names(specs) if installed_version(n) is None and n not in found]
    facts = {"wheel_folder": str(args.wheels), "wheels_in_folder": len(found), "installed": todo,
             "kept_from_machine": {n: installed_version(n) for n in sorted(set(found) - set(todo))},
             "missing_without_wheel": missing}
    detail = f"{done}; {len(todo)} installed, {len(found) - len(todo)} kept from this machine"
    return not missing, detail + (f"; missing here and not in {args.wheels}: {', '.join(missing)}" if missing else ""), facts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.wheel_plan:
        have = read_freeze(Path(args.have).read_text()) if args.have else None
        plan = wheel_plan(args.lock.read_text(), (REPO / "pyproject.toml").read_text(), have, tuple(args.with_))
        print("\n".join(pin.requirement() for pin in plan))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or args.out / "work"
    shutil.rmtree(work, ignore_errors=True)
    started = time.monotonic()
    ctx, tokenizer = prepare(args, work)
    summary = {"check": "gpu-check", "mode": "cpu-smoke" if args.cpu_smoke else "gpu", "budget_s": args.budget_s,
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
               "versions": {"nvidia_smi": nvidia_smi_facts(), "lodabench": lodabench_commit(args.wheels)},
               "tokenizer": str(tokenizer) if tokenizer else None, "model_overrides": ctx.model_args}
    run_checks(ctx, args, tokenizer, summary)
    summary["checks"] = [asdict(c) for c in ctx.checks]
    summary["wall_time_s"] = round(time.monotonic() - started, 1)
    summary["passed"] = all(c.status != "FAIL" for c in ctx.checks)
    (args.out / "gpu_check.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    print(f"gpu-check: {'PASS' if summary['passed'] else 'FAIL'} in {summary['wall_time_s']} s; "
          f"{args.out / 'gpu_check.json'}, log {args.out / 'gpu_check.log'}")
    return 0 if summary["passed"] else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu-smoke", action="store_true", help="the same checks on the CPU, tiny-gpt2, fp32 only")
    p.add_argument("--out", type=Path, default=REPO / "results" / "bench" / "gpu_check",
                   help="gpu_check.json and gpu_check.log go here (default: %(default)s)")
    p.add_argument("--wheels", type=Path, default=REPO / "gpu-wheels", help="the folder `make gpu-wheels` made")
    p.add_argument("--tokenizer", help="GPT-2 tokenizer folder (default: gpu-wheels/gpt2-tokenizer, ../shared)")
    p.add_argument("--budget-s", type=float, default=240.0, help="all checks together (default: %(default)s)")
    p.add_argument("--work", type=Path, help="scratch folder (default: <out>/work, removed at the end)")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder (run directories)")
    p.add_argument("--wheel-plan", action="store_true", help="print the pins `make gpu-wheels` downloads, then exit")
    p.add_argument("--lock", type=Path, default=REPO / "requirements.lock", help="--wheel-plan: the lock to read")
    p.add_argument("--have", help="--wheel-plan: the GPU machine's `pip freeze`; what it holds is not downloaded")
    p.add_argument("--with", dest="with_", action="append", default=[],
                   help=f"--wheel-plan: carry one of {', '.join(SKIPPED)} too")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
