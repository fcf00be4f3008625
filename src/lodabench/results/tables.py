"""`lodabench tables`: run records -> the papers' tables (CSV, LaTeX booktabs, Markdown) and plots.

    lodabench tables [--runs-dir results/runs] [--out-dir results/tables] [--paper-dir results/paper]
                     [--sweep e2e_table1 ...] [--ttest A B --metric BLEU [--data e2e]] [--no-plots]

What it reads: every run directory ``<runs>/<data>/<model>/<method>/<overrides>/seed<seed>/``
(its ``record.json``, and ``.hydra/overrides.yaml`` for the overrides). One table ROW is one run
directory without its seed component, i.e. one setting; its cells are mean ± sample std
(ddof=1, see stats.py) over the seeds whose record is ``complete``.

Nothing is dropped silently:
- a seed whose record is ``failed``, ``running``, or missing/unreadable is counted in the row's
  status and marks the row with † (footnote names the seeds and the error);
- a cell no complete seed has a value for reads ``missing`` (or ``failed†`` when seeds failed),
  never 0; a cell with fewer values than the row's seeds states its own n;
- ``--sweep NAME`` adds the rows the preset expects but that have no run directory, as missing.

What it writes (into --out-dir):
- ``table1_e2e__<model>.{csv,md,tex}``: LoDA Table 1 layout (Method | Approx W_proj | # Trainable
  Parameters | BLEU NIST MET ROUGE-L CIDEr), BLEU/MET/ROUGE-L x100, NIST/CIDEr raw, # params in
  2^20 units with two decimals ("0.38M" for 393,216), as the LoDA paper prints them;
- ``table2_dart__<model>.*``: LoDA Table 2 layout (Method | Approx | BLEU MET TER);
- ``glue__<model>.*``: LoRA Table 2 / CondLoRA Table 2 layout (MNLI SST-2 MRPC CoLA QNLI QQP RTE
  STS-B Avg.), x100: accuracy, MRPC accuracy, CoLA Matthews corr., STS-B Pearson;
- ``params.{csv,md,tex}``: trainable parameters of every method seen (plus
  results/params/param_counts.csv when the methods' table exists);
- ``compare.{csv,md}``: ours beside the papers' published numbers (results/paper/*.csv): ours − paper,
  a verdict (two-sided Welch t-test from the summary statistics where both sides print mean ± std;
  the difference alone, labelled so, where the paper prints no ±) and both parameter counts; a run
  cut short or not of the paper's model (paper_setting_gaps) is never tested against a published
  number: its line says "not the paper's setting: <why>" (column ``setting``);
- ``sweep__<data>__<model>__<key>.{png,pdf}``: metric vs rank / keep fraction, when a method was
  run at two or more values of ``r``, ``rank`` or ``keep``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lodabench.errors import LodabenchError
from lodabench.io import atomic_write_text, read_json, write_csv
from lodabench.paths import REPO_ROOT
from lodabench.results.stats import DDOF, paired_ttest, summarize

# ----------------------------------------------------------------------------------------------
# What the tables show

METHOD_LABELS = {  # (markdown/csv, latex)
    "ft": ("FT", "FT"), "ft_top2": ("FT^Top2", r"FT$^{\mathrm{Top2}}$"), "ft_qv": ("FT (q,v)", "FT (q,v)"),
    "bitfit": ("BitFit", "BitFit"), "adapter_h": ("Adapter^H", r"Adapter$^{\mathrm{H}}$"),
    "adapter_l": ("Adapter^L", r"Adapter$^{\mathrm{L}}$"), "prefix": ("PreLayer", "PreLayer"),
    "prompt": ("PreEmbed", "PreEmbed"), "lora": ("LoRA", "LoRA"), "condlora": ("CondLoRA", "CondLoRA"),
    "dora": ("DoRA", "DoRA"), "loda": ("LoDA", "LoDA"), "loda_plus": ("LoDA+", "LoDA+"),
    "r_loda": ("R-LoDA", "R-LoDA"), "r_loda_plus": ("R-LoDA+", "R-LoDA+"),
    "s_loda": ("S-LoDA", "S-LoDA"), "s_loda_plus": ("S-LoDA+", "S-LoDA+"),
}
METHOD_ORDER = list(METHOD_LABELS)


@dataclass(frozen=True)
class Col:
    key: str          # metric key in record.json "metrics"
    header: str       # markdown / csv header
    tex: str          # LaTeX header
    scale: float      # record value x scale = the paper's printed scale
    decimals: int     # the paper's printed precision
    higher_better: bool = True


E2E_COLS = [Col("BLEU", "BLEU", "BLEU", 100, 1), Col("NIST", "NIST", "NIST", 1, 2),
            Col("METEOR", "MET", "MET", 100, 1), Col("ROUGE_L", "ROUGE-L", "ROUGE-L", 100, 1),
            Col("CIDEr", "CIDEr", "CIDEr", 1, 2)]
# DART records: BLEU on 0-100, METEOR and TER on 0-1 (LoRA paper Table 13 prints them so).
DART_COLS = [Col("BLEU", "BLEU", "BLEU", 1, 1), Col("METEOR", "MET", "MET", 1, 2),
             Col("TER", "TER", "TER", 1, 2, higher_better=False)]
GLUE_TASKS = [("mnli", "MNLI"), ("sst2", "SST-2"), ("mrpc", "MRPC"), ("cola", "CoLA"), ("qnli", "QNLI"),
              ("qqp", "QQP"), ("rte", "RTE"), ("stsb", "STS-B")]
TABLE_COLS = {"e2e": E2E_COLS, "dart": DART_COLS}
TABLE_NAMES = {"e2e": "table1_e2e", "dart": "table2_dart"}
TABLE_TITLES = {"e2e": "LoDA Table 1 layout: E2E NLG Challenge test set",
                "dart": "LoDA Table 2 layout: DART test set"}

# Overrides that do not distinguish table rows (they are shown elsewhere or change nothing computed).
IGNORED_OVERRIDE_KEYS = {"seed", "force", "model", "method", "data", "logger", "sweep", "eval_checkpoint",
                         "trainer.num_threads", "trainer.progress", "decoding.batch_size", "decoding.progress",
                         "init_from"}
IGNORED_OVERRIDE_PREFIXES = ("paths.", "hydra.", "hydra/")
APPROX_KEYS = {"method.rank", "method.keep"}
SWEEP_KEYS = ("r", "rank", "keep")
MISSING, DAGGER = "missing", "†"
PAPER_MB = 2 ** 20


# ----------------------------------------------------------------------------------------------
# Loading

@dataclass
class Seed:
    seed: int | None
    status: str                   # complete | failed | running | no-record | unreadable
    metrics: dict[str, Any]
    error: str | None = None
    record: dict[str, Any] = field(default_factory=dict, repr=False)   # record.json as read


@dataclass
class Row:
    """One setting = one run directory without the seed component."""

    row_dir: str                  # <data>/<model>/<method>/<slug>, relative to the runs dir
    data: str
    model: str
    method: str
    method_cfg: dict[str, Any]
    overrides: list[str]
    params: int | None = None
    seeds: list[Seed] = field(default_factory=list)
    expected: bool = False        # listed by a --sweep preset
    aggregate: str = "mean"       # the runs' selection.aggregate: how the seeds of this row combine
    _gaps: list[str] | None = field(default=None, repr=False, compare=False)

    @property
    def selected_on_reported_split(self) -> bool:
        """Some seed chose its checkpoint on the numbers it reports (LoDA §3: selection.rule=test)."""
        return any((s.metrics.get("selection") or {}).get("selected_on_reported_split") for s in self.complete)

    @property
    def experiment(self) -> str:
        return next((o.split("=", 1)[1] for o in self.overrides if _key(o) == "experiment"), "")

    @property
    def extra(self) -> list[str]:
        """Overrides that distinguish this row beyond method and Approx (shown after the label)."""
        return [o.lstrip("+~").replace("method.", "", 1) for o in self.overrides
                if _key(o) not in IGNORED_OVERRIDE_KEYS | APPROX_KEYS | {"experiment"}
                and not _key(o).startswith(IGNORED_OVERRIDE_PREFIXES)]

    @property
    def label(self) -> str:
        base = METHOD_LABELS.get(self.method, (self.method, self.method))[0]
        return f"{base} ({', '.join(self.extra)})" if self.extra else base

    @property
    def tex_label(self) -> str:
        base = METHOD_LABELS.get(self.method, (self.method, _tex_escape(self.method)))[1]
        return f"{base} ({_tex_escape(', '.join(self.extra))})" if self.extra else base

    @property
    def approx(self) -> str:
        if "rank" in self.method_cfg and self.method.startswith("r_loda"):
            return f"R={self.method_cfg['rank']}"
        if "keep" in self.method_cfg and self.method.startswith("s_loda"):
            return f"p={float(self.method_cfg['keep']):g}"
        return "–"

    @property
    def complete(self) -> list[Seed]:
        return [s for s in self.seeds if s.status == "complete"]

    @property
    def setting_gaps(self) -> list[str]:
        """Why this row is not on the paper's setting (``paper_setting_gaps`` of each seed that has a
        config; [] = it is). Computed once: the parameter check builds the model on the meta device."""
        if self._gaps is None:
            gaps = [g for s in self.seeds if s.record.get("config")
                    for g in paper_setting_gaps(s.record, self.overrides, s.status == "complete")]
            self._gaps = list(dict.fromkeys(gaps))
        return self._gaps

    @property
    def not_complete(self) -> list[Seed]:
        return [s for s in self.seeds if s.status != "complete"]

    @property
    def flagged(self) -> bool:
        return bool(self.not_complete) or (self.expected and not self.seeds)

    def values(self, key: str, scale: float = 1.0) -> dict[int | None, float]:
        out = {}
        for s in self.complete:
            v = s.metrics.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out[s.seed] = float(v) * scale
        return out

    def note(self) -> str:
        """Plain-words status: which seeds are complete, failed, running or missing."""
        if not self.seeds:
            return "missing: no run directory" if self.expected else "missing"
        parts = [f"{len(self.complete)} complete (seeds {_seedlist(self.complete)})"] if self.complete else []
        for status in ("failed", "running", "no-record", "unreadable", "no-metrics"):
            group = [s for s in self.seeds if s.status == status]
            if group:
                what = {"no-record": "without record.json", "unreadable": "with unreadable record.json",
                        "no-metrics": "complete but without metrics"}.get(status, status)
                errs = "; ".join(sorted({s.error for s in group if s.error}))
                parts.append(f"{len(group)} {what} (seeds {_seedlist(group)}{': ' + errs if errs else ''})")
        return ", ".join(parts)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _seedlist(seeds: Sequence[Seed]) -> str:
    return ",".join(str(s.seed) for s in sorted(seeds, key=lambda s: (s.seed is None, s.seed or 0)))


def _read_overrides(run_dir: Path, slug: str) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if path.is_file():
        from omegaconf import OmegaConf
        return [str(o) for o in OmegaConf.load(path)]
    # Without Hydra's capture, fall back on the directory name (the sorted override list).
    return [] if slug == "default" else [p for p in re.split(r",(?=[+~\w./-]+=)", slug) if p]


def load_runs(runs_dir: str | os.PathLike) -> list[Row]:
    """Scan ``<runs>/<data>/<model>/<method>/<slug>/seed<seed>/`` into rows (one per setting)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise LodabenchError(f"runs directory {runs_dir} does not exist: no runs yet. Train first (make e2e-loda, "
                             "or a sweep: make sweep-e2e-table1), or read other runs: --runs-dir DIR (e.g. the "
                             "committed results/smollm2_e2e/runs), or list a sweep's rows to run: --sweep e2e_table1.")
    rows: dict[str, Row] = {}
    for seed_dir in sorted(runs_dir.glob("*/*/*/*/seed*")):
        if not seed_dir.is_dir() or not re.fullmatch(r"seed-?\d+", seed_dir.name):
            continue
        data, model, method, slug = seed_dir.relative_to(runs_dir).parts[:4]
        rec_path = seed_dir / "record.json"
        rec: dict[str, Any] = {}
        if rec_path.is_file():
            try:
                rec = read_json(rec_path)
                status = str(rec.get("status") or "running")
            except (OSError, ValueError) as exc:
                status, rec = "unreadable", {"error": f"{type(exc).__name__}: {exc}"}
        else:
            status = "no-record"
        cfg = rec.get("config") or {}
        seed = rec.get("seed", cfg.get("seed", int(seed_dir.name[4:])))
        row_dir = f"{data}/{model}/{method}/{slug}"
        row = rows.get(row_dir)
        if row is None:
            row = rows[row_dir] = Row(row_dir, (cfg.get("data") or {}).get("name", data),
                                      (cfg.get("model") or {}).get("name", model), method,
                                      dict(cfg.get("method") or {"name": method}), _read_overrides(seed_dir, slug))
        row.aggregate = str((cfg.get("selection") or {}).get("aggregate") or row.aggregate)
        if not row.method_cfg.get("name") and cfg.get("method"):
            row.method_cfg = dict(cfg["method"])
        metrics = rec.get("metrics") or {}
        if status == "complete" and not metrics:
            status = "no-metrics"
        error = rec.get("error")
        row.seeds.append(Seed(int(seed) if seed is not None else None, status, metrics,
                              str(error).splitlines()[0][:160] if error else None, rec))
        tp = rec.get("trainable_params") or {}
        count = tp.get("trainable_without_head", tp.get("trainable")) if isinstance(tp, dict) else tp
        if row.params is None and isinstance(count, (int, float)):
            row.params = int(count)
    return list(rows.values())


