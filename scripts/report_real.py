"""`python scripts/real_weights.py report GRID`: run records -> everything in results/<grid>/.

Reads ONLY the run records under results/<grid>/runs (and, for the majority-class baseline, the
official dev labels). Writes:

* ``lr_selection.{json,md}``   the held-out losses and the learning rate each family got per task;
* ``runs_summary.csv``         one line per run record (status, metric, held-out loss, wall time, cost_*, ...);
* the table(s), via the table tool (``lodabench.results.tables``): ``glue__minilm-l6.{csv,md,tex}`` (CondLoRA
  Table 2 layout) or ``table1_e2e__smollm2-135m.{csv,md,tex}`` (LoDA Table 1 layout), and
  ``params.{csv,md,tex}``; rows of the selection runs at the losing lr are left out of the tables
  (they are in lr_selection.md), and the ``trainer.lr=...`` override is not shown in the label
  (it is per task, in lr_selection.md). Methods with no run yet appear with ``missing`` cells;
* ``ttests.{csv,md}``          paired t-tests (scipy ttest_rel over shared seeds): every method vs LoRA,
                               R-/S-LoDA vs LoDA;
* ``baselines.md``             majority class on dev (GLUE) / the untuned model (E2E) beside each method;
* ``status.md``                chunks complete / remaining, wall time per run and in total;
* the block between the GENERATED markers in ``README.md``.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from lodabench.results import tables as T
from lodabench.results.vocab import method_label, primary_metric
from lodabench.errors import LodabenchError
from lodabench.io import atomic_write_text, write_csv
from lodabench.train.phase_cost import cost_columns  # runs_summary.csv: cost_* columns, blank for older records
from lodabench.results.stats import paired_ttest, summarize

# The csv module's default line end, which the committed results/*/runs_summary.csv etc. were written with.
CRLF = "\r\n"

BEGIN, END = "<!-- BEGIN GENERATED (scripts/real_weights.py report) -->", "<!-- END GENERATED -->"


def _lr_of(overrides: list[str]) -> str | None:
    return next((o.split("=", 1)[1] for o in overrides if o.startswith("trainer.lr=")), None)


def _family(grid, method: str) -> str | None:
    return next((m.family for m in grid.methods if m.name == method), None)


def _fmt(x: float, d: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


# ----------------------------------------------------------------------------------------------

def selection(grid, rw) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for task in grid.tasks:
        for family in grid.lrs:
            lr, info = rw.chosen_lr(grid, task, family)
            out.setdefault(task, {})[family] = {"chosen": lr, **info}
    return out


def selection_md(sel: dict[str, dict[str, Any]]) -> str:
    lines = ["### Learning-rate selection (held-out split of TRAIN, never dev)", "",
             "| task | family | candidates | held-out loss per candidate (last epoch, seed 110) | chosen |",
             "|---|---|---|---|---|"]
    for task, fams in sel.items():
        for fam, s in fams.items():
            losses = s.get("heldout_loss")
            loss_txt = ", ".join(f"{lr}: {_fmt(v, 4) if v is not None else 'not run yet'}"
                                 for lr, v in losses.items()) if losses else s["rule"]
            lines.append(f"| {task} | {fam} | {', '.join(s['candidates'])} | {loss_txt} | "
                         f"{s['chosen'] or 'pending'} |")
    return "\n".join(lines) + "\n"


def load_rows(grid, rw, sel) -> list[T.Row]:
    """The table rows: main runs at the chosen lr (+ the E2E untuned baseline), lr override hidden."""
    runs = Path(rw.REPO) / grid.runs_dir
    rows = T.load_runs(runs) if runs.is_dir() else []
    keep: list[T.Row] = []
    for r in rows:
        lr = _lr_of(r.overrides)
        if any(o.startswith("trainer.epochs=0") for o in r.overrides):
            r.method = "untuned"
            r.method_cfg = {"name": "untuned"}
            r.params = 0
        else:
            fam = _family(grid, r.method)
            chosen = sel[r.data][fam]["chosen"] if fam else None
            if fam is None or lr is None or chosen is None or float(lr) != float(chosen):
                continue
        r.overrides = [o for o in r.overrides if not o.startswith(("trainer.lr=", "trainer.epochs=0"))]
        keep.append(r)
    # Methods of the grid with no run at all: one placeholder row so the table shows them as missing.
    have = {r.method for r in keep}
    for m in grid.methods:
        if m.name not in have:
            keep.append(T.Row(f"(no run yet)/{m.name}", grid.tasks[0], grid.model, m.name, {"name": m.name}, [],
                              expected=True))
    return keep


def _top_class_share(run_dir: Path) -> float | str:
    """Share of the dev set given the run's most frequent predicted class (1.0 = one class for every
    item: the classifier collapsed to a constant); "" for regression and generation runs."""
    path = run_dir / "predictions.jsonl"
    if not path.is_file():
        return ""
    preds = [json.loads(line)["prediction"] for line in path.read_text().splitlines() if line.strip()]
    if not preds or isinstance(preds[0], float):
        return ""
    return round(Counter(preds).most_common(1)[0][1] / len(preds), 4)


def _last_epoch_loss(train: dict[str, Any]) -> float | str:
    """The held-out (or dev) loss after the last epoch of a record's ``train`` block; "" if none."""
    dev = train.get("dev_loss") or {}
    return dev.get(str(max(map(int, dev)))) if dev else ""


