"""DART scores equal to the two official DART scorers, number for number.

``score_dart(hyps, refs, mode)`` with ``refs[i]`` the references of item i (at least one each):

``mode="lora"`` -- WebNLG GenerationEval ``eval.py`` as microsoft/LoRA runs it for DART
(``-nr 6 -m bleu,meteor,ter``), the numbers LoRA-style papers report:

* references padded to 6 per item with the item's **first** reference (LoRA's gpt2_decode.py;
  items with more than 6 keep the first 6), reference files without a final newline (with one,
  eval.py's METEOR fails and its TER gains a phantom item -- see the golden README);
* ``BLEU``: multi-bleu-detok.perl on the raw text (0-100, the 2 printed decimals);
* ``BLEU_NLTK``: nltk ``corpus_bleu`` with smoothing method3 on ``word_tokenize`` output (0-1);
* ``METEOR``: CMU METEOR 1.5 ``-l en -norm -r 6`` on the ``word_tokenize``d text (0-1);
* ``TER``: pyter per item on the tokenized text, minimum over the 6 references (an empty
  reference counts as 1), plain mean over items (0-1); pyter's algorithm as in ``pyter_compat``.
  ``word_tokenize`` is nltk 3.5's (GenerationEval pins it), see ``nltk_compat``.

``mode="official"`` -- the Yale-LILY/dart ``evaluation/run_eval_on_dart.sh`` steps:

* only the first 3 references of an item (``reference{0,1,2}.lex``; a missing one is an empty line);
* ``BLEU``: multi-bleu.perl (whitespace tokens, case-sensitive; the empty padding lines take part
  in the closest-length choice);
* ``METEOR``: METEOR 1.5 ``-l en -norm -r 8`` on the raw text; each item's references are its
  non-empty ones, then empty lines up to 8 (``prepare_files.py``);
* ``TER``: ``java -jar tercom.7.25.jar -h ... -r ...`` on prepare_files.py's trans files (each line
  ``strip()``ped, `` (id<i>)`` appended; references: reference0 always, then the non-empty lines of
  reference1/2). tercom's defaults: no ``-N`` normalisation, lowercased (no ``-s``), punctuation
  kept (no ``-P``), Java-``trim()``med text split on ASCII whitespace, beam 20, shifts of at most
  10 words over at most 50 positions. Per item the fewest edits (shifts + word edits) over its
  references, divided by their *average* length; corpus TER = total edits / total of those
  averages. ``tercom_compat`` re-implements tercom's search step by step (sacrebleu's TER port,
  used before, counts other edits on some segments: 0.44677 instead of tercom's 0.44696 on the
  DART repository's BART-large test output, 28 of 5,097 segments); it equals the jar's printed
  ``Total TER`` to the last digit, and every segment, on that output and on the long cases of
  tests/golden/dart_ter_long/.

METEOR: both scorer repos run the original CMU METEOR 1.5 jar in file mode (``java -jar
meteor-1.5.jar hyp refs -l en -norm -r N``), which pycocoevalcap ships as ``spice/lib/Meteor-1.5.jar``
(byte-identical) with the English paraphrase table ``meteor/data/paraphrase-en.gz``. Each such run
is a new JVM that spends ~7 s of CPU loading the table, and a DART scoring needs the system score
and the per-segment statistics (``-ssOut``) of both modes. So the scores are asked of this
process's one METEOR JVM instead (``lodabench.scoring.coco.shared_meteor``, as E2E's scoring does):
one ``SCORE ||| ref_1 ||| ... ||| ref_N ||| hyp`` line per item answers that item's statistics
line, and one ``EVAL`` line of all of them the system score. That JVM runs pycocoevalcap's
``meteor/meteor-1.5.jar``, which differs from the CMU jar only in ``Meteor.class`` (the command-line
front end, whose ``-stdio`` loop answers line by line); the matcher, the paraphrase table, the
statistics and ``computeMetrics`` are the same classes. Measured equal to the CMU jar's file mode to
the bit -- every statistics line and the system score -- on all four golden DART cases in both modes
(-r 6 on the tokenized text, -r 8 with empty padding references) and on empty hypotheses, empty
references and runs of blanks (tests/test_scoring_dart.py keeps the small cases). A text holding
``|||`` or a line break, which that line protocol cannot carry, is scored by the CMU jar in file
mode (``run_meteor_15``); a missing or failed answer raises ScoringError with the jar's output.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
import os
import re
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from lodabench.errors import ConfigError, ScoringError
from lodabench.scoring.java import java_executable, pycocoevalcap_dir, require_java_and_jars
from lodabench.scoring.multibleu import multi_bleu, multi_bleu_detok
from lodabench.scoring import tercom_compat
from lodabench.scoring.pyter_compat import ter as pyter_ter
from lodabench.scoring.registry import ScorerSpec

MODES = ("lora", "official")
# The keys score_run returns unprefixed (the lora mode's, the headline numbers; the official mode's
# are these with an ``official_`` prefix): the scorer's declared keys, checked by register_task.
METRICS = ("BLEU", "BLEU_NLTK", "METEOR", "TER")
LORA_NUM_REFS = 6  # eval.py -nr 6
OFFICIAL_NUM_REFS = 3  # reference0..2.lex
OFFICIAL_METEOR_REFS = 8  # prepare_files.py pads to 8, meteor -r 8


# ---------------------------------------------------------------------------------------- inputs
def _check_inputs(hyps: Sequence[str], refs: Sequence[Sequence[str]], mode: str) -> None:
    if mode not in MODES:
        raise ScoringError(f"unknown DART scoring mode {mode!r}: use one of {', '.join(MODES)}.")
    if len(hyps) == 0:
        raise ScoringError("no hypotheses to score: expected one output per DART item.")
    if len(hyps) != len(refs):
        raise ScoringError(
            f"{len(hyps)} hypotheses but {len(refs)} reference groups: hypothesis i must be the output for item i."
        )
    for i, group in enumerate(refs):
        if not group or not any(r.strip() for r in group):
            raise ScoringError(f"item {i + 1} has no (non-empty) reference: every DART item needs at least one.")
    for what, lines in (("hypothesis", hyps), ("reference", [r for g in refs for r in g])):
        for line in lines:
            if "\n" in line or "\r" in line:
                raise ScoringError(
                    f"a {what} contains a line break ({line[:60]!r}): the scorers read one sentence per line."
                )


def pad_lora_refs(refs: Sequence[Sequence[str]], num_refs: int = LORA_NUM_REFS) -> list[list[str]]:
    """First ``num_refs`` references of each item, padded with the item's first one (gpt2_decode.py)."""
    return [[group[k] if k < len(group) else group[0] for k in range(num_refs)] for group in refs]


