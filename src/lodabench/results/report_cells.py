"""A report's numbers: published cells and ours beside them per source, and the claims read on each.

Sources: our runs on the paper's setting (``--runs-dir``), the grids on other models (their
``runs_summary.csv`` says which runs are in their tables) and the runs apart (not the paper's
setting). ``cell_records`` gives one line per published cell and source (with the exact command of
each seed); ``claim_records`` one per claim and reading (``lodabench.results.claims``).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lodabench.io import read_json
from lodabench.paths import CONF_DIR, REPO_ROOT
from lodabench.results import claims as C
from lodabench.results.paper import compare, display_scale, load_paper_subspace, published_text
from lodabench.results.render import PAPER_MB
from lodabench.results.report_specs import DIFFERENT_MODEL, SEEDS, Grid, PaperSpec
from lodabench.results.runs import Row, load_runs
from lodabench.results.setting import NOT_PAPER_SETTING
from lodabench.results.vocab import method_label, primary_metric, task_metrics

# ----------------------------------------------------------------------------------------------
# Loading


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def grid_rows(runs_dir: Path, summary_csv: Path | None) -> list[Row]:
    """The rows a grid puts in its tables: runs_summary.csv's ``in_tables`` runs except the untuned
    baseline (a winning learning-rate selection run is listed once, as ``select``); all rows without it."""
    rows = load_runs(runs_dir) if runs_dir.is_dir() else []
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


def seed_dirs(runs_dir: Path, row: Row) -> list[Path]:
    return [runs_dir / row.row_dir / f"seed{s.seed}" for s in row.seeds]


def commands(runs_dir: Path, row: Row) -> list[str]:
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


def checkpoints(runs_dir: Path, row: Row) -> str:
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
    return float(text[:-1]) * (PAPER_MB if own_loda else 1e6)


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
    return set(paper[paper["dataset"] == data]["metric"]) | {primary_metric(data) if task_metrics(data) else ""}


def rows_results(name: str, rows: Sequence[Row], paper: pd.DataFrame, loose: bool) -> C.Results:
    res = C.Results(name, loose_approx=loose)
    for r in rows:
        values = {}
        for metric in _metric_keys(r.data, paper):
            scale = display_scale(r.data, metric)[0]
            if r.values(metric, scale):
                values[metric] = r.values(metric, scale)
        label = method_label(r.method) + (f" [{r.approx}]" if r.approx != "–" else "")
        res.entries.setdefault(r.data, []).append(
            C.Entry(r.method, "" if r.approx == "–" else r.approx, r.params, values, True, label, r.row_dir))
    return res


def published_subspace(paper_dir: Path, file: str) -> pd.DataFrame:
    """CondLoRA Table 3 as the analysis' layout; its random baseline is the footnote's bound
    ('The similarities between random matrices are less than 0.01'), so 0.01 (favours 'not above')."""
    df = load_paper_subspace(paper_dir)
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
    rows: list[Row]
    model: str | None          # None: the paper's own model(s)
    model_text: str = ""


def split_setting(rows: Sequence[Row], paper: pd.DataFrame) -> tuple[list[Row], list[Row]]:
    """(rows on the paper's setting, rows of a published dataset and model that are not on it:
    tables.paper_setting_gaps, e.g. a 2-step smoke run or a tiny model under model=gpt2-medium)."""
    cells = set(zip(paper["dataset"], paper["model"]))
    apart = [r for r in rows if (r.data, r.model) in cells and r.setting_gaps]
    ids = {id(r) for r in apart}
    return [r for r in rows if id(r) not in ids], apart


def cell_records(spec: PaperSpec, paper: pd.DataFrame, src: Source) -> list[dict[str, Any]]:
    cmp = compare(src.rows, paper, model=src.model)
    by_dir = {r.row_dir: r for r in src.rows}
    out = []
    for x in cmp.to_dict("records"):
        row = by_dir.get(x["our_row"])
        if src.name == NOT_PAPER_SETTING and row is None:
            continue   # the published number itself is listed under the paper setting
        cmds = commands(src.runs_dir, row) if row else []
        if row is None and src.model is None:
            cmds = ["to run: " + command_to_run(x)]
        verdict = x["verdict"] if src.model is None or not x["n"] else DIFFERENT_MODEL
        approx = x["approx"] if isinstance(x["approx"], str) else ""
        out.append({"paper": spec.key, "source": src.name, "file": x["file"], "table": x["table"],
                    "dataset": x["dataset"], "paper_model": x["model"], "our_model": x["ours_model"],
                    "row": x["row_label"], "row_dir": x["our_row"] if row else "", "method": x["method"], "approx": approx, "metric": x["metric"],
                    "published": published_text(x, display_scale(x["dataset"], x["metric"], x["file"])[1]),
                    "paper_value": x["paper_value"], "paper_pm": x["paper_pm"], "paper_params": x["paper_params"],
                    "ours": x["ours"], "ours_mean": x["ours_mean"], "ours_std": x["ours_std"], "n": x["n"],
                    "delta": x["diff"], "welch_p": x["welch_p"] if src.model is None else math.nan,
                    "significant": x["significant"] if src.model is None else None, "verdict": verdict,
                    "ours_params": x["ours_params"], "checkpoint": checkpoints(src.runs_dir, row) if row else "",
                    "command": " ; ".join(cmds),
                    "run_dirs": " ; ".join(_rel(d) for d in seed_dirs(src.runs_dir, row)) if row else ""})
    return out


# ----------------------------------------------------------------------------------------------
# Claims


def claim_records(spec: PaperSpec, paper: pd.DataFrame, sources: Sequence[Source], paper_dir: Path,
                  grids: dict[str, Grid], paired: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every claim read on the published numbers and on each source; ``paired`` (report_paired records)
    lets "on par" be read by TOST where both rows stored per-item outputs."""
    readings: list[tuple[str, C.Results]] = []
    for model in sorted(set(paper["model"])):
        res = published_results(paper, model)
        if spec.subspace_file:
            res.subspace = published_subspace(paper_dir, spec.subspace_file)
        readings.append((f"the paper's own numbers ({model}, means only)", res))
    for src in sources:
        loose = src.model is not None
        res = rows_results(src.name, src.rows, paper, loose)
        res.paired = {(r["row_dir"], r["baseline_dir"], r["dataset"], r["metric"]): r for r in paired or ()
                      if r["source"] == src.name and math.isfinite(r["p"])}
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
