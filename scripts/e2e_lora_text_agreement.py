"""Print how closely the E2E text made from the official CSVs (data.text=lora) matches LoRA's files.

    python scripts/e2e_lora_text_agreement.py [--data-root DIR] [--splits train dev test]

For each split: the lines made by ``lodabench.tasks.e2e.lora_lines`` (the LoRA linearised MR +
``lodabench.tasks.e2e_lora_text`` tokenization) against ``<data_root>/e2e_lora/{train,valid,test}.txt``
when present (identical lines, MR sides, reference sides, and how many official CSV references
already equal LoRA's), and the made file's git blob id against LoRA's (microsoft/LoRA@c4593f06
examples/NLG/data/e2e/), which checks even a split whose file is absent (train, in ../shared).
README.md ("E2E text") quotes this output; tests/test_e2e_lora_text.py checks it still does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lodabench.tasks.e2e import lora_text_agreement
from lodabench.paths import resolve_data_root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None, help="folder holding e2e/ (and e2e_lora/)")
    ap.add_argument("--splits", nargs="+", default=["dev", "test", "train"], choices=["train", "dev", "test"])
    args = ap.parse_args()
    root = resolve_data_root(args.data_root)
    if root is None:
        raise SystemExit("no data root: pass --data-root or set LODABENCH_DATA_ROOT")
    for split in args.splits:
        print(lora_text_agreement(Path(root), split).describe())


if __name__ == "__main__":
    main()
