"""``lodabench attribute RUN_DIR... --paper loda|lora|condlora``: the command line of
:mod:`lodabench.results.attribute` (its text rendering and ``--json``), kept apart so that module
stays the computation alone."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from lodabench.results import attribute as attribution
from lodabench.io import finite_json


# --- the command line ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lodabench attribute", description=attribution.__doc__.split("\n\n")[0],
                                epilog="The factors, their order and how to read the output: docs/statistics.md")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="one configuration's run dirs (its seeds)")
    p.add_argument("--paper", required=True, choices=("loda", "lora", "condlora"))
    p.add_argument("--metric", default=None, help="metric name as in metrics.json (default: the dataset's main one)")
    p.add_argument("--paper-dir", type=Path, default=None, help="published tables (default results/paper)")
    p.add_argument("--data-root", type=Path, default=None, help="data root holding e2e/ and e2e_lora/ (reference text)")
    p.add_argument("--trials", type=int, default=attribution.TRIALS, help="bootstrap replicates (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap")
    p.add_argument("--json", action="store_true", help="print the decomposition as JSON")
    return p


def _num(x: float | None, ci: list[float] | None = None) -> str:
    text = "n/a" if x is None or not math.isfinite(x) else f"{x:+.3f}"
    return text + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else " [no CI]")


def render(r: dict[str, Any]) -> str:
    p = r["paper"]
    lines = [f"{r['metric']} (x{r['scale']:g}, the paper's scale): ours {r['ours']:.3f} over {r['n_seeds']} seeds x "
             f"{r['n_items']} items; paper {p['value']:g} ({p['table']}, {p['row']}, {p['model']}"
             f"{'' if p.get('metric', r['metric']) == r['metric'] else ', its ' + p['metric']}); "
             f"ours - paper = {r['gap']:+.3f}",
             f"Factors applied one after another in this order: {' -> '.join(r['order'])}. Each explains the change "
             "it makes given the earlier ones; 'alone' is its effect applied by itself; they interact, so the "
             "shares depend on the order.",
             f"paper protocol: {p['protocol']}"]
    for f in r["factors"]:
        what = f"{f['ours']} -> {f['paper']}"
        if f["status"] in ("already", "not applicable"):
            lines.append(f"  {f['factor']:<15} {f['status']} ({what}){': ' + f['note'] if f['note'] else ''}")
        elif f["status"] == "not evaluable":
            lines.append(f"  {f['factor']:<15} NOT EVALUATED ({what}): {f['note']}; its share stays in the remainder")
        else:
            lines.append(f"  {f['factor']:<15} explains {_num(f['explains'], f['ci95'])}; alone "
                         f"{_num(f['alone'], f['alone_ci95'])} ({what}{'; ' + f['note'] if f['note'] else ''})")
    lines += [f"  explained by re-scoring: {_num(r['explained'], r['explained_ci95'])}; interaction (sequential - sum "
              f"of alone): {r['interaction']:+.3f}",
              f"  remainder (training, model, data, seeds; paper's own error not included): "
              f"{_num(r['remainder'], r['remainder_ci95'])}"]
    lines += [f"  variant, not in the chain: {k} = {v if isinstance(v, str) else f'{v:.3f}'} on our outputs"
              for k, v in r.get("variants", {}).items()]
    return "\n".join(lines + [f"note: {n}" for n in r["notes"]])


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result = attribution.attribute(args.runs, args.paper, args.metric, args.paper_dir, args.data_root, args.trials, args.seed)
    print(json.dumps(finite_json(result), indent=2, allow_nan=False) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
