"""Published numbers (results/paper/*.csv) and ours beside them: ours − paper and a Welch verdict.

``load_paper`` reads the long-format CSVs (one published number per row, citing paper and table);
``compare`` matches each to our rows (same dataset, method and Approx on the paper's model, or any
Approx on another model) and tests ours against it where both sides print mean ± std; a run not on
the paper's setting (``lodabench.results.setting``) is listed apart, never tested.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lodabench.errors import LodabenchError
from lodabench.results.cells import make_cell
from lodabench.results.render import DAGGER, MISSING, Cell, _markdown, _num, fmt_params
from lodabench.results.runs import Row
from lodabench.results.setting import NOT_PAPER_SETTING
from lodabench.results.vocab import display_metric

# ----------------------------------------------------------------------------------------------
PAPER_COLUMNS = ["paper", "table", "source", "dataset", "model", "method", "approx", "row_label", "params",
                 "metric", "value", "pm"]


SUBSPACE_COLUMNS = ["paper", "table", "source", "model", "module", "matrix", "layer", "phi"]


def _paper_frames(paper_dir: str | os.PathLike, columns: list[str]) -> list[pd.DataFrame]:
    """The ``*.csv`` of ``paper_dir`` in one of the two layouts (long format or per-layer phi)."""
    frames = []
    for path in sorted(Path(paper_dir).glob("*.csv")):
        df = pd.read_csv(path, dtype={"approx": str}, keep_default_na=False, na_values=[""])
        if set(SUBSPACE_COLUMNS) <= set(df.columns):
            if columns is SUBSPACE_COLUMNS:
                frames.append(df.assign(file=path.name))
            continue
        missing = [c for c in PAPER_COLUMNS if c not in df.columns]
        if missing:
            raise LodabenchError(f"{path}: missing columns {missing}; expected {PAPER_COLUMNS} "
                                 f"(or, for a per-layer subspace table, {SUBSPACE_COLUMNS}).")
        if columns is PAPER_COLUMNS:
            frames.append(df.assign(file=path.name))
    return frames


def load_paper(paper_dir: str | os.PathLike) -> pd.DataFrame:
    """All long-format ``results/paper/*.csv`` (one published number per row, citing paper + table).

    Per-layer subspace tables (CondLoRA Table 3: ``layer``, ``phi``) are skipped here; read them
    with :func:`load_paper_subspace`.
    """
    frames = _paper_frames(paper_dir, PAPER_COLUMNS)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PAPER_COLUMNS + ["file"])


def load_paper_subspace(paper_dir: str | os.PathLike) -> pd.DataFrame:
    """The per-layer subspace-similarity tables among ``results/paper/*.csv`` (CondLoRA Table 3)."""
    frames = _paper_frames(paper_dir, SUBSPACE_COLUMNS)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SUBSPACE_COLUMNS + ["file"])


# Where a published table prints a metric on another scale than our table layout (the task's metrics):
# LoDA Table 2 prints DART METEOR x100 ("36.0") and TER as a fraction with 3 decimals ("0.480").
PAPER_DISPLAY = {"loda_table2_dart.csv": {"METEOR": (100.0, 1), "TER": (1.0, 3)}}


@dataclass(frozen=True)
class Spread:
    """What a published table's ± stands on: the number of runs when the paper states it."""

    n: int | None
    note: str


_LODA_N = "LoDA does not state its number of seeds (§3 footnote 3 says only 'the same random seeds')"
PAPER_SPREAD = {
    "loda_table1_e2e.csv": Spread(None, _LODA_N),
    "loda_table2_dart.csv": Spread(None, _LODA_N),
    # LoRA (arXiv:2106.09685v2) App. D, as printed in the paper (not in ../shared/papers):
    "lora_table3_e2e.csv": Spread(3, "LoRA App. D.3 (GPT-2): 'We report the mean over 3 random seeds; the result "
                                     "for each run is taken from the best epoch.'"),
    "lora_table2_glue.csv": Spread(5, "LoRA App. D.1-D.2 (RoBERTa): 'We report the median over 5 random seeds; the "
                                      "result for each run is taken from the best epoch.' (a median: read as the mean)"),
    "lora_readme_dart.csv": Spread(3, "LoRA App. D.3 (GPT-2, which includes DART): mean over 3 random seeds"),
    "condlora_table2_glue.csv": Spread(3, "CondLoRA Table 2: 'the average of three models'; no ± printed"),
}
# Used only where the paper does not state n (every such verdict says "paper n=3 assumed"): the
# number of seeds of our grids (110, 111, 112), which microsoft/LoRA's examples start from.
ASSUMED_PAPER_N = 3
ALPHA = 0.05  # two-sided significance level of the Welch test


@dataclass(frozen=True)
class Verdict:
    text: str
    t: float = math.nan
    p: float = math.nan
    significant: bool | None = None


def welch_verdict(ours: Cell, paper_value: float, paper_pm: float | None, paper_n: int | None) -> Verdict:
    """Ours (mean ± sample std over n seeds) against a published mean ± std over ``paper_n`` runs.

    Two-sided Welch t-test from the summary statistics (scipy.stats.ttest_ind_from_stats,
    equal_var=False), reading the paper's ± as a sample std. Without a published ±, or with fewer
    than two seeds of ours, only the difference is reported, and the verdict says so.
    """
    if ours.n == 0:
        return Verdict(MISSING)
    if paper_pm is None or (isinstance(paper_pm, float) and math.isnan(paper_pm)):
        return Verdict("Δ only: the paper prints no ±")
    if ours.n < 2:
        return Verdict(f"Δ only: ours n={ours.n}")
    from scipy.stats import ttest_ind_from_stats

    n_paper = paper_n or ASSUMED_PAPER_N
    res = ttest_ind_from_stats(ours.mean, ours.std, ours.n, float(paper_value), float(paper_pm), n_paper,
                               equal_var=False)
    t, p = float(res.statistic), float(res.pvalue)
    basis = f"n={ours.n} vs paper n={n_paper}{'' if paper_n else ' assumed'}"
    if math.isnan(p):
        return Verdict(f"Δ only: both spreads are 0 ({basis})", t, p)
    sig = p < ALPHA
    return Verdict(f"{'significant' if sig else 'not significant'} (Welch p={p:.3g}, {basis})", t, p, sig)


def display_scale(data: str, metric: str, file: str | None = None) -> tuple[float, int]:
    """(record value -> printed scale, printed decimals) of a metric, as the paper table ``file`` prints it."""
    if file in PAPER_DISPLAY and metric in PAPER_DISPLAY[file]:
        return PAPER_DISPLAY[file][metric]
    return display_metric(data, metric)



def _pm(p: dict[str, Any]) -> float | None:
    pm = p.get("pm")
    return float(pm) if isinstance(pm, (int, float)) and not math.isnan(pm) else None


def _fmt_count(count: int | None) -> str:
    return MISSING if count is None else f"{count:,} ({fmt_params(count)})"


def match_rows(rows: Sequence[Row], p: dict[str, Any], model: str | None = None) -> list[Row]:
    """Our rows for one published number: same dataset, method and Approx on the paper's model.

    With ``model`` (another model than the paper's), any Approx of the same method matches: a grid
    on a smaller model scales R and p with its width (e.g. SmolLM2's R=225 for the paper's 400).
    Rows with extra overrides are used only when no plain row matches. On the paper's model, rows
    not on the paper's setting (``Row.setting_gaps``) come last, all of them, to be shown apart.
    """
    approx = p.get("approx") if isinstance(p.get("approx"), str) and p.get("approx") else "–"
    matches = [r for r in rows if r.data == p["dataset"] and r.model == (model or p["model"])
               and r.method == p["method"] and (model is not None or r.approx == approx)]
    if model is not None:
        return _plain_first(matches)
    return _plain_first([r for r in matches if not r.setting_gaps]) + [r for r in matches if r.setting_gaps]


def _plain_first(rows: list[Row]) -> list[Row]:
    return [r for r in rows if not r.extra] or rows


def compare(rows: Sequence[Row], paper: pd.DataFrame, model: str | None = None) -> pd.DataFrame:
    """Each published number beside ours, ours − paper, a Welch verdict and both parameter counts.

    ``model``: read the published rows on this model instead of the paper's (see match_rows). On the
    paper's model a published number without a run on the paper's setting reads ``missing``, and
    each run not on it follows on its own line, its verdict ``not the paper's setting: <why>``
    (column ``setting``) and no test.
    """
    out = []
    for p in paper.to_dict("records"):
        file = p.get("file")
        scale, decimals = display_scale(p["dataset"], p["metric"], file)
        spread = PAPER_SPREAD.get(file, Spread(None, "n not stated"))
        base = {k: p.get(k) for k in ("paper", "table", "file", "dataset", "model", "method", "approx",
                                      "row_label", "metric")}
        base.update(paper_value=p["value"], paper_pm=_pm(p), paper_n=spread.n, paper_n_note=spread.note,
                    paper_params=p.get("params"), ours_model=model or p["model"])
        found = match_rows(rows, p, model)
        if not found or (model is None and all(r.setting_gaps for r in found)):
            out.append({**base, "ours": MISSING, "ours_mean": math.nan, "ours_std": math.nan, "n": 0,
                        "diff": math.nan, "our_row": "", "ours_params": MISSING, "welch_t": math.nan,
                        "welch_p": math.nan, "significant": None, "verdict": MISSING, "setting": ""})
        for r in found:
            cell = make_cell(r, p["metric"], scale, decimals)
            diff = cell.mean - float(p["value"]) if cell.n else math.nan
            gaps = r.setting_gaps if model is None else []
            setting = NOT_PAPER_SETTING if gaps else ("the paper's" if model is None else "another model")
            v = Verdict(f"{NOT_PAPER_SETTING}: {'; '.join(gaps)}") if gaps else \
                welch_verdict(cell, float(p["value"]), _pm(p), spread.n)
            out.append({**base, "ours": cell.text + (DAGGER if r.flagged else ""), "ours_mean": cell.mean,
                        "ours_std": cell.std, "n": cell.n, "diff": diff, "our_row": r.row_dir,
                        "ours_params": _fmt_count(r.params), "welch_t": v.t, "welch_p": v.p,
                        "significant": v.significant, "verdict": v.text,
                        "setting": setting})
    return pd.DataFrame(out)


def published_text(x: dict[str, Any], decimals: int) -> str:
    pm = x.get("paper_pm")
    has_pm = isinstance(pm, (int, float)) and not math.isnan(pm)
    return _num(float(x["paper_value"]), decimals) + (f" ± {_num(float(pm), decimals)}" if has_pm else "")


def compare_markdown(df: pd.DataFrame, matched_only: bool = False) -> str:
    head = ["Paper", "Table", "Dataset", "Model", "Row", "Metric", "Published", "Ours", "n", "Ours − paper",
            "Verdict", "Params (paper)", "Params (ours)"]
    body = []
    apart = 0
    for x in df.to_dict("records"):
        if matched_only and (not x["n"] or x.get("setting") == NOT_PAPER_SETTING):
            apart += bool(x["n"])
            continue
        decimals = display_scale(x["dataset"], x["metric"], x.get("file"))[1]
        diff = "" if math.isnan(x["diff"]) else f"{x['diff']:+.{decimals}f}"
        model = x["model"] if x.get("ours_model", x["model"]) == x["model"] else f"{x['ours_model']} (paper: {x['model']})"
        body.append([x["paper"], str(x["table"]), x["dataset"], model, x["row_label"], x["metric"],
                     published_text(x, decimals), x["ours"], str(x["n"]), diff, str(x.get("verdict", "")),
                     str(x.get("paper_params", "")), str(x.get("ours_params", ""))])
    title = "Ours vs. published numbers (results/paper/*.csv)"
    if matched_only:
        published = len(df) - sum(x == NOT_PAPER_SETTING for x in df.get("setting", []))
        title += f": {len(body)} of {published} published numbers have a run of ours (all of them: compare.md)"
        title += f"; {apart} lines of runs {NOT_PAPER_SETTING} are in compare.md only" if apart else ""
    notes = [f"Verdict: two-sided Welch t-test (scipy.stats.ttest_ind_from_stats, equal_var=False) of our mean ± "
             f"sample std over n seeds against the published mean ± (read as a sample std), significant at "
             f"{ALPHA}; where a paper does not state its number of runs, n={ASSUMED_PAPER_N} is assumed and the "
             "verdict says so. 'Δ only' = the paper prints no ± (or we have one seed): the difference alone.",
             "Params (ours): trainable parameters from the run record (and in 2^20 units, as LoDA prints them).",
             f"'{NOT_PAPER_SETTING}: …' = a run cut short or on another model than the published number's "
             "(tables.paper_setting_gaps says which); it is listed, never tested against the paper."]
    return _markdown(head, body, title, []) + "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
