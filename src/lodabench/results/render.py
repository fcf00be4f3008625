"""Cells and table text: mean ± std cells, the paper's number formats, Markdown and LaTeX (booktabs).

A cell is the mean ± sample std (ddof=1, ``lodabench.results.stats``) over a row's complete seeds,
on the paper's printed scale and precision (half-up rounding of the decimal value, as printed);
a cell without values reads ``missing`` / ``failed†`` / ``incomplete†``, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lodabench.io import atomic_write_text, write_csv
from lodabench.results.stats import DDOF, summarize
from lodabench.results.vocab import METHOD_ORDER

if TYPE_CHECKING:
    from lodabench.results.runs import Row

MISSING, DAGGER = "missing", "†"
PAPER_MB = 2 ** 20


def fmt_params(count: int | None) -> str:
    """The LoDA paper's units: count / 2^20, two decimals, half-up: 393,216 -> '0.38M'."""
    if count is None:
        return MISSING
    return f"{Decimal(count / PAPER_MB).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}M"


def _num(x: float, decimals: int) -> str:
    return f"{Decimal(repr(x)).quantize(Decimal(10) ** -decimals, rounding=ROUND_HALF_UP)}"


TEX_CHARS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "^": r"\^{}",
             "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\~{}", "<": r"\textless{}", ">": r"\textgreater{}",
             "|": r"\textbar{}", "–": "--", "−": "-", "†": r"\textsuperscript{\dag}", "±": r"$\pm$"}


def _tex_escape(s: str) -> str:
    """Plain text -> LaTeX text in one pass (a replacement is never escaped again); "->" becomes an arrow."""
    return "->".join("".join(_tex_char(ch) for ch in part) for part in s.split("->")).replace("->", r"$\to$")


def _tex_char(ch: str) -> str:
    if ch in TEX_CHARS:
        return TEX_CHARS[ch]
    return ch if ord(ch) < 128 else "?"  # keep the fragment pdflatex-safe without extra packages


@dataclass
class Cell:
    mean: float
    std: float
    n: int
    text: str        # markdown / csv
    tex: str


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


STD_NOTE = (f"Cells: mean ± sample standard deviation (ddof={DDOF}) over the complete seeds; n = number of "
            "complete seeds (a cell with fewer values states its own n). † = some seeds of the row failed, "
            "are still running or have no run yet (listed below); 'missing' = no value, never 0.")


def _markdown(header: list[str], body: list[list[str]], title: str, notes: Sequence[str]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    lines += ["", STD_NOTE]
    if notes:
        lines += ["", *[f"- {DAGGER} {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def _latex(header: list[str], body: list[list[str]], caption: str, label: str, notes: Sequence[str],
           n_text_cols: int) -> str:
    spec = "l" * n_text_cols + "r" * (len(header) - n_text_cols)
    out = [r"% Generated by `lodabench tables` -- needs \usepackage{booktabs}.", r"\begin{table}[t]", r"\centering",
           r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    out += [" & ".join(r) + r" \\" for r in body]
    out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_tex_escape(caption)}}}", rf"\label{{{label}}}"]
    if notes:
        out += [r"\par\footnotesize"] + [r"\textsuperscript{\dag}" + _tex_escape(n) + r"\\" for n in notes]
    out += [r"\end{table}"]
    return "\n".join(out) + "\n"


def _write(out_dir: Path, stem: str, df: pd.DataFrame, md: str | None, tex: str | None) -> list[Path]:
    paths = [out_dir / f"{stem}.csv"]
    write_csv(paths[0], df)
    if md is not None:
        paths.append(out_dir / f"{stem}.md")
        atomic_write_text(paths[-1], md)
    if tex is not None:
        paths.append(out_dir / f"{stem}.tex")
        atomic_write_text(paths[-1], tex)
    return paths
