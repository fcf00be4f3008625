"""``python -m lodabench.reference check CASE_DIR [CASE_DIR ...]``: exit 0 agree, 1 differ, 2 malformed case."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from lodabench.errors import LodabenchError
from lodabench.paths import resolve_data_root
from lodabench.reference import CaseFormatError, check_case
from lodabench.reference.model import tokenizer

EXIT_OK, EXIT_DIFFER, EXIT_MALFORMED = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lodabench.reference",
                                description="Compare lodabench with microsoft/LoRA's NLG code on golden case folders "
                                            "(format of ../shared/golden/lora_nlg/).")
    sub = p.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check case folders; exit 0 if all agree, 1 if any differs, 2 if malformed")
    check.add_argument("cases", nargs="+", type=Path, metavar="CASE_DIR")
    check.add_argument("--data-root", default=None,
                       help="folder holding e2e_lora/valid.txt (default: LODABENCH_DATA_ROOT or ../shared/data)")
    check.add_argument("--tokenizer", default=None, help="GPT-2 tokenizer folder (default: ../shared/tokenizers/gpt2)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    torch.set_num_threads(1)  # float results must not depend on the thread count of the machine
    try:
        tok = tokenizer(args.tokenizer)
        data_root = resolve_data_root(args.data_root)
    except LodabenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MALFORMED
    status = EXIT_OK
    # A glob over a collection (check ../shared/golden/lora_nlg/*) also names its README: a file is
    # not a case and is skipped; a path that does not exist is still a malformed argument.
    files = [c for c in args.cases if c.is_file()]
    for path in files:
        print(f"{path}: skipped (a file, not a case folder)", flush=True)
    if len(files) == len(args.cases):
        print("error: no case folder among the arguments", file=sys.stderr)
        return EXIT_MALFORMED
    for case_dir in (c for c in args.cases if not c.is_file()):
        try:
            report = check_case(case_dir, tok, data_root)
        except CaseFormatError as exc:
            print(f"{case_dir}: MALFORMED: {exc}", flush=True)
            status = EXIT_MALFORMED
            continue
        print("\n".join(report.lines()), flush=True)
        if not report.ok and status == EXIT_OK:
            status = EXIT_DIFFER
    return status


if __name__ == "__main__":
    sys.exit(main())