def _head_input(cfg: dict[str, Any]) -> str:
    """model.pooler of a classification run; records older than the key used BERT's CLS pooler
    (lodabench.run.records.ADDED_KEYS). "–" for generation runs."""
    model = cfg.get("model") or {}
    return model.get("pooler", "cls") if model.get("kind") == "sequence_classification" else "–"


def summary_rows(grid, rw) -> list[dict[str, Any]]:
    out = []
    for name, jobs in rw.chunks(grid).items():
        rw.resolve(jobs)
        for j in jobs:
            rec = (j.record or {}) if j.run_dir else {}
            train = rec.get("train") or {}
            tp = rec.get("trainable_params") or {}
            m = rec.get("metrics") or {}
            out.append({"chunk": name, "kind": j.kind, "task": j.task, "method": j.method, "family": j.family,
                        "lr": j.lr or "", "seed": j.seed, "status": j.status if j.run_dir else "needs-selection",
                        "metric": grid.metric[j.task], "value": m.get(grid.metric[j.task], ""),
                        "heldout_or_dev_loss_last_epoch": _last_epoch_loss(train),
                        "train_steps": train.get("global_step", ""),
                        "trainable": tp.get("trainable_without_head", tp.get("trainable", "")),
                        "wall_time_s": rec.get("wall_time_s", ""), **cost_columns(rec),
                        "top_class_share": _top_class_share(rw.REPO / j.run_dir) if j.status == "complete" else "",
                        "run_dir": j.run_dir})
    # de-duplicate (a winning selection run is also a main job: it is in the tables)
    main_dirs = {x["run_dir"] for x in out if x["kind"] == "main" and x["run_dir"]}
    for x in out:
        x["in_tables"] = x["kind"] == "baseline" or x["run_dir"] in main_dirs
    seen, uniq = set(), []
    for x in out:
        key = x["run_dir"] or (x["chunk"], x["method"], x["seed"])
        if key in seen:
            continue
        seen.add(key)
        uniq.append(x)
    return uniq


def ttests(grid, rows: list[T.Row]) -> tuple[list[dict[str, Any]], str]:
    """Every method vs LoRA, and R-/S-LoDA vs LoDA (what the approximation of W_proj costs)."""
    pairs = [(m.name, "lora") for m in grid.methods if m.name != "lora"]
    pairs += [(a, "loda") for a in ("r_loda", "s_loda") if any(m.name == a for m in grid.methods)]
    recs, lines = [], ["### Paired t-tests (scipy.stats.ttest_rel over the seeds both runs have)", "",
                       "| task | A | B | metric | n | seeds | mean(A − B) | t | p |",
                       "|---|---|---|---|---|---|---|---|---|"]
    label = method_label
    for task in grid.tasks:
        metric = grid.metric[task]
        scale = 100.0 if task == "e2e" else 1.0   # E2E BLEU is stored on 0-1; GLUE metrics are x100 already
        by_method = {r.method: r for r in rows if r.data == task and r.seeds}
        for a, b in pairs:
            ra, rb = by_method.get(a), by_method.get(b)
            rec = {"task": task, "a": a, "b": b, "metric": metric, "n": 0, "seeds": "", "mean_diff": math.nan,
                   "t": math.nan, "p": math.nan, "note": ""}
            if ra is None or rb is None:
                rec["note"] = f"no run of {a if ra is None else b} yet"
            else:
                try:
                    res = paired_ttest(ra.values(metric, scale), rb.values(metric, scale), what=f"{task} {a} vs {b}")
                    rec.update(n=res.n, seeds=",".join(map(str, res.seeds)), mean_diff=res.mean_diff,
                               t=res.statistic, p=res.pvalue)
                except LodabenchError:
                    rec["note"] = "fewer than 2 shared complete seeds"
            recs.append(rec)
            lines.append(f"| {task} | {label(a)} | {label(b)} | {metric} | {rec['n']} | {rec['seeds'] or '–'} | "
                         f"{_fmt(rec['mean_diff'])} | {_fmt(rec['t'])} | "
                         f"{_fmt(rec['p'], 3) if rec['n'] else rec['note']} |")
    return recs, "\n".join(lines) + "\n"