def official_ref_columns(refs: Sequence[Sequence[str]], num_refs: int = OFFICIAL_NUM_REFS) -> list[list[str]]:
    """``reference{k}.lex`` lines: reference k of each item, or an empty line."""
    return [[group[k] if k < len(group) else "" for group in refs] for k in range(num_refs)]


# ---------------------------------------------------------------------------------------- METEOR
@lru_cache(maxsize=1)
def meteor_files() -> tuple[Path, Path]:
    """(METEOR 1.5 jar, English paraphrase table) from the installed pycocoevalcap."""
    base = pycocoevalcap_dir()
    jar = base / "spice" / "lib" / "Meteor-1.5.jar"  # the unmodified CMU release
    paraphrase = base / "meteor" / "data" / "paraphrase-en.gz"
    for path in (jar, paraphrase):
        if not path.is_file():
            raise ScoringError(
                f"{path} is missing from pycocoevalcap: reinstall it with `pip install --force-reinstall pycocoevalcap==1.2`."
            )
    return jar, paraphrase


_FINAL_SCORE = re.compile(r"^Final score:\s+(\S+)\s*$", re.MULTILINE)


def meteor_15(hyps: Sequence[str], refs_per_item: Sequence[Sequence[str]], num_refs: int) -> float:
    """System METEOR of ``java -jar meteor-1.5.jar hyp refs -l en -norm -r num_refs`` (meteor_15_scored)."""
    return meteor_15_scored(hyps, refs_per_item, num_refs)[1]


