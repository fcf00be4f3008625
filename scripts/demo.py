"""`make demo`: the main job, offline on CPU.

Fine-tunes the real pretrained MiniLM-L6 encoder with LoRA and with LoDA on a fixed subsample of
SST-2 (experiment=demo_minilm_sst2), scores both on the full official dev set, and prints a
two-row table beside the majority-class baseline. Runs through the same entrypoint as every
experiment (`python -m lodabench`), so each run leaves its full record under results/runs and a
re-run skips what is complete.

The table holds only what the same command under the same lock reproduces bit for bit (trainable
parameters, dev accuracy, dev loss, a sha256 of the trained weights, the lock's sha256); wall time
is printed below it, because it never repeats. README.md holds the table between the
``demo-table`` markers:

    scripts/demo.py                 print the table (results/ or $LODABENCH_RESULTS_DIR; re-runs skip)
    scripts/demo.py --check         train afresh in a temporary results dir; exit 1 with a diff
                                    when the table differs from README.md's (`make demo-check`)
    scripts/demo.py --write-readme  train afresh and write the table into README.md

"weights sha256" is :func:`weights_sha256` of the final checkpoint's ``trainable.safetensors``
(every trainable tensor: LoRA/LoDA factors, LoDA's f1 maps and the classifier head).
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
BEGIN, END = "<!-- demo-table:begin -->", "<!-- demo-table:end -->"
METHODS = ("lora", "loda")
ARGS = ("experiment=demo_minilm_sst2", "method.r=8", "method.targets=[q,v]")
HEADER = "| method | trainable params | dev accuracy (%) | dev loss | weights sha256 |"


def weights_sha256(path: Path) -> str:
    """sha256 over (name, dtype, shape, raw bytes) of every tensor in name order: the weights
    themselves, independent of the file's metadata and of the serialiser's layout."""
    import torch
    from safetensors.torch import load_file
    h = hashlib.sha256()
    for name, t in sorted(load_file(str(path)).items()):
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def final_weights_file(run_dir: Path) -> Path:
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    return run_dir / "checkpoints" / latest["dir"] / "trainable.safetensors"


def run_method(method: str, env: dict[str, str]) -> Path:
    """One demo run through the CLI (skipped when complete); returns its run directory."""
    cmd = [sys.executable, "-m", "lodabench", ARGS[0], f"method={method}", *ARGS[1:]]
    print("$ " + " ".join(cmd[1:]), flush=True)
    proc = subprocess.run(cmd, cwd=REPO, text=True, capture_output=True, env=env)
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
        raise SystemExit(proc.returncode)
    run_dir = next(line.split(": ", 1)[1] for line in proc.stdout.splitlines()
                   if line.startswith("[lodabench] complete") or line.startswith("[lodabench] skip"))
    return Path(run_dir)


def majority_accuracy() -> tuple[float, int]:
    from lodabench.tasks import get_task
    from lodabench.paths import resolve_data_root
    labels = [r.label for r in get_task({"name": "sst2"}, resolve_data_root()).rows("dev")]
    return 100.0 * Counter(labels).most_common(1)[0][1] / len(labels), len(labels)


def lock_line() -> str:
    from lodabench.run.lockfile import LOCK, lock_sha256, locked_versions
    pins = locked_versions(LOCK)
    return (f"Made under `requirements.lock` sha256 `{lock_sha256(LOCK)[:12]}` (torch {pins.get('torch')}, "
            f"transformers {pins.get('transformers')}).")


def table(runs: dict[str, Path]) -> list[str]:
    """The deterministic block: a title, the table, the lock it was made under."""
    majority, n_dev = majority_accuracy()
    first = json.loads((runs[METHODS[0]] / "record.json").read_text())
    cfg = first["config"]
    epochs = int(cfg["trainer"]["epochs"])
    lines = [f"MiniLM-L6 on SST-2: {first['train']['examples']:,} training sentences, "
             f"{epochs} epoch{'s' * (epochs != 1)}, seed {cfg['seed']}; full dev set (n={n_dev}).", "",
             HEADER, "|---|---|---|---|---|"]
    for method, run_dir in runs.items():
        rec = json.loads((run_dir / "record.json").read_text())
        m, p = rec["metrics"], rec["trainable_params"]
        lines.append(f"| {method} | {p['trainable']:,} | {m['accuracy']:.2f} | {m['dev_loss']:.4f} | "
                     f"`{weights_sha256(final_weights_file(run_dir))[:12]}` |")
    lines += [f"| majority class | 0 | {majority:.2f} | | |", "", lock_line()]
    return lines


def readme_block(text: str) -> list[str]:
    """The lines between the markers (ValueError when they are missing or doubled)."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"README.md must hold exactly one {BEGIN} ... {END} block")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n").splitlines()


def table_rows(block: list[str]) -> dict[str, list[str]]:
    """{method: [cells after the name]} of the block's table rows."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in block
            if line.startswith("| ") and line != HEADER]
    return {r[0]: r[1:] for r in rows}


def table_diff(lines: list[str], readme_text: str) -> list[str]:
    """Unified diff from README.md's block to this run's table; empty when they are equal."""
    return list(difflib.unified_diff(readme_block(readme_text), lines, "README.md", "this run", lineterm=""))


def write_readme(lines: list[str]) -> None:
    text = README.read_text()
    readme_block(text)  # markers present
    head, rest = text.split(BEGIN, 1)
    README.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + rest.split(END, 1)[1])


def lock_warning() -> None:
    from lodabench.run.lockfile import lock_mismatches
    bad = lock_mismatches()
    if bad:
        print(f"warning: this environment differs from requirements.lock ({'; '.join(bad[:5])}"
              f"{' ...' if len(bad) > 5 else ''}); the numbers depend on it (make install)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fresh runs; exit 1 if the table differs from README.md")
    mode.add_argument("--write-readme", action="store_true", help="fresh runs; write the table into README.md")
    opts = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    lock_warning()
    fresh = opts.check or opts.write_readme
    with tempfile.TemporaryDirectory(prefix="lodabench-demo-") as tmp:
        env = {**os.environ, **({"LODABENCH_RESULTS_DIR": tmp} if fresh else {})}
        runs = {m: run_method(m, env) for m in METHODS}
        lines = table(runs)
        walls = {m: json.loads((d / "record.json").read_text())["wall_time_s"] for m, d in runs.items()}
    print("\n" + "\n".join(lines))
    print("\nwall time of each run (not reproducible, so not in the table): "
          + ", ".join(f"{m} {s:.0f} s" for m, s in walls.items()))
    if opts.write_readme:
        write_readme(lines)
        print(f"wrote the table into {README}")
    if opts.check:
        diff = table_diff(lines, README.read_text())
        print("\n".join(diff) if diff else "demo-check: the table equals README.md's, bit for bit (weights sha256)")
        return 1 if diff else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