def add_expected(rows: list[Row], sweep_names: Sequence[str]) -> list[Row]:
    """Add the rows that sweep presets expect but that have no run directory yet (shown as missing)."""
    from lodabench.run import sweeps
    have = {r.row_dir for r in rows}
    out = list(rows)
    for name in sweep_names:
        for job in sweeps.expand(name):
            if job.row_dir in have:
                next(r for r in out if r.row_dir == job.row_dir).expected = True
                continue
            have.add(job.row_dir)
            out.append(Row(job.row_dir, job.data, job.model, job.method.get("name", ""), job.method,
                           [o for o in job.overrides], expected=True))
    return out


# ----------------------------------------------------------------------------------------------
# Formatting helpers

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


# ----------------------------------------------------------------------------------------------
# Tables

def generation_table(rows: Sequence[Row], data: str, model: str) -> tuple[pd.DataFrame, str, str]:
    """LoDA Table 1 (e2e) / Table 2 (dart) for one model: CSV frame, Markdown, LaTeX."""
    cols = TABLE_COLS[data]
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
    title = f"{TABLE_TITLES[data]}, {model}. {scale_note}."
    notes = _footnotes(rows)
    md = _markdown(head + [c.header for c in cols], md_body, title, notes)
    tex = _latex(tex_head + [c.tex for c in cols], tex_body, f"{title} {STD_NOTE}", f"tab:{data}-{model}", notes,
                 n_text_cols=2)
    return pd.DataFrame(records), md, tex


