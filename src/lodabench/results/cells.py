"""A row's cells: mean ± sample std (ddof=1, ``lodabench.results.stats``) over its complete seeds, on the
paper's printed scale and precision; a cell without values reads ``missing`` / ``failed†`` /
``incomplete†``, never 0. Also the row order of the tables, their footnotes and the cost columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lodabench.results.render import DAGGER, MISSING, Cell, _num
from lodabench.results.runs import Row
from lodabench.results.stats import DDOF, summarize
from lodabench.results.vocab import METHOD_ORDER


def cost_means(row: Row) -> dict[str, Any]:
    """The cost columns of a row (CSV only; lodabench.train.phase_cost): the mean over its complete seeds,
    blank where no seed's record has the value (runs recorded before the cost block)."""
    from lodabench.train.phase_cost import cost_columns

    per_seed = [cost_columns(s.record) for s in row.complete]
    out: dict[str, Any] = {}
    for key in cost_columns(None):
        values = [float(x[key]) for x in per_seed if x[key] != ""]
        out[key] = round(sum(values) / len(values), 3) if values else ""
    return out


def make_cell(row: Row, key: str, scale: float, decimals: int) -> Cell:
    values = list(row.values(key, scale).values())
    s = summarize(values)
    if row.aggregate == "median" and s.n:  # LoRA's GLUE protocol: the median over seeds is the cell
        s = type(s)(float(np.median(values)), s.std, s.n)
    row_n = len(row.complete)
    if s.n == 0:
        if not row.seeds:
            word = MISSING
        elif any(x.status == "failed" for x in row.seeds) and not row.complete:
            word = "failed" + DAGGER
        elif not row.complete:
            word = "incomplete" + DAGGER
        else:
            word = MISSING
        tex = r"\textit{" + word.replace(DAGGER, "") + "}" + (r"\textsuperscript{\dag}" if DAGGER in word else "")
        return Cell(math.nan, math.nan, 0, word, tex)
    m = _num(s.mean, decimals)
    txt, tex = m, m
    if s.n > DDOF:
        sd = _num(s.std, decimals)
        txt, tex = f"{m} ± {sd}", f"{m}_{{\\pm {sd}}}"
    if s.n != row_n:
        txt += f" (n={s.n})"
        tex += f"^{{n={s.n}}}"
    if row.aggregate == "median":
        txt, tex = txt + " (median)", tex + r"^{\mathrm{med}}"
    if row.selected_on_reported_split:
        txt, tex = txt + SELECTED_ON_TEST, tex + r"^{\ddagger}"
    return Cell(s.mean, s.std, s.n, txt, f"${tex}$")


SELECTED_ON_TEST = "‡"


def _order(row: Row) -> tuple:
    idx = METHOD_ORDER.index(row.method) if row.method in METHOD_ORDER else len(METHOD_ORDER)
    approx = float(row.method_cfg.get("rank", row.method_cfg.get("keep", 0)) or 0)
    return (row.model, idx, approx, row.extra, row.row_dir)


def _n_text(row: Row) -> str:
    return f"{len(row.complete)}{DAGGER if row.flagged else ''}"


def _footnotes(rows: Sequence[Row]) -> list[str]:
    notes = [f"{r.label}{' [' + r.approx + ']' if r.approx != '–' else ''}: {r.note()}" for r in rows if r.flagged]
    if any(r.selected_on_reported_split for r in rows):
        notes.append(f"{SELECTED_ON_TEST} checkpoint selected on the reported (test) split (selection.rule=test: LoDA "
                     "§3 reports the better of epochs 5 and 10), so the cell is optimistic by construction.")
    return notes