def meteor_15_scored(hyps: Sequence[str], refs_per_item: Sequence[Sequence[str]], num_refs: int,
                     score: bool = True) -> tuple[list[str], float | None]:
    """(the statistics line of each item, as ``-ssOut`` prints it; the system METEOR, or None without
    ``score``) of ``meteor-1.5.jar hyp refs -l en -norm -r num_refs``.

    ``refs_per_item[i]`` must hold exactly ``num_refs`` lines (the plaintext multi-reference layout:
    lines i*num_refs .. i*num_refs+num_refs-1 of the reference file belong to hypothesis i).
    Computed by this process's METEOR JVM (lodabench.scoring.coco.shared_meteor: SCORE lines, then
    EVAL), whose scoring classes are the CMU jar's (see the module docstring); a text holding
    ``|||`` (that protocol's separator) or a line break goes to the CMU jar's file mode instead.
    """
    _check_num_refs(refs_per_item, num_refs)
    if any(_off_protocol(text) for text in (*hyps, *(r for group in refs_per_item for r in group))):
        stats = meteor_15_file_stats(hyps, refs_per_item, num_refs)
        return stats, meteor_15_file(hyps, refs_per_item, num_refs) if score else None
    from lodabench.scoring.coco import shared_meteor

    java_executable()  # Java is checked as the file mode checks it, also when this process's JVM already runs
    with shared_meteor() as meteor:
        return meteor.scored(list(hyps), [list(group) for group in refs_per_item], clean=False, score=score)


def _check_num_refs(refs_per_item: Sequence[Sequence[str]], num_refs: int) -> None:
    if any(len(group) != num_refs for group in refs_per_item):
        raise ScoringError(f"METEOR -r {num_refs} needs exactly {num_refs} reference lines per item.")


def _off_protocol(text: str) -> bool:
    return "|||" in text or "\n" in text or "\r" in text


def run_meteor_15(hyps: Sequence[str], refs_per_item: Sequence[Sequence[str]], num_refs: int,
                  extra: Sequence[str] = ()) -> tuple[list[str], str]:
    """The CMU jar in file mode: ``java -jar Meteor-1.5.jar hyp refs -l en -norm -r num_refs [extra]``
    (the command, its stdout). Each call is a new JVM (~7 s of CPU loading the paraphrase table)."""
    _check_num_refs(refs_per_item, num_refs)
    java = java_executable()
    jar, paraphrase = meteor_files()
    with tempfile.TemporaryDirectory(prefix="lodabench_meteor_") as tmp:
        hyp_path, ref_path = Path(tmp) / "hyp.txt", Path(tmp) / "refs.txt"
        hyp_path.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
        ref_path.write_text("".join(r + "\n" for group in refs_per_item for r in group), encoding="utf-8")
        cmd = [
            java, "-Xmx2G", "-Dfile.encoding=UTF-8", "-jar", str(jar), str(hyp_path), str(ref_path),
            "-l", "en", "-norm", "-r", str(num_refs), "-a", str(paraphrase), *extra,
        ]  # fmt: skip
        env = dict(os.environ, LC_ALL="C.UTF-8")
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, encoding="utf-8", env=env)
        except OSError as exc:
            raise ScoringError(f"could not run METEOR ({' '.join(cmd)}): {exc}") from exc
    if proc.returncode != 0:
        raise ScoringError(f"METEOR 1.5 failed (exit code {proc.returncode}, no 'Final score'); command: {' '.join(cmd)}\n"
                           f"{(proc.stderr or proc.stdout)[-2000:]}")
    return cmd, proc.stdout


def meteor_15_file(hyps: Sequence[str], refs_per_item: Sequence[Sequence[str]], num_refs: int) -> float:
    """The CMU jar's ``Final score`` in file mode (run_meteor_15)."""
    cmd, stdout = run_meteor_15(hyps, refs_per_item, num_refs)
    found = _FINAL_SCORE.findall(stdout)
    if not found:
        raise ScoringError(f"METEOR 1.5 printed no 'Final score'; command: {' '.join(cmd)}\n{stdout[-2000:]}")
    return float(found[-1])


def meteor_15_file_stats(hyps: Sequence[str], refs_per_item: Sequence[Sequence[str]], num_refs: int) -> list[str]:
    """The CMU jar's ``-ssOut`` lines in file mode (MeteorCLI: "-ssOut  Output sufficient statistics
    instead of scores", one ``MeteorStats.toString()`` line per segment)."""
    cmd, stdout = run_meteor_15(hyps, refs_per_item, num_refs, ["-ssOut"])
    lines = [line for line in stdout.splitlines() if line.strip()]
    if len(lines) != len(hyps):
        raise ScoringError(f"METEOR 1.5 -ssOut printed {len(lines)} lines for {len(hyps)} segments "
                           f"({lines[:1]!r}); command: {' '.join(cmd)}")
    return lines


