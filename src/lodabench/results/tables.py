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
- ``paired__<table>__<model>.{csv,md}``: where a LoRA row and other rows of a dataset stored per-item
  outputs, each row against LoRA by the nested seed x item bootstrap (report_paired): delta, CI, p,
  Holm-adjusted p over the table's family, TOST "on par" at results/paper/margins/equivalence.csv;
- ``sweep__<data>__<model>__<key>.{png,pdf}``: metric vs rank / keep fraction, when a method was
  run at two or more values of ``r``, ``rank`` or ``keep``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from lodabench.errors import LodabenchError
from lodabench.paths import REPO_ROOT
from lodabench.results.layouts import generation_table, glue_table, params_table
from lodabench.results.paper import (ALPHA, ASSUMED_PAPER_N, PAPER_COLUMNS, PAPER_DISPLAY, PAPER_SPREAD,
                                     SUBSPACE_COLUMNS, Spread, Verdict, compare, compare_markdown, display_scale,
                                     load_paper, load_paper_subspace, match_rows, published_text, welch_verdict)
from lodabench.results.plots import sweep_plots
from lodabench.results.html_page import write_tables_page
from lodabench.results.report_paired import PairedSettings, paired_tables
from lodabench.results.cells import SELECTED_ON_TEST, _footnotes, cost_means, make_cell
from lodabench.results.render import DAGGER, MISSING, PAPER_MB, STD_NOTE, Cell, _num, _write, fmt_params
from lodabench.results.runs import Row, Seed, add_expected, load_runs
from lodabench.results.setting import NOT_PAPER_SETTING, paper_setting_gaps
from lodabench.results.stats import paired_ttest, summarize
from lodabench.results.vocab import GENERATION_TABLES, GLUE_ORDER

# ----------------------------------------------------------------------------------------------
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
          params_csv: Path | None = None, compare_mode: str = "auto",
          paired: PairedSettings | None = PairedSettings()) -> dict[str, list[Path]]:
    """Write every table (and plots) for the runs found; returns {table name: files written}.
    Without a runs directory only ``sweeps`` gives rows (each missing): a to-do list in the papers' layout.
    ``paired``: the seed x item tests against LoRA (report_paired.paired_tables); None leaves them out."""
    rows = load_runs(runs_dir) if runs_dir.is_dir() or not sweeps else []
    if sweeps:
        rows = add_expected(rows, sweeps)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for data, (stem, _) in GENERATION_TABLES.items():
        for model in sorted({r.model for r in rows if r.data == data}):
            df, md, tex = generation_table(rows, data, model)
            written[f"{stem}__{model}"] = _write(out_dir, f"{stem}__{model}", df, md, tex)
    glue_tasks = set(GLUE_ORDER)
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
    if paired is not None:
        written.update(paired_tables(rows, runs_dir, out_dir, paper_dir, paired))
    if plots:
        written["plots"] = sweep_plots(rows, out_dir)
    written["html"] = [write_tables_page(out_dir / "tables.html", rows, runs_dir, paper_dir if compare_mode != "off" else None)]
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
    p.add_argument("--no-paired", action="store_true",
                   help="leave out paired__*.{csv,md} (seed x item tests against LoRA, Holm per table)")
    p.add_argument("--paired-trials", type=int, default=PairedSettings.trials,
                   help="bootstrap replicates of the paired tests; default %(default)s")
    p.add_argument("--paired-seed", type=int, default=PairedSettings.seed, help="their resampling seed; default %(default)s")
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
                    params_csv=args.params_csv, compare_mode=args.compare or "auto",
                    paired=None if args.no_paired else PairedSettings(trials=args.paired_trials, seed=args.paired_seed))
    for name, paths in written.items():
        md = next((q for q in paths if q.suffix == ".md"), None)
        if name == "compare":
            print(compare_markdown(pd.read_csv(paths[0]), matched_only=True))
        elif md is not None and name != "params":
            print(md.read_text(encoding="utf-8"))
    print("wrote:", *(str(q) for paths in written.values() for q in paths), sep="\n  ")
    return 0


# The table tool's public names, from the modules that now hold them (callers import them from here).
__all__ = ["ALPHA", "ASSUMED_PAPER_N", "Cell", "DAGGER", "MISSING", "NOT_PAPER_SETTING", "PAPER_COLUMNS", "PAPER_DISPLAY",
           "PAPER_MB", "PAPER_SPREAD", "REPO_ROOT", "Row", "SELECTED_ON_TEST", "STD_NOTE", "SUBSPACE_COLUMNS", "Seed",
           "Spread", "Verdict", "_footnotes", "_write", "add_expected", "build", "compare", "compare_markdown",
           "cost_means", "display_scale", "find_row", "fmt_params", "generation_table", "glue_table", "load_paper",
           "load_paper_subspace", "load_runs", "main", "make_cell", "match_rows", "paper_setting_gaps", "params_table",
           "published_text", "summarize", "sweep_plots", "ttest_report", "welch_verdict"]

if __name__ == "__main__":
    try:
        sys.exit(main())
    except LodabenchError as exc:
        print(f"lodabench tables: error: {exc}", file=sys.stderr)
        sys.exit(2)