def glue_table(rows: Sequence[Row], model: str) -> tuple[pd.DataFrame, str, str]:
    """LoRA Table 2 / CondLoRA Table 2 layout: one row per (method config), one column per task."""
    from lodabench.scoring.glue import PAPER_METRIC
    tasks = [t for t, _ in GLUE_TASKS]
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
        for task, head in GLUE_TASKS:
            r = by_task.get(task)
            if r is None:
                cell = Cell(math.nan, math.nan, 0, MISSING, r"\textit{missing}")
            else:
                # glue_metrics already returns x100 values.
                cell = make_cell(r, PAPER_METRIC[task], 1.0, 1)
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
    heads = [h for _, h in GLUE_TASKS]
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


# ----------------------------------------------------------------------------------------------
# Published numbers

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


# Where a published table prints a metric on another scale than our table layout (TABLE_COLS):
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
    for c in TABLE_COLS.get(data, []):
        if c.key == metric:
            return c.scale, c.decimals
    return 1.0, 1


# ----------------------------------------------------------------------------------------------
# The paper's setting: which runs may stand beside a published number

NOT_PAPER_SETTING = "not the paper's setting"
# Keys that cut a run short, null = the whole recipe: trainer.max_steps ("tests/demos") and
# trainer.max_dev_batches ("quick runs") in src/lodabench/config/schema.py; every data.max_* key
# (DataConfig.max_train_examples / max_eval_items, "Slicing for tests/demos", data/tasks.py).
LIMIT_KEYS = ("trainer.max_steps", "trainer.max_dev_batches")
# What makes a run's model the model of conf/model/<name>.yaml (model.pretrained may name a local
# copy, model.tokenizer a local tokenizer: the parameter counts decide for those).
MODEL_KEYS = ("source", "gguf_file", "config_overrides")
RECIPE_GROUPS = {"experiment", "model", "method", "data"}   # the overrides that choose the recipe


