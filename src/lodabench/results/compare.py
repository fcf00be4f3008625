"""``lodabench compare``: paired seed x item tests of two systems' finished runs.

    lodabench compare --a RUN_DIR... --b RUN_DIR... [--test bootstrap|ar] [--trials N] [--seed S]
                      [--margin M | --margin METRIC=M ...] [--metrics M...] [--json]

Each side is one or more run directories (its seeds) of the same task. Items are matched by
identity on the items every run scored: a classification run's ``predictions.jsonl`` rows by their
``i`` (labels must agree), a generation run's ``hyp.txt`` lines by their reference group in
``refs.txt`` (repeated groups by order of appearance). Seeds are paired when both sides ran the
same seed numbers (the seed fixes data order and initialisation in this harness). The point estimates are the runs' recorded
``metrics.json`` values (mean over seeds; recomputed on the common items when a run scored others
too); the test and interval come from :mod:`lodabench.results.paired` on the per-item statistics of
:mod:`lodabench.scoring.sufficient`. docs/statistics.md says how to read the output.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lodabench.errors import ConfigError, DataError, LodabenchError
from lodabench.io import finite_json, read_json_file
from lodabench.results.paired import Sides, compare_metric

CI_TRIALS_AR = 2000  # bootstrap replicates behind ci95 / p_tost when --test ar (AR gives no interval)
DEFAULT_TRIALS = {"bootstrap": 2000, "ar": 10000}  # sacrebleu's paired-ar default is 10000 trials


@dataclass
class Run:
    """One run directory's items: ``items[key] = (output, gold)`` per scored file prefix."""

    path: Path
    task: str
    kind: str  # "classification" | "generation"
    recorded: dict[str, Any]
    scorer: str = ""
    mteval: str = "python"
    seed: Any = None
    files: dict[str, dict[Any, tuple[Any, Any]]] = field(default_factory=dict)


# --- reading run directories --------------------------------------------------------------------


def _config(path: Path) -> dict:
    import yaml

    cfg_path = path / "config.yaml"
    if not cfg_path.is_file():
        raise DataError(f"{path}: no config.yaml -- not a lodabench run directory. Fix: pass the directory "
                        "holding config.yaml and metrics.json (results/<suite>/runs/.../seedN)")
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    if not isinstance(cfg.get("data"), dict) or "name" not in cfg["data"]:
        raise DataError(f"{cfg_path}: no data.name; the run record is incomplete. Fix: re-run the run")
    return cfg


def _classification_files(path: Path) -> dict[str, dict]:
    files = {}
    for f in sorted(path.glob("predictions*.jsonl")):
        prefix = "" if f.name == "predictions.jsonl" else f.name[len("predictions_"):-len(".jsonl")] + "/"
        rows = {}
        for line_no, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            try:
                row = json.loads(line)
                rows[row["i"]] = (row["prediction"], row["label"])
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{f}:{line_no}: expected a JSON object with i, prediction, label") from None
        files[prefix] = rows
    return files


def _generation_files(path: Path) -> dict[str, dict]:
    from lodabench.scoring.textio import check_aligned, read_hypotheses, read_reference_groups

    hyps, refs = read_hypotheses(path / "hyp.txt"), read_reference_groups(path / "refs.txt")
    check_aligned(hyps, refs, f"hypotheses file {path / 'hyp.txt'}", f"references file {path / 'refs.txt'}")
    seen: dict[tuple, int] = {}
    rows = {}
    for hyp, group in zip(hyps, refs):
        key = tuple(group)
        seen[key] = seen.get(key, -1) + 1  # a repeated reference group: told apart by its order
        rows[(key, seen[key])] = (hyp, list(group))
    return {"": rows}