def majority(task: str) -> float | None:
    """Dev-set score of always predicting the most frequent TRAIN label (x100), from the data files."""
    from lodabench.tasks import get_task
    from lodabench.paths import resolve_data_root
    from lodabench.scoring.glue import glue_metrics

    t = get_task({"name": task}, resolve_data_root())
    if t.is_regression:
        return None  # a constant prediction has no Pearson correlation
    top = Counter(r[2] for r in t.rows("train")).most_common(1)[0][0]
    dev = [r[2] for r in t.rows("dev")]
    return float(glue_metrics(task, [top] * len(dev), dev)[primary_metric(task)])


def baselines_md(grid, rows: list[T.Row], summ: list[dict[str, Any]]) -> str:
    lines = []
    if grid.name == "minilm_glue":
        lines += ["### Each method vs the majority-class baseline on dev (mean over complete seeds)", "",
                  "| method | " + " | ".join(grid.tasks) + " |", "|---|" + "---|" * len(grid.tasks)]
        maj = {t: majority(t) for t in grid.tasks}
        lines.append("| majority class (most frequent train label) | "
                     + " | ".join(_fmt(maj[t], 1) if maj[t] is not None else "n/a (regression)" for t in grid.tasks) + " |")
        for m in grid.methods:
            cells = []
            for t in grid.tasks:
                r = next((x for x in rows if x.data == t and x.method == m.name and x.seeds), None)
                s = summarize(list(r.values(primary_metric(t)).values())) if r else None
                if not s or not s.n:
                    cells.append("missing")
                    continue
                verdict = "" if maj[t] is None else (" (>)" if s.mean > maj[t] else " (NOT >)")
                cells.append(f"{_fmt(s.mean, 1)}{verdict} [n={s.n}]")
            lines.append(f"| {method_label(m.name)} | " + " | ".join(cells) + " |")
        lines += ["", "### Runs whose classifier predicts ONE class for every dev item (collapsed to a constant)",
                  "", "Seeds of each method whose predictions.jsonl holds a single class (`top_class_share` = 1.0 "
                  "in runs_summary.csv); such a run scores the majority or the minority rate by construction.", "",
                  "| method | " + " | ".join(grid.tasks) + " |", "|---|" + "---|" * len(grid.tasks)]
        for m in grid.methods:
            cells = []
            for t in grid.tasks:
                runs = {x["seed"]: x["top_class_share"] for x in summ
                        if x["task"] == t and x["method"] == m.name and x["in_tables"] and x["status"] == "complete"}
                shares = [v for v in runs.values() if v != ""]
                cells.append("missing" if not runs else "n/a (regression)" if not shares
                             else f"{sum(v == 1.0 for v in shares)} of {len(shares)}")
            lines.append(f"| {method_label(m.name)} | " + " | ".join(cells) + " |")
    else:
        lines += ["### Each method vs the untuned model (E2E BLEU x100, mean over complete seeds)", "",
                  "| method | BLEU | beats untuned? |", "|---|---|---|"]
        unt = next((r for r in rows if r.method == "untuned" and r.complete), None)
        ub = summarize(list(unt.values("BLEU", 100).values())) if unt else None
        lines.append(f"| untuned SmolLM2 (0 steps) | {_fmt(ub.mean, 1) if ub and ub.n else 'missing'} | – |")
        for m in grid.methods:
            r = next((x for x in rows if x.method == m.name and x.seeds), None)
            s = summarize(list(r.values("BLEU", 100).values())) if r else None
            if not s or not s.n:
                lines.append(f"| {method_label(m.name)} | missing | – |")
                continue
            verdict = "n/a (untuned missing)" if not (ub and ub.n) else ("yes" if s.mean > ub.mean else "NO")
            lines.append(f"| {method_label(m.name)} | {_fmt(s.mean, 1)} [n={s.n}] | {verdict} |")
    return "\n".join(lines) + "\n"


