"""Paired seed x item tests in the reproduction reports and tables: every row of a table against
the paper's baseline row of the same dataset, Holm over each table's family, TOST for "on par".

A *family* is one published table (one file of ``results/paper``) read on one source of runs (our
runs on the paper's setting, or one grid on another model): every (row, dataset, metric) compared
with the baseline row there. Each comparison is :func:`lodabench.results.compare.compare_family`'s
nested paired bootstrap (or AR) on the per-item outputs both rows stored; Holm's step-down
correction (:func:`lodabench.results.stats.holm`) adjusts the p-values over the family, and the
report prints both p and the adjusted p with the family size m. "On par" is TOST (two one-sided
tests, alpha 0.05) at the margin ``results/paper/margins/equivalence.csv`` gives for the dataset and
metric, on the paper's printed scale, with its source; no margin there: no "on par" reading.

A cell without stored per-item outputs (published numbers, a run that kept no hyp.txt or
predictions) is said to have none: no test is invented for it. Deterministic: the resampling seed
and trial count are fixed (:class:`PairedSettings`) and printed with the results.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lodabench.errors import DataError, LodabenchError
from lodabench.results.paper import display_scale
from lodabench.results.runs import Row
from lodabench.results.stats import holm

ALPHA = 0.05  # the family-wise level of the Holm reading and TOST's level (docs/statistics.md)
MARGINS = Path("margins") / "equivalence.csv"   # under the paper dir: data with a source per line
NO_OUTPUTS_PUBLISHED = "no per-item outputs (a published number): no paired test"


@dataclass(frozen=True)
class PairedSettings:
    """How the report's paired tests run; every report prints these."""

    test: str = "bootstrap"
    trials: int = 2000                      # compare's default bootstrap size (DEFAULT_TRIALS)
    seed: int = 0
    metrics: tuple[str, ...] | None = None  # None: every metric the table publishes for the dataset

    def text(self) -> str:
        return f"nested paired {self.test}, {self.trials} trials, resampling seed {self.seed}"


@dataclass(frozen=True)
class Margin:
    value: float    # on the paper's printed scale
    source: str


def load_margins(paper_dir: Path) -> dict[tuple[str, str], Margin]:
    """``{(dataset, metric): Margin}`` from ``<paper_dir>/margins/equivalence.csv`` (empty when absent)."""
    path = Path(paper_dir) / MARGINS
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = {}
    for n, r in enumerate(rows, 2):
        try:
            out[(r["dataset"], r["metric"])] = Margin(float(r["margin"]), r["source"].strip())
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}:{n}: expected dataset, metric, margin (a number > 0), source") from None
        if not out[(r["dataset"], r["metric"])].value > 0 or not r["source"].strip():
            raise DataError(f"{path}:{n}: the margin must be > 0 and cite its source")
    return out


def has_outputs(run_dir: Path) -> bool:
    return (run_dir / "hyp.txt").is_file() and (run_dir / "refs.txt").is_file() \
        or any(run_dir.glob("predictions*.jsonl"))


def _dirs(runs_dir: Path, row: Row) -> list[Path]:
    return [runs_dir / row.row_dir / f"seed{s.seed}" for s in row.complete]


# --- one family ------------------------------------------------------------------------------------


def _base_row(rows: Sequence[Row], baseline: str) -> Row | None:
    """The baseline's row with the most complete seeds (a learning-rate selection run has one), then
    the first by run directory: several baseline rows of one dataset and model happen outside grids."""
    hits = sorted((r for r in rows if r.method == baseline and r.complete),
                  key=lambda r: (-len(r.complete), r.row_dir))
    return hits[0] if hits else None


def _skip(row: Row, metric: str, why: str) -> dict[str, Any]:
    return {"row_dir": row.row_dir, "row": row.label, "metric": metric, "note": why, "p": math.nan}


def _tested(row: Row, metric: str, r: dict, scale: float, margin: Margin | None) -> dict[str, Any]:
    rec = {"row_dir": row.row_dir, "row": row.label, "metric": metric, "ours": r["a"] * scale,
           "baseline_value": r["b"] * scale, "delta": r["delta"] * scale, "ci_lo": r["ci95"][0] * scale,
           "ci_hi": r["ci95"][1] * scale, "p": r["p"], "n_items": r["n_items"],
           "n_seeds": f"{r['n_seeds_a']}x{r['n_seeds_b']}",
           "note": "" if math.isfinite(r["p"]) else "the metric is undefined on every resample: no test"}
    if margin is not None and "p_tost" in r:
        rec.update({"margin": margin.value, "margin_source": margin.source, "p_tost": r["p_tost"],
                    "equivalent": bool(r["equivalent"])})
    return rec


