"""Long DART TER golden cases: outputs built deterministically from the DART test set, scored by tercom.

Each case turns the 5,097 entries of ``<data_root>/dart/dart-v1.1.1-full-test.json`` into
(hypothesis, references) pairs by a fixed rule (``CASES`` below; no randomness beyond seeded
``random.Random`` per item), so the test suite rebuilds the very same text from ../shared and only
the official scores are stored (tests/golden/dart_ter_long/<case>/).

Scoring them needs the Yale-LILY/dart repository's ``evaluation/`` folder (its
``prepare_files.py`` and ``tercom-0.7.25/tercom.7.25.jar``), given by path; nothing of it is copied::

    python scripts/dart_ter_long.py score --dart-evaluation /path/to/dart/evaluation \\
        [--data-root ../shared/data] [--out tests/golden/dart_ter_long] [--cases firstref ...]

One more case, ``bart_large_dart``, is read from that folder instead of built: the repository's
example system output (``example/bart-large_dart.txt``) against its own reference files
(``dart_reference/all-delex-reference{0,1,2}.lex``), i.e. ``run_eval_on_dart.sh`` as shipped.

For each case this writes ``hyp.txt`` and ``reference{0,1,2}.lex`` (line i: reference k of item i,
or an empty line) to a temporary folder and runs, there, what ``run_eval_on_dart.sh`` runs for TER::

    python <evaluation>/prepare_files.py hyp.txt reference0.lex reference1.lex reference2.lex
    java -jar <evaluation>/tercom-0.7.25/tercom.7.25.jar -h relexicalised_predictions-ter.txt \\
        -r all-notdelex-refs-ter.txt
    java -jar ... (the same) -n seg -o ter        # per-segment edits and lengths (seg.ter)

and stores the printed ``Total TER`` line, the per-segment numbers and the sha256 of the inputs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "golden" / "dart_ter_long"
TEST_JSON = Path("dart") / "dart-v1.1.1-full-test.json"
NUM_REF_FILES = 3  # reference0..2.lex, as in evaluation/dart_reference/

Item = tuple[str, list[str]]  # (hypothesis, references)


# ---------------------------------------------------------------------------------- inputs
def load_reference_groups(data_root: Path) -> list[list[str]]:
    """The annotation texts (``strip()``ped) of every test entry, in file order."""
    entries = json.loads((data_root / TEST_JSON).read_text(encoding="utf-8"))
    return [[a["text"].strip() for a in entry["annotations"]] for entry in entries]


def _source_and_refs(group: list[str]) -> tuple[str, list[str]]:
    """First reference as the output source; the others as references (a single one is kept)."""
    return group[0], (group[1:] if len(group) > 1 else list(group))


def _rng(case: str, i: int) -> random.Random:
    return random.Random(f"{case}:{i}")  # str seeds are hashed with sha512: stable across runs


# ---------------------------------------------------------------------------------- rules
def firstref(i: int, group: list[str]) -> Item:
    """The first reference, unchanged."""
    return _source_and_refs(group)


def upper_punct(i: int, group: list[str]) -> Item:
    """Upper-cased, with commas/periods/parentheses split off or glued on (tercom keeps punctuation)."""
    source, refs = _source_and_refs(group)
    text = source.upper()
    if i % 2:
        text = re.sub(r"([,.;:()!?])", r" \1 ", text)
    else:
        text = re.sub(r"\s+([,.;:)!?])", r"\1", text)
    return " ".join(text.split()), refs


def shuffled(i: int, group: list[str]) -> Item:
    """Words in 2-4 chunks put in another order, plus some swapped neighbours (many shifts)."""
    source, refs = _source_and_refs(group)
    words, rng = source.split(), _rng("shuffled", i)
    if len(words) >= 4:
        cuts = sorted(rng.sample(range(1, len(words)), min(len(words) - 1, rng.randint(1, 3))))
        chunks = [words[a:b] for a, b in zip([0] + cuts, cuts + [len(words)])]
        rng.shuffle(chunks)
        words = [w for chunk in chunks for w in chunk]
        for k in range(0, len(words) - 1, rng.randint(4, 9)):
            words[k], words[k + 1] = words[k + 1], words[k]
    return " ".join(words), refs


def drop_dup(i: int, group: list[str]) -> Item:
    """Some words dropped, some doubled, some replaced by a word of another reference."""
    source, refs = _source_and_refs(group)
    rng = _rng("drop_dup", i)
    pool = " ".join(group).split() or ["x"]
    out = []
    for word in source.split():
        roll = rng.random()
        if roll < 0.15:
            continue
        out.append(word if roll < 0.85 else rng.choice(pool))
        if roll > 0.93:
            out.append(word)
    return " ".join(out), refs


def long_concat(i: int, group: list[str]) -> Item:
    """Up to 6 of the item's texts joined into one long output (length gaps, far shifts, the beam)."""
    source, refs = _source_and_refs(group)
    texts = group[:6] if len(group) > 1 else [source, source]
    order = list(range(len(texts)))
    _rng("long_concat", i).shuffle(order)
    return " ".join(texts[k] for k in order), refs