def paper_setting_gaps(record: dict[str, Any], overrides: Sequence[str], check_counts: bool = True) -> list[str]:
    """Why one run is not on the paper's setting ([] = it is), read from its record.json (resolved
    config and parameter counts) and its overrides, never from its directory name.

    A published number is matched only by runs with none of these gaps:
    - budget: a limit key is set (trainer.max_steps, trainer.max_dev_batches, any data.max_*; null is
      the whole recipe), or trainer.epochs is overridden below what the run's recipe sets (its
      experiment overlay or the defaults, composed from its group overrides);
    - model: config.model's source, gguf_file or config_overrides differ from conf/model/<name>.yaml
      (model.source=config is random weights; model.config_overrides.n_layer=2 another model);
    - parameters (``check_counts``, a complete run): the record's trainable count or total (both
      without the task head) differs from conf/model/<name>.yaml with the run's method config applied,
      counted from configs on the meta device (lodabench.models.params.count_for, as
      results/params/param_counts.csv). This catches a small model given as model.pretrained under
      the paper's model name. Other weights of the same shapes pass: telling those apart needs the
      weights' hashes, not counts.
    """
    cfg = record.get("config") or {}
    gaps = _limit_gaps(cfg) + _epochs_gaps(cfg, overrides) + _model_gaps(cfg.get("model") or {})
    return gaps + (_count_gaps(cfg, record.get("trainable_params")) if check_counts else [])


