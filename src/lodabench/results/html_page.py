"""One self-contained HTML results page per report (``<paper>.html``) and per tables run (``tables.html``).

Issue #31. Three sections, element ids ``published-vs-ours``, ``pareto`` and ``items``, then ``runs``:

- the published table beside ours (the report's cell records, ``report_cells.cell_records``, or
  ``paper.compare`` for ``lodabench tables``), sortable by any column and filterable by task, metric,
  method and source; every line links to the runs behind it (anchors into ``runs``: command, record
  provenance, fingerprints, cost, all read from the run's record.json). Columns another part of the
  harness adds to those records (e.g. a paired test's delta/CI/p/verdict) are shown when present;
- the Pareto view (``lodabench.results.pareto``): quality against parameters, adapter bytes, train time
  and peak memory, one mark per method and seed, the frontier drawn, the papers' points beside ours;
- the item-level comparison of two methods (``lodabench.results.items``).

Self-contained on purpose (a page a researcher can mail or open from a file): styles and script are
inlined from ``html_assets/`` (package data), no font, image, CDN or server, and a Content-Security-Policy
``default-src 'none'`` so the browser itself refuses any fetch. Where PEFT's method-comparison suite ships
a Gradio app (a server), this is one static file.
"""

from __future__ import annotations

import argparse
import html
import math
import os
import sys
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from lodabench.errors import LodabenchError
from lodabench.io import atomic_write_text, read_json
from lodabench.paths import REPO_ROOT
from lodabench.results import items as item_view
from lodabench.results import pareto
from lodabench.results.report_specs import DIFFERENT_MODEL
from lodabench.results.vocab import primary_metric, task_label, task_metrics

CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
SECTION_IDS = ("published-vs-ours", "pareto", "items")
# (record key, column title, filter name or ""): the table's columns in order, when the records hold them.
COLUMNS = (("source", "source", "source"), ("table", "table", ""), ("dataset", "task", "task"),
           ("our_model", "model", ""), ("row", "row", ""), ("method", "method", "method"), ("approx", "Approx", ""),
           ("metric", "metric", "metric"), ("published", "published", ""), ("paper_params", "params (paper)", ""),
           ("ours", "ours", ""), ("n", "n", ""), ("delta", "Δ", ""), ("welch_p", "Welch p", ""),
           ("verdict", "verdict", ""), ("ours_params", "params (ours)", ""), ("checkpoint", "checkpoint", ""))
# Record keys never shown as their own column (folded into others, or the runs column).
HIDDEN = {"paper", "file", "paper_model", "paper_value", "paper_pm", "ours_mean", "ours_std", "significant",
          "command", "run_dirs", "our_row", "welch_t", "paper_n", "paper_n_note", "model", "row_label", "setting",
          "ours_model", "diff"}
PAPER_DIR = REPO_ROOT / "results" / "paper"   # the published tables a "published" cell links to
PACKAGES = ("lodabench", "torch", "transformers", "peft", "sacrebleu")


def asset(name: str) -> str:
    return resources.files("lodabench.results").joinpath("html_assets", name).read_text(encoding="utf-8")


def _esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _blank(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or x == ""


def _text(x: Any) -> str:
    if _blank(x):
        return ""
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_text(v) for v in x) + "]"
    return str(x)


# ---------------------------------------------------------------------------------------------- runs

