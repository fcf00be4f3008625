"""The values of :mod:`lodabench.results.attribute`'s counterfactual states, with a shared bootstrap.

A state (its outputs, references, scorer and aggregation) is scored from the per-item sufficient
statistics compare uses (:mod:`lodabench.scoring.sufficient`, :mod:`lodabench.scoring.sufficient_dart`),
picked by :func:`lodabench.results.compare.generation_parts`, as compare picks them:

* E2E: measure_scores.py ``-p`` (``python``) or the Perl mteval script (``perl``) for BLEU/NIST,
  pycocoevalcap's METEOR, ROUGE_L, CIDEr (Java for the three);
* DART: LoRA's eval.py (``lora``: ``BLEU``, ``BLEU_NLTK``, ``METEOR``, ``TER``) or Yale-LILY's
  run_eval_on_dart.sh (``official``: the same names prefixed ``official_``; no nltk BLEU); the
  state's scorer says which name is recomputed (:func:`scored_name`);
* GLUE: per-item predictions.

Values are the unrounded recomputations: where a scorer prints rounded numbers (the Perl mteval's 4
decimals, the Moses BLEU's 2), they round to the recorded ones, which :func:`record_notes` checks on
our runs as they are. A state without per-item statistics (a plugin scorer; METEOR, ROUGE_L, CIDEr
without Java) keeps the recorded values: a point, no interval, and a note that says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lodabench.errors import ConfigError, LodabenchError

OFFICIAL = "official_"  # the prefix of the DART official scorer's keys in metrics.json


def lower_is_better(metric: str) -> bool:
    from lodabench.train.selection import lower_is_better as lower

    return lower(metric.rsplit("/", 1)[-1])


def aggregate(values: np.ndarray, how: str, metric: str, axis: int = -1) -> np.ndarray:
    """Seeds combined as a paper did: mean, median, or the best seed (lower is better for TER)."""
    if how == "mean":
        return np.nanmean(values, axis=axis)
    if how == "median":
        return np.nanmedian(values, axis=axis)
    if how == "best":
        return (np.nanmin if lower_is_better(metric) else np.nanmax)(values, axis=axis)
    raise ConfigError(f"aggregation {how!r}: mean, median or best")


# --- which scorer, which name ----------------------------------------------------------------------


def dart_scorer(metric: str) -> str:
    """The DART scorer a metrics.json name belongs to: ``official`` for ``official_*``, else ``lora``."""
    return "official" if metric.rsplit("/", 1)[-1].startswith(OFFICIAL) else "lora"


def paper_name(data: str, metric: str) -> str:
    """The name the papers print the metric under (DART's official_BLEU is their BLEU)."""
    return metric.removeprefix(OFFICIAL) if data == "dart" else metric


def scored_name(data: str, scorer: str, metric: str) -> str:
    """The metrics.json name of ``metric`` under the state's scorer (DART: prefixed in official mode)."""
    name = metric.rsplit("/", 1)[-1]
    if data != "dart":
        return name
    return OFFICIAL + paper_name(data, name) if scorer == "official" else paper_name(data, name)


def java_missing(data: str, name: str) -> str | None:
    """Why ``name`` cannot be recomputed here (it needs Java, which is absent), or None."""
    from lodabench.scoring.java import java_executable
    from lodabench.scoring.sufficient import COCO
    from lodabench.scoring.sufficient_dart import METEOR

    if name not in (METEOR if data == "dart" else COCO):
        return None
    try:
        java_executable()
    except LodabenchError as exc:
        return f"re-scoring {name} needs Java ({'the METEOR 1.5 jar' if data == 'dart' else 'PTB tokenizer, METEOR jar'}): {exc}"
    return None


def unsupported(ours: Any) -> str | None:
    """Why the runs' scorer has no per-item statistics at all (a plugin's scorer), or None."""
    from lodabench.scoring.sufficient import unsupported_generation

    run = ours.runs[0]
    return None if run.kind == "classification" else unsupported_generation(run.scorer, run.mteval)


# --- per-item statistics of a state ------------------------------------------------------------------


def item_stats(ours: Any, state: Any, metric: str):
    """``(ItemMetric, per-seed (n, k) stats)`` or ``(None, why)`` where only a point value exists."""
    from lodabench.results.compare import generation_parts
    from lodabench.scoring import sufficient

    outs = [list(o) for o in state.outputs]
    if ours.runs[0].kind == "classification":
        name = metric.rsplit("/", 1)[-1]
        return sufficient.glue_item_metrics(ours.data, outs, list(state.gold), [name])[name]
    why = unsupported(ours)
    if why:
        return None, f"{why}: point value only"
    name = scored_name(ours.data, state.scorer, metric)
    known, _, item_metrics = generation_parts(ours.runs[0].scorer, state.scorer)  # E2E: state.scorer is the mteval
    if name not in known:
        return None, f"no per-item statistics for {name} ({', '.join(known)} have them): point value only"
    if java_missing(ours.data, name):
        return None, f"{java_missing(ours.data, name)}: the recorded values only"
    return item_metrics(outs, [list(g) for g in state.gold], [name])[name]


def point_values(state: Any, entry) -> np.ndarray:
    """Each seed's value of the state: the full sample of its statistics, else as recorded."""
    from lodabench.scoring.sufficient import full_sample

    m, stats = entry
    if m is not None:
        return np.array([full_sample(m, s) for s in stats])
    return np.array(state.recorded, dtype=float)


def record_notes(ours: Any, metric: str, entry, values: np.ndarray) -> list[str]:
    """Runs whose recorded value the recomputation from their outputs does not give back (rounded as
    the scorer prints it), as compare says it; runs that scored other items too are not checked."""
    from lodabench.results.compare import mismatch_note

    m = entry[0]
    notes = []
    for run, value in zip(ours.runs if m is not None else (), values):
        rec = run.recorded.get(metric)
        if not isinstance(rec, (int, float)) or len(run.files.get(ours.prefix, {})) != len(ours.keys):
            continue
        notes.append(mismatch_note(shown(run.path), metric, rec, float(value), m.decimals))
    return [n for n in notes if n]


def shown(path: Any) -> str:
    """A run path as a committed report shows it: relative to the repository when under it (no home dirs)."""
    from lodabench.paths import REPO_ROOT

    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


# --- values of every state under one shared bootstrap ---------------------------------------------------


def replicate_values(ours: Any, states: list, metric: str, trials: int, seed: int):
    """Point values ``(K,)`` and replicate values ``(B, K)`` of the states (NaN: no per-item
    statistics), the notes, and the first state's per-seed values.

    Each replicate draws the items and the seeds once, shared by every state (paired.py's nested
    bootstrap), so differences between states are paired."""
    from lodabench.results.paired import _scores_on_draw

    rng = np.random.default_rng(seed)
    n, s = len(ours.keys), len(ours.runs)
    idx = rng.integers(0, n, size=(trials, n))
    # seeds drawn as indices (not paired.py's weights): a median or best needs the drawn values
    picks = rng.integers(0, s, size=(trials, s))
    points, reps, notes, cache, first = [], [], [], {}, None
    for st in states:
        key = (st.outputs, st.gold, st.scorer)
        if key not in cache:
            cache[key] = item_stats(ours, st, metric)
        m, stats = cache[key]
        if m is None:
            notes.append(stats)
        per_seed = point_values(st, (m, stats))
        if first is None:
            first = per_seed
            notes += record_notes(ours, metric, (m, stats), per_seed)
        points.append(float(aggregate(per_seed, st.aggregate, metric)))
        if m is None:
            reps.append(np.full(trials, np.nan))
            continue
        scores = np.take_along_axis(_scores_on_draw(m, stats, idx), picks, axis=1)
        reps.append(aggregate(scores, st.aggregate, metric, axis=1))
    return np.array(points), np.stack(reps, axis=1), list(dict.fromkeys(notes)), first


def ci(d: np.ndarray) -> list[float] | None:
    d = d[np.isfinite(d)]
    if d.size < 2:
        return None
    lo, hi = np.quantile(d, [0.025, 0.975])
    return [float(lo), float(hi)]
