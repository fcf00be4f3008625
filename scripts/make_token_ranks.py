"""Write src/lodabench/methods/token_ranks_gpt2.json: GPT-2 byte-level BPE token ids ranked by how
often they occur in a documented English corpus, for prompt tuning's sampled-vocabulary init.

    python scripts/make_token_ranks.py [--check]

Lester et al. (2021) Sec. 3.2 sample the init from "the 5,000 most common tokens" of T5's
SentencePiece vocabulary, which is ordered by likelihood in the pre-training corpus. GPT-2's ids are
not: they are the 256 byte symbols followed by BPE merges in merge order, and GPT-2's training-text
counts (WebText) are not published. So we count: the GPT-2 tokenizer (../shared/tokenizers/gpt2)
over the text columns of the GLUE training files staged in the data root (CoLA, SST-2, MRPC, STS-B,
RTE train.tsv: news, Wikipedia, forum, movie-review and textbook English; QNLI/QQP/MNLI train are
not staged). E2E is left out on purpose: its ~3,500 distinct tokens and "name[...], food[...]"
markup would rank the task's own template above general English. Each text field is tokenized on
its own, without special tokens; ids are ranked by count, ties by the smaller id. ``--check``
recomputes and compares with the committed file instead of writing it. The JSON is package data
(pyproject.toml [tool.setuptools.package-data]); lodabench/methods/token_ranks_gpt2.py reads it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

from lodabench.tasks.glue import SPECS, read_glue_tsv
from lodabench.paths import REPO_ROOT, resolve_data_root, shared_dir

GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "rte")
TOP_K = 5000
OUT = REPO_ROOT / "src" / "lodabench" / "methods" / "token_ranks_gpt2.json"
VOCAB_SIZE = 50257  # GPT-2 byte-level BPE: 256 bytes + 50,000 merges + <|endoftext|>


def corpus_files(data_root: Path) -> list[Path]:
    return [data_root / "glue" / SPECS[t].folder / "train.tsv" for t in GLUE_TASKS]


def texts(data_root: Path) -> list[str]:
    out: list[str] = []
    for task, path in zip(GLUE_TASKS, corpus_files(data_root)):
        for row in read_glue_tsv(SPECS[task], path):
            out.extend(t for t in (row.text_a, row.text_b) if t)
    return out


def ranked_counts(tokenizer_dir: Path, data_root: Path) -> list[tuple[int, int]]:
    """[(token id, count)] over the corpus, most frequent first, ties by the smaller id."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    counts: Counter[int] = Counter()
    for ids in tok(texts(data_root), add_special_tokens=False)["input_ids"]:
        counts.update(ids)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def provenance(ranked: list[tuple[int, int]], tokenizer_dir: Path, data_root: Path) -> dict:
    """Where the list comes from: the tokenizer and corpus files by sha256, and what was counted."""
    return {
        "generated_by": "scripts/make_token_ranks.py (its docstring says why this corpus); do not edit",
        "tokenizer": {"path": "../shared/tokenizers/gpt2/tokenizer.json",
                      "sha256": sha256(tokenizer_dir / "tokenizer.json")},
        "corpus": {str(p.relative_to(data_root)): sha256(p) for p in corpus_files(data_root)},
        "distinct_tokens": len(ranked),
        "tokens_counted": sum(c for _, c in ranked),
    }


def render(ranked: list[tuple[int, int]], tokenizer_dir: Path, data_root: Path) -> str:
    """The JSON text: one key a line, so a regenerated list diffs by field (ids/counts stay one line)."""
    top = ranked[:TOP_K]
    doc = {**provenance(ranked, tokenizer_dir, data_root), "vocab_size": VOCAB_SIZE,
           "ids": [i for i, _ in top], "counts": [c for _, c in top]}
    lines = [f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in doc.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed file, write nothing")
    args = ap.parse_args()
    shared, data_root = shared_dir(), resolve_data_root()
    if shared is None or data_root is None:
        print("needs ../shared (tokenizers/gpt2) and the data root (glue/*/train.tsv)", file=sys.stderr)
        return 2
    tokenizer_dir = shared / "tokenizers" / "gpt2"
    text = render(ranked_counts(tokenizer_dir, data_root), tokenizer_dir, data_root)
    if args.check:
        same = OUT.is_file() and OUT.read_text(encoding="utf-8") == text
        print("identical" if same else f"DIFFERS from {OUT}")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