def load_run(path: str | Path) -> Run:
    path = Path(path)
    cfg = _config(path)
    if not (path / "metrics.json").is_file():
        raise DataError(f"{path}: no metrics.json -- the run has not finished scoring. Fix: finish or re-run it")
    recorded = read_json_file(path / "metrics.json", "re-run the run (metrics.json is written last)", DataError)
    data = cfg["data"]
    if (path / "hyp.txt").is_file() and (path / "refs.txt").is_file():
        return Run(path, data["name"], "generation", recorded, data.get("scorer") or data["name"],
                   data.get("mteval", "python"), cfg.get("seed"), _generation_files(path))
    files = _classification_files(path)
    if not files:
        raise DataError(f"{path}: neither hyp.txt + refs.txt (generation) nor predictions*.jsonl "
                        "(classification): the run kept no per-item outputs. Fix: re-run it (force=true)")
    return Run(path, data["name"], "classification", recorded, seed=cfg.get("seed"), files=files)


def paired_by_seed(runs_a: list[Run], runs_b: list[Run]) -> tuple[list[Run], list[Run], bool]:
    """Both sides ordered by seed, and whether their seeds are the same set (then paired, as
    stats.paired_ttest pairs them: a seed fixes the data order and initialisation of both)."""
    seeds_a, seeds_b = [r.seed for r in runs_a], [r.seed for r in runs_b]
    if None in seeds_a + seeds_b or len(set(seeds_a)) != len(seeds_a) or sorted(seeds_a) != sorted(seeds_b):
        return runs_a, runs_b, False
    return sorted(runs_a, key=lambda r: r.seed), sorted(runs_b, key=lambda r: r.seed), True


def _check_same_task(runs: list[Run]) -> None:
    kinds = {(r.task, r.kind, r.scorer, r.mteval) for r in runs}
    if len(kinds) > 1:
        listing = "; ".join(f"{r.path}: data.name={r.task}, scorer={r.scorer or '-'}, mteval={r.mteval}" for r in runs)
        raise ConfigError(f"compare needs runs of one task scored one way, got: {listing}")


# --- common items ----------------------------------------------------------------------------


def common_keys(runs: list[Run], prefix: str) -> list:
    """Item keys every run scored for ``prefix``, in the first run's order; golds must agree."""
    first = runs[0].files.get(prefix, {})
    keys = [k for k in first if all(k in r.files.get(prefix, {}) for r in runs[1:])]
    if not keys:
        raise DataError(f"no item is scored by all of {', '.join(str(r.path) for r in runs)}"
                        f"{f' ({prefix[:-1]})' if prefix else ''}: were they run on the same data?")
    for r in runs[1:]:
        bad = next((k for k in keys if r.files[prefix][k][1] != first[k][1]), None)
        if bad is not None:
            raise DataError(f"{r.path}: item {bad!r} has gold {r.files[prefix][bad][1]!r} but {runs[0].path} "
                            f"has {first[bad][1]!r}: the runs used different data (data.* or its files differ)")
    return keys


# --- the metrics' per-item statistics ------------------------------------------------------------


def _glue_names(run: Run, prefix: str) -> list[str]:
    from lodabench.scoring.glue import TASK_METRICS

    return [m for m in TASK_METRICS.get(run.task, ()) if f"{prefix}{m}" in run.recorded]


def _classification_stats(runs: list[Run], wanted: list[str] | None, notes: list[str]) -> dict:
    from lodabench.scoring.sufficient import glue_item_metrics

    out = {}
    for prefix in runs[0].files:
        names = [m for m in _glue_names(runs[0], prefix) if wanted is None or f"{prefix}{m}" in wanted]
        if not names:
            continue
        keys = common_keys(runs, prefix)
        preds = [[r.files[prefix][k][0] for k in keys] for r in runs]
        labels = [runs[0].files[prefix][k][1] for k in keys]
        for m, value in glue_item_metrics(runs[0].task, preds, labels, names).items():
            out[f"{prefix}{m}"] = (*value, len(keys), prefix)
    return out


def _java_or_note(names: list[str], java_names: tuple[str, ...], notes: list[str]) -> list[str]:
    if not set(names) & set(java_names):
        return names
    try:
        from lodabench.scoring.java import java_executable

        java_executable()
        return names
    except LodabenchError as exc:
        skipped = [m for m in names if m in java_names]
        notes.append(f"{', '.join(skipped)} skipped: they need Java (the METEOR 1.5 jar, the PTB tokenizer): {exc}")
        return [m for m in names if m not in java_names]


