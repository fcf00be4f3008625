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

With per-item outputs stored, each row is also paired-tested against the paper's baseline row
(report_paired: Δ, CI, p, Holm over the table's family, TOST "on par"; ``<paper>_paired.csv``), and
an attribution section (report_attribution, ``<paper>_attribution.csv``) says how much of ours −
paper each re-scoring factor explains. ``--no-paired`` / ``--no-attribution`` leave them out.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lodabench.errors import LodabenchError
from lodabench.io import atomic_write_text, write_csv
from lodabench.results.paper import load_paper
from lodabench.results.report_cells import (Source, _rel, claim_records, cell_records, command_to_run, commands,
                                            grid_rows, grid_subspace, published_count, published_results,
                                            published_subspace, rows_results, seed_dirs, split_setting)
from lodabench.results.report_figure import figure, pareto
from lodabench.results.html_page import write_report_page
from lodabench.results import report_paired as RP
from lodabench.results.report_specs import DEFAULT_GRIDS, DIFFERENT_MODEL, SEEDS, SPECS, Grid, PaperSpec
from lodabench.results.runs import load_runs
from lodabench.results.vocab import method_label
from lodabench.results.setting import NOT_PAPER_SETTING
from lodabench.paths import REPO_ROOT

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
             apart: Source | None = None, paired: Sequence[dict[str, Any]] | None = None,
             settings: RP.PairedSettings | None = None, extra: Sequence[str] = ()) -> str:
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
             + (f" {len(apart.rows)} run settings of ours on the paper's model and data are **{NOT_PAPER_SETTING}** "
                "(cut short or another model) and are listed apart, at the end." if apart else ""), ""]
    lines += ["## Sources of our numbers", ""]
    src_rows = [["paper setting", "the paper's", f"`{_rel(sources[0].runs_dir)}`",
                 len({c['row'] for c in own if c['n']}), "a reproduction when present"]]
    for s in sources[1:]:
        src_rows.append([s.name, s.model_text, f"`{_rel(s.runs_dir)}`", len(s.rows),
                         f"another model (see `{_rel(grids[s.name].path)}/README.md`): the claims are read on "
                         "this model, not on the paper's"])
    if apart:
        src_rows.append([NOT_PAPER_SETTING, "the paper's name", f"`{_rel(apart.runs_dir)}`", len(apart.rows),
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
                     "n", "Δ", "verdict", f"paired vs {method_label(spec.baseline)}", "params (ours)", "checkpoint",
                     "command", "run dirs"],
                    [[c["table"], c["dataset"], c["paper_model"], c["row"], c["approx"], c["metric"], c["published"],
                      c["paper_params"], c["ours"], c["n"], _delta(c), c["verdict"], c.get("paired", ""),
                      c["ours_params"], c["checkpoint"], _short_cmd(c["command"]), _short_dirs(c["run_dirs"])]
                     for c in own]) + [""]
    for s in sources[1:]:
        mine = [c for c in cells if c["source"] == s.name and c["n"]]
        lines += [f"## The same rows on {s.model_text} ({s.name}): a different model, not a reproduction", "",
                  f"{len(mine)} published cells have a row of the same method on {s.model_text} "
                  f"(any Approx: a narrower model scales R and p; the grid's README gives its recipe). "
                  "Δ is printed for orientation only.", ""]
        lines += _table(["table", "dataset", "row (paper)", "metric", "published", "params (paper)",
                         f"ours ({s.model})", "n", "Δ", f"paired vs {method_label(spec.baseline)} ({s.model})",
                         "params (ours)", "checkpoint", "command", "run dirs"],
                        [[c["table"], c["dataset"], c["row"], c["metric"], c["published"], c["paper_params"], c["ours"],
                          c["n"], _delta(c), c.get("paired", ""), c["ours_params"], c["checkpoint"],
                          _short_cmd(c["command"]), _short_dirs(c["run_dirs"])] for c in mine]) + [""]
    if paired is not None and settings is not None:
        lines += RP.section(paired, sources, spec.baseline, settings, _table)
    lines += list(extra)
    if spec.subspace_file:
        lines += _subspace_md(paper_dir, spec.subspace_file, grids)
    if apart:
        lines += _apart_md(apart, [c for c in cells if c["source"] == NOT_PAPER_SETTING])
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