def _command(run_dir: Path) -> str:
    """``python -m lodabench`` + the run's .hydra/overrides.yaml (the exact launch), or ""."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return ""
    from omegaconf import OmegaConf
    return "python -m lodabench " + " ".join(str(o) for o in OmegaConf.load(path))


def _flat(prefix: str, value: Any, out: list[tuple[str, str]], limit: int = 60) -> None:
    """Leaves of a nested record block as (dotted key, text); sha256 values shortened to 16 hex digits."""
    if len(out) >= limit:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out, limit)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flat(f"{prefix}[{i}]", v, out, limit)
    else:
        text = _text(value)
        out.append((prefix, text[:16] + "…" if "sha256" in prefix and len(text) > 16 else text))


class RunIndex:
    """The runs a page links to: one anchor per run directory, its provenance read once from record.json."""

    def __init__(self, page_dir: Path):
        self.page_dir = page_dir
        self.ids: dict[Path, str] = {}
        self.blocks: list[str] = []

    def add(self, run_dir: Path, record: dict[str, Any] | None = None) -> str:
        key = run_dir.resolve()
        if key not in self.ids:
            self.ids[key] = f"run-{len(self.ids) + 1}"
            self.blocks.append(self._block(run_dir, self.ids[key], record))
        return self.ids[key]

    def _block(self, run_dir: Path, anchor: str, record: dict[str, Any] | None) -> str:
        if record is None:
            try:
                record = read_json(run_dir / "record.json")
            except (OSError, ValueError) as exc:
                record = {"status": f"record.json unreadable: {type(exc).__name__}"}
        rel = self.relative(run_dir / "record.json")
        facts = _provenance(record) + [("record", f'<a href="{_esc(rel)}">record.json</a>')]
        items = "".join(f"<dt>{_esc(k)}</dt><dd>{v}</dd>" for k, v in facts)
        cmd = _command(run_dir)
        return (f'<details class="run" id="{anchor}"><summary><code>{_esc(_rel(run_dir))}</code></summary><dl>'
                f"<dt>command</dt><dd><code>{_esc(cmd or '(no .hydra/overrides.yaml)')}</code></dd>{items}"
                "</dl></details>")

    def relative(self, path: Path) -> str:
        """``path`` as a link from the page (relative: the page and results/ move together)."""
        return os.path.relpath(path, self.page_dir)

    def html(self) -> str:
        if not self.blocks:
            return '<p class="empty">No run is linked from this page.</p>'
        return "".join(self.blocks)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _provenance(record: dict[str, Any]) -> list[tuple[str, str]]:
    """Status, checkpoint, code and machine, cost, and the input fingerprints of one record (escaped)."""
    git = record.get("git") or {}
    pk = record.get("packages") or {}
    facts = [("status", record.get("status")), ("checkpoint", record.get("checkpoint_used")),
             ("git", f"{git.get('commit', '?')}{' (dirty)' if git.get('dirty') else ''}" if git else None),
             ("started / finished", f"{record.get('started_at', '?')} / {record.get('finished_at', '?')}"),
             ("packages", ", ".join(f"{k} {pk[k]}" for k in PACKAGES if k in pk)),
             ("machine", ", ".join(f"{k} {v}" for k, v in (record.get("machine") or {}).items()
                                   if v not in ("", None))),
             ("trainable params", (record.get("trainable_params") or {}).get("trainable")
              if isinstance(record.get("trainable_params"), dict) else record.get("trainable_params")),
             ("wall time (s)", record.get("wall_time_s")), ("metrics", _metrics_text(record.get("metrics")))]
    out = [(k, _esc(_text(v))) for k, v in facts if not _blank(v) and v != "{}"]
    cost: list[tuple[str, str]] = []
    _flat("cost", record.get("cost") or {}, cost)
    if not cost:
        cost = [("cost", "not recorded (the record predates the cost block); peak memory "
                 + _text((record.get("peak_memory") or {}).get("cpu_rss_mb")) + " MB process-wide")]
    inputs: list[tuple[str, str]] = []
    _flat("inputs", record.get("inputs") or {}, inputs)
    if not inputs:
        inputs = [("inputs", "no fingerprints (the record predates them: lodabench verify cannot check it)")]
    return out + [(k, _esc(v)) for k, v in cost + inputs]


def _metrics_text(metrics: Any) -> str:
    if not isinstance(metrics, dict):
        return ""
    return ", ".join(f"{k} {_text(v)}" for k, v in metrics.items() if isinstance(v, (int, float)))


# ---------------------------------------------------------------------------------------------- table

def table_columns(records: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The known columns the records hold, then any other scalar key they carry (e.g. added test results)."""
    keys = dict.fromkeys(k for r in records for k in r)
    known = {c[0] for c in COLUMNS}
    cols = [c for c in COLUMNS if c[0] in keys and any(not _blank(r.get(c[0])) for r in records)]
    extra = [(k, k.replace("_", " "), "") for k in keys if k not in known and k not in HIDDEN
             and any(not _blank(r.get(k)) for r in records)]
    return cols + extra


def _run_links(rec: dict[str, Any], runs: RunIndex) -> str:
    dirs = [d for d in str(rec.get("run_dirs") or "").split(" ; ") if d]
    if not dirs:
        cmd = str(rec.get("command") or "")
        return f'<details class="note"><summary>no run</summary><code>{_esc(cmd)}</code></details>' \
            if cmd else ""
    links = []
    for d in dirs:
        path = Path(d) if Path(d).is_absolute() else REPO_ROOT / d
        links.append(f'<a href="#{runs.add(path)}">{_esc(path.name)}</a>')
    return " ".join(links)


