"""The papers' table layouts: LoDA Tables 1-2 (E2E, DART), the GLUE table, the parameter table.

Each returns (CSV frame, Markdown, LaTeX); the columns are the task's declared metrics
(``TaskSpec.metrics``: printed scale and precision), the row labels the methods' (``MethodSpec.label``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lodabench.results.cells import _footnotes, _n_text, _order, cost_means, make_cell
from lodabench.results.render import DAGGER, MISSING, STD_NOTE, Cell, _latex, _markdown, _num, _tex_escape, fmt_params
from lodabench.results.runs import Row, _seedlist
from lodabench.results.vocab import GENERATION_TABLES, glue_columns, primary_metric, table_metrics


def generation_table(rows: Sequence[Row], data: str, model: str) -> tuple[pd.DataFrame, str, str]:
    """LoDA Table 1 (e2e) / Table 2 (dart) for one model: CSV frame, Markdown, LaTeX."""
    cols = table_metrics(data)
    rows = sorted([r for r in rows if r.data == data and r.model == model], key=_order)
    records, md_body, tex_body = [], [], []
    with_params = data == "e2e"
    for r in rows:
        cells = [make_cell(r, c.key, c.scale, c.decimals) for c in cols]
        rec: dict[str, Any] = {"method": r.method, "label": r.label, "approx": r.approx,
                               "params": r.params, "params_paper": fmt_params(r.params), "n": len(r.complete),
                               "seeds": _seedlist(r.complete), "status": r.note(), "flag": DAGGER if r.flagged else "",
                               "experiment": r.experiment, "overrides": " ".join(r.overrides), "row_dir": r.row_dir,
                               **cost_means(r)}
        for c, cell in zip(cols, cells):
            rec[c.header] = cell.text
            rec[f"{c.header}_mean"], rec[f"{c.header}_std"], rec[f"{c.header}_n"] = cell.mean, cell.std, cell.n
        records.append(rec)
        lead = [r.label + (DAGGER if r.flagged else ""), r.approx] + ([fmt_params(r.params)] if with_params else [])
        md_body.append(lead + [_n_text(r)] + [c.text for c in cells])
        tex_lead = [r.tex_label + (r"\textsuperscript{\dag}" if r.flagged else ""), _tex_escape(r.approx)]
        tex_body.append(tex_lead + ([fmt_params(r.params)] if with_params else []) + [str(len(r.complete))]
                        + [c.tex for c in cells])
    head = ["Method", "Approx W_proj"] + (["# Trainable Parameters"] if with_params else []) + ["n"]
    tex_head = ["Method", r"Approx $W_{\mathrm{proj}}$"] + ([r"\# Trainable Parameters"] if with_params else []) + ["$n$"]
    scale_note = ("BLEU, MET, ROUGE-L x100; NIST, CIDEr raw; # params in units of 2^20 (393,216 -> 0.38M)"
                  if data == "e2e" else "BLEU 0-100; MET, TER 0-1 (TER: lower is better)")
    title = f"{GENERATION_TABLES[data][1]}, {model}. {scale_note}."
    notes = _footnotes(rows)
    md = _markdown(head + [c.header for c in cols], md_body, title, notes)
    tex = _latex(tex_head + [c.tex_header for c in cols], tex_body, f"{title} {STD_NOTE}", f"tab:{data}-{model}", notes,
                 n_text_cols=2)
    return pd.DataFrame(records), md, tex


def glue_table(rows: Sequence[Row], model: str, tasks: Sequence[str] | None = None) -> tuple[pd.DataFrame, str, str]:
    """LoRA Table 2 / CondLoRA Table 2 layout: one row per (method config), one column per task (its primary
    metric); ``tasks`` keeps only these of the eight (a grid that ran some of them), in the papers' order."""
    columns = [(t, head) for t, head in glue_columns() if tasks is None or t in tasks]
    tasks = [t for t, _ in columns]
    groups: dict[tuple, dict[str, Row]] = {}
    for r in rows:
        if r.data in tasks and r.model == model:
            # Per-task experiment overlays differ by name only; the setting is method config + other overrides.
            key = (r.method, json.dumps(r.method_cfg, sort_keys=True, default=str), tuple(r.extra))
            groups.setdefault(key, {})[r.data] = r
    records, md_body, tex_body, notes = [], [], [], []
    for key in sorted(groups, key=lambda k: _order(next(iter(groups[k].values())))):
        by_task = groups[key]
        any_row = next(iter(by_task.values()))
        rec: dict[str, Any] = {"method": any_row.method, "label": any_row.label,
                               "params": any_row.params, "params_paper": fmt_params(any_row.params)}
        md_cells, tex_cells, means = [], [], []
        flagged = False
        for task, head in columns:
            r = by_task.get(task)
            if r is None:
                cell = Cell(math.nan, math.nan, 0, MISSING, r"\textit{missing}")
            else:
                # glue_metrics already returns x100 values.
                cell = make_cell(r, primary_metric(task), 1.0, 1)
                cell.text += f" [n={len(r.complete)}{DAGGER if r.flagged else ''}]"
                cell.tex += rf"\textsuperscript{{{len(r.complete)}}}" + (r"\textsuperscript{\dag}" if r.flagged else "")
                flagged |= r.flagged
                if r.flagged:
                    notes.append(f"{r.label} on {head}: {r.note()}")
            rec[head], rec[f"{head}_mean"], rec[f"{head}_std"], rec[f"{head}_n"] = cell.text, cell.mean, cell.std, cell.n
            md_cells.append(cell.text)
            tex_cells.append(cell.tex)
            means.append(cell.mean)
        avg = sum(means) / len(means) if all(not math.isnan(m) for m in means) else math.nan
        rec["Avg."] = MISSING if math.isnan(avg) else _num(avg, 1)
        rec["Avg._mean"] = avg
        records.append(rec)
        label = any_row.label + (DAGGER if flagged else "")
        md_body.append([label, fmt_params(any_row.params), *md_cells, rec["Avg."]])
        tex_body.append([any_row.tex_label + (r"\textsuperscript{\dag}" if flagged else ""), fmt_params(any_row.params),
                         *tex_cells, r"\textit{missing}" if math.isnan(avg) else _num(avg, 1)])
    heads = [h for _, h in columns]
    title = (f"GLUE dev, {model} (LoRA Table 2 / CondLoRA Table 2 layout), x100: MNLI matched accuracy, "
             "MRPC accuracy (not F1), CoLA Matthews correlation, STS-B Pearson, accuracy otherwise; "
             "[n=k] = seeds per task; Avg. only when all 8 tasks have a value; # params in 2^20 units, head excluded")
    md = _markdown(["Method", "# Params"] + heads + ["Avg."], md_body, title, notes)
    tex = _latex(["Method", r"\# Params"] + heads + ["Avg."], tex_body, f"{title}. {STD_NOTE}", f"tab:glue-{model}",
                 notes, n_text_cols=1)
    return pd.DataFrame(records), md, tex