def build(paper_key: str, out_dir: Path, runs_dir: Path, grids: Sequence[Grid], paper_dir: Path,
          paired: RP.PairedSettings | None = RP.PairedSettings(), attribution: bool = True) -> dict[str, Path]:
    """Writes the report; ``paired=None`` leaves out the paired tests, ``attribution=False`` the attribution."""
    if paper_key not in SPECS:
        raise LodabenchError(f"unknown paper {paper_key!r}; choose one of {', '.join(SPECS)} "
                             "(make report PAPER=loda|lora|condlora).")
    spec = SPECS[paper_key]
    paper = load_paper(paper_dir)
    paper = paper[paper["file"].isin(spec.files)].reset_index(drop=True)
    missing = sorted(set(spec.files) - set(paper["file"]))
    if missing:
        raise LodabenchError(f"{paper_dir}: no published rows from {missing}; see results/paper/README.md.")
    datasets = set(paper["dataset"])
    on, off = split_setting(load_runs(runs_dir) if runs_dir.is_dir() else [], paper)
    sources = [Source("paper setting", runs_dir, on, None)]
    apart = Source(NOT_PAPER_SETTING, runs_dir, off, None)
    used = {}
    for g in grids:
        rows = [r for r in grid_rows(g.path / "runs", g.path / "runs_summary.csv") if r.data in datasets]
        if rows:
            sources.append(Source(g.name, g.path / "runs", rows, g.model, g.model_text))
            used[g.name] = g
    cells = [c for s in (*sources, apart) for c in cell_records(spec, paper, s)]
    tests = None if paired is None else [r for s in sources for r in RP.source_records(
        spec.files, paper, s, spec.baseline, paired, RP.load_margins(paper_dir))]
    if tests is not None:
        RP.annotate(cells, tests, spec.baseline)
    claim_recs = claim_records(spec, paper, sources, paper_dir, used, tests)   # never read on runs apart
    out_dir.mkdir(parents=True, exist_ok=True)
    png = figure(spec, paper, sources, out_dir / f"{spec.key}.png")
    paths = {"md": out_dir / f"{spec.key}.md", "csv": out_dir / f"{spec.key}.csv",
             "claims": out_dir / f"{spec.key}_claims.csv", "png": png}
    write_csv(paths["csv"], pd.DataFrame(cells))
    write_csv(paths["claims"], pd.DataFrame(claim_recs))
    if tests is not None:
        paths["paired"] = out_dir / f"{spec.key}_paired.csv"
        write_csv(paths["paired"], pd.DataFrame(tests, columns=RP.CSV_COLUMNS))
    extra: list[str] = []
    if attribution:
        from lodabench.results import report_attribution as RA
        recs = RA.attributions(spec.key, paper, sources, paper_dir, (paired or RP.PairedSettings()).trials)
        paths["attribution"] = out_dir / f"{spec.key}_attribution.csv"
        write_csv(paths["attribution"], pd.DataFrame(RA.flat(recs)))
        extra = RA.section(recs, _table)
    atomic_write_text(paths["md"], markdown(spec, cells, claim_recs, sources, png, paper_dir, used, apart,
                                            tests, paired, extra))
    paths["html"] = write_report_page(out_dir / f"{spec.key}.html", spec, paper, cells, sources)
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
    p.add_argument("--trials", type=int, default=RP.PairedSettings.trials,
                   help="bootstrap replicates of the paired tests and the attribution (default: %(default)s)")
    p.add_argument("--seed", type=int, default=RP.PairedSettings.seed, help="resampling seed (default: %(default)s)")
    p.add_argument("--no-paired", action="store_true", help="leave out the paired tests (faster)")
    p.add_argument("--no-attribution", action="store_true", help="leave out the attribution section (faster)")
    args = p.parse_args(list(argv) if argv is not None else None)
    grids = DEFAULT_GRIDS if args.grid is None else tuple(_grid_from_dir(d) for d in args.grid)
    paired = None if args.no_paired else RP.PairedSettings(trials=args.trials, seed=args.seed)
    paths = build(args.paper, args.out, args.runs_dir, grids, args.paper_dir, paired, not args.no_attribution)
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


# The report tool's public names, from the modules that now hold them (callers import them from here).
__all__ = ["DEFAULT_GRIDS", "DIFFERENT_MODEL", "SEEDS", "SPECS", "Grid", "PaperSpec", "Source", "build",
           "cell_records", "claim_records", "command_to_run", "figure", "grid_rows", "main", "markdown", "pareto",
           "published_count", "published_results", "rows_results"]


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LodabenchError as exc:
        print(f"lodabench.results.reports: error: {exc}", file=sys.stderr)
        sys.exit(2)