def _sort_value(key: str, rec: dict[str, Any]) -> str:
    """What a column sorts on: the number behind a formatted cell where the record has it."""
    number = {"ours": rec.get("ours_mean"), "published": rec.get("paper_value")}.get(key, rec.get(key))
    return "" if _blank(number) else _text(number) if isinstance(number, (int, float)) else _text(rec.get(key))


def _row_html(rec: dict[str, Any], cols: Sequence[tuple[str, str, str]], runs: RunIndex) -> str:
    links = _run_links(rec, runs)
    attrs = " ".join(f'data-{f}="{_esc(rec.get(k))}"' for k, _, f in cols if f)
    attrs += f' data-ours="{"run" if links.startswith("<a ") else "none"}"'
    first = links.split('"', 2)[1] if links.startswith("<a ") else ""
    cells = []
    for k, _, _ in cols:
        text = _esc(_text(rec.get(k)))
        if k == "ours" and first:
            text = f'<a href="{first}">{text}</a>'
        elif k == "published" and rec.get("file") and text:
            text = f'<a href="{_esc(runs.relative(PAPER_DIR / str(rec["file"])))}">{text}</a>'
        value = _esc(_sort_value(k, rec))
        cells.append(f'<td data-v="{value}">{text}</td>' if value != text else f"<td>{text}</td>")
    return f"<tr {attrs}>{''.join(cells)}<td>{links}</td></tr>"


def _filters(records: Sequence[dict[str, Any]], cols: Sequence[tuple[str, str, str]], table_id: str) -> str:
    boxes = []
    for k, title, f in cols:
        if not f:
            continue
        values = sorted({str(r.get(k)) for r in records if not _blank(r.get(k))})
        opts = "".join(f'<option value="{_esc(v)}">{_esc(v)}</option>' for v in values)
        boxes.append(f'<label>{_esc(title)} <select name="{f}"><option value="">all</option>{opts}</select></label>')
    boxes.append('<label>ours <select name="ours"><option value="">all</option><option value="run">with a run'
                 '</option><option value="none">without</option></select></label>')
    return f'<div class="filters" data-table="{table_id}">{"".join(boxes)}<span class="count"></span></div>'


def table_html(records: Sequence[dict[str, Any]], runs: RunIndex, table_id: str = "cells") -> str:
    if not records:
        return '<p class="empty">No published number and no run of ours to show.</p>'
    cols = table_columns(records)
    head = "".join(f"<th>{_esc(t)}</th>" for _, t, _ in cols) + "<th>runs</th>"
    body = "".join(_row_html(r, cols, runs) for r in records)
    return (_filters(records, cols, table_id) + f'<table class="sortable" id="{table_id}"><thead><tr>{head}</tr>'
            f"</thead><tbody>{body}</tbody></table>")


# ---------------------------------------------------------------------------------------------- page

def page(title: str, intro: str, sections: dict[str, tuple[str, str]], runs: RunIndex) -> str:
    """The whole document; ``sections``: id -> (heading, inner HTML)."""
    body = "".join(f'<section id="{sid}"><h2>{_esc(h)}</h2>{inner}</section>' for sid, (h, inner) in sections.items())
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width"><title>{_esc(title)}</title>'
            f"<style>{asset('page.css')}</style></head><body><h1>{_esc(title)}</h1>{intro}"
            f'<nav>{" · ".join(f"<a href=#{sid}>{_esc(h)}</a>" for sid, (h, _) in sections.items())}'
            f' · <a href="#runs">runs</a></nav>{body}<section id="runs"><h2>Runs behind the cells</h2>'
            f"{runs.html()}</section><div id=\"tip\" hidden></div><script>{asset('page.js')}</script></body></html>\n")


def _seed_run(runs: RunIndex, runs_dir: Path) -> Callable[[Any, Any], str]:
    return lambda row, seed: runs.add(runs_dir / row.row_dir / f"seed{seed.seed}", seed.record)


