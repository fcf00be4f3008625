"""Command line of the benchmark suite (the package docstring says what each suite measures):

    python -m lodabench.bench [--quick] [--suites train,infer,decode,score,optim] [--out results/bench/NAME.json]
    python -m lodabench.bench cost-claims [...]      # the papers' cost claims (cost_claims.py)

Runs the suites in one process, writes the record (JSON) and its Markdown summary after each
suite, prints the goals table; exit 1 when a suite failed or a decoder goal is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from lodabench.errors import ConfigError
from lodabench.io import atomic_write_json, atomic_write_text
from lodabench.paths import REPO_ROOT

SUITES = ("train", "infer", "decode", "score", "optim")
_SUMMARY = "Benchmark suite: the cost of each method measured side by side in ONE process and ONE run."


def _shapes(text: str) -> list[tuple[int, int]]:
    try:
        return [tuple(int(x) for x in s.lower().split("x")) for s in text.split(",") if s]  # type: ignore[misc]
    except ValueError:
        raise ConfigError(f"--train-shapes {text!r}: use BATCHxSEQ[,BATCHxSEQ], e.g. 8x128,1x128") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lodabench.bench", description=_SUMMARY)
    p.add_argument("--quick", action="store_true", help="tiny models, short shapes, 2 repetitions (tests)")
    p.add_argument("--out", default=None, help="record path (.json) or folder (default results/bench/)")
    p.add_argument("--suites", default=",".join(SUITES), help=f"comma list of {', '.join(SUITES)}")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--warmup", type=int, default=None, help="untimed rounds (default 1)")
    p.add_argument("--reps", type=int, default=None, help="timed rounds (default 5; --quick 2)")
    p.add_argument("--train-models", default=None, help="default gpt2-medium,roberta-base")
    p.add_argument("--train-shapes", default=None, help="default 1x128 on CPU, 8x128,1x128 on CUDA")
    p.add_argument("--methods", default=None, help="comma list (default: all of train.TRAIN_METHODS)")
    p.add_argument("--decode-prompts", type=int, default=None, help="E2E prompts decoded (default 4)")
    p.add_argument("--score-reps", type=int, default=None, help="timed score_e2e runs (default = --reps)")
    p.add_argument("--note", default=None, help="free text stored in the record (e.g. 'machine busy')")
    return p.parse_args(argv)


@dataclass
class Settings:
    """What one bench run measures, from the command line (--quick: the test-suite sizes)."""

    quick: bool
    device: str
    suites: list[str]
    warmup: int
    reps: int
    train_models: list[str]
    train_shapes: list[tuple[int, int]]
    train_methods: tuple[str, ...] | None
    decode_prompts: int
    score_reps: int

    @property
    def infer_shape(self) -> tuple[int, int]:
        return (1, 16) if self.quick else (1, 128)


def settings(args: argparse.Namespace) -> Settings:
    """Defaults that keep ``make bench`` under 20 minutes on 2 CPU cores (module docstring)."""
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    suites = [s for s in args.suites.split(",") if s]
    bad = [s for s in suites if s not in SUITES]
    if bad:
        raise ConfigError(f"--suites: unknown suite(s) {bad}; valid: {', '.join(SUITES)}")
    quick = args.quick
    reps = (2 if quick else 5) if args.reps is None else args.reps
    models = args.train_models or ("tiny-gpt2,tiny-roberta" if quick else "gpt2-medium,roberta-base")
    shapes = args.train_shapes or ("2x16" if quick else "1x128" if device == "cpu" else "8x128,1x128")
    return Settings(quick=quick, device=device, suites=suites, warmup=1 if args.warmup is None else args.warmup,
                    reps=reps, train_models=models.split(","), train_shapes=_shapes(shapes),
                    train_methods=tuple(args.methods.split(",")) if args.methods else None,
                    decode_prompts=args.decode_prompts or (2 if quick else 4),
                    score_reps=args.score_reps if args.score_reps is not None else reps)


class Session:
    """One bench run's record and files: saved after every suite, so an interrupted run keeps what
    it measured; a failing suite is recorded and the others still run."""

    def __init__(self, args: argparse.Namespace, argv: list[str], s: Settings):
        from lodabench.machine import machine_info

        started = dt.datetime.now()
        name = f"{started:%Y%m%d-%H%M%S}-{s.device}" + ("-quick" if s.quick else "")
        out = Path(args.out) if args.out else REPO_ROOT / "results" / "bench"
        self.json_path = out if out.suffix == ".json" else out / f"{name}.json"
        self.md_path = self.json_path.with_suffix(".md")
        self.t_start = time.perf_counter()
        self.record: dict[str, Any] = {
            "name": self.json_path.stem, "started": started.isoformat(timespec="seconds"), "quick": s.quick,
            "command": "python -m lodabench.bench " + " ".join(shlex.quote(a) for a in argv),
            "machine": machine_info(s.device), "warmup": s.warmup, "reps": s.reps, "note": args.note,
            "train": [], "skipped": {}, "errors": {},
        }

    def log(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    def save(self) -> None:
        from lodabench.bench import report

        self.record["wall_time_s"] = round(time.perf_counter() - self.t_start, 1)
        self.record["goals"] = report.evaluate_goals(self.record)
        atomic_write_json(self.json_path, self.record)
        atomic_write_text(self.md_path, report.markdown(self.record))

    def guarded(self, suite: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one broken suite must not lose the others' numbers
            self.record["errors"][suite] = f"{type(exc).__name__}: {exc}"
            self.log(f"{suite} FAILED: {exc}\n{traceback.format_exc()}")
        self.save()


def run_train(s: Settings, run: Session) -> None:
    from lodabench.bench.train import TRAIN_METHODS, run_training

    for model in s.train_models:
        run.guarded(f"train:{model}", lambda model=model: run.record["train"].append(
            run_training(model, s.train_shapes, s.warmup, s.reps, s.device, s.train_methods or TRAIN_METHODS, run.log)))


def run_infer(s: Settings, run: Session) -> None:
    from lodabench.bench.infer import run_inference

    model = "tiny-gpt2" if s.quick else "gpt2-medium"
    run.guarded("infer", lambda: run.record.__setitem__("infer", run_inference(
        model, s.infer_shape, s.warmup, s.reps, device=s.device, log=run.log)))


def run_decode(s: Settings, run: Session) -> None:
    from lodabench.bench.decode import run_decoding

    model = "tiny-gpt2" if s.quick else "gpt2-small"
    run.guarded("decode", lambda: run.record.__setitem__("decode", run_decoding(
        model, s.decode_prompts, num_beams=10, max_new_tokens=8 if s.quick else 64,
        warmup=s.warmup, reps=s.reps, device=s.device, log=run.log)))


def run_optim(s: Settings, run: Session) -> None:
    """lora_adamw_loop vs lora_adamw (fused) on GPT-2 M LoRA shapes (optim.py); 200 steps per timed call."""
    from lodabench.bench.optim import GPT2_MEDIUM, run_optim as measure

    layers = 2 if s.quick else GPT2_MEDIUM["layers"]
    run.guarded("optim", lambda: run.record.__setitem__("optim", measure(
        layers, s.warmup, max(s.reps, 3) if not s.quick else s.reps, 20 if s.quick else 200, s.device, run.log)))


def run_score(s: Settings, run: Session) -> None:
    """score_e2e needs Java and the E2E data: without them the suite is recorded as skipped."""
    from lodabench.paths import resolve_data_root
    from lodabench.scoring.java import java_executable

    try:
        java_executable()
        if resolve_data_root() is None:
            raise FileNotFoundError("no data root (LODABENCH_DATA_ROOT / ../shared/data)")
    except Exception as exc:  # noqa: BLE001
        run.record["skipped"]["score"] = f"{type(exc).__name__}: {exc}"
        run.save()
        return
    from lodabench.bench.score import run_scoring

    run.guarded("score", lambda: run.record.__setitem__(
        "score", run_scoring(s.warmup, s.score_reps, max_items=20 if s.quick else None, log=run.log)))


SUITE_RUNNERS: dict[str, Callable[[Settings, Session], None]] = {
    "train": run_train, "infer": run_infer, "decode": run_decode, "score": run_score, "optim": run_optim,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["cost-claims"]:  # the papers' cost claims (cost_claims.py), its own record
        from lodabench.bench import cost_claims

        return cost_claims.main(argv[1:])
    from lodabench.bench import report

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    s = settings(args)
    run = Session(args, argv, s)
    for suite in SUITES:  # always in this order, whatever the order of --suites
        if suite in s.suites:
            SUITE_RUNNERS[suite](s, run)
    run.save()
    run.log(f"wrote {run.json_path} and {run.md_path}")
    print(report.markdown(run.record).split("## Training step")[0])
    failed = [g for g in run.record["goals"] if g["goal"].startswith("decoder") and g["met"] is False]
    return 1 if run.record["errors"] or failed else 0