def generation_parts(scorer: str, mteval: str):
    """(metric names, the ones needing Java, the per-item statistics function) of a generation scorer
    (``data.scorer``; ``mteval``: E2E's BLEU/NIST variant, unused by DART's). attribute uses it too."""
    from lodabench.scoring import sufficient, sufficient_dart

    if scorer == "dart":
        return sufficient_dart.DART_METRICS, sufficient_dart.METEOR, sufficient_dart.dart_item_metrics
    return (tuple(sufficient.E2E_SCORES), sufficient.COCO,
            lambda hyps, refs, names: sufficient.generation_metrics(hyps, refs, names, mteval))


def _generation_stats(runs: list[Run], wanted: list[str] | None, notes: list[str]) -> dict:
    from lodabench.scoring.sufficient import unsupported_generation

    why = unsupported_generation(runs[0].scorer, runs[0].mteval)
    if why:
        notes.append(f"every metric skipped: {why}")
        return {}
    known, java_names, item_metrics = generation_parts(runs[0].scorer, runs[0].mteval)
    names = [m for m in known if m in runs[0].recorded and (wanted is None or m in wanted)]
    names = _java_or_note(names, java_names, notes)
    if not names:
        return {}
    keys = common_keys(runs, "")
    hyps = [[r.files[""][k][0] for k in keys] for r in runs]
    refs = [runs[0].files[""][k][1] for k in keys]
    return {m: (*v, len(keys), "") for m, v in item_metrics(hyps, refs, names).items()}


# --- the comparison ------------------------------------------------------------------------------


def _matches(recorded: float, recomputed: float, decimals: int | None) -> bool:
    """A rounded record (multi-bleu's 2 decimals, mteval's 4) is matched by the rounded recomputation."""
    if decimals is not None:
        return float(f"{recomputed:.{decimals}f}") == recorded
    return math.isclose(recorded, recomputed, rel_tol=1e-6, abs_tol=1e-9)


def mismatch_note(where: str, name: str, recorded: float, recomputed: float, decimals: int | None) -> str | None:
    """The note for a run whose recorded value its outputs do not give back (compare and attribute)."""
    if _matches(recorded, recomputed, decimals):
        return None
    return (f"{where}: {name} recorded {recorded!r} but recomputed {recomputed!r} from its outputs "
            "(the outputs or the scorer changed since scoring; `lodabench verify` says which)")


def _value(run: Run, name: str, metric, stats: np.ndarray, n_common: int, prefix: str, notes: list[str]) -> float:
    """The run's recorded value when it scored exactly the common items; else the recomputed one
    (unrounded, also where the scorer prints a rounded value)."""
    from lodabench.scoring.sufficient import full_sample

    recomputed = full_sample(metric, stats)
    recorded = run.recorded.get(name)
    if not isinstance(recorded, (int, float)) or len(run.files.get(prefix, {})) != n_common:
        return recomputed
    note = mismatch_note(str(run.path), name, recorded, recomputed, metric.decimals)
    notes += [note] if note else []
    return float(recorded)


def margin_for(margins: float | dict[str, float] | None, name: str) -> float | None:
    """One global margin, or the metric's own (``--margin BLEU=0.5``); None: no TOST for it."""
    return margins.get(name) if isinstance(margins, dict) else margins


def _one_metric(name: str, entry, runs_a: list[Run], runs_b: list[Run], args, notes: list[str]) -> dict:
    metric, stats, n_items, prefix = entry
    s_a = len(runs_a)
    margin = margin_for(args.margin, name)
    sides = Sides(stats[:s_a], stats[s_a:], args.paired_seeds)
    res = compare_metric(metric, sides, args.test, args.trials, args.seed, margin, CI_TRIALS_AR)
    a = float(np.mean([_value(r, name, metric, s, n_items, prefix, notes) for r, s in zip(runs_a, stats[:s_a])]))
    b = float(np.mean([_value(r, name, metric, s, n_items, prefix, notes) for r, s in zip(runs_b, stats[s_a:])]))
    out = {"a": a, "b": b, "delta": a - b, "ci95": res.ci95, "p": res.p, "test": res.test,
           "n_items": n_items, "n_seeds_a": s_a, "n_seeds_b": len(runs_b), "se": res.se, "trials": res.trials,
           "seeds_paired": args.paired_seeds, "seed": args.seed}
    if margin is not None:
        out.update({"margin": margin, "p_tost": res.p_tost, "equivalent": res.equivalent})
    return out


