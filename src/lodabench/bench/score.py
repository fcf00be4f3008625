"""Scoring wall time: ``scoring.e2e.score_e2e`` on the full E2E test set (630 items, 4,693 refs).

The hypotheses are each item's first reference (any text of the right shape would do; this one
needs no model). After the timed repetitions, one untimed-by-round breakdown pass times the
pieces separately (BLEU/NIST in Python; the PTB tokenizer JVM on references and on hypotheses;
METEOR 1.5 JVM start-up plus scoring; ROUGE_L; CIDEr; a bare ``java -version``) so a reader can see
which part of the harness dominates. In ``score_e2e`` METEOR's start-up overlaps the tokenizers and
BLEU/NIST, so the pieces add up to more than the total. ``score_e2e`` reuses this process's METEOR
JVM (``coco.shared_meteor``), so only the first round pays its start-up (a warm-up round when there is
one); the breakdown's ``meteor_start_and_score`` is a fresh JVM's start-up plus scoring.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any, Callable

from lodabench.bench.timing import Stats, round_robin


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def load_e2e_test(max_items: int | None = None) -> tuple[list[str], list[list[str]]]:
    from lodabench.tasks import e2e, group_pairs
    from lodabench.errors import DataError
    from lodabench.paths import resolve_data_root

    root = resolve_data_root()
    if root is None:
        raise DataError("scoring benchmark: no local data root (set LODABENCH_DATA_ROOT to the folder holding e2e/)")
    items = group_pairs(e2e.load_split("test", root))[:max_items]
    refs = [list(it.references) for it in items]
    return [r[0] for r in refs], refs


def _cold_meteor(tok_hyps: list[str], tok_refs: list[list[str]]) -> float:
    from lodabench.scoring.coco import Meteor

    with Meteor() as meteor:  # a fresh JVM: start-up (paraphrase table) + scoring
        return meteor.corpus_score(tok_hyps, tok_refs)


def breakdown(hyps: list[str], refs: list[list[str]]) -> dict[str, float]:
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    from lodabench.scoring import mteval
    from lodabench.scoring.coco import ptb_tokenize
    from lodabench.scoring.java import java_executable

    out: dict[str, float] = {}
    out["java_version_startup"], _ = _timed(lambda: subprocess.run([java_executable(), "-version"], capture_output=True))
    out["bleu_nist_python"], _ = _timed(lambda: mteval.bleu_nist(hyps, refs, "python"))
    flat = [r for g in refs for r in g]
    out["ptb_tokenize_refs"], tok_flat = _timed(lambda: ptb_tokenize(flat))
    out["ptb_tokenize_hyps"], tok_hyps = _timed(lambda: ptb_tokenize(hyps))
    tok_refs, start = [], 0
    for g in refs:
        tok_refs.append(tok_flat[start:start + len(g)])
        start += len(g)
    out["meteor_start_and_score"], _ = _timed(lambda: _cold_meteor(tok_hyps, tok_refs))
    ids = [str(i) for i in range(len(hyps))]
    gts, res = dict(zip(ids, tok_refs)), {i: [h] for i, h in zip(ids, tok_hyps)}
    out["rouge_l"], _ = _timed(lambda: Rouge().compute_score(gts, res))
    out["cider"], _ = _timed(lambda: Cider().compute_score(gts, res))
    return {k: round(v, 3) for k, v in out.items()}


def run_scoring(warmup: int, reps: int, max_items: int | None = None,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    from lodabench.scoring.e2e import score_e2e

    hyps, refs = load_e2e_test(max_items)
    scores: dict[str, float] = {}

    def run() -> None:
        scores.update(score_e2e(hyps, refs))

    times = round_robin({"score_e2e": run}, warmup, reps,
                        on_round=lambda r: log(f"[score] round {r + 1}/{warmup + reps}"))
    return {
        "items": len(hyps), "references": sum(len(g) for g in refs), "hypotheses": "first reference of each item",
        "wall_s": Stats.of(times["score_e2e"]).as_dict(1, 3),
        "meteor_jvm": "one per process, started in the first round and reused by the others",
        "scores": scores,
        "breakdown_s_single_run": breakdown(hyps, refs),
    }