def pareto_html(panels: Sequence[tuple[str, str]], sources: Sequence[tuple[str, Path, Sequence[Any], str]],
                published: Sequence[dict[str, Any]], count: Callable[[dict[str, Any]], float | None],
                runs: RunIndex) -> str:
    """One panel per (dataset, metric): every source's seeds, and the published rows."""
    out = []
    for dataset, metric in panels:
        points = [p for name, runs_dir, rows, _ in sources
                  for p in pareto.seed_points(rows, dataset, metric, name, _seed_run(runs, runs_dir))]
        points += pareto.published_points(published, dataset, metric, count)
        if points:
            models = "; ".join(f"{name}: {text}" for name, _, rows, text in sources
                               if any(r.data == dataset and r.complete for r in rows))
            out.append(pareto.panel(points, dataset, metric, f"{task_label(dataset)} ({models or 'published only'})"))
    if not out:
        return '<p class="empty">No run and no published point with a parameter count: nothing to plot.</p>'
    note = ("<p class=\"note\">One filled circle per method and seed (ours), open squares: the papers' rows "
            "(parameter counts only; on the paper's model, which may not be ours: compare shapes, not "
            "absolute heights). Dashed steps: the frontier (no point cheaper and at least as good); circled "
            "marks lie on it. Hover a mark for its run; click it to open the run's record below.</p>")
    return note + "".join(out)


# ---------------------------------------------------------------------------------------------- entry points

def write_report_page(path: Path, spec: Any, paper: Any, cells: Sequence[dict[str, Any]],
                      sources: Sequence[Any]) -> Path:
    """``make report``'s page: the report's cells, its figure's panels, LoDA-vs-LoRA style items."""
    from lodabench.results.report_cells import published_count

    runs = RunIndex(path.parent)
    with_runs = [(s.name, s.runs_dir, s.rows, s.model_text or "the paper's model") for s in sources]
    have = sum(1 for c in cells if c.get("source") == "paper setting" and c.get("n"))
    intro = (f"<p>Generated by <code>make report PAPER={_esc(spec.key)}</code> from the published tables and the "
             f"run records; the Markdown report beside it (<code>{_esc(spec.key)}.md</code>) holds the claims and "
             f"notes. {len([c for c in cells if c.get('source') == 'paper setting'])} published cells, {have} with "
             "a run of ours on the paper's setting; a grid on another model is not a reproduction.</p>")
    prefer = ((spec.key, "lora"),) + item_view.PAIRS if spec.key != "lora" else (("lora", "ft"),) + item_view.PAIRS
    sections = {
        "published-vs-ours": ("Published vs ours", table_html(cells, runs)),
        "pareto": ("Quality against cost (Pareto)", pareto_html(
            _panels(spec.panels, sources), with_runs, paper.to_dict("records"), published_count, runs)),
        "items": ("Item-level comparison", item_view.section([(n, d, r) for n, d, r, _ in with_runs], prefer)),
    }
    atomic_write_text(path, page(f"Reproduction report: {spec.title}", intro, sections, runs))
    return path


def _panels(spec_panels: Sequence[tuple[str, str]], sources: Sequence[Any]) -> list[tuple[str, str]]:
    """The figure's panels, then each other dataset our sources ran (its primary metric)."""
    seen = {d for d, _ in spec_panels}
    more = [(r.data, primary_metric(r.data)) for s in sources for r in s.rows
            if r.data not in seen and task_metrics(r.data) and not seen.add(r.data)]
    return list(spec_panels) + more


def tables_records(rows: Sequence[Any], cmp: Any) -> list[dict[str, Any]]:
    """``lodabench tables``' lines: each compare line (published beside ours), then rows no published
    number matched, one line per metric the task declares."""
    from lodabench.results.cells import make_cell
    from lodabench.results.paper import display_scale

    out, matched = [], set()
    for x in ([] if cmp is None else cmp.to_dict("records")):
        matched.add(x.get("our_row"))
        other = x.get("setting") == "another model" and x.get("n")
        if other:   # as report_cells.cell_records: no test against a number on another model
            x = {**x, "verdict": DIFFERENT_MODEL, "welch_p": math.nan}
        out.append({**x, "source": x.get("setting") or "paper", "row": x.get("row_label"),
                    "our_model": x.get("ours_model"), "delta": x.get("diff"),
                    "published": _published(x), "run_dirs": x.get("our_row") or ""})
    for r in rows:
        if r.row_dir in matched or not task_metrics(r.data):
            continue
        for m in task_metrics(r.data).metrics:
            scale, decimals = display_scale(r.data, m.key)
            cell = make_cell(r, m.key, scale, decimals)
            out.append({"source": "ours only", "dataset": r.data, "our_model": r.model, "row": r.label,
                        "method": r.method, "approx": r.approx, "metric": m.key, "ours": cell.text,
                        "ours_mean": cell.mean, "n": cell.n, "run_dirs": r.row_dir})
    return out


