"""trainer.keep_freed_memory on vs off: the same tiny E2E run through the CLI, in turn (A B A B ...).

Each run is a fresh process with a fresh results directory: tiny-gpt2 (GPT-2's 50,257-token head),
LoRA r=8, 32 steps of 8 examples, greedy decoding of 6 dev items, the E2E scorer. Reported per
setting: the record's ``cost.train_s`` / ``cost.eval_s``, and the process's user/system seconds and
minor page faults (``getrusage`` of the finished child); the dev loss of every run must be the same
(allocation changes no number). Writes ``results/bench/<UTC time>-cpu-keep-freed.{json,md}``.
Needs the data root (``../shared/data`` beside the repository, or LODABENCH_DATA_ROOT).

    python scripts/bench_keep_freed.py --pairs 3
"""

from __future__ import annotations

import argparse
import sys

from paired_launches import in_turn, launch, medians, one_value, write_record

RUN = ["model=tiny-gpt2", "method=lora", "method.r=8", "data.max_train_examples=256", "data.max_eval_items=6",
       "data.eval_split=dev", "trainer.max_steps=32", "trainer.lr=1e-2", "trainer.warmup_steps=0",
       "trainer.batch_size=8", "trainer.checkpoint_every=100000", "trainer.max_dev_batches=2", "decoding=greedy",
       "decoding.max_new_tokens=16", "decoding.batch_size=2", "trainer.progress=false", "decoding.progress=false"]
FIGURES = ("wall_s", "train_s", "eval_s", "user_s", "sys_s", "minor_faults")


def one_run(keep: bool) -> dict:
    """One CLI run in a fresh process; its record's cost and the process's own accounting."""
    keep_arg = f"trainer.keep_freed_memory={str(keep).lower()}"
    record, usage = launch([sys.executable, "-m", "lodabench", *RUN, keep_arg])
    return {"keep_freed_memory": keep, **usage, "train_s": record["cost"]["train_s"],
            "eval_s": record["cost"]["eval_s"], "dev_loss": record["metrics"]["dev_loss"],
            "malloc": record["machine"]["malloc"]}


def markdown(out: dict) -> str:
    on, off = out["median"][True], out["median"][False]
    rows = "\n".join(f"| {k} | {off[k]} | {on[k]} | {off[k] / on[k]:.2f} |" for k in on if on[k])
    return (f"# trainer.keep_freed_memory: off vs on ({out['pairs']} pairs, medians)\n\n"
            f"Command: `python -m lodabench {' '.join(RUN)}`, each run a fresh process.\n\n"
            f"| figure | off (glibc defaults) | on | off / on |\n|---|---|---|---|\n{rows}\n\n"
            f"Dev loss of every run: {out['dev_losses']} (one value: allocation changes no number).\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    runs = in_turn(one_run, args.pairs)
    out = {"pairs": args.pairs, "runs": runs, "median": medians(runs, "keep_freed_memory", FIGURES),
           "dev_losses": one_value(runs, "dev_loss")}
    write_record("keep-freed", out, markdown(out))


if __name__ == "__main__":
    main()