def _numeric(run: Run) -> list[str]:
    return [k for k, v in run.recorded.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def check_margins(margins: float | dict[str, float] | None, runs: list[Run]) -> None:
    """Per-metric margins must name metrics of metrics.json (a typo would silently skip TOST)."""
    if not isinstance(margins, dict):
        return
    valid = _numeric(runs[0])
    unknown = sorted(set(margins) - set(valid))
    if unknown:
        raise ConfigError(f"--margin {', '.join(unknown)}: no such metric in {runs[0].path / 'metrics.json'}; "
                          f"valid names (as in metrics.json): {', '.join(valid)}")


def _per_item(runs: list[Run], metrics: list[str] | None, notes: list[str], strict: bool = True) -> dict:
    per_item = (_classification_stats if runs[0].kind == "classification" else _generation_stats)(runs, metrics, notes)
    missing = [m for m in metrics or () if m not in per_item]
    if missing and metrics and strict:
        raise ConfigError(f"--metrics {' '.join(missing)}: not computable for these runs (recorded: "
                          f"{', '.join(_numeric(runs[0]))})" + (f"; {'; '.join(notes)}" if notes else ""))
    return per_item


def _namespace(paired: bool, test: str, trials: int | None, seed: int, margin) -> argparse.Namespace:
    return argparse.Namespace(paired_seeds=paired, test=test, trials=trials or DEFAULT_TRIALS.get(test, 2000),
                              seed=seed, margin=margin)


def compare_runs(dirs_a: list[str], dirs_b: list[str], test: str = "bootstrap", trials: int | None = None,
                 seed: int = 0, margin: float | dict[str, float] | None = None, metrics: list[str] | None = None,
                 notes: list[str] | None = None) -> dict[str, dict]:
    """``{metric: {...}}`` as ``compare --json`` prints it (library entry; notes collect the skips).
    ``margin``: one value for every metric, or ``{metric: margin}`` (metrics.json names and scales)."""
    notes = [] if notes is None else notes
    runs_a, runs_b, paired = paired_by_seed([load_run(p) for p in dirs_a], [load_run(p) for p in dirs_b])
    runs = runs_a + runs_b
    _check_same_task(runs)
    check_margins(margin, runs)
    args = _namespace(paired, test, trials, seed, margin)
    per_item = _per_item(runs, metrics, notes)
    return {name: _one_metric(name, entry, runs_a, runs_b, args, notes) for name, entry in per_item.items()}


def _slice(entry, lo: int, hi: int, base: int) -> tuple:
    metric, stats, n_items, prefix = entry
    return metric, [*stats[lo:hi], *stats[base:]], n_items, prefix


def compare_family(baseline: list[str], others: dict[str, list[str]], test: str = "bootstrap",
                   trials: int | None = None, seed: int = 0, margin: float | dict[str, float] | None = None,
                   metrics: list[str] | None = None, notes: list[str] | None = None,
                   strict: bool = True) -> dict[str, dict[str, dict]]:
    """``{name: compare_runs(others[name], baseline)}`` with the per-item statistics computed once for
    every run (one METEOR/PTB pass instead of one per pair), on the items *every* run scored; the
    reports' families of comparisons against one baseline use it. Same numbers as compare_runs
    whenever all runs scored the same items (a test checks it). ``strict=False``: a metric the
    outputs cannot give (no Java for METEOR) is left out, with a note, instead of an error."""
    notes = [] if notes is None else notes
    base = [load_run(p) for p in baseline]
    loaded = {k: [load_run(p) for p in dirs] for k, dirs in others.items()}
    runs = [r for rs in loaded.values() for r in rs] + base
    _check_same_task(runs)
    if strict:
        check_margins(margin, runs)
    per_item = _per_item(runs, metrics, notes, strict)
    out, start = {}, 0
    for name, rs in loaded.items():
        a, b, paired = paired_by_seed(rs, base)
        order = [rs.index(r) for r in a] + [len(rs) + base.index(r) for r in b]
        args = _namespace(paired, test, trials, seed, margin)
        sub = {m: _reorder(_slice(e, start, start + len(rs), len(runs) - len(base)), order)
               for m, e in per_item.items()}
        out[name] = {m: _one_metric(m, e, a, b, args, notes) for m, e in sub.items()}
        start += len(rs)
    return out


def _reorder(entry, order: list[int]) -> tuple:
    metric, stats, n_items, prefix = entry
    return metric, [stats[i] for i in order], n_items, prefix


# --- the command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lodabench compare", description=__doc__.split("\n\n")[0],
                                epilog="Reading the output: docs/statistics.md")
    p.add_argument("--a", nargs="+", required=True, metavar="RUN_DIR", help="system A's run dirs (one per seed)")
    p.add_argument("--b", nargs="+", required=True, metavar="RUN_DIR", help="system B's run dirs (one per seed)")
    p.add_argument("--test", choices=("bootstrap", "ar"), default="bootstrap",
                   help="p from the nested paired bootstrap (default) or approximate randomization")
    p.add_argument("--trials", type=int, default=None, help="resamples / AR trials (default 2000 / 10000)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the resampling (default 0)")
    p.add_argument("--margin", action="append", default=None, metavar="[METRIC=]M",
                   help="equivalence margin in the metric's own scale (adds TOST): one value for every metric, "
                        "or METRIC=M per metric, repeatable (--margin BLEU=0.005 --margin ROUGE_L=0.01)")
    p.add_argument("--metrics", nargs="+", default=None, help="metric names as in metrics.json (default: all)")
    p.add_argument("--json", action="store_true", help="print {metric: {...}} as JSON")
    return p