def _published(x: dict[str, Any]) -> str:
    from lodabench.results.paper import display_scale, published_text
    return published_text(x, display_scale(x["dataset"], x["metric"], x.get("file"))[1])


def write_tables_page(path: Path, rows: Sequence[Any], runs_dir: Path, paper_dir: Path | None) -> Path:
    """``lodabench tables``' page: every row of ``runs_dir`` (beside the published numbers when read)."""
    from lodabench.results.paper import compare, load_paper
    from lodabench.results.report_cells import published_count

    datasets = list(dict.fromkeys(r.data for r in rows if task_metrics(r.data)))
    paper = load_paper(paper_dir) if paper_dir is not None else None
    paper = paper[paper["dataset"].isin(datasets)] if paper is not None and not paper.empty else None
    paper = paper if paper is not None and not paper.empty else None
    model = _other_model(rows, paper)
    cmp = compare(rows, paper, model=model) if paper is not None else None
    runs = RunIndex(path.parent)
    records = tables_records(rows, cmp)
    for rec in records:   # the runs column links seed directories: expand a row to its seeds
        rec["run_dirs"] = _seed_dirs(rows, runs_dir, rec.get("run_dirs") or "")
    published = paper.to_dict("records") if paper is not None else []
    src = [("ours", runs_dir, rows, ", ".join(sorted({r.model for r in rows})))]
    sections = {
        "published-vs-ours": ("Published vs ours", table_html(records, runs)),
        "pareto": ("Quality against cost (Pareto)", pareto_html(
            [(d, primary_metric(d)) for d in datasets], src, published, published_count, runs)),
        "items": ("Item-level comparison", item_view.section([("ours", runs_dir, rows)])),
    }
    intro = (f"<p>Generated by <code>lodabench tables</code> from the run records under "
             f"<code>{_esc(_rel(runs_dir))}</code>; the tables beside it hold the same numbers. Published "
             "numbers: those of the tasks these runs cover"
             + (f", read on {_esc(model)}, a model no paper used (not a reproduction)" if model else "") + ".</p>")
    atomic_write_text(path, page("lodabench tables", intro, sections, runs))
    return path


def _other_model(rows: Sequence[Any], paper: Any) -> str | None:
    """A grid on one model no paper used (the real-weight grids): published rows are read on it, as the
    reports read them (paper.compare's ``model``), each line's verdict then says it is not a reproduction."""
    models = {r.model for r in rows}
    if paper is None or len(models) != 1 or models & set(paper["model"]):
        return None
    return next(iter(models))


def _seed_dirs(rows: Sequence[Any], runs_dir: Path, row_dir: str) -> str:
    row = next((r for r in rows if r.row_dir == row_dir), None)
    if row is None:
        return ""
    return " ; ".join(str((runs_dir / row.row_dir / f"seed{s.seed}").resolve()) for s in row.seeds)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lodabench.results.html_page --runs-dir DIR --out FILE``: the page of any runs directory.
    A grid's runs (results/smollm2_e2e/runs, results/minilm_glue/runs) are read as its tables read them:
    only the runs its ``runs_summary.csv`` puts in them (report_cells.grid_rows)."""
    from lodabench.results.report_cells import grid_rows

    p = argparse.ArgumentParser(prog="lodabench.results.html_page", description=main.__doc__.split("\n")[0])
    p.add_argument("--runs-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="the .html file to write")
    p.add_argument("--paper-dir", type=Path, default=REPO_ROOT / "results" / "paper")
    args = p.parse_args(list(argv) if argv is not None else None)
    if not args.runs_dir.is_dir():
        raise LodabenchError(f"--runs-dir {args.runs_dir} is not a directory. Fix: pass a runs directory, "
                             "e.g. results/smollm2_e2e/runs")
    rows = grid_rows(args.runs_dir, args.runs_dir.parent / "runs_summary.csv")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print("wrote", write_tables_page(args.out, rows, args.runs_dir, args.paper_dir))
    return 0


__all__ = ["SECTION_IDS", "RunIndex", "page", "table_html", "write_report_page", "write_tables_page"]

if __name__ == "__main__":
    try:
        sys.exit(main())
    except LodabenchError as exc:
        print(f"lodabench.results.html_page: error: {exc}", file=sys.stderr)
        sys.exit(2)
