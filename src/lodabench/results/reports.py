"""`make report PAPER=loda|lora|condlora`: a reproduction report of one paper from the run records.

    python -m lodabench.results.reports --paper loda [--out results/reports] [--runs-dir results/runs]
                                [--grid results/smollm2_e2e ...] [--paper-dir results/paper]

Writes ``<out>/<paper>.md`` (the report), ``<paper>.csv`` (one line per published cell and source),
``<paper>_claims.csv`` (one line per claim and source) and ``<paper>.png`` (the main metric against
trainable parameters, log x, ours and the published points, the Pareto front of each marked).

What it reads (nothing else; no number is typed in here):
- the published numbers, ``results/paper/<the paper's files>.csv`` (lodabench.results.tables.load_paper);
- our runs on the paper's own setting (model, data): ``--runs-dir`` (default results/runs), every
  row matched to a published cell by dataset, model, method and Approx (tables.compare). A run there
  that is cut short or not of the paper's model (tables.paper_setting_gaps: limit keys, fewer epochs,
  model config, parameter counts) is listed apart, its source and verdict "not the paper's setting";
- the grids on other models (``--grid``, default results/smollm2_e2e and results/minilm_glue), each
  with its ``runs_summary.csv`` (only the runs it puts in its tables: selection runs at a losing
  learning rate and the untuned reference are left out). A grid's cells are read on ITS model: they
  are not a reproduction of the paper's numbers, and the report says so beside every one of them;
- the paper's claims (lodabench.results.claims.CLAIMS), read on each of these and on the published numbers.

Every published cell gets: our value (or ``missing``), n seeds, Δ = ours − paper, a verdict
(tables.welch_verdict), the exact command of each seed (from the run's .hydra/overrides.yaml) and
the run directories; a missing cell on the paper's setting names the command that would produce it.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lodabench.results import claims as C
from lodabench.results import tables as T
from lodabench.errors import LodabenchError
from lodabench.io import atomic_write_text, read_json, write_csv
from lodabench.paths import CONF_DIR, REPO_ROOT

# ----------------------------------------------------------------------------------------------
# What each paper's report holds


@dataclass(frozen=True)
class PaperSpec:
    key: str
    title: str
    files: tuple[str, ...]                 # results/paper/*.csv (long format)
    panels: tuple[tuple[str, str], ...]    # (dataset, metric) plotted against trainable parameters
    notes: tuple[str, ...]                 # captions: how the paper's numbers were obtained
    subspace_file: str | None = None


SEEDS = "110,111,112"
SPECS = {
    "loda": PaperSpec(
        "loda", "LoDA: Low-Dimensional Adaptation of Large Language Models (Liu et al., MERL TR2023-150)",
        ("loda_table1_e2e.csv", "loda_table2_dart.csv"), (("e2e", "BLEU"), ("dart", "BLEU")),
        ("Rows marked * are numbers LoDA copied from prior work, as compiled by the LoRA paper (Table 1 caption).",
         "The published S-LoDA (Keep 40%) row of Table 1 repeats the LoDA row's numbers exactly; it is kept as "
         "printed (results/paper/README.md).",
         "**Selection on test**: LoDA §3 trains R-LoDA(+) and S-LoDA(+) 'up to 10 epochs and choose[s] the best "
         "result from epoch 5 and epoch 10'; the paper states no other split for that choice, so the published "
         "R-/S-LoDA cells are the better of two test evaluations (an optimistic selection). Our cells are what "
         "the run records hold (column `checkpoint`).",
         "DART (footnote 3): LoDA trains the LoRA-family runs 10 epochs ('we can not reproduce the results of "
         "LoRA using the default 5 epochs').",
         "Parameter counts: LoDA prints its own rows in 2^20 units (LoRA r=4 on W_q, W_v of GPT-2 M = 393,216 = "
         "0.375·2^20 -> '0.38M'; FT^{Wq,Wv} = 48.00·2^20); the * rows carry the LoRA paper's counts (10^6).",
         f"Welch verdicts: LoDA does not state its number of seeds; n={T.ASSUMED_PAPER_N} is assumed and each "
         "verdict says so.")),
    "lora": PaperSpec(
        "lora", "LoRA: Low-Rank Adaptation of Large Language Models (Hu et al., ICLR 2022; arXiv:2106.09685)",
        ("lora_table3_e2e.csv", "lora_table2_glue.csv", "lora_readme_dart.csv"),
        (("e2e", "BLEU"), ("sst2", "accuracy"), ("mrpc", "accuracy"), ("cola", "mcc"), ("rte", "accuracy"),
         ("stsb", "pearson")),
        ("Rows marked * are numbers the LoRA paper copied from prior work; † = its Houlsby-style setup.",
         "Seeds (LoRA App. D; the appendix is not in ../shared/papers): GPT-2 'We report the mean over 3 random "
         "seeds'; RoBERTa 'We report the median over 5 random seeds'. Table 3 calls its ± 'Confidence intervals'; "
         "the Welch verdict reads every ± as a sample std over those n (and a median as a mean).",
         "**Selection on the reported set**: 'the result for each run is taken from the best epoch' (App. D) — "
         "E2E/DART are scored on their test sets and GLUE on dev, the sets the tables report, and no other "
         "split is named for choosing the epoch.",
         "Parameter counts are the LoRA paper's (10^6 units).")),
    "condlora": PaperSpec(
        "condlora", "A Single Linear Layer Yields Task-Adapted Low-Rank Matrices — CondLoRA (Kim et al., "
        "LREC-COLING 2024; arXiv:2403.14946)",
        ("condlora_table2_glue.csv", "condlora_table4_speed.csv"),
        (("sst2", "accuracy"), ("mrpc", "accuracy"), ("cola", "mcc"), ("rte", "accuracy"), ("stsb", "pearson")),
        ("Table 2: 'These scores are the average of three models'; no ± is printed, so every verdict is Δ only.",
         "Protocol (§3.1): fine-tuned on 90% of train, the other 10% selects the learning rate (Optuna) and the "
         "best checkpoint; the official GLUE dev set is the test set. The selection does not use the test set.",
         "Table 2 prints no parameter counts; the CSV carries Table 4's (LoRA 294,912, CondLoRA 24,576).",
         "Table 4's speed (training examples/s on one A100) has no counterpart in our records."),
        subspace_file="condlora_table3_subspace.csv"),
}


@dataclass(frozen=True)
class Grid:
    """A grid of runs on another model than the papers' (results/<name>/, issue #10)."""

    name: str
    path: Path
    model: str
    model_text: str


