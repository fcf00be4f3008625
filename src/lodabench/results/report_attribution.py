"""The attribution section of a reproduction report: for every row of ours the report covers that
has a published cell and stored per-item outputs, :func:`lodabench.results.attribute.attribute`
on the dataset's primary metric (its TaskSpec), printed as a factor table.

The factors are applied one after another in :data:`lodabench.results.attribute.ORDER` (the
section states it); each cell is the share that factor explains given the earlier ones, with its
95 % CI, or its status (already / not applicable / not evaluated, with the reason in the CSV).
``interaction`` is the sequential sum minus the sum of the factors applied alone; ``remainder``
is what re-scoring cannot reach (training, model, data, seeds). Deterministic: fixed bootstrap
seed and trials, printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lodabench.errors import LodabenchError
from lodabench.results.attribute import ORDER, TRIALS, attribute
from lodabench.results.report_paired import has_outputs

SEED = 0


def _dirs(src: Any, row: Any) -> list[Path]:
    return [src.runs_dir / row.row_dir / f"seed{s.seed}" for s in row.complete]


def _one(paper: str, src: Any, row: Any, paper_dir: Path, trials: int) -> dict[str, Any]:
    dirs = _dirs(src, row)
    base = {"source": src.name, "dataset": row.data, "row": row.label, "row_dir": row.row_dir}
    if not dirs or not all(map(has_outputs, dirs)):
        return {**base, "skipped": "no per-item outputs stored"}
    try:
        return {**base, "result": attribute([str(d) for d in dirs], paper, None, paper_dir, None, trials, SEED)}
    except LodabenchError as exc:   # no published cell for this method/dataset, unreadable outputs
        return {**base, "skipped": str(exc).split(". Fix:")[0]}


def attributions(paper: str, published: Any, sources: Sequence[Any], paper_dir: Path,
                 trials: int = TRIALS) -> list[dict[str, Any]]:
    """One record per (source, row) whose method the paper's tables (``published``, the report's
    frame) print on that dataset; ``result`` is attribute()'s object, else ``skipped`` says why."""
    printed = set(zip(published["dataset"], published["method"]))
    return [_one(paper, src, row, paper_dir, trials) for src in sources
            for row in sorted(src.rows, key=lambda r: (r.data, r.row_dir))
            if row.complete and (row.data, row.method) in printed]


def _factor_cell(f: dict[str, Any]) -> str:
    if f["status"] != "applied":
        return f["status"]
    ci = f"[{f['ci95'][0]:+.2f}, {f['ci95'][1]:+.2f}]" if f["ci95"] else "[no CI]"
    return f"{f['explains']:+.2f} {ci}"


def _ci(x: float, ci: list[float] | None) -> str:
    return f"{x:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else " [no CI]")


def _row(rec: dict[str, Any]) -> list[Any]:
    r = rec["result"]
    p = r["paper"]
    return [rec["source"], rec["dataset"], rec["row"], r["metric"], f"{r['ours']:.2f}",
            f"{p['value']:g} ({p['row']}, {p['model']})", f"{r['gap']:+.2f}",
            *[_factor_cell(f) for f in r["factors"]], f"{r['interaction']:+.2f}",
            _ci(r["remainder"], r["remainder_ci95"])]


def section(records: Sequence[dict[str, Any]], table) -> list[str]:
    done = [r for r in records if "result" in r]
    lines = ["## Why our numbers differ from the paper's: attribution", "",
             f"`lodabench attribute` (lodabench.results.attribute) on each row of ours whose method the paper prints "
             "for the dataset (same Approx, or the paper's cell on its own model for a grid), with stored "
             f"per-item outputs, on the dataset's main metric, printed scale. Factors applied **one after another in "
             f"this order: {' → '.join(ORDER)}**; each cell is what that factor explains given the earlier ones, "
             "with its 95 % CI (nested paired bootstrap, "
             f"{done[0]['result']['trials'] if done else TRIALS} replicates, seed {SEED}), or its status. Factors "
             "interact: `interaction` = sum of the sequential shares − sum of each factor applied alone. "
             "`remainder` = what re-scoring cannot reach (training, model, data, seeds; the paper's own error is "
             "not in the CI). On another model than the paper's the remainder includes the model. Reasons for "
             "`not evaluable` are in the attribution CSV.", ""]
    if done:
        lines += table(["source", "dataset", "row", "metric", "ours", "paper", "ours − paper", *ORDER,
                        "interaction", "remainder"], [_row(r) for r in done]) + [""]
    skipped = [r for r in records if "skipped" in r]
    if skipped:
        lines += [f"Not attributed ({len(skipped)} rows): " + "; ".join(
            sorted({f"{r['skipped']}" for r in skipped})) + ".", ""]
    return lines


def flat(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One CSV line per (row, factor): status, share, CI, note."""
    out = []
    for rec in records:
        head = {k: rec[k] for k in ("source", "dataset", "row", "row_dir")}
        if "skipped" in rec:
            out.append({**head, "factor": "", "status": "skipped", "note": rec["skipped"]})
            continue
        r = rec["result"]
        for f in r["factors"]:
            out.append({**head, "metric": r["metric"], "paper_value": r["paper"]["value"], "ours": r["ours"],
                        "gap": r["gap"], "factor": f["factor"], "status": f["status"], "explains": f["explains"],
                        "ci_lo": (f["ci95"] or [None])[0], "ci_hi": (f["ci95"] or [None, None])[1],
                        "alone": f["alone"], "interaction": r["interaction"], "remainder": r["remainder"],
                        "trials": r["trials"], "seed": SEED, "note": f["note"]})
    return out