def _dataset_records(data: str, file: str, metrics: list[str], rows: Sequence[Row], runs_dir: Path,
                     baseline: str, settings: PairedSettings, margins: dict) -> list[dict[str, Any]]:
    base = _base_row(rows, baseline)
    others = [r for r in rows if r is not base and r.complete]
    if base is None or not others:
        return []
    base_dirs = _dirs(runs_dir, base)
    if not all(map(has_outputs, base_dirs)):
        out = [_skip(r, m, f"no per-item outputs in the baseline's runs ({base.row_dir})") for r in others
               for m in metrics]
    else:
        tested = {r.row_dir: r for r in others if all(map(has_outputs, _dirs(runs_dir, r)))}
        out = [_skip(r, m, "no per-item outputs stored (hyp.txt/predictions): no paired test")
               for r in others if r.row_dir not in tested for m in metrics]
        if tested:
            out += _run_family(data, file, metrics, tested, runs_dir, base_dirs, settings, margins)
    return [{**x, "dataset": data, "baseline": base.label, "baseline_dir": base.row_dir} for x in out]


def _run_family(data, file, metrics, tested, runs_dir, base_dirs, settings, margins) -> list[dict[str, Any]]:
    from lodabench.results.compare import compare_family

    scales = {m: display_scale(data, m, file)[0] for m in metrics}
    own = {m: margins[(data, m)].value / scales[m] for m in metrics if (data, m) in margins}
    notes: list[str] = []
    try:
        res = compare_family([str(d) for d in base_dirs],
                             {k: [str(d) for d in _dirs(runs_dir, r)] for k, r in tested.items()},
                             settings.test, settings.trials, settings.seed, own or None, metrics, notes, strict=False)
    except LodabenchError as exc:   # e.g. rows scored another way (data.mteval): say so in their cells
        return [_skip(r, m, f"not comparable: {exc}") for r in tested.values() for m in metrics]
    out = []
    for key, per_metric in res.items():
        for m in metrics:
            if m in per_metric:
                out.append(_tested(tested[key], m, per_metric[m], scales[m], margins.get((data, m))))
            else:
                out.append(_skip(tested[key], m, "not computable from the outputs: " + ("; ".join(notes) or "no per-item statistics")))
    return out