def _get(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _limit_gaps(cfg: dict[str, Any]) -> list[str]:
    keys = [*LIMIT_KEYS, *(f"data.{k}" for k in (cfg.get("data") or {}) if k.startswith("max_"))]
    return [f"{k}={_get(cfg, k)} (recipe: null = all)" for k in keys if _get(cfg, k) is not None]


def _epochs_gaps(cfg: dict[str, Any], overrides: Sequence[str]) -> list[str]:
    ran = _get(cfg, "trainer.epochs")
    if ran is None or not any(_key(o) == "trainer.epochs" for o in overrides):
        return []
    recipe = tuple(o for o in overrides if _key(o) in RECIPE_GROUPS)
    try:
        planned = _recipe_epochs(recipe)
    except Exception as exc:  # an overlay renamed or removed since the run: say so, do not guess
        return [f"trainer.epochs={ran} overridden; the recipe's could not be composed ({type(exc).__name__})"]
    return [f"trainer.epochs={ran} (the recipe, {' '.join(recipe) or 'defaults'}: {planned})"] if ran < planned else []


@functools.lru_cache(maxsize=None)
def _recipe_epochs(recipe: tuple[str, ...]) -> int:
    from lodabench.config.schema import compose
    return int(compose(list(recipe)).trainer.epochs)


@functools.lru_cache(maxsize=None)
def _model_conf(name: str) -> dict[str, Any]:
    from lodabench.models.pretrained import read_model_conf
    return read_model_conf(name)


def _model_gaps(model: dict[str, Any]) -> list[str]:
    name = str(model.get("name"))
    try:
        ref = _model_conf(name)
    except LodabenchError:
        return [f"model {name!r}: no conf/model/{name}.yaml to compare with"]
    where = f"conf/model/{name}.yaml"
    gaps = [f"model.{k}={model.get(k)!r} ({where}: {ref.get(k)!r})" for k in MODEL_KEYS[:2]
            if model.get(k) != ref.get(k)]
    ours, theirs = model.get("config_overrides") or {}, ref.get("config_overrides") or {}
    diff = [f"{k}={ours.get(k, 'unset')} (there: {theirs.get(k, 'unset')})"
            for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)]
    return gaps + ([f"model.config_overrides differ from {where}: {', '.join(diff)}"] if diff else [])