DEFAULT_GRIDS = (Grid("smollm2_e2e", REPO_ROOT / "results" / "smollm2_e2e", "smollm2-135m", "SmolLM2-135M-Instruct"),
                 Grid("minilm_glue", REPO_ROOT / "results" / "minilm_glue", "minilm-l6", "all-MiniLM-L6-v2"))
DIFFERENT_MODEL = "Δ only: a different model than the paper's (not a reproduction)"


# ----------------------------------------------------------------------------------------------
# Loading


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def grid_rows(runs_dir: Path, summary_csv: Path | None) -> list[T.Row]:
    """The rows a grid puts in its tables: runs_summary.csv's ``in_tables`` runs except the untuned
    baseline (a winning learning-rate selection run is listed once, as ``select``); all rows without it."""
    rows = T.load_runs(runs_dir) if runs_dir.is_dir() else []
    if summary_csv is None or not summary_csv.is_file():
        return rows
    with open(summary_csv, newline="", encoding="utf-8") as fh:
        keep = {(REPO_ROOT / x["run_dir"]).resolve() for x in csv.DictReader(fh)
                if x.get("run_dir") and x.get("kind") != "baseline" and x.get("in_tables") == "True"}
    out = []
    for r in rows:
        r.seeds = [s for s in r.seeds if (runs_dir / r.row_dir / f"seed{s.seed}").resolve() in keep]
        if r.seeds:
            out.append(r)
    return out


def seed_dirs(runs_dir: Path, row: T.Row) -> list[Path]:
    return [runs_dir / row.row_dir / f"seed{s.seed}" for s in row.seeds]


def commands(runs_dir: Path, row: T.Row) -> list[str]:
    """The exact command of each seed: ``python -m lodabench`` + the run's .hydra/overrides.yaml."""
    out = []
    for d, s in zip(seed_dirs(runs_dir, row), row.seeds):
        path = d / ".hydra" / "overrides.yaml"
        if path.is_file():
            from omegaconf import OmegaConf
            overrides = [str(o) for o in OmegaConf.load(path)]
        else:
            overrides = [o for o in row.overrides if not o.startswith("seed=")] + [f"seed={s.seed}"]
        out.append("python -m lodabench " + " ".join(overrides))
    return out


def checkpoints(runs_dir: Path, row: T.Row) -> str:
    """Which checkpoint each seed's metrics come from, as its record says (e.g. 'last (step 125)')."""
    seen = []
    for d in seed_dirs(runs_dir, row):
        try:
            used = str(read_json(d / "record.json").get("checkpoint_used") or "")
        except (OSError, ValueError):
            used = ""
        if used and used not in seen:
            seen.append(used)
    return "; ".join(seen)


def _approx_suffix(approx: str) -> str:
    if approx.startswith("R="):
        return f"_r{approx[2:]}"
    if approx.startswith("p="):
        return "_p" + approx[2:].replace(".", "")
    return ""


def _overlay_model(name: str, depth: int = 0) -> str | None:
    """The model an experiment overlay selects (``override /model: X``), following its defaults."""
    text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text(encoding="utf-8")
    found = re.search(r"override /model:\s*([\w.-]+)", text)
    if found or depth > 5:
        return found.group(1) if found else None
    parents = re.findall(r"^\s*-\s*([a-z0-9_]+)\s*$", text, flags=re.M)
    for parent in parents:
        if (CONF_DIR / "experiment" / f"{parent}.yaml").is_file():
            return _overlay_model(parent, depth + 1)
    return None


