"""The E2E NLG Challenge metrics, equal to tuetschek/e2e-metrics ``measure_scores.py``.

``score_e2e(hyps, refs)`` returns BLEU (0-1), NIST, METEOR, ROUGE_L and CIDEr on the scales that
``measure_scores.py`` prints:

* ``mteval="python"`` (default) is ``measure_scores.py -p``: BLEU/NIST by the script's Python port
  of mteval -- what microsoft/LoRA ran for its E2E table -- at full precision;
* ``mteval="perl"`` is the script's default run: BLEU/NIST as NIST's ``mteval-v13a-sig.pl``
  computes them, rounded to the 4 decimals the Perl script prints (measure_scores.py parses them
  from that print-out).

METEOR, ROUGE_L and CIDEr are the same in both runs (:mod:`lodabench.scoring.coco`); BLEU/NIST are
in :mod:`lodabench.scoring.mteval`, which says how the two variants differ.

Inputs are normalised the way the official file reader would see them if they were written with
:mod:`lodabench.scoring.textio`: each string is made one stripped line. Empty outputs are legal
items; an empty reference is not (in the file format it would be a group separator).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lodabench.errors import ConfigError, ScoringError
from lodabench.scoring import mteval as _mteval
from lodabench.scoring.coco import coco_scores
from lodabench.scoring.java import java_executable
from lodabench.scoring.registry import ScorerSpec
from lodabench.scoring.textio import check_aligned, one_line, read_hypotheses, read_reference_groups

METRICS = ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr")
MTEVAL_MODES = ("python", "perl")

log = logging.getLogger(__name__)


def _prepare(hyps: list[str], refs: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    check_aligned(hyps, refs, "the hypothesis list", "the reference list")
    if not hyps:
        raise ScoringError("no hypotheses to score: the E2E metrics need at least one item.")
    clean_hyps = [one_line(h) for h in hyps]
    clean_refs = []
    for i, group in enumerate(refs):
        group = [one_line(r) for r in group]
        if not group or "" in group:
            raise ScoringError(
                f"reference group {i + 1} (0-based item {i}) is empty or contains an empty reference: "
                "every item needs at least one non-empty reference."
            )
        clean_refs.append(group)
    return clean_hyps, clean_refs


def score_e2e_modes(hyps: list[str], refs: list[list[str]], modes=MTEVAL_MODES,
                    strict: bool = True) -> dict[str, dict[str, float]]:
    """``{mode: scores}`` for several mteval modes, sharing one METEOR/ROUGE_L/CIDEr computation.

    ``strict=False``: a metric the official script cannot compute (NIST of the ``-p`` port on
    outputs with no n-grams of some order) is None instead of an error.
    """
    for mode in modes:
        if mode not in MTEVAL_MODES:
            raise ScoringError(f"unknown mteval mode {mode!r}: use one of {', '.join(MTEVAL_MODES)}.")
    hyps, refs = _prepare(list(hyps), [list(g) for g in refs])
    java_executable()  # no Java, no METEOR: stop before any work, with the fix in the message
    # The coco part mostly waits on its JVMs (METEOR loads its paraphrase table for seconds), so
    # BLEU/NIST are computed meanwhile on this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        coco = pool.submit(coco_scores, hyps, refs)
        try:
            mt = {mode: _mteval.bleu_nist(hyps, refs, mode, strict) for mode in modes}
        except BaseException:
            coco.exception()  # let the JVMs finish before reporting the BLEU/NIST error
            raise
        coco_result = coco.result()
    return {mode: {m: {**mt[mode], **coco_result}[m] for m in METRICS} for mode in modes}


def score_e2e(hyps: list[str], refs: list[list[str]], mteval: str = "python", strict: bool = True) -> dict[str, float]:
    """BLEU, NIST, METEOR, ROUGE_L, CIDEr of ``measure_scores.py`` (``-p`` when mteval='python')."""
    return score_e2e_modes(hyps, refs, (mteval,), strict)[mteval]


def score_e2e_files(hyp_path: str | os.PathLike, refs_path: str | os.PathLike, mteval: str = "python") -> dict[str, float]:
    """``measure_scores.py REFS HYP [-p]`` on plain-text files (see :mod:`lodabench.scoring.textio`)."""
    hyps = read_hypotheses(hyp_path)
    refs = read_reference_groups(refs_path)
    check_aligned(hyps, refs, hyp_path=f"hypotheses file {hyp_path}", ref_path=f"references file {refs_path}")
    return score_e2e(hyps, refs, mteval)


# ------------------------------------------------------------------------ the run scorer (data.scorer=e2e)


def score_run(hyps: list[str], refs: list[list[str]], data_config: Any) -> dict[str, Any]:
    """A run's E2E scores with ``data.mteval``; a metric the official script cannot compute is null.

    A finished run is never lost to an undefined metric: the official -p script crashes when the
    outputs have no n-grams of some order (e.g. all empty); the record keeps NIST as null and says
    why, and the other metrics stand.
    """
    scores = dict(score_e2e(hyps, refs, mteval=getattr(data_config, "mteval", "python"), strict=False))
    undefined = [k for k, v in scores.items() if v is None]
    if undefined:
        log.warning("%s undefined on these outputs (no n-grams of some order; the official "
                    "scorer would crash): recorded as null", ", ".join(undefined))
        scores["undefined"] = {k: "no output n-grams of some order (official -p scorer divides by zero)"
                               for k in undefined}
    return scores


def scorer_ready(data_config: Any) -> None:
    """What scoring will run: java and pycocoevalcap's jars (METEOR, CIDEr's PTB tokenizer), and perl
    for data.mteval=perl (NIST's mteval script)."""
    import shutil

    from lodabench.scoring.java import require_java_and_jars

    require_java_and_jars()
    if getattr(data_config, "mteval", "python") == "perl" and shutil.which("perl") is None:
        raise ScoringError("data.mteval=perl needs perl on PATH (NIST's mteval-v13a script); install perl or "
                           "use data.mteval=python")


def check_run_options(data_config: Any) -> None:
    """``data.mteval`` must be a mode of ``score_e2e`` (checked before training, not at scoring)."""
    mteval = getattr(data_config, "mteval", "python")
    if mteval not in MTEVAL_MODES:
        raise ConfigError(f"data.mteval={mteval!r} is not one of {', '.join(MTEVAL_MODES)}. Fix: data.mteval=python "
                          "(measure_scores.py -p, what microsoft/LoRA ran) or data.mteval=perl (NIST's mteval script)")


SCORERS = [ScorerSpec(
    "e2e", score_run, primary_metric="BLEU", check=check_run_options, ready=scorer_ready,
    description="tuetschek/e2e-metrics measure_scores.py: BLEU, NIST, METEOR, ROUGE_L, CIDEr "
                "(data.mteval: python = the -p run LoRA reported, perl = the default run)",
)]