def _count_gaps(cfg: dict[str, Any], counts: Any) -> list[str]:
    if not isinstance(counts, dict) or not isinstance(counts.get("total"), int):
        return ["record.json has no parameter counts (trainable_params.total)"]
    name = str(_get(cfg, "model.name"))
    try:
        ref = _reference_counts(name, json.dumps(cfg.get("method") or {}, sort_keys=True))
    except Exception as exc:  # a method config this version cannot apply: the counts stay unchecked
        return [f"parameter counts not checked ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"]
    ours = _body_counts(counts)
    return [f"{what} {o:,} ({name} with this method: {r:,})"
            for what, o, r in zip(("trainable parameters", "total parameters"), ours, ref) if o != r]


def _body_counts(counts: dict[str, Any]) -> tuple[int, int]:
    """(trainable, total), both without the task head (its size follows the task's labels)."""
    head = int(counts.get("head") or 0)
    return int(counts.get("trainable_without_head", counts.get("trainable", 0) - head)), int(counts["total"]) - head


@functools.lru_cache(maxsize=None)
def _reference_counts(model: str, method_json: str) -> tuple[int, int]:
    from lodabench.models.params import count_for
    return _body_counts(count_for(_model_conf(model), json.loads(method_json)))


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


# ----------------------------------------------------------------------------------------------
# Plots

