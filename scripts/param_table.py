"""Write results/params/param_counts.{csv,md}: trainable parameters of every registered method on
GPT-2 medium and RoBERTa-base, counted from configs on the meta device (no weights, no network).
Also the stored counts (prefix+mlp: the MLP trains, the merged prefix is kept) and the PreLayer
note: why the published 0.35M is 0.1% of GPT-2 medium (lodabench.models.params.prelayer_note).

    python scripts/param_table.py [--models gpt2-medium roberta-base] [--out results/params]
"""

from __future__ import annotations

import argparse

import torch

from lodabench.models.params import param_table, write_table
from lodabench.paths import REPO_ROOT


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["gpt2-medium", "roberta-base"])
    ap.add_argument("--out", default=str(REPO_ROOT / "results" / "params"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = param_table(tuple(args.models))
    csv_path, md_path = write_table(rows, args.out)
    print(md_path.read_text())
    print(f"wrote {csv_path} and {md_path}")


if __name__ == "__main__":
    main()