def diagnostics_rows(grid, rw) -> list[dict[str, Any]]:
    """Every complete record under results/<grid>/diagnostics/ (runs that informed a recipe and are in
    no table): what it changed and what it scored, read from its record."""
    root = grid.out_dir / "diagnostics"
    out = []
    for rec_path in sorted(root.glob("**/record.json")) if root.is_dir() else []:
        rec = json.loads(rec_path.read_text())
        if rec.get("status") != "complete":
            continue
        run_dir = rec_path.parent
        cfg, train, m = rec.get("config") or {}, rec.get("train") or {}, rec.get("metrics") or {}
        task = (cfg.get("data") or {}).get("name", "?")
        metric = grid.metric.get(task, "")
        out.append({"folder": str(run_dir.relative_to(root)), "task": task,
                    "method": (cfg.get("method") or {}).get("name", "?"),
                    "head": _head_input(cfg),
                    "lr": (cfg.get("trainer") or {}).get("lr", ""), "epochs": (cfg.get("trainer") or {}).get("epochs", ""),
                    "seed": rec.get("seed", ""), "train_steps": train.get("global_step", ""),
                    "heldout_loss_last_epoch": _last_epoch_loss(train),
                    "metric": metric, "value": m.get(metric, ""),
                    "top_class_share": _top_class_share(run_dir), "wall_time_s": rec.get("wall_time_s", "")})
    return out