def sweep_plots(rows: Sequence[Row], out_dir: Path) -> list[Path]:
    """Metric vs r / rank / keep for every method run at >= 2 values of that key (mean ± std bars)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    for data, cols in TABLE_COLS.items():
        for model in sorted({r.model for r in rows if r.data == data}):
            subset = [r for r in rows if r.data == data and r.model == model and r.complete]
            for xkey in SWEEP_KEYS:
                lines: dict[tuple, list[Row]] = {}
                for r in subset:
                    if xkey not in r.method_cfg:
                        continue
                    rest = {k: v for k, v in r.method_cfg.items() if k != xkey}
                    extra = tuple(e for e in r.extra if not e.startswith(f"{xkey}="))
                    lines.setdefault((r.method, json.dumps(rest, sort_keys=True, default=str), extra), []).append(r)
                lines = {k: v for k, v in lines.items() if len({float(r.method_cfg[xkey]) for r in v}) >= 2}
                if not lines:
                    continue
                fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols), 3.0), squeeze=False)
                for ax, c in zip(axes[0], cols):
                    for (method, _, extra), group in sorted(lines.items()):
                        pts = sorted((float(r.method_cfg[xkey]), summarize(list(r.values(c.key, c.scale).values())))
                                     for r in group)
                        pts = [(x, s) for x, s in pts if s.n]
                        if not pts:
                            continue
                        label = METHOD_LABELS.get(method, (method,))[0] + (f" ({', '.join(extra)})" if extra else "")
                        ax.errorbar([x for x, _ in pts], [s.mean for _, s in pts],
                                    yerr=[0 if math.isnan(s.std) else s.std for _, s in pts],
                                    marker="o", capsize=3, label=label)
                    ax.set_xlabel({"r": "adapter rank r", "rank": "approximation rank R", "keep": "keep fraction p"}[xkey])
                    ax.set_title(c.header)
                axes[0][0].legend(fontsize=7)
                fig.suptitle(f"{data} / {model}: mean ± std (ddof=1) over seeds", fontsize=9)
                fig.tight_layout()
                for ext in ("png", "pdf"):
                    path = out_dir / f"sweep__{data}__{model}__{xkey}.{ext}"
                    fig.savefig(path, dpi=150)
                    written.append(path)
                plt.close(fig)
    return written


# ----------------------------------------------------------------------------------------------
# Paired t-test from the CLI

def find_row(rows: Sequence[Row], ident: str, data: str | None, model: str | None) -> Row:
    """A row by its run directory (relative), its experiment name, or its method name."""
    pool = [r for r in rows if (data is None or r.data == data) and (model is None or r.model == model)]
    for test in (lambda r: r.row_dir == ident, lambda r: r.experiment == ident, lambda r: r.method == ident):
        hits = [r for r in pool if test(r)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise LodabenchError(f"--ttest {ident!r} matches {len(hits)} rows: "
                                 + "; ".join(r.row_dir for r in hits)
                                 + ". Pass one of these run directories, or narrow with --data/--model.")
    raise LodabenchError(f"--ttest {ident!r}: no row with that run directory, experiment or method"
                         f"{f' (data={data})' if data else ''}{f' (model={model})' if model else ''}. "
                         f"Known methods: {', '.join(sorted({r.method for r in pool})) or '(none)'}.")


def ttest_report(rows: Sequence[Row], a: str, b: str, metric: str, data: str | None, model: str | None) -> str:
    ra, rb = find_row(rows, a, data, model), find_row(rows, b, data, model)
    scale, decimals = display_scale(ra.data, metric)
    va, vb = ra.values(metric, scale), rb.values(metric, scale)
    if not va or not vb:
        raise LodabenchError(f"metric {metric!r} not found in the complete runs of "
                             f"{ra.row_dir if not va else rb.row_dir}. Metrics there: "
                             f"{sorted({k for s in (ra if not va else rb).complete for k in s.metrics})}.")
    res = paired_ttest(va, vb, what=f"{metric}: {ra.label} vs {rb.label}")
    sa = summarize([va[s] for s in res.seeds])
    sb = summarize([vb[s] for s in res.seeds])
    return (f"paired t-test (scipy.stats.ttest_rel) on {metric} over seeds {list(res.seeds)} (n={res.n}):\n"
            f"  A = {ra.label} [{ra.row_dir}]: {_num(sa.mean, decimals + 1)} ± {_num(sa.std, decimals + 1)}\n"
            f"  B = {rb.label} [{rb.row_dir}]: {_num(sb.mean, decimals + 1)} ± {_num(sb.std, decimals + 1)}\n"
            f"  mean(A - B) = {res.mean_diff:+.4f}, t = {res.statistic:.4f}, p = {res.pvalue:.4g}\n"
            + ("  note: A - B is the same on every seed (zero variance), so t is infinite/undefined; "
               "more seeds or a different metric are needed for a meaningful test.\n"
               if not math.isfinite(res.statistic) else ""))


# ----------------------------------------------------------------------------------------------
# CLI

def build(runs_dir: Path, out_dir: Path, paper_dir: Path | None, sweeps: Sequence[str] = (), plots: bool = True,
          params_csv: Path | None = None, compare_mode: str = "auto") -> dict[str, list[Path]]:
    """Write every table (and plots) for the runs found; returns {table name: files written}.
    Without a runs directory only ``sweeps`` gives rows (each missing): a to-do list in the papers' layout."""
    rows = load_runs(runs_dir) if runs_dir.is_dir() or not sweeps else []
    if sweeps:
        rows = add_expected(rows, sweeps)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for data in TABLE_COLS:
        for model in sorted({r.model for r in rows if r.data == data}):
            df, md, tex = generation_table(rows, data, model)
            written[f"{TABLE_NAMES[data]}__{model}"] = _write(out_dir, f"{TABLE_NAMES[data]}__{model}", df, md, tex)
    glue_tasks = {t for t, _ in GLUE_TASKS}
    for model in sorted({r.model for r in rows if r.data in glue_tasks}):
        df, md, tex = glue_table(rows, model)
        written[f"glue__{model}"] = _write(out_dir, f"glue__{model}", df, md, tex)
    df, md, tex = params_table(rows, params_csv)
    written["params"] = _write(out_dir, "params", df, md, tex)
    if compare_mode != "off" and paper_dir is not None:
        paper = load_paper(paper_dir)
        if compare_mode == "on" or not paper.empty:
            cmp = compare(rows, paper)
            written["compare"] = _write(out_dir, "compare", cmp, compare_markdown(cmp), None)
    if plots:
        written["plots"] = sweep_plots(rows, out_dir)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    results = Path(os.environ.get("LODABENCH_RESULTS_DIR", "results"))
    p = argparse.ArgumentParser(prog="lodabench tables", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs-dir", type=Path, default=results / "runs", help="default: %(default)s")
    p.add_argument("--out-dir", type=Path, default=results / "tables", help="default: %(default)s")
    p.add_argument("--paper-dir", type=Path, default=REPO_ROOT / "results" / "paper",
                   help="published numbers (*.csv); default: %(default)s")
    p.add_argument("--params-csv", type=Path, default=results / "params" / "param_counts.csv",
                   help="the methods' parameter table, included when present; default: %(default)s")
    p.add_argument("--sweep", action="append", default=[], metavar="NAME",
                   help="show the rows this conf/sweep preset expects but that have no run yet (repeatable)")
    cmp = p.add_mutually_exclusive_group()
    cmp.add_argument("--compare", dest="compare", action="store_const", const="on",
                     help="always write compare.{csv,md} (default: when results/paper has rows)")
    cmp.add_argument("--no-compare", dest="compare", action="store_const", const="off")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--ttest", nargs=2, metavar=("A", "B"),
                   help="paired t-test over matching seeds; A/B = method, experiment name or run dir (without seed)")
    p.add_argument("--metric", default="BLEU", help="metric for --ttest (record key, e.g. BLEU, accuracy); default BLEU")
    p.add_argument("--data", default=None, help="restrict --ttest to this data name (e2e, dart, mrpc, ...)")
    p.add_argument("--model", default=None, help="restrict --ttest to this model name")
    args = p.parse_args(list(argv) if argv is not None else None)
    try:
        return _run(args)
    except OSError as exc:
        raise _os_error(exc, args) from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise LodabenchError(f"a CSV input cannot be parsed ({str(exc).splitlines()[0]}). Fix: repair or remove "
                             f"--params-csv {args.params_csv} or the *.csv of --paper-dir {args.paper_dir}") from None


