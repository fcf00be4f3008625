"""Command line of the benchmark suite (the package docstring says what each suite measures):

    python -m lodabench.bench [--quick] [--suites train,infer,decode,score] [--out results/bench/NAME.json]
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
from pathlib import Path
from typing import Any

import torch

from lodabench.errors import ConfigError
from lodabench.io import atomic_write_json, atomic_write_text
from lodabench.paths import REPO_ROOT

SUITES = ("train", "infer", "decode", "score")
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["cost-claims"]:  # the papers' cost claims (cost_claims.py), its own record
        from lodabench.bench import cost_claims

        return cost_claims.main(argv[1:])
    from lodabench.bench import report
    from lodabench.machine import machine_info

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    suites = [s for s in args.suites.split(",") if s]
    bad = [s for s in suites if s not in SUITES]
    if bad:
        raise ConfigError(f"--suites: unknown suite(s) {bad}; valid: {', '.join(SUITES)}")
    quick = args.quick
    warmup = 1 if args.warmup is None else args.warmup
    reps = (2 if quick else 5) if args.reps is None else args.reps
    models = (args.train_models or ("tiny-gpt2,tiny-roberta" if quick else "gpt2-medium,roberta-base")).split(",")
    shapes = _shapes(args.train_shapes or ("2x16" if quick else "1x128" if device == "cpu" else "8x128,1x128"))
    infer_shape = (1, 16) if quick else (1, 128)
    methods = tuple(args.methods.split(",")) if args.methods else None

    started = dt.datetime.now()
    name = f"{started:%Y%m%d-%H%M%S}-{device}" + ("-quick" if quick else "")
    out = Path(args.out) if args.out else REPO_ROOT / "results" / "bench"
    json_path = out if out.suffix == ".json" else out / f"{name}.json"
    md_path = json_path.with_suffix(".md")
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    record: dict[str, Any] = {
        "name": json_path.stem, "started": started.isoformat(timespec="seconds"), "quick": quick,
        "command": "python -m lodabench.bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "machine": machine_info(device), "warmup": warmup, "reps": reps, "note": args.note,
        "train": [], "skipped": {}, "errors": {},
    }

    def save() -> None:
        record["wall_time_s"] = round(time.perf_counter() - t_start, 1)
        record["goals"] = report.evaluate_goals(record)
        atomic_write_json(json_path, record)
        atomic_write_text(md_path, report.markdown(record))

    def guarded(suite: str, fn) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one broken suite must not lose the others' numbers
            record["errors"][suite] = f"{type(exc).__name__}: {exc}"
            log(f"{suite} FAILED: {exc}\n{traceback.format_exc()}")
        save()

    if "train" in suites:
        from lodabench.bench.train import TRAIN_METHODS, run_training

        for model in models:
            guarded(f"train:{model}", lambda model=model: record["train"].append(
                run_training(model, shapes, warmup, reps, device, methods or TRAIN_METHODS, log)))
    if "infer" in suites:
        from lodabench.bench.infer import run_inference

        def infer() -> None:
            record["infer"] = run_inference("tiny-gpt2" if quick else "gpt2-medium", infer_shape, warmup, reps,
                                            device=device, log=log)
        guarded("infer", infer)
    if "decode" in suites:
        from lodabench.bench.decode import run_decoding

        def decode() -> None:
            record["decode"] = run_decoding("tiny-gpt2" if quick else "gpt2-small", args.decode_prompts or (2 if quick else 4),
                                            num_beams=10, max_new_tokens=8 if quick else 64,
                                            warmup=warmup, reps=reps, device=device, log=log)
        guarded("decode", decode)
    if "score" in suites:
        from lodabench.scoring.java import java_executable
        from lodabench.paths import resolve_data_root

        try:
            java_executable()
            if resolve_data_root() is None:
                raise FileNotFoundError("no data root (LODABENCH_DATA_ROOT / ../shared/data)")
        except Exception as exc:  # noqa: BLE001
            record["skipped"]["score"] = f"{type(exc).__name__}: {exc}"
            save()
        else:
            from lodabench.bench.score import run_scoring

            score_reps = args.score_reps if args.score_reps is not None else reps
            guarded("score", lambda: record.__setitem__(
                "score", run_scoring(warmup, score_reps, max_items=20 if quick else None, log=log)))
    save()
    log(f"wrote {json_path} and {md_path}")
    print(report.markdown(record).split("## Training step")[0])
    failed = [g for g in record["goals"] if g["goal"].startswith("decoder") and g["met"] is False]
    return 1 if record["errors"] or failed else 0
