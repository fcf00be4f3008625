"""`make demo`: the main job, offline on CPU.

Fine-tunes the real pretrained MiniLM-L6 encoder with LoRA and with LoDA on a fixed subsample of
SST-2 (experiment=demo_minilm_sst2), scores both on the full official dev set, and prints a
two-row table beside the majority-class baseline. Runs through the same entrypoint as every
experiment (`python -m lodabench`), so each run leaves its full record under results/runs and a
re-run skips what is complete.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
METHODS = ("lora", "loda")


def main() -> int:
    sys.path.insert(0, str(REPO / "src"))
    from lodabench.data import get_task
    from lodabench.paths import resolve_data_root

    rows = []
    for method in METHODS:
        t0 = time.time()
        cmd = [sys.executable, "-m", "lodabench", "experiment=demo_minilm_sst2", f"method={method}",
               "method.r=8", "method.targets=[q,v]"]
        print("$ " + " ".join(cmd[1:]), flush=True)
        proc = subprocess.run(cmd, cwd=REPO, text=True, capture_output=True)
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
            return proc.returncode
        run_dir = next(line.split(": ", 1)[1] for line in proc.stdout.splitlines()
                       if line.startswith("[lodabench] complete") or line.startswith("[lodabench] skip"))
        record = json.loads((Path(run_dir) / "record.json").read_text())
        rows.append((method, record, time.time() - t0))

    task = get_task({"name": "sst2"}, resolve_data_root())
    labels = [r.label for r in task.rows("dev")]
    majority = 100.0 * Counter(labels).most_common(1)[0][1] / len(labels)

    print("\nMiniLM-L6 on SST-2 (3,000 training sentences, 1 epoch; full dev set, n=%d)" % len(labels))
    print("| method | trainable params | dev accuracy | dev loss | wall time (s) |")
    print("|---|---|---|---|---|")
    for method, rec, _ in rows:
        m, p = rec["metrics"], rec["trainable_params"]
        print(f"| {method} | {p['trainable']:,} | {m['accuracy']:.2f} | {m['dev_loss']:.4f} | "
              f"{rec['wall_time_s']:.0f} |")
    print(f"| majority class | 0 | {majority:.2f} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