# ---------------------------------------------------------------------------------------- TER
# Per-pair results kept for the process: the corpus score (score_dart) and the per-item statistics
# (sufficient_dart, behind compare/attribute) run the same pyter search on the same tokenized
# pairs; remembered, the second caller (and any repeated pair) costs a look-up. A pure function of
# the two strings, so the numbers cannot change; bounded as tercom_compat's memo of the official TER.
SEGMENT_MEMO_SIZE = tercom_compat.SEGMENT_MEMO_SIZE


@lru_cache(maxsize=SEGMENT_MEMO_SIZE)
def _pyter_pair_ter(hyp_tok: str, ref_tok: str) -> float:
    """eval.py's TER of one pair: pyter's TER, 1 for an empty reference or any pyter failure.

    ``pyter_compat.ter`` returns pyter's values (verified on every golden pair) ten times faster.
    """
    if not len(ref_tok):
        return 1
    try:
        return pyter_ter(hyp_tok.split(), ref_tok.split())
    except ZeroDivisionError:  # eval.py scores any pyter failure as 1
        return 1


def _pyter_min_ter(hyp_tok: str, refs_tok: Sequence[str]) -> float:
    """eval.py's per-item TER: min over references of pyter's TER (see _pyter_pair_ter)."""
    return min((_pyter_pair_ter(hyp_tok, ref) for ref in refs_tok), default=math.inf)


def lora_ter_items(hyps_tok: Sequence[str], refs_tok: Sequence[Sequence[str]]) -> list[float]:
    """eval.py's per-item TER values (their plain mean is its TER)."""
    return [_pyter_min_ter(h, group) for h, group in zip(hyps_tok, refs_tok)]


def tercom_corpus_ter(hyps: Sequence[str], refs_per_item: Sequence[Sequence[str]]) -> float:
    """tercom 7.25's printed ``Total TER`` (default options) for these segments; see ``tercom_compat``."""
    total_edits, total_ref_len = tercom_compat.corpus_ter(hyps, refs_per_item)
    if total_ref_len == 0:
        raise ScoringError("TER: all references are empty (total reference length 0).")
    return total_edits / total_ref_len


def official_ter_refs(refs: Sequence[Sequence[str]]) -> list[list[str]]:
    """``prepare_files.py``'s TER references of each item: reference0 always, then the non-empty
    lines of reference1/2 (every line ``strip()``ped, as it writes them)."""
    columns = official_ref_columns(refs)
    first, others = columns[0], columns[1:]
    return [[first[i].strip()] + [col[i].strip() for col in others if col[i] != ""] for i in range(len(refs))]