_ODD_SPACES = ["\u00a0", "\t", "\x0b", "\x0c", "\u2009", "  "]


def short_empty_ws(i: int, group: list[str]) -> Item:
    """Every 9th output empty, others cut short, with odd whitespace and control characters.

    Java's ``\\s`` (what tercom splits on) is ASCII only: a no-break or thin space glues two words,
    a tab/vertical tab/form feed separates them; ``trim()`` drops control characters at the ends.
    Every 97th output contains U+2028, which tercom cannot read: it leaves that item out.
    """
    source, refs = _source_and_refs(group)
    rng = _rng("short_empty_ws", i)
    if i % 9 == 0:
        return "", refs
    words = source.split()[: rng.randint(1, 12)]
    text = "".join(w + rng.choice(_ODD_SPACES) if rng.random() < 0.3 else w + " " for w in words).strip()
    if i % 5 == 0:
        text = "\x01" + text + "\x02"
    if i % 97 == 0:
        text = text.replace(" ", "\u2028", 1)
    return text, refs


CASES: dict[str, Callable[[int, list[str]], Item]] = {
    "firstref": firstref,
    "upper_punct": upper_punct,
    "shuffled": shuffled,
    "drop_dup": drop_dup,
    "long_concat": long_concat,
    "short_empty_ws": short_empty_ws,
}


# Cases read from the DART repository itself (never copied here): its example system output
# against its own reference files, the run_eval_on_dart.sh defaults.
EXTERNAL = {
    "bart_large_dart": (
        "example/bart-large_dart.txt",
        [f"dart_reference/all-delex-reference{k}.lex" for k in range(NUM_REF_FILES)],
    ),
}