def command_to_run(p: dict[str, Any]) -> str:
    """For a missing cell on the paper's setting: the command that would produce it."""
    data, method, model = p["dataset"], p["method"], p["model"]
    approx = p["approx"] if isinstance(p.get("approx"), str) else ""
    names = [f"{data}_{method}{_approx_suffix(approx)}"]
    if p.get("file") == "condlora_table2_glue.csv":
        names = [f"glue_condlora_{data}" if method == "condlora" else f"glue_lora_holdout_{data}"]
    elif data in C.GLUE and method == "lora":
        names = [f"glue_lora_{model.replace('-', '_')}_{data}"]
    for name in names:
        if (CONF_DIR / "experiment" / f"{name}.yaml").is_file():
            extra = f" model={model}" if _overlay_model(name) not in (None, model) else ""
            return f"python -m lodabench -m experiment={name}{extra} seed={SEEDS}"
    if data == "glue_avg":
        return "(the mean of the eight task cells)"
    if _is_option("method", method) and _is_option("data", data):
        return (f"python -m lodabench -m data={data} model={model} method={method} seed={SEEDS}  "
                "(no overlay with the paper's recipe: method defaults)")
    return "(no config here for this row)"


def _is_option(group: str, name: str) -> bool:
    """Whether ``<group>=<name>`` composes (a registered method/task or a YAML file in conf/)."""
    from lodabench import methods
    if group == "method":
        return name in methods.method_names()
    from lodabench.tasks import task_names
    return name in task_names() or (CONF_DIR / group / f"{name}.yaml").is_file()


# ----------------------------------------------------------------------------------------------
# Published numbers and rows -> claims.Results


def published_count(p: dict[str, Any]) -> float | None:
    """A published parameter count as a number: LoDA's own rows in 2^20 units, '*' rows and LoRA's in 10^6."""
    text = str(p.get("params") or "").replace(",", "").strip()
    if not text:
        return None
    if not text.endswith("M"):
        return float(text)
    own_loda = str(p.get("file", "")).startswith("loda_") and "*" not in str(p.get("row_label", ""))
    return float(text[:-1]) * (T.PAPER_MB if own_loda else 1e6)


def published_results(paper: pd.DataFrame, model: str) -> C.Results:
    res = C.Results(f"published ({model})")
    sub = paper[paper["model"] == model]
    for key, grp in sub.groupby(["dataset", "method", "approx", "row_label", "params"], sort=False, dropna=False):
        data, method, approx, label, _ = key
        first = grp.iloc[0].to_dict()
        count = published_count(first)
        values = {str(x["metric"]): {None: float(x["value"])} for x in grp.to_dict("records")}
        res.entries.setdefault(data, []).append(C.Entry(method, approx if isinstance(approx, str) else "",
                                                        int(count) if count else None, values, False, str(label)))
    return res


def _metric_keys(data: str, paper: pd.DataFrame) -> set[str]:
    return set(paper[paper["dataset"] == data]["metric"]) | {C.MAIN_METRIC.get(data, "")}


def rows_results(name: str, rows: Sequence[T.Row], paper: pd.DataFrame, loose: bool) -> C.Results:
    res = C.Results(name, loose_approx=loose)
    for r in rows:
        values = {}
        for metric in _metric_keys(r.data, paper):
            scale = T.display_scale(r.data, metric)[0]
            if r.values(metric, scale):
                values[metric] = r.values(metric, scale)
        label = T.METHOD_LABELS.get(r.method, (r.method,))[0] + (f" [{r.approx}]" if r.approx != "–" else "")
        res.entries.setdefault(r.data, []).append(
            C.Entry(r.method, "" if r.approx == "–" else r.approx, r.params, values, True, label))
    return res


def published_subspace(paper_dir: Path, file: str) -> pd.DataFrame:
    """CondLoRA Table 3 as the analysis' layout; its random baseline is the footnote's bound
    ('The similarities between random matrices are less than 0.01'), so 0.01 (favours 'not above')."""
    df = T.load_paper_subspace(paper_dir)
    df = df[df["file"] == file]
    return pd.DataFrame({"slot": "v", "kind": df["matrix"].replace({"DeltaW": "dW"}), "layer": df["layer"],
                         "phi": df["phi"].astype(float), "phi_random": 0.01, "source": file})


def grid_subspace(grid: Grid) -> pd.DataFrame | None:
    """The grid's LoRA-vs-CondLoRA analysis (analysis/subspace/*-lora-vs-condlora/pairs.csv)."""
    frames = [pd.read_csv(p).assign(source=p.parent.name)
              for p in sorted((grid.path / "analysis" / "subspace").glob("*lora-vs-condlora/pairs.csv"))]
    return pd.concat(frames, ignore_index=True) if frames else None


# ----------------------------------------------------------------------------------------------
# Cells