def diagnostics_md(rows: list[dict[str, Any]], grid_name: str) -> str:
    lines = ["# Diagnostic runs (in no table)", "",
             "_Generated from the records below this folder by `python scripts/real_weights.py report "
             f"{grid_name}`; do not edit by hand. Why each was run: ../README.md._", "",
             "| folder | task | method | head | lr | epochs | steps | held-out loss | metric | value (x100) | "
             "top class share | wall min |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in rows:
        value = _fmt(float(x["value"]), 1) if x["value"] != "" else "–"
        loss = _fmt(float(x["heldout_loss_last_epoch"]), 3) if x["heldout_loss_last_epoch"] != "" else "–"
        lines.append(f"| `{x['folder']}` | {x['task']} | {x['method']} | {x['head']} | {x['lr']} | {x['epochs']} | "
                     f"{x['train_steps']} | {loss} | {x['metric']} | {value} | {x['top_class_share'] or '–'} | "
                     f"{_fmt(float(x['wall_time_s']) / 60, 1) if x['wall_time_s'] != '' else '–'} |")
    return "\n".join(lines) + "\n"


def status_md(grid, rw, summ: list[dict[str, Any]]) -> str:
    """Per chunk, from its own job list (a winning selection run counts in both of its chunks)."""
    lines = ["### Chunks (resumable: re-running a chunk skips its complete runs)", "",
             "| chunk | runs | complete | mean wall time per complete run (min) | total wall time of its complete runs (min) | state |",
             "|---|---|---|---|---|---|"]
    counted: dict[str, float] = {}
    for name, jobs in rw.chunks(grid).items():
        rw.resolve(jobs)
        done = [j for j in jobs if j.run_dir and j.status == "complete"]
        walls = [float((j.record or {}).get("wall_time_s") or 0.0) for j in done]
        counted.update({j.run_dir: w for j, w in zip(done, walls)})
        state = "DONE" if len(done) == len(jobs) and jobs else ("not started" if not done else "PARTIAL")
        lines.append(f"| {name} | {len(jobs)} | {len(done)} | {_fmt(sum(walls) / len(walls) / 60, 1) if walls else '–'} | "
                     f"{_fmt(sum(walls) / 60, 1) if walls else '–'} | {state} |")
    total = sum(counted.values())
    lines += ["", f"Total wall time of the {len(counted)} distinct complete runs: {_fmt(total / 60, 1)} min "
              "(record.json wall_time_s; the runs shared 2 CPU cores with other work, so these are upper bounds)."]
    return "\n".join(lines) + "\n"


def budget_md(grid, rw, summ: list[dict[str, Any]]) -> str:
    """Per task: what one run trains (from its records) and the measured wall time per run."""
    lines = ["### Budget per run (from the complete records; wall time measured on the shared 2-core machine)", "",
             "| task | fit examples | epochs | optimizer steps | max length | head input | method family | complete runs | "
             "wall min per run (mean, min–max) |", "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for x in summ:
        if x["status"] == "complete" and x["run_dir"]:
            groups[(x["task"], x["family"])].append(x)
    for (task, fam), xs in sorted(groups.items()):
        rec = json.loads((Path(rw.REPO) / xs[0]["run_dir"] / "record.json").read_text())
        cfg, train = rec.get("config") or {}, rec.get("train") or {}
        walls = [float(x["wall_time_s"]) / 60 for x in xs if x["wall_time_s"] != ""]
        head = _head_input(cfg)
        lines.append(f"| {task} | {train.get('examples', '?')} | {cfg.get('trainer', {}).get('epochs', '?')} | "
                     f"{train.get('total_steps', '?')} | {cfg.get('trainer', {}).get('max_length', '?')} | {head} | {fam} | "
                     f"{len(xs)} | {_fmt(sum(walls) / len(walls), 1)} ({_fmt(min(walls), 1)}–{_fmt(max(walls), 1)}) |")
    if not groups:
        lines.append("| – | – | – | – | – | – | – | 0 | no complete run yet |")
    return "\n".join(lines) + "\n"


def report(grid, rw) -> int:
    out = grid.out_dir
    out.mkdir(parents=True, exist_ok=True)
    sel = selection(grid, rw)
    atomic_write_text(out / "lr_selection.json", json.dumps(sel, indent=2) + "\n")
    sel_md = selection_md(sel)
    atomic_write_text(out / "lr_selection.md", sel_md)

    summ = summary_rows(grid, rw)
    write_csv(out / "runs_summary.csv", summ, list(summ[0]) if summ else ["run_dir"], line_end=CRLF)

    rows = load_rows(grid, rw, sel)
    if grid.name == "minilm_glue":
        # CondLoRA Table 2 layout restricted to the 5 tasks run here (MNLI, QNLI, QQP do not fit the
        # CPU budget).
        df, md, tex = T.glue_table(rows, grid.model, tasks=grid.tasks)
        n = len(grid.tasks)
        md, tex = (x.replace("MNLI matched accuracy, ", "").replace("all 8 tasks", f"all {n} tasks run here")
                   for x in (md, tex))
        stem = f"glue__{grid.model}"
    else:
        df, md, tex = T.generation_table(rows, "e2e", grid.model)
        stem = f"table1_e2e__{grid.model}"
    T._write(out, stem, df, md, tex)
    pdf, pmd, ptex = T.params_table([r for r in rows if r.method != "untuned"], None)
    T._write(out, "params", pdf, pmd, ptex)

    trecs, tmd = ttests(grid, rows)
    write_csv(out / "ttests.csv", trecs, ["task", "a", "b", "metric", "n", "seeds", "mean_diff", "t", "p", "note"],
              line_end=CRLF)
    atomic_write_text(out / "ttests.md", tmd)
    bmd = baselines_md(grid, rows, summ)
    atomic_write_text(out / "baselines.md", bmd)
    diag = diagnostics_rows(grid, rw)
    if diag:
        write_csv(out / "diagnostics" / "summary.csv", diag, list(diag[0]), line_end=CRLF)
        atomic_write_text(out / "diagnostics" / "README.md", diagnostics_md(diag, grid.name))
    smd = status_md(grid, rw, summ) + "\n" + budget_md(grid, rw, summ)
    atomic_write_text(out / "status.md", smd)

    readme = out / "README.md"
    block = "\n".join([BEGIN, "", "_Everything in this block is generated from the run records by "
                       f"`python scripts/real_weights.py report {grid.name}`; do not edit by hand._", "",
                       smd, md, pmd, bmd, tmd, sel_md if grid.name == "minilm_glue" else "", END])
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        if BEGIN in text and END in text:
            text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    else:
        text = f"# {grid.name}\n\n{block}\n"
    atomic_write_text(readme, text)
    print(md)
    print(smd)
    print(f"wrote {out}/")
    return 0