def build_case(name: str, groups: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """(hypotheses, reference groups) of case ``name``."""
    items = [CASES[name](i, group) for i, group in enumerate(groups)]
    return [hyp for hyp, _ in items], [refs for _, refs in items]


def _lines(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as f:  # line splitting as prepare_files.py's ``for line in f``
        return [line.rstrip("\n") for line in f]


def read_external_case(name: str, evaluation: Path) -> tuple[list[str], list[list[str]]]:
    """(hypotheses, reference groups) of an ``EXTERNAL`` case; a group keeps its empty lines."""
    hyp_file, ref_files = EXTERNAL[name]
    columns = [_lines(evaluation / f) for f in ref_files]
    return _lines(evaluation / hyp_file), [list(group) for group in zip(*columns)]


def reference_files(refs: list[list[str]]) -> list[str]:
    """Contents of reference0..2.lex: line i = reference k of item i, or an empty line."""
    return ["".join((g[k] if k < len(g) else "") + "\n" for g in refs) for k in range(NUM_REF_FILES)]


def input_digest(hyps: list[str], refs: list[list[str]]) -> str:
    """sha256 over hyp.txt and reference0..2.lex as written (detects any change of a rule)."""
    digest = hashlib.sha256("".join(h + "\n" for h in hyps).encode("utf-8"))
    for content in reference_files(refs):
        digest.update(content.encode("utf-8"))
    return digest.hexdigest()


# ---------------------------------------------------------------------------------- scoring
_TOTAL = re.compile(r"^Total TER: (\S+) \((\S+)/(\S+)\)$", re.MULTILINE)


def _run(cmd: list[str], cwd: Path) -> str:
    env = dict(os.environ, LC_ALL="C.UTF-8")
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, encoding="utf-8", env=env)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc.stdout


def score_with_tercom(hyps, refs, evaluation: Path, work: Path) -> dict:
    """Run prepare_files.py and tercom.7.25.jar like run_eval_on_dart.sh; parse what they print."""
    (work / "hyp.txt").write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    for k, content in enumerate(reference_files(refs)):
        (work / f"reference{k}.lex").write_text(content, encoding="utf-8")
    lex = [f"reference{k}.lex" for k in range(NUM_REF_FILES)]
    _run([sys.executable, str(evaluation / "prepare_files.py"), "hyp.txt", *lex], work)
    jar = evaluation / "tercom-0.7.25" / "tercom.7.25.jar"
    ter_cmd = ["java", "-jar", str(jar), "-h", "relexicalised_predictions-ter.txt", "-r", "all-notdelex-refs-ter.txt"]
    printed = _run(ter_cmd, work)
    seg_printed = _run(ter_cmd + ["-n", "seg", "-o", "ter"], work)
    total = _TOTAL.search(printed)
    if total is None or total.group(0) not in seg_printed:
        sys.exit(f"no (or differing) 'Total TER' line in tercom's output:\n{printed[-2000:]}")
    segments = []
    for line in (work / "seg.ter").read_text(encoding="utf-8").splitlines()[2:]:  # 2 header lines
        seg_id, edits, words, _ = line.split()
        segments.append(f"{seg_id.removeprefix('id').removesuffix(':1')} {edits} {words}")
    warnings = [line for line in printed.splitlines() if line.startswith("Warning")]
    return {
        "printed": total.group(0),
        "TER": float(total.group(1)),
        "total_edits": float(total.group(2)),
        "total_ref_len": float(total.group(3)),
        "tercom_warnings": warnings,
        "segments": segments,
        "jar_sha256": hashlib.sha256(jar.read_bytes()).hexdigest(),
    }


def java_version() -> str:
    proc = subprocess.run(["java", "-version"], capture_output=True, text=True)
    return (proc.stderr or proc.stdout).splitlines()[0]


def write_case(out: Path, name: str, hyps, refs, result: dict, data_root: Path) -> None:
    case_dir = out / name
    case_dir.mkdir(parents=True, exist_ok=True)
    (case_dir / "segments.txt").write_text("".join(s + "\n" for s in result.pop("segments")), encoding="utf-8")
    if name in EXTERNAL:
        rule = "read from the DART repository's evaluation/ folder (not stored here)"
        data = {"files": [EXTERNAL[name][0], *EXTERNAL[name][1]]}
    else:
        rule = " ".join((CASES[name].__doc__ or "").split())
        data = {"file": str(TEST_JSON), "sha256": hashlib.sha256((data_root / TEST_JSON).read_bytes()).hexdigest()}
    scores = {
        "case": name,
        "rule": rule,
        "n_items": len(hyps),
        "inputs_sha256": input_digest(hyps, refs),
        "data": data,
        "scorer": "Yale-LILY/dart@bb644b12ec1d0264f96a31145534b9a94f6ff5f5 evaluation/: prepare_files.py, "
        "tercom-0.7.25/tercom.7.25.jar (default options)",
        "java": java_version() + "; LC_ALL=C.UTF-8",
        **result,
    }
    (case_dir / "scores.json").write_text(json.dumps(scores, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["score"])
    parser.add_argument("--dart-evaluation", type=Path, required=True, help="Yale-LILY/dart evaluation/ folder")
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cases", nargs="*", default=[*CASES, *EXTERNAL], choices=[*CASES, *EXTERNAL])
    args = parser.parse_args(argv)
    groups = load_reference_groups(args.data_root)
    for name in args.cases:
        if name in EXTERNAL:
            hyps, refs = read_external_case(name, args.dart_evaluation)
        else:
            hyps, refs = build_case(name, groups)
        with tempfile.TemporaryDirectory(prefix=f"dart_ter_{name}_") as tmp:
            result = score_with_tercom(hyps, refs, args.dart_evaluation.resolve(), Path(tmp))
        write_case(args.out, name, hyps, refs, result, args.data_root)
        print(f"{name}: {result['printed']}", flush=True)


if __name__ == "__main__":
    main()