@dataclass
class Source:
    name: str                  # "paper setting" or the grid's name
    runs_dir: Path
    rows: list[T.Row]
    model: str | None          # None: the paper's own model(s)
    model_text: str = ""


def split_setting(rows: Sequence[T.Row], paper: pd.DataFrame) -> tuple[list[T.Row], list[T.Row]]:
    """(rows on the paper's setting, rows of a published dataset and model that are not on it:
    tables.paper_setting_gaps, e.g. a 2-step smoke run or a tiny model under model=gpt2-medium)."""
    cells = set(zip(paper["dataset"], paper["model"]))
    apart = [r for r in rows if (r.data, r.model) in cells and r.setting_gaps]
    ids = {id(r) for r in apart}
    return [r for r in rows if id(r) not in ids], apart


def cell_records(spec: PaperSpec, paper: pd.DataFrame, src: Source) -> list[dict[str, Any]]:
    cmp = T.compare(src.rows, paper, model=src.model)
    by_dir = {r.row_dir: r for r in src.rows}
    out = []
    for x in cmp.to_dict("records"):
        row = by_dir.get(x["our_row"])
        if src.name == T.NOT_PAPER_SETTING and row is None:
            continue   # the published number itself is listed under the paper setting
        cmds = commands(src.runs_dir, row) if row else []
        if row is None and src.model is None:
            cmds = ["to run: " + command_to_run(x)]
        verdict = x["verdict"] if src.model is None or not x["n"] else DIFFERENT_MODEL
        approx = x["approx"] if isinstance(x["approx"], str) else ""
        out.append({"paper": spec.key, "source": src.name, "file": x["file"], "table": x["table"],
                    "dataset": x["dataset"], "paper_model": x["model"], "our_model": x["ours_model"],
                    "row": x["row_label"], "method": x["method"], "approx": approx, "metric": x["metric"],
                    "published": T.published_text(x, T.display_scale(x["dataset"], x["metric"], x["file"])[1]),
                    "paper_value": x["paper_value"], "paper_pm": x["paper_pm"], "paper_params": x["paper_params"],
                    "ours": x["ours"], "ours_mean": x["ours_mean"], "ours_std": x["ours_std"], "n": x["n"],
                    "delta": x["diff"], "welch_p": x["welch_p"] if src.model is None else math.nan,
                    "significant": x["significant"] if src.model is None else None, "verdict": verdict,
                    "ours_params": x["ours_params"], "checkpoint": checkpoints(src.runs_dir, row) if row else "",
                    "command": " ; ".join(cmds),
                    "run_dirs": " ; ".join(_rel(d) for d in seed_dirs(src.runs_dir, row)) if row else ""})
    return out


# ----------------------------------------------------------------------------------------------
# Figure


DATA_NAMES = {"e2e": "E2E", "dart": "DART", **dict(T.GLUE_TASKS)}