def official_ter(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """The ``run_eval_on_dart.sh`` TER step: prepare_files.py's files, then ``tercom.7.25.jar``."""
    return tercom_corpus_ter([h.strip() for h in hyps], official_ter_refs(refs))


# ---------------------------------------------------------------------------------------- modes
def lora_tokenized(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> tuple[list[str], list[list[str]]]:
    """eval.py's inputs of METEOR, TER and BLEU_NLTK: the hypotheses and the 6 padded references of
    each item, ``word_tokenize``d (nltk 3.5) and joined with spaces."""
    from lodabench.scoring.nltk_compat import word_tokenize_35

    token_cache: dict[str, str] = {}

    def tok(text: str) -> str:
        if text not in token_cache:
            token_cache[text] = " ".join(word_tokenize_35(text))
        return token_cache[text]

    return [tok(h) for h in hyps], [[tok(r) for r in group] for group in pad_lora_refs(refs)]


def nltk_bleu_inputs(hyps_tok: Sequence[str], refs_tok: Sequence[Sequence[str]]) -> tuple[list[int], list, list]:
    """bleu_nltk()'s corpus_bleu arguments: the kept items (those with a non-empty reference; all,
    after validation), their non-empty references' words and their hypotheses' words."""
    kept = [i for i, group in enumerate(refs_tok) if any(r.strip() for r in group)]
    return (kept, [[r.split() for r in refs_tok[i] if r.strip()] for i in kept],
            [hyps_tok[i].split() for i in kept])


def _score_lora(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> dict:
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    padded = pad_lora_refs(refs)
    bleu = multi_bleu_detok(hyps, [list(col) for col in zip(*padded)])
    hyps_tok, refs_tok = lora_tokenized(hyps, refs)
    _, nltk_refs, nltk_hyps = nltk_bleu_inputs(hyps_tok, refs_tok)
    bleu_nltk = corpus_bleu(nltk_refs, nltk_hyps, smoothing_function=SmoothingFunction().method3)
    # METEOR's JVM runs in a thread (waiting on the subprocess releases the GIL) while TER is
    # computed here: the two overlap on separate cores.
    with ThreadPoolExecutor(max_workers=1) as pool:
        meteor_job = pool.submit(meteor_15, hyps_tok, refs_tok, LORA_NUM_REFS)
        ter_items = lora_ter_items(hyps_tok, refs_tok)
        meteor = meteor_job.result()
    return {
        "BLEU": bleu.printed,
        "BLEU_NLTK": float(bleu_nltk),
        "METEOR": meteor,
        "TER": sum(ter_items) / len(ter_items),
    }


def official_meteor_refs(refs: Sequence[Sequence[str]]) -> list[list[str]]:
    """prepare_files.py's METEOR references: reference0 always, then the non-empty lines of
    reference1/2, then empty lines up to 8 per item."""
    columns = official_ref_columns(refs)
    per_item = [[columns[0][i]] + [col[i] for col in columns[1:] if col[i] != ""] for i in range(len(refs))]
    return [group + [""] * (OFFICIAL_METEOR_REFS - len(group)) for group in per_item]


def _score_official(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> dict:
    bleu = multi_bleu(hyps, official_ref_columns(refs))
    meteor_refs = official_meteor_refs(refs)
    with ThreadPoolExecutor(max_workers=1) as pool:  # METEOR's JVM overlaps the TER computation
        meteor_job = pool.submit(meteor_15, hyps, meteor_refs, OFFICIAL_METEOR_REFS)
        ter = official_ter(hyps, refs)
        meteor = meteor_job.result()
    return {"BLEU": bleu.printed, "METEOR": meteor, "TER": ter}


def score_dart(hyps: Sequence[str], refs: Sequence[Sequence[str]], mode: str = "lora") -> dict:
    """DART scores on the golden scales: BLEU 0-100 (2 decimals), METEOR/TER (and BLEU_NLTK) 0-1."""
    _check_inputs(hyps, refs, mode)
    if mode == "lora":
        return _score_lora(list(hyps), [list(g) for g in refs])
    return _score_official(list(hyps), [list(g) for g in refs])


# ----------------------------------------------------------------------- the run scorer (data.scorer=dart)


def score_run(hyps: list[str], refs: list[list[str]], data_config: Any) -> dict[str, Any]:
    """A run's DART scores in each of ``data.score_modes``.

    The LoRA pipeline's numbers are the headline ones (unprefixed); the other modes' keys are
    prefixed with the mode (``official_BLEU``).
    """
    out: dict[str, Any] = {}
    for mode in getattr(data_config, "score_modes", MODES):
        scores = score_dart(hyps, refs, mode=mode)
        out.update(scores if mode == "lora" else {f"{mode}_{k}": v for k, v in scores.items()})
    return out


def check_run_options(data_config: Any) -> None:
    """``data.score_modes`` must be a non-empty list of ``MODES`` without repeats (before training)."""
    modes = list(getattr(data_config, "score_modes", MODES))
    if not modes or any(m not in MODES for m in modes) or len(set(modes)) != len(modes):
        raise ConfigError(f"data.score_modes={modes!r} must be a non-empty list of {list(MODES)} without repeats. "
                          "Fix: e.g. data.score_modes=[lora,official] (lora: GenerationEval as LoRA ran it; "
                          "official: Yale-LILY/dart run_eval_on_dart.sh)")


SCORERS = [ScorerSpec(
    "dart", score_run, primary_metric="BLEU", check=check_run_options, ready=require_java_and_jars,
    description="DART: data.score_modes of lora (WebNLG GenerationEval as microsoft/LoRA runs it, the "
                "headline numbers) and official (Yale-LILY/dart run_eval_on_dart.sh, keys prefixed official_)",
)]