def params_table(rows: Sequence[Row], extra_csv: Path | None) -> tuple[pd.DataFrame, str, str]:
    """Trainable parameters per (model, method setting) from the records (+ the methods' own table)."""
    seen: dict[tuple, dict[str, Any]] = {}
    for r in sorted(rows, key=_order):
        if r.params is None:
            continue
        key = (r.model, r.method, r.approx, tuple(r.extra), r.params)
        seen.setdefault(key, {"model": r.model, "method": r.method, "label": r.label, "approx": r.approx,
                              "trainable": r.params, "paper_units": fmt_params(r.params),
                              "millions": round(r.params / 1e6, 4), "source": "record.json", "data": r.data})
    df = pd.DataFrame(list(seen.values()))
    if extra_csv is not None and extra_csv.is_file():
        df = pd.concat([df, _methods_param_csv(extra_csv)], ignore_index=True, sort=False)
    if df.empty:
        df = pd.DataFrame(columns=["model", "method", "label", "approx", "trainable", "paper_units", "source"])
    body = [[str(x.get("model", "")), str(x.get("label", x.get("method", ""))), str(x.get("approx", "") or ""),
             f"{int(x['trainable']):,}" if pd.notna(x.get("trainable")) else MISSING,
             str(x.get("paper_units", "") if pd.notna(x.get("paper_units")) else ""), str(x.get("source", ""))]
            for x in df.to_dict("records")]
    head = ["Model", "Method", "Approx", "Trainable", "Paper units (2^20)", "Source"]
    md = _markdown(head, body, "Trainable parameters (adapted weights only; classification heads excluded)", [])
    tex = _latex([_tex_escape(h) for h in head], [[_tex_escape(c) for c in b] for b in body],
                 "Trainable parameters", "tab:params", [], n_text_cols=3)
    return df, md, tex


def _methods_param_csv(path: Path) -> pd.DataFrame:
    """The methods engineer's results/params/param_counts.csv (model, method, config JSON, trainable, ...)."""
    other = pd.read_csv(path, keep_default_na=False, na_values=[""])
    rows = []
    for x in other.to_dict("records"):
        method = str(x.get("method", ""))
        try:
            cfg = json.loads(x.get("config") or "{}")
        except (TypeError, ValueError):
            cfg = {}
        fake = Row("", "", str(x.get("model", "")), method, {"name": method, **cfg}, [])
        count = x.get("trainable")
        ok = isinstance(count, (int, float)) and not math.isnan(count)
        extra = ", ".join(f"{k}={v}" for k, v in cfg.items() if k not in ("rank", "keep"))
        rows.append({"model": fake.model, "method": method,
                     "label": fake.label + (f" ({extra})" if extra else ""), "approx": fake.approx,
                     "trainable": int(count) if ok else None, "paper_units": fmt_params(int(count)) if ok else MISSING,
                     "millions": round(count / 1e6, 4) if ok else None, "source": str(path),
                     "error": x.get("error") if isinstance(x.get("error"), str) else ""})
    return pd.DataFrame(rows)