def pareto(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-dominated points (fewer parameters, higher metric), by increasing parameters."""
    front, best = [], -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _series(paper: pd.DataFrame, sources: Sequence[Source]) -> dict[str, str]:
    """One color per point set (a published model, a source of ours), the same in every panel."""
    import matplotlib.pyplot as plt
    names = [f"published, {m}" for m in sorted(set(paper["model"]))]
    names += [f"ours, {s.model_text or 'paper setting'} (mean ± std)" for s in sources if s.rows]
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {n: cycle[i % len(cycle)] for i, n in enumerate(names)}


def _panel(ax, data: str, metric: str, paper: pd.DataFrame, sources: Sequence[Source], colors: dict[str, str]) -> None:
    pub = paper[(paper["dataset"] == data) & (paper["metric"] == metric)]
    labels: list[tuple[float, float, str, str]] = []
    for model, grp in pub.groupby("model", sort=True):
        pts = [(published_count(p), float(p["value"]), p["row_label"]) for p in grp.to_dict("records")]
        name = f"published, {model}"
        labels += _points(ax, [p for p in pts if p[0]], name, colors[name], "s", filled=False)
    for src in sources:
        rows = [r for r in src.rows if r.data == data and r.params]
        pts = []
        for r in rows:
            s = T.summarize(list(r.values(metric, T.display_scale(data, metric)[0]).values()))
            if s.n:
                label = T.METHOD_LABELS.get(r.method, (r.method,))[0]
                pts.append((float(r.params), s.mean, label, 0.0 if math.isnan(s.std) else s.std))
        if pts:
            name = f"ours, {src.model_text or 'paper setting'} (mean ± std)"
            labels += _points(ax, pts, name, colors[name], "o", filled=True)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(metric)
    ax.set_title(f"{DATA_NAMES.get(data, data)}: {metric}", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    if not labels:
        ax.text(0.5, 0.5, "no published or own points", transform=ax.transAxes, ha="center")
        return
    _spread_labels(ax, labels)


def _points(ax, pts: list[tuple], label: str, color: str, marker: str, filled: bool) -> list[tuple]:
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    yerr = [p[3] for p in pts] if filled else None
    ax.errorbar(xs, ys, yerr=yerr, fmt=marker, color=color, mfc=color if filled else "none", ms=6, capsize=2,
                label=label, alpha=0.9, lw=1)
    front = pareto(list(zip(xs, ys)))
    ax.plot([p[0] for p in front], [p[1] for p in front], "--", color=color, lw=1, drawstyle="steps-post")
    ax.scatter([p[0] for p in front], [p[1] for p in front], s=120, facecolors="none", edgecolors=color, lw=1.3)
    return [(x, y, str(text), color) for x, y, text, *_ in pts]


def _spread_labels(ax, labels: list[tuple[float, float, str, str]]) -> None:
    """Label every point; points at (nearly) the same parameter count get a column of labels, spaced
    so they do not overlap, each with a thin line to its point. A column goes to the right of its
    points, or to the left where fewer other points lie under it."""
    lo, hi = ax.get_ylim()
    pad = 0.06 * (hi - lo)
    ax.set_ylim(lo - pad, hi + pad)
    span = hi - lo + 2 * pad
    gap = 0.055 * span
    groups: list[list[tuple]] = []
    for lab in sorted(labels, key=lambda t: (t[3], t[0], t[1])):   # per point set (color), by parameters
        if groups and groups[-1][0][3] == lab[3] and lab[0] / groups[-1][0][0] < 5:
            groups[-1].append(lab)
        else:
            groups.append([lab])
    per_char = _decades_per_char(ax)
    placed: list[tuple[float, float, float, float]] = []      # text boxes: log10 x0, x1, y0, y1
    points = [(math.log10(t[0]), t[1]) for t in labels]
    for group in sorted(groups, key=len, reverse=True):       # the big columns choose their side first
        group.sort(key=lambda t: t[1])
        k = len(group)
        step = min(gap, span / (k + 0.5))
        center = min(max(sum(t[1] for t in group) / k, lo - pad + step * (k - 1) / 2), hi + pad - step * (k - 1) / 2)
        ys = [center + (i - (k - 1) / 2) * step if k > 1 else t[1] for i, t in enumerate(group)]
        width = per_char * max(len(t[2]) for t in group)
        right = math.log10(max(t[0] for t in group)) + (0.28 if k > 1 else 0.06)
        left = math.log10(min(t[0] for t in group)) - (0.28 if k > 1 else 0.06)
        y0, y1 = min(ys) - gap / 2, max(ys) + gap / 2
        sides = {"left": (left - width, left), "right": (right, right + width)}
        cost = {side: sum(a <= px <= b and y0 <= py <= y1 for px, py in points)
                + 3 * sum(a < bx1 and bx0 < b and y0 < by1 and by0 < y1 for bx0, bx1, by0, by1 in placed)
                for side, (a, b) in sides.items()}
        on_left = cost["left"] < cost["right"]
        placed.append((*sides["left" if on_left else "right"], y0, y1))
        x_text = 10 ** (left if on_left else right)
        for (x, y, text, color), y_text in zip(group, ys):
            ax.annotate(text, (x, y), xytext=(x_text, y_text), textcoords="data", fontsize=6.5, color=color,
                        va="center", ha="right" if on_left else "left",
                        arrowprops={"arrowstyle": "-", "color": color, "lw": 0.4, "alpha": 0.6} if k > 1 else None)


def _decades_per_char(ax) -> float:
    """How many decades of the log x axis one 6.5 pt character spans in the saved figure."""
    lo, hi = ax.get_xlim()
    inches = ax.get_position().width * ax.figure.get_figwidth()
    return (6.5 * 0.55 / 72) / (inches / math.log10(hi / lo))


def figure(spec: PaperSpec, paper: pd.DataFrame, sources: Sequence[Source], path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(spec.panels)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols, 4.4 * nrows), squeeze=False)
    colors = _series(paper, sources)
    for ax, (data, metric) in zip(axes.flat, spec.panels):
        _panel(ax, data, metric, paper, sources, colors)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    from matplotlib.lines import Line2D
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    handles["Pareto front of each set (dashed steps, circled points)"] = Line2D(
        [], [], ls="--", color="grey", marker="o", mfc="none", ms=9)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(4, len(handles)), fontsize=8,
               frameon=False)
    fig.suptitle(f"{spec.key}: main metric vs trainable parameters. Open squares: published; filled: ours "
                 "(another model where labelled so, not a reproduction); circled: Pareto front", fontsize=9)
    fig.tight_layout(rect=(0, 0.07 + 0.02 * (len(handles) > 4), 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------
# Claims


def claim_records(spec: PaperSpec, paper: pd.DataFrame, sources: Sequence[Source], paper_dir: Path,
                  grids: dict[str, Grid]) -> list[dict[str, Any]]:
    readings: list[tuple[str, C.Results]] = []
    for model in sorted(set(paper["model"])):
        res = published_results(paper, model)
        if spec.subspace_file:
            res.subspace = published_subspace(paper_dir, spec.subspace_file)
        readings.append((f"the paper's own numbers ({model}, means only)", res))
    for src in sources:
        loose = src.model is not None
        res = rows_results(src.name, src.rows, paper, loose)
        if loose and src.name in grids:
            res.subspace = grid_subspace(grids[src.name]) if spec.subspace_file else None
            where = f"{src.model_text} grid ({src.name}): a different model, the claim is read on it, not the paper's"
        else:
            where = f"our runs on the paper's setting ({_rel(src.runs_dir)})"
        readings.append((where, res))
    out = []
    for claim in C.CLAIMS[spec.key]:
        for where, res in readings:
            published = res.name.startswith("published")
            if claim.data and res.name != "paper setting" and not set(claim.data) & set(res.entries) \
                    and (published or not claim.why):
                continue   # a published model or a grid without any of the claim's datasets
            o = C.evaluate(claim, res)
            out.append({"paper": spec.key, "claim": claim.id, "quote": claim.quote, "where_in_paper": claim.where,
                        "reading": claim.reading, "read_on": where, "verdict": o.verdict, "detail": o.detail})
    return out


# ----------------------------------------------------------------------------------------------
# Markdown


def _md_cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|") if text is not None else ""


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|",
            *["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]]


def _delta(x: dict[str, Any]) -> str:
    d = x["delta"]
    return "" if d is None or (isinstance(d, float) and math.isnan(d)) else f"{d:+.3g}"


def _short_detail(detail: str, csv_name: str, keep: int = 6) -> str:
    """The first ``keep`` items of a claim's detail (all of them are in the claims CSV)."""
    body, sep, absent = detail.partition(" [not run: ")
    items = body.split("; ")
    if len(items) > keep:
        body = "; ".join(items[:keep]) + f"; … ({len(items) - keep} more in {csv_name})"
    return body + (sep + absent if sep else "")


def _short_cmd(cmd: str) -> str:
    parts = cmd.split(" ; ")
    if len(parts) <= 1:
        return f"`{cmd}`" if cmd else ""
    seeds = [c.rsplit("seed=", 1)[-1].split()[0] for c in parts if "seed=" in c]
    return f"`{parts[0]}` (also seed={', '.join(seeds[1:])})"


def _short_dirs(dirs: str) -> str:
    parts = dirs.split(" ; ") if dirs else []
    if not parts:
        return ""
    stem = parts[0].rsplit("/", 1)[0]
    return f"`{stem}/` ({', '.join(p.rsplit('/', 1)[-1] for p in parts)})"


def markdown(spec: PaperSpec, cells: list[dict[str, Any]], claim_recs: list[dict[str, Any]],
             sources: Sequence[Source], png: Path, paper_dir: Path, grids: dict[str, Grid],
             apart: Source | None = None) -> str:
    own = [c for c in cells if c["source"] == "paper setting"]
    have = sum(1 for c in own if c["n"])
    apart = apart if apart is not None and apart.rows else None
    lines = [f"# Reproduction report: {spec.title}", "",
             f"_Generated by `make report PAPER={spec.key}` (`python -m lodabench.results.reports --paper {spec.key}`) "
             "from the published tables and the run records; do not edit by hand._", "",
             "Published numbers: " + ", ".join(f"`results/paper/{f}`" for f in spec.files)
             + (f", `results/paper/{spec.subspace_file}`" if spec.subspace_file else "")
             + " (sources and checks: results/paper/README.md).", "",
             f"**{len(own)} published cells; {have} have a run of ours on the paper's setting** "
             f"(runs under `{_rel(sources[0].runs_dir)}`)."
             + (" The others need the paper's model and data on a GPU with the model hub: each names the "
                "command that would produce it." if have < len(own) else "")
             + (f" {len(apart.rows)} run settings of ours on the paper's model and data are **{T.NOT_PAPER_SETTING}** "
                "(cut short or another model) and are listed apart, at the end." if apart else ""), ""]
    lines += ["## Sources of our numbers", ""]
    src_rows = [["paper setting", "the paper's", f"`{_rel(sources[0].runs_dir)}`",
                 len({c['row'] for c in own if c['n']}), "a reproduction when present"]]
    for s in sources[1:]:
        src_rows.append([s.name, s.model_text, f"`{_rel(s.runs_dir)}`", len(s.rows),
                         f"another model (see `{_rel(grids[s.name].path)}/README.md`): the claims are read on "
                         "this model, not on the paper's"])
    if apart:
        src_rows.append([T.NOT_PAPER_SETTING, "the paper's name", f"`{_rel(apart.runs_dir)}`", len(apart.rows),
                         "runs cut short or on another model (smoke tests): listed apart, never matched to a "
                         "published cell, no claim read on them"])
    lines += _table(["source", "model", "runs", "rows", "what it is"], src_rows) + [""]
    lines += ["## Claims", "", "Each claim is quoted from the paper; `reading` says how it is turned into a test "
              "(lodabench/results/claims.py). Verdicts: supported / not supported / not run.", ""]
    lines += _table(["claim", "quote (where)", "read on", "verdict", "detail"],
                    [[c["claim"], f"“{c['quote']}” ({c['where_in_paper']})"
                      + (f" — reading: {c['reading']}" if c["reading"] else ""), c["read_on"], f"**{c['verdict']}**",
                      _short_detail(c["detail"], f"{spec.key}_claims.csv")] for c in claim_recs]) + [""]
    lines += [f"## Figure", "", f"![main metric vs trainable parameters]({png.name})", "",
              "Main metric against trainable parameters (log scale). Open squares: the published rows "
              "(parameter counts as printed, see the notes); filled circles: ours, mean ± sample std over seeds; "
              "dashed steps and circled points: the Pareto front (fewer parameters, higher metric) of each set. "
              "Points of a grid on another model are not comparable in absolute terms with the published ones.", ""]
    lines += ["## Notes on the published numbers", "", *[f"- {n}" for n in spec.notes], ""]
    lines += [f"## Published cells on the paper's setting ({len(own)})", "",
              "Ours = mean ± sample std (ddof=1) over the complete seeds; Δ = ours − published; verdict: "
              "two-sided Welch t-test from the summary statistics where both sides print a ±, else the "
              "difference alone, labelled so (lodabench.results.tables.welch_verdict). `missing` = no run of ours.", ""]
    lines += _table(["table", "dataset", "model", "row", "Approx", "metric", "published", "params (paper)", "ours",
                     "n", "Δ", "verdict", "params (ours)", "checkpoint", "command", "run dirs"],
                    [[c["table"], c["dataset"], c["paper_model"], c["row"], c["approx"], c["metric"], c["published"],
                      c["paper_params"], c["ours"], c["n"], _delta(c), c["verdict"], c["ours_params"], c["checkpoint"],
                      _short_cmd(c["command"]), _short_dirs(c["run_dirs"])] for c in own]) + [""]
    for s in sources[1:]:
        mine = [c for c in cells if c["source"] == s.name and c["n"]]
        lines += [f"## The same rows on {s.model_text} ({s.name}): a different model, not a reproduction", "",
                  f"{len(mine)} published cells have a row of the same method on {s.model_text} "
                  f"(any Approx: a narrower model scales R and p; the grid's README gives its recipe). "
                  "Δ is printed for orientation only.", ""]
        lines += _table(["table", "dataset", "row (paper)", "metric", "published", "params (paper)",
                         f"ours ({s.model})", "n", "Δ", "params (ours)", "checkpoint", "command", "run dirs"],
                        [[c["table"], c["dataset"], c["row"], c["metric"], c["published"], c["paper_params"], c["ours"],
                          c["n"], _delta(c), c["ours_params"], c["checkpoint"], _short_cmd(c["command"]),
                          _short_dirs(c["run_dirs"])] for c in mine]) + [""]
    if spec.subspace_file:
        lines += _subspace_md(paper_dir, spec.subspace_file, grids)
    if apart:
        lines += _apart_md(apart, [c for c in cells if c["source"] == T.NOT_PAPER_SETTING])
    return "\n".join(lines) + "\n"


def _apart_md(apart: Source, cells: list[dict[str, Any]]) -> list[str]:
    """The section of runs not on the paper's setting: why (tables.paper_setting_gaps), then their cells."""
    lines = [f"## Runs not on the paper's setting ({len(apart.rows)})", "",
             "Runs under the paper's model and data names whose budget is cut (trainer.max_steps, "
             "data.max_*, trainer.max_dev_batches, fewer epochs than the recipe) or whose model is not the "
             "paper's (config or parameter counts; lodabench.results.tables.paper_setting_gaps). They are not a "
             "reproduction: no Δ is tested and no claim is read on them.", ""]
    lines += _table(["run dirs", "why not the paper's setting", "command"],
                    [[_short_dirs(" ; ".join(_rel(d) for d in seed_dirs(apart.runs_dir, r))),
                      "; ".join(r.setting_gaps), _short_cmd(" ; ".join(commands(apart.runs_dir, r)))]
                     for r in apart.rows]) + [""]
    lines += _table(["table", "dataset", "row (paper)", "metric", "published", "ours", "n", "run dirs"],
                    [[c["table"], c["dataset"], c["row"], c["metric"], c["published"], c["ours"], c["n"],
                      _short_dirs(c["run_dirs"])] for c in cells]) + [""]
    return lines


def _subspace_md(paper_dir: Path, file: str, grids: dict[str, Grid]) -> list[str]:
    pub = published_subspace(paper_dir, file)
    lines = ["## Table 3: phi(LoRA, CondLoRA) per layer, value module", "",
             "Published (RoBERTa-base, i = j = 8); ours on the paper's setting: missing (needs RoBERTa-base "
             "runs of LoRA and CondLoRA).", ""]
    layers = sorted(pub["layer"].unique())
    lines += _table(["matrix", *[str(int(x)) for x in layers]],
                    [[k, *[f"{v:.2f}" for v in pub[pub["kind"] == k].sort_values("layer")["phi"]]]
                     for k in ("A", "B", "dW")]) + [""]
    for grid in grids.values():
        df = grid_subspace(grid)
        if df is None:
            continue
        v = df[df["slot"] == "v"].groupby(["kind", "layer"])[["phi", "phi_random"]].mean().reset_index()
        lines += [f"On {grid.model_text} ({grid.name}, a different model: 6 layers; mean over the "
                  f"{df['source'].nunique()} tasks' seed-110 LoRA/CondLoRA pairs; "
                  f"`{_rel(grid.path)}/analysis/subspace/*/pairs.csv`), phi / phi of Gaussian matrices:", ""]
        lines += _table(["matrix", *[str(int(x)) for x in sorted(v["layer"].unique())]],
                        [[k, *[f"{a:.3f} / {b:.3f}" for a, b in
                               v[v["kind"] == k].sort_values("layer")[["phi", "phi_random"]].itertuples(index=False)]]
                         for k in ("A", "B", "dW")]) + [""]
    return lines


# ----------------------------------------------------------------------------------------------
# CLI


def build(paper_key: str, out_dir: Path, runs_dir: Path, grids: Sequence[Grid], paper_dir: Path) -> dict[str, Path]:
    if paper_key not in SPECS:
        raise LodabenchError(f"unknown paper {paper_key!r}; choose one of {', '.join(SPECS)} "
                             "(make report PAPER=loda|lora|condlora).")
    spec = SPECS[paper_key]
    paper = T.load_paper(paper_dir)
    paper = paper[paper["file"].isin(spec.files)].reset_index(drop=True)
    missing = sorted(set(spec.files) - set(paper["file"]))
    if missing:
        raise LodabenchError(f"{paper_dir}: no published rows from {missing}; see results/paper/README.md.")
    datasets = set(paper["dataset"])
    on, off = split_setting(T.load_runs(runs_dir) if runs_dir.is_dir() else [], paper)
    sources = [Source("paper setting", runs_dir, on, None)]
    apart = Source(T.NOT_PAPER_SETTING, runs_dir, off, None)
    used = {}
    for g in grids:
        rows = [r for r in grid_rows(g.path / "runs", g.path / "runs_summary.csv") if r.data in datasets]
        if rows:
            sources.append(Source(g.name, g.path / "runs", rows, g.model, g.model_text))
            used[g.name] = g
    cells = [c for s in (*sources, apart) for c in cell_records(spec, paper, s)]
    claim_recs = claim_records(spec, paper, sources, paper_dir, used)   # never read on runs apart
    out_dir.mkdir(parents=True, exist_ok=True)
    png = figure(spec, paper, sources, out_dir / f"{spec.key}.png")
    paths = {"md": out_dir / f"{spec.key}.md", "csv": out_dir / f"{spec.key}.csv",
             "claims": out_dir / f"{spec.key}_claims.csv", "png": png}
    write_csv(paths["csv"], pd.DataFrame(cells))
    write_csv(paths["claims"], pd.DataFrame(claim_recs))
    atomic_write_text(paths["md"], markdown(spec, cells, claim_recs, sources, png, paper_dir, used, apart))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    results = Path(os.environ.get("LODABENCH_RESULTS_DIR", "results"))
    p = argparse.ArgumentParser(prog="lodabench.results.reports", description=__doc__.split("\n\n")[0])
    p.add_argument("--paper", required=True, choices=sorted(SPECS))
    p.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "reports", help="default: %(default)s")
    p.add_argument("--runs-dir", type=Path, default=results / "runs",
                   help="our runs on the papers' own settings; default: %(default)s")
    p.add_argument("--grid", type=Path, action="append", default=None, metavar="DIR",
                   help="a grid on another model (results/<name>/ with runs/ and runs_summary.csv); "
                        "repeatable; default: results/smollm2_e2e and results/minilm_glue")
    p.add_argument("--paper-dir", type=Path, default=REPO_ROOT / "results" / "paper", help="default: %(default)s")
    args = p.parse_args(list(argv) if argv is not None else None)
    grids = DEFAULT_GRIDS if args.grid is None else tuple(_grid_from_dir(d) for d in args.grid)
    paths = build(args.paper, args.out, args.runs_dir, grids, args.paper_dir)
    print(paths["md"].read_text(encoding="utf-8").split("## Figure")[0])
    print("wrote:", *(str(q) for q in paths.values()), sep="\n  ")
    return 0


def _grid_from_dir(path: Path) -> Grid:
    known = {g.path.resolve(): g for g in DEFAULT_GRIDS}
    if path.resolve() in known:
        return known[path.resolve()]
    models = sorted({r.model for r in grid_rows(path / "runs", path / "runs_summary.csv")})
    if len(models) != 1:
        raise LodabenchError(f"--grid {path}: expected runs of one model under {path / 'runs'}, "
                             f"found {models or 'none'}.")
    return Grid(path.name, path, models[0], models[0])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LodabenchError as exc:
        print(f"lodabench.results.reports: error: {exc}", file=sys.stderr)
        sys.exit(2)
