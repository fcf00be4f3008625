"""The DART scorers' outputs on a golden ``dart_*`` case, computed once per test session.

tests/test_scoring_dart.py checks ``score_dart`` (both modes) against a case's golden scores and
tests/test_paired_dart.py checks the per-item statistics (``dart_item_metrics``, every DART metric)
against the same golden scores. Each used to compute its own, and the per-segment TER searches
(pyter for ``lora``, tercom for ``official``: ~40 s of CPU per 2,721-item dev case) ran in both
files, which ``make test`` puts on different xdist workers. Here one worker computes both outputs of
a case in one process -- the scorers keep each segment's TER for the process, so the statistics
reuse the corpus scores' searches -- and stores them in the session's ``session_folder``; the other
waits for the folder and reads it. Every value is computed afresh in each session by the real
scorer code; JSON (``repr`` floats) and ``.npy`` keep them to the bit. Each test still asserts its
own property on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lodabench.scoring import dart
from lodabench.scoring.sufficient import ItemMetric
from lodabench.scoring.sufficient_dart import DART_METRICS, dart_item_metrics, dart_metric
from lodabench.scoring.textio import read_hypotheses, read_reference_groups


@dataclass(frozen=True)
class CaseOutputs:
    hyps: list[str]
    refs: list[list[str]]
    scores: dict[str, dict]  # mode -> score_dart(hyps, refs, mode)
    rows: dict[str, np.ndarray]  # DART metric -> its (n, k) per-item statistics

    def metrics(self, names) -> dict[str, tuple[ItemMetric, list[np.ndarray]]]:
        """``dart_item_metrics([hyps], refs, names)``'s shape: ``{name: (metric, [rows])}``."""
        return {m: (dart_metric(m), [self.rows[m]]) for m in names}


def _build(case: Path, folder: Path) -> None:
    hyps, refs = read_hypotheses(case / "hyp.txt"), read_reference_groups(case / "refs.txt")
    scores = {mode: dart.score_dart(hyps, refs, mode=mode) for mode in dart.MODES}
    stats = dart_item_metrics([hyps], refs, DART_METRICS)
    (folder / "scores.json").write_text(json.dumps(scores), encoding="utf-8")
    for m, (_, rows) in stats.items():
        np.save(folder / f"{m}.npy", rows[0], allow_pickle=False)


def case_outputs(session_folder, golden_dir: Path, name: str) -> CaseOutputs:
    """The outputs of golden case ``name`` (built by the first caller of the session)."""
    case = golden_dir / name
    folder = session_folder(f"dart-golden-outputs-{name}", lambda f: _build(case, f))
    return CaseOutputs(
        hyps=read_hypotheses(case / "hyp.txt"),
        refs=read_reference_groups(case / "refs.txt"),
        scores=json.loads((folder / "scores.json").read_text(encoding="utf-8")),
        rows={m: np.load(folder / f"{m}.npy", allow_pickle=False) for m in DART_METRICS},
    )