def _line(name: str, r: dict) -> str:
    eq = ""
    if "p_tost" in r:
        eq = f"  TOST(m={r['margin']:g}) p={r['p_tost']:.4f} {'equivalent' if r['equivalent'] else 'not shown equivalent'}"
    return (f"{name:<14} a={r['a']:.4f} b={r['b']:.4f} delta={r['delta']:+.4f} "
            f"ci95=[{r['ci95'][0]:+.4f}, {r['ci95'][1]:+.4f}] p={r['p']:.4g} ({r['test']}, {r['trials']} trials, "
            f"{r['n_items']} items, {r['n_seeds_a']}x{r['n_seeds_b']} seeds){eq}")


def _number(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--margin {flag}: {text!r} is not a number (the margin in the metric's own scale)") from None


def parse_margins(values: list[str] | None) -> float | dict[str, float] | None:
    """``--margin 0.5`` (every metric) or ``--margin BLEU=0.5 --margin ROUGE_L=0.01`` (per metric)."""
    if not values:
        return None
    named = [v for v in values if "=" in v]
    if not named:
        if len(values) > 1:
            raise ConfigError(f"--margin given {len(values)} times without metric names; give one value for "
                              "every metric, or METRIC=M for each (--margin BLEU=0.005 --margin ROUGE_L=0.01)")
        return _number(values[0], values[0])
    if len(named) != len(values):
        raise ConfigError("--margin: mix of a global value and METRIC=M; name the metric of every margin")
    pairs = [v.split("=", 1) for v in values]
    return {k.strip(): _number(m, v) for (k, m), v in zip(pairs, values)}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    notes: list[str] = []
    margin = parse_margins(args.margin)
    result = compare_runs(args.a, args.b, args.test, args.trials, args.seed, margin, args.metrics, notes)
    for note in notes:
        print(f"lodabench compare: note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(finite_json(result), indent=2, allow_nan=False))
    else:
        print("\n".join(_line(k, v) for k, v in result.items()) or "no metric to compare")
    return 0


if __name__ == "__main__":
    sys.exit(main())