def _check_dirs(args: argparse.Namespace) -> None:
    """An output directory that cannot be made, or a runs path that is a file: one line naming the option."""
    if args.runs_dir.exists() and not args.runs_dir.is_dir():
        raise LodabenchError(f"--runs-dir {args.runs_dir} is a file, not a directory. Fix: pass --runs-dir DIR, "
                             "the runs directory (results/runs under LODABENCH_RESULTS_DIR)")
    if args.ttest:
        return  # a t-test writes nothing
    try:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LodabenchError(f"--out-dir {args.out_dir} cannot be created ({exc.strerror or exc}). Fix: pass "
                             "--out-dir DIR, a directory you can write, or set LODABENCH_RESULTS_DIR") from None


def _os_error(exc: OSError, args: argparse.Namespace) -> LodabenchError:
    """An OSError during the build as one line naming the file, and which option moves it."""
    path = Path(exc.filename) if exc.filename else args.out_dir
    writing = path == args.out_dir or args.out_dir in path.parents
    fix = ("pass --out-dir DIR, a directory you can write" if writing else
           "make it readable, or pass another --runs-dir / --paper-dir / --params-csv")
    return LodabenchError(f"cannot {'write' if writing else 'read'} {path} ({exc.strerror or exc}). Fix: {fix}")


def _run(args: argparse.Namespace) -> int:
    _check_dirs(args)
    if args.ttest:
        rows = load_runs(args.runs_dir)
        print(ttest_report(rows, args.ttest[0], args.ttest[1], args.metric, args.data, args.model), end="")
        return 0
    written = build(args.runs_dir, args.out_dir, args.paper_dir, args.sweep, plots=not args.no_plots,
                    params_csv=args.params_csv, compare_mode=args.compare or "auto")
    for name, paths in written.items():
        md = next((q for q in paths if q.suffix == ".md"), None)
        if name == "compare":
            print(compare_markdown(pd.read_csv(paths[0]), matched_only=True))
        elif md is not None and name != "params":
            print(md.read_text(encoding="utf-8"))
    print("wrote:", *(str(q) for paths in written.values() for q in paths), sep="\n  ")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LodabenchError as exc:
        print(f"lodabench tables: error: {exc}", file=sys.stderr)
        sys.exit(2)