def _with_holm(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    adjusted = holm([r["p"] for r in records])
    m = sum(1 for p in adjusted if math.isfinite(p))
    return [{**r, "p_holm": q, "family_m": m if math.isfinite(q) else 0, "reading": reading(r, q)}
            for r, q in zip(records, adjusted)]


def reading(r: dict[str, Any], p_holm: float) -> str:
    """What the cell supports: on par (TOST at the margin), differs (Holm p <= alpha), or neither."""
    if not math.isfinite(p_holm):
        return ""
    if r.get("equivalent"):
        return f"on par (|Δ| < {r['margin']:g})"
    if p_holm <= ALPHA:
        return "differs (better)" if r["delta"] > 0 else "differs (worse)"
    return "undecided" + (f" (not shown within ±{r['margin']:g})" if "margin" in r else " (no margin set)")


def _records(groups: Sequence[tuple[str, list[str], str | None]], rows: Sequence[Row], runs_dir: Path,
             baseline: str, settings: PairedSettings, margins: dict, model: str | None) -> list[dict[str, Any]]:
    """``groups``: (dataset, metrics, paper file for the printed scale) of one family; Holm over all."""
    out = []
    for data, metrics, file in groups:
        metrics = [m for m in metrics if settings.metrics is None or m in settings.metrics]
        mine = [r for r in rows if r.data == data and (model is None or r.model == model)]
        for one in sorted({r.model for r in mine}) if metrics else ():   # a baseline per model
            out += _dataset_records(data, file, metrics, [r for r in mine if r.model == one], runs_dir, baseline,
                                    settings, margins)
    return [{**r, "test": settings.test, "trials": settings.trials, "seed": settings.seed} for r in _with_holm(out)]


def family_records(paper: pd.DataFrame, file: str, rows: Sequence[Row], runs_dir: Path, baseline: str,
                   settings: PairedSettings, margins: dict, model: str | None = None) -> list[dict[str, Any]]:
    """One published table's comparisons against ``baseline`` on one source, Holm-adjusted over all of them."""
    pub = paper[paper["file"] == file]
    groups = [(d, list(dict.fromkeys(pub[pub["dataset"] == d]["metric"])), file) for d in dict.fromkeys(pub["dataset"])]
    table = str(pub["table"].iloc[0]) if len(pub) else file
    return [{**r, "file": file, "table": table}
            for r in _records(groups, rows, runs_dir, baseline, settings, margins, model)]


def table_records(name: str, datasets: Sequence[str], rows: Sequence[Row], runs_dir: Path, model: str,
                  settings: PairedSettings, margins: dict, baseline: str = "lora") -> list[dict[str, Any]]:
    """One of ``lodabench tables``' tables (its datasets, every declared metric) as one Holm family."""
    from lodabench.results.vocab import claim_metrics

    groups = [(d, list(claim_metrics(d)), None) for d in datasets]
    return [{**r, "file": "", "table": name} for r in _records(groups, rows, runs_dir, baseline, settings, margins, model)]


# --- text --------------------------------------------------------------------------------------------


def cell_text(r: dict[str, Any] | None) -> str:
    """One compact cell: Δ [CI] p, Holm p (m), and the on-par reading; or why there is no test."""
    if r is None:
        return ""
    if not math.isfinite(r.get("p", math.nan)):
        return r.get("note", "")
    return (f"Δ {r['delta']:+.3g} [{r['ci_lo']:+.3g}, {r['ci_hi']:+.3g}], p={r['p']:.3g}, "
            f"Holm p={r['p_holm']:.3g} (m={r['family_m']}); {r['reading']}")


def _num(x: Any, spec: str) -> str:
    return format(x, spec) if isinstance(x, (int, float)) and math.isfinite(x) else ""


def table_rows(records: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [[r["table"], r["dataset"], r["row"], r["metric"], _num(r.get("ours"), ".3f"),
             _num(r.get("baseline_value"), ".3f"), _num(r.get("delta"), "+.3f"),
             f"[{r['ci_lo']:+.3f}, {r['ci_hi']:+.3f}]" if "ci_lo" in r else "", _num(r.get("p"), ".4f"),
             f"{r['p_holm']:.4f} (m={r['family_m']})" if math.isfinite(r.get("p_holm", math.nan)) else "",
             _num(r.get("margin"), "g"), _num(r.get("p_tost"), ".4f"), r.get("reading") or r.get("note", "")]
            for r in records]


CSV_COLUMNS = ["source", "file", "table", "dataset", "row", "row_dir", "baseline", "baseline_dir", "metric", "ours",
               "baseline_value", "delta", "ci_lo", "ci_hi", "p", "p_holm", "family_m", "margin", "margin_source",
               "p_tost", "equivalent", "reading", "n_items", "n_seeds", "test", "trials", "seed", "note"]
HEAD = ["table", "dataset", "row", "metric", "ours", "baseline", "Δ", "95% CI", "p", "Holm p (family m)",
        "margin", "TOST p", "reading"]


def explanation(baseline_label: str, settings: PairedSettings, margins_file: str) -> str:
    return (f"Each row against {baseline_label} of the same dataset on the items both scored ({settings.text()}; "
            "lodabench.results.compare). Values on the paper's printed scale; Δ = row − baseline; 95% CI: "
            "percentile interval of the nested seed × item bootstrap. Holm: p adjusted over the table's family "
            f"(every row × dataset × metric of that table here; m = its size). Reading: **on par** = TOST "
            f"p < {ALPHA} at the margin of `{margins_file}` (its source is in the file); **differs** = Holm p ≤ "
            f"{ALPHA}; else undecided. docs/statistics.md says how to read these.")


# --- the report's section ------------------------------------------------------------------------------


def source_records(files: Sequence[str], paper: pd.DataFrame, src: Any, baseline: str, settings: PairedSettings,
                   margins: dict) -> list[dict[str, Any]]:
    """Every family (published table) of one source (report_cells.Source)."""
    return [{**r, "source": src.name} for f in files
            for r in family_records(paper, f, src.rows, src.runs_dir, baseline, settings, margins, src.model)]


def annotate(cells: list[dict[str, Any]], records: Sequence[dict[str, Any]], baseline: str) -> None:
    """Adds each report cell's ``paired`` text: its test against the baseline, or why there is none."""
    by = {(r["source"], r["row_dir"], r["dataset"], r["metric"]): r for r in records}
    for c in cells:
        r = by.get((c["source"], c.get("row_dir"), c["dataset"], c["metric"]))
        if r is not None:
            c["paired"] = cell_text(r)
        elif c["method"] == baseline and c["n"]:
            c["paired"] = "the baseline of the paired tests"
        else:
            c["paired"] = "" if c["n"] else NO_OUTPUTS_PUBLISHED


def section(records: Sequence[dict[str, Any]], sources: Sequence[Any], baseline: str,
            settings: PairedSettings, table) -> list[str]:
    """The markdown section: per source, its families' comparisons (``table`` renders rows)."""
    from lodabench.results.vocab import method_label

    lines = ["## Paired tests against the baseline (per-item outputs)", "",
             explanation(method_label(baseline), settings, f"results/paper/{MARGINS.as_posix()}"), ""]
    for src in sources:
        mine = [r for r in records if r["source"] == src.name]
        where = src.model_text or "the paper's setting"
        if not mine:
            lines += [f"On {where} ({src.name}): no row with a {method_label(baseline)} row of the same dataset and "
                      "model to pair with; the published numbers have no per-item outputs, so no paired test.", ""]
            continue
        fams = {(r["table"], r["family_m"]) for r in mine if r["family_m"]}
        lines += [f"On {where} ({src.name}); Holm families: "
                  + (", ".join(f"{t} (m={m})" for t, m in sorted(fams)) or "none tested") + ".", ""]
        lines += table(HEAD, table_rows(mine)) + [""]
    return lines


# --- `lodabench tables` -------------------------------------------------------------------------------


def _md_table(head: list[str], rows: list[list[Any]]) -> list[str]:
    cell = lambda x: " ".join(str(x).split()).replace("|", "\\|")  # noqa: E731 -- one markdown cell
    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|",
            *["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]]


def paired_tables(rows: Sequence[Row], runs_dir: Path, out_dir: Path, paper_dir: Path | None,
                  settings: PairedSettings) -> dict[str, list[Path]]:
    """``paired__<table>__<model>.{csv,md}`` for each table of ``lodabench tables`` where a LoRA row
    and another row of one dataset both stored per-item outputs; nothing is written elsewhere."""
    from lodabench.io import atomic_write_text, write_csv
    from lodabench.results.vocab import GENERATION_TABLES, GLUE_ORDER

    margins = load_margins(paper_dir) if paper_dir is not None else {}
    tables = [(stem, (data,)) for data, (stem, _) in GENERATION_TABLES.items()] + [("glue", GLUE_ORDER)]
    written = {}
    for stem, datasets in tables:
        for model in sorted({r.model for r in rows if r.data in datasets}):
            try:
                recs = table_records(f"{stem}__{model}", datasets, rows, runs_dir, model, settings, margins)
            except LodabenchError as exc:   # unreadable outputs must not cost the tables themselves
                print(f"lodabench tables: note: no paired tests for {stem}__{model}: {exc}", file=sys.stderr)
                continue
            if not any(math.isfinite(r["p"]) for r in recs):
                continue   # no comparison applies: the table's files stay exactly as without tests
            name = f"paired__{stem}__{model}"
            csv_path, md_path = out_dir / f"{name}.csv", out_dir / f"{name}.md"
            write_csv(csv_path, pd.DataFrame(recs, columns=CSV_COLUMNS))
            m = max(r["family_m"] for r in recs)
            atomic_write_text(md_path, "\n".join([f"# Paired tests against LoRA: {stem}__{model} (Holm family m={m})", "",
                                                   explanation("LoRA", settings, "results/paper/" + MARGINS.as_posix()),
                                                   "", *_md_table(HEAD, table_rows(recs))]) + "\n")
            written[name] = [csv_path, md_path]
    return written
