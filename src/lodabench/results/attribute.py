"""``lodabench attribute``: how much of ours − paper each no-retraining factor explains, with CIs.

    lodabench attribute RUN_DIR... --paper loda|lora|condlora [--metric M] [--paper-dir DIR]
                        [--data-root DIR] [--trials N] [--seed S] [--json]

The run directories are the seeds of one configuration. Their stored outputs are re-scored under
each counterfactual that needs no retraining, moving our pipeline one factor at a time to what the
paper did (:data:`PROTOCOLS`, each with its source), **in this fixed order** (the pipeline's own,
from the weights outward):

1. ``checkpoint``: which epoch's outputs (last, the best epoch on the reported set as LoRA, the
   better of epochs 5 and 10 as LoDA's R-/S-LoDA, the best on a held-out split as CondLoRA); needs
   the per-epoch outputs under ``<run>/epochs/<e>/`` (``selection.epochs``). The epoch is chosen
   once on the full sample and then held under resampling.
2. ``reference text`` (E2E): the official CSV text or LoRA's word-tokenized text, mapped reference
   by reference from ``<data root>/e2e/`` and ``<data root>/e2e_lora/`` (shared/data/MANIFEST.md
   1b). Only the references change: our hypotheses stay as generated (a model trained on LoRA's text
   would also write it; that needs retraining and stays in the remainder).
3. ``scorer``: E2E BLEU/NIST of measure_scores.py ``-p`` (Python mteval) or the Perl mteval script
   (``data.mteval=perl``); DART: LoRA's eval.py or the official run_eval_on_dart.sh, both
   recomputed from the stored outputs. Ours is the scorer of the attributed metrics.json key
   (``--metric official_BLEU``: the official script's, against the paper's BLEU, LoRA's); nltk BLEU
   has no official counterpart. sacrebleu's BLEU, the Perl script's (E2E) and the recorded official
   value (DART, for a LoRA-mode metric) are printed beside, as variants outside the chain.
4. ``aggregation``: how the seeds combine (mean, median, best), as the paper did.

Factor k explains ``e_k = V_{k-1} - V_k``, where ``V_k`` is our value with factors 1..k set as the
paper had them, so that ``ours - paper = sum_k e_k + remainder``; the remainder (``V_4 - paper``)
is what re-scoring cannot explain: training, model, data, seeds. Factors interact, so a factor's
share depends on the order: each factor's effect applied *alone* is printed too, and
``interaction = sum_k e_k - sum_k e_k(alone)``. CIs: the nested paired bootstrap of
:mod:`lodabench.results.paired` (items and seeds drawn once per replicate and shared by every
counterfactual), on the exact per-item statistics compare uses (:mod:`lodabench.results.attribute_stats`:
E2E in both mteval variants, DART in both modes, GLUE). Points are the unrounded recomputations
(they round to the recorded values where a scorer prints rounded ones; a run whose record they do
not give back is named in the notes). Only a state without per-item statistics (a plugin's scorer,
METEOR/ROUGE_L/CIDEr without Java) keeps its recorded values: a point, no CI, the reason in the
notes. The paper's own uncertainty is not in the intervals. A factor that cannot be evaluated
(files absent, Java absent) is reported as such with the reason, never filled in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lodabench.errors import ConfigError, DataError, LodabenchError
from lodabench.io import read_json_file
from lodabench.results.attribute_stats import (aggregate, ci as _ci, dart_scorer, java_missing, lower_is_better,
                                               paper_name, replicate_values, scored_name, shown as _shown, unsupported)

ORDER = ("checkpoint", "reference text", "scorer", "aggregation")
TRIALS = 2000


@dataclass(frozen=True)
class Protocol:
    """What a paper did for one dataset, per factor; None = not applicable to the task."""

    checkpoint: str            # last | best | best_of:5,10 | dev_best
    text: str | None           # lora | official (E2E only)
    scorer: str | None         # python | perl (E2E mteval); lora | official (DART)
    aggregate: str             # mean | median | best
    source: str


_LORA_GPT2 = ("LoRA App. D.3 (GPT-2): mean over 3 seeds, each run's best epoch; README: gpt2_decode.py references "
              "from data/e2e/*.txt (word-tokenized) scored by measure_scores.py -p; DART by its eval.py")
_LODA = ("LoDA §3 (reuses LoRA's E2E/DART pipeline, results/paper/README.md): R-/S-LoDA(+) the better of epochs 5 "
         "and 10 on the reported set; other rows: no selection stated (last); ± over seeds (mean)")


def protocol(paper: str, data: str, method: str) -> Protocol:
    """The paper's choices for ``data`` (and, for LoDA, the method's row)."""
    gen = data in ("e2e", "dart")
    text = "lora" if data == "e2e" else None
    scorer = {"e2e": "python", "dart": "lora"}.get(data)
    if paper == "loda" and gen:
        ckpt = "best_of:5,10" if method.startswith(("r_loda", "s_loda")) else "last"
        return Protocol(ckpt, text, scorer, "mean", _LODA)
    if paper == "lora" and gen:
        return Protocol("best", text, scorer, "mean", _LORA_GPT2)
    if paper == "lora":
        return Protocol("best", None, None, "median", "LoRA App. D.1-D.2 (RoBERTa): median over 5 seeds, best epoch")
    if paper == "condlora" and not gen:
        return Protocol("dev_best", None, None, "mean", "CondLoRA §3.1 / Table 2: best checkpoint on a held-out 10 % "
                        "of train; 'the average of three models'")
    raise ConfigError(f"--paper {paper}: publishes no {data} numbers. Fix: loda (e2e, dart), lora (e2e, dart, "
                      "GLUE) or condlora (GLUE)")


# --- our runs as they are ----------------------------------------------------------------------------


@dataclass
class Ours:
    """The configuration's seeds: items aligned by identity, and how each factor stands in our runs."""

    runs: list                       # compare.Run, one per seed
    keys: list                       # common item keys (compare.common_keys)
    prefix: str
    data: str
    model: str
    method: str
    method_cfg: dict
    text: str
    aggregate: str
    configs: list[dict] = field(default_factory=list)


def load_ours(dirs: list[str], prefix: str = "") -> Ours:
    from lodabench.results.compare import _check_same_task, _config, common_keys, load_run

    runs = [load_run(d) for d in dirs]
    _check_same_task(runs)
    cfgs = [_config(r.path) for r in runs]
    c = cfgs[0]
    return Ours(runs, common_keys(runs, prefix), prefix, c["data"]["name"], (c.get("model") or {}).get("name", ""),
                (c.get("method") or {}).get("name", ""), dict(c.get("method") or {}), c["data"].get("text", "official"),
                str((c.get("selection") or {}).get("aggregate") or "mean"), cfgs)


# --- states: one set of outputs, references, scorer and aggregation -----------------------------------


@dataclass(frozen=True)
class State:
    outputs: tuple                    # per seed: item outputs (hyps or predictions), aligned on ``gold``
    gold: tuple                       # per item: reference group or label
    scorer: str
    aggregate: str
    recorded: tuple = ()              # per seed: the value where it cannot be recomputed (point only)


def base_state(ours: Ours, metric: str) -> State:
    outs = tuple(tuple(r.files[ours.prefix][k][0] for k in ours.keys) for r in ours.runs)
    gold = tuple(_freeze(ours.runs[0].files[ours.prefix][k][1]) for k in ours.keys)
    scorer = {"e2e": ours.runs[0].mteval, "dart": dart_scorer(metric)}.get(ours.data, "")
    return State(outs, gold, scorer, ours.aggregate, tuple(_recorded(r.recorded, metric) for r in ours.runs))


def _freeze(g):
    return tuple(g) if isinstance(g, list) else g


def _recorded(rec: dict, name: str) -> float:
    v = rec.get(name)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


# --- per-item statistics and the bootstrap: attribute_stats.py ----------------------------------------


# --- the factors: each maps a state to the paper's choice, or says why it cannot ---------------------


@dataclass
class Step:
    factor: str
    ours: str
    paper: str
    status: str                       # applied | already | not evaluable | not applicable
    note: str = ""


def _epoch_dirs(run) -> dict[int, Path]:
    root = run.path / "epochs"
    return {int(p.name): p for p in root.iterdir() if p.is_dir() and p.name.isdigit()} if root.is_dir() else {}


def _our_epoch(run) -> str:
    sel = run.recorded.get("selection") or {}
    return f"epoch {sel['selected_epoch']} ({sel.get('rule')})" if "selected_epoch" in sel else "last"


def _pick_epoch(dirs: dict[int, Path], rule: str, metric: str) -> int | None:
    """The epoch the paper's rule picks, or None when an epoch (or value) it needs is not stored."""
    if rule == "last":
        return max(dirs)
    wanted = [int(e) for e in rule.split(":", 1)[1].split(",")] if rule.startswith("best_of:") else sorted(dirs)
    values = {}
    for e in wanted:
        m = read_json_file(dirs[e] / "metrics.json", "re-run the run's epoch scoring", DataError) if e in dirs else {}
        v = (m.get("dev_metrics") or {}).get(metric) if rule == "dev_best" else m.get(metric)
        if not isinstance(v, (int, float)):
            return None
        values[e] = float(v)
    sign = 1.0 if lower_is_better(metric) else -1.0
    return min(values, key=lambda e: (sign * values[e], e))  # ties: the earlier epoch, as selection.pick


def _epoch_outputs(ours: Ours, run, epoch_dir: Path) -> tuple | None:
    from lodabench.results.compare import _classification_files, _generation_files

    files = (_classification_files if run.kind == "classification" else _generation_files)(epoch_dir)
    rows = files.get(ours.prefix, {})
    if any(k not in rows for k in ours.keys):
        return None
    return tuple(rows[k][0] for k in ours.keys)


def checkpoint_step(ours: Ours, state: State, proto: Protocol, metric: str) -> tuple[State, Step]:
    ours_text = ", ".join(sorted({_our_epoch(r) for r in ours.runs}))
    step = Step("checkpoint", ours_text, proto.checkpoint, "already")
    dirs = [_epoch_dirs(r) for r in ours.runs]
    if not all(dirs):
        if proto.checkpoint == "last" and ours_text == "last":
            return state, step
        lacking = [r.path for r, d in zip(ours.runs, dirs) if not d]
        step.status, step.note = "not evaluable", (
            f"{len(lacking)} of {len(dirs)} runs (e.g. {_shown(lacking[0])}) keep no per-epoch outputs under epochs/<e>/ "
            "(selection.epochs=[...] with trainer.keep_epoch_checkpoints=true keeps them)")
        return state, step
    picks = [_pick_epoch(d, proto.checkpoint, metric) for d in dirs]
    if None in picks:
        step.status, step.note = "not evaluable", f"the epochs the rule {proto.checkpoint} needs (with {metric}" \
            f"{' on the held-out split, dev_metrics' if proto.checkpoint == 'dev_best' else ''}) are not all stored"
        return state, step
    outs = [_epoch_outputs(ours, r, d[e]) for r, d, e in zip(ours.runs, dirs, picks)]
    if None in outs:
        step.status, step.note = "not evaluable", "an epoch's outputs do not cover the run's items"
        return state, step
    recorded = tuple(_recorded(read_json_file(d[e] / "metrics.json", "re-run", DataError), metric)
                     for d, e in zip(dirs, picks))
    step.status, step.note = "applied", "epochs chosen per seed: " + ", ".join(map(str, picks))
    return replace(state, outputs=tuple(outs), recorded=recorded), step


def _text_map(ours: Ours, data_root: Path | None) -> tuple[dict[str, str] | None, str]:
    from lodabench.tasks import e2e

    split = ours.configs[0]["data"].get("eval_split", "test")
    if data_root is None:
        return None, "no data root (--data-root, paths.data_root or LODABENCH_DATA_ROOT)"
    official = data_root / "e2e" / e2e.FILES[split]
    lora = data_root / e2e.LORA_DIR / e2e.LORA_FILES[split]
    missing = [str(p) for p in (official, lora) if not p.is_file()]
    if missing:
        return None, f"{' and '.join(missing)} absent (the data root must hold both texts)"
    rows, pairs = e2e.read_e2e_csv(official), e2e.read_lora_txt(lora)
    if len(rows) != len(pairs):
        return None, f"{official} has {len(rows)} rows but {lora} {len(pairs)}: not the same rows"
    return {ref.strip(): p.target for (_, ref), p in zip(rows, pairs)}, (f"mapped by row from <data root>/{official.relative_to(data_root)} and "
                                                                f"<data root>/{lora.relative_to(data_root)}")


def text_step(ours: Ours, state: State, proto: Protocol, data_root: Path | None) -> tuple[State, Step]:
    step = Step("reference text", ours.text if ours.data == "e2e" else "-", proto.text or "-", "not applicable")
    if proto.text is None or ours.data != "e2e":
        step.note = "only E2E has two reference texts"
        return state, step
    if ours.text == proto.text:
        step.status = "already"
        return state, step
    mapping, why = _text_map(ours, data_root)
    if ours.text != "official" or mapping is None:
        step.status, step.note = "not evaluable", why if mapping is None else f"data.text={ours.text}: no map back"
        return state, step
    unmapped = [r for g in state.gold for r in g if r not in mapping]
    if unmapped:
        step.status, step.note = "not evaluable", f"{len(unmapped)} references not in the official file, e.g. {unmapped[0][:60]!r}"
        return state, step
    gold = tuple(tuple(mapping[r] for r in g) for g in state.gold)
    step.status, step.note = "applied", why + "; hypotheses unchanged"
    return replace(state, gold=gold, recorded=tuple(math.nan for _ in state.recorded)), step


def scorer_step(ours: Ours, state: State, proto: Protocol, metric: str) -> tuple[State, Step]:
    step = Step("scorer", state.scorer or "-", proto.scorer or "-", "not applicable")
    if proto.scorer is None or (ours.data == "e2e" and metric not in ("BLEU", "NIST")):
        step.note = "one definition of this metric (mteval variants score only E2E BLEU/NIST)"
        return state, step
    if ours.data == "dart" and paper_name("dart", metric) == "BLEU_NLTK":
        step.note = "BLEU_NLTK: LoRA's eval.py alone computes it (run_eval_on_dart.sh has no nltk BLEU)"
        return state, step
    if state.scorer == proto.scorer:
        step.status = "already"
        return state, step
    step.status = "applied"
    if ours.data == "dart":
        step.note = (f"{scored_name('dart', proto.scorer, metric)} re-scored from the stored outputs: "
                     + _DART_SCORERS[proto.scorer])
    return replace(state, scorer=proto.scorer, recorded=tuple(math.nan for _ in state.recorded)), step


_DART_SCORERS = {"lora": "eval.py -nr 6 (references padded with the first), nltk-tokenized METEOR/TER",
                 "official": "run_eval_on_dart.sh (3 references, METEOR -r 8, tercom)"}


def aggregation_step(ours: Ours, state: State, proto: Protocol) -> tuple[State, Step]:
    step = Step("aggregation", state.aggregate, proto.aggregate, "already")
    if state.aggregate != proto.aggregate:
        step.status = "applied"
        if len(state.outputs) < 3 and proto.aggregate == "median":
            step.note = f"median of {len(state.outputs)} seeds is their mean"
        return replace(state, aggregate=proto.aggregate), step
    return state, step


def _steps(ours: Ours, proto: Protocol, metric: str, data_root: Path | None) -> tuple:
    return (lambda s: checkpoint_step(ours, s, proto, metric), lambda s: text_step(ours, s, proto, data_root),
            lambda s: scorer_step(ours, s, proto, metric), lambda s: aggregation_step(ours, s, proto))


def _cannot_score(ours: Ours, state: State, metric: str) -> str | None:
    """Why a changed state has no value: its scorer has no per-item statistics, or the recomputation
    needs Java (METEOR, and E2E's ROUGE_L and CIDEr) and it is absent."""
    if ours.runs[0].kind == "classification" or all(map(math.isfinite, state.recorded)):
        return None
    return unsupported(ours) or java_missing(ours.data, scored_name(ours.data, state.scorer, metric))


def _apply(ours: Ours, fn, state: State, metric: str) -> tuple[State, Step]:
    new, step = fn(state)
    why = _cannot_score(ours, new, metric) if step.status == "applied" else None
    if why:
        step.status, step.note = "not evaluable", why
        return state, step
    return new, step


def chain(ours: Ours, proto: Protocol, metric: str, data_root: Path | None) -> tuple[list[State], list[Step]]:
    """States V_0 .. V_4 (factors applied one after another in ORDER) and each factor's step."""
    states, steps = [base_state(ours, metric)], []
    for fn in _steps(ours, proto, metric, data_root):
        state, step = _apply(ours, fn, states[-1], metric)
        states.append(state)
        steps.append(step)
    return states, steps


def alone(ours: Ours, proto: Protocol, metric: str, data_root: Path | None, k: int) -> State:
    """V_0 with only factor k applied (the effect without the others: for the interaction)."""
    return _apply(ours, _steps(ours, proto, metric, data_root)[k], base_state(ours, metric), metric)[0]


# --- the published cell -------------------------------------------------------------------------------


def published_cell(ours: Ours, paper: str, metric: str, paper_dir: Path) -> dict[str, Any]:
    """The paper's number for our dataset, method (and Approx) and metric, as the reports read it."""
    from lodabench.results import tables as T
    from lodabench.results.report_specs import SPECS   # not reports: it runs the attribution section

    spec = SPECS[paper]
    df = T.load_paper(paper_dir)
    df = df[df["file"].isin(spec.files) & (df["dataset"] == ours.data) & (df["metric"] == metric)]
    row = T.Row("", ours.data, ours.model, ours.method, ours.method_cfg, [])
    for model in dict.fromkeys([ours.model, *df["model"]]):  # ours first, then the paper's in its table order
        hits = [p for p in df.to_dict("records") if p["model"] == model
                and T.match_rows([row], p, None if model == ours.model else ours.model)]
        if hits:
            p = hits[0]
            scale = T.display_scale(ours.data, metric, p["file"])[0]
            return {"value": float(p["value"]), "scale": scale, "model": p["model"], "row": p["row_label"],
                    "file": p["file"], "table": p["table"], "same_model": p["model"] == ours.model}
    raise ConfigError(f"--paper {paper}: no published {metric} for data={ours.data} method={ours.method} "
                      f"({row.approx}) in {paper_dir} ({', '.join(spec.files)}). Fix: --metric one of "
                      f"{', '.join(sorted(set(df['metric']))) or 'none for this dataset'}, or another --paper")


# --- attribution ---------------------------------------------------------------------------------------


def attribute(dirs: list[str], paper: str, metric: str | None = None, paper_dir: Path | None = None,
              data_root: Path | None = None, trials: int = TRIALS, seed: int = 0) -> dict[str, Any]:
    """The decomposition of ours − paper for one metric (the ``--json`` object)."""
    from lodabench.paths import REPO_ROOT
    from lodabench.results.vocab import primary_metric, task_metrics

    if paper not in ("loda", "lora", "condlora"):
        raise ConfigError(f"--paper {paper!r}: loda, lora or condlora")
    prefix = metric.rsplit("/", 1)[0] + "/" if metric and "/" in metric else ""
    ours = load_ours(dirs, prefix)
    metric = metric or _default_metric(ours, primary_metric(ours.data) if task_metrics(ours.data) else "")
    proto = protocol(paper, ours.data, ours.method)
    pub = {**published_cell(ours, paper, paper_name(ours.data, metric), paper_dir or REPO_ROOT / "results" / "paper"),
           "metric": paper_name(ours.data, metric)}
    data_root = data_root if data_root is not None else _data_root(ours)
    states, steps = chain(ours, proto, metric, data_root)
    solo = [alone(ours, proto, metric, data_root, k) for k in range(len(ORDER))]
    points, reps, notes, per_seed = replicate_values(ours, states + solo, metric, trials, seed)
    result = _report(ours, proto, pub, metric, steps, points * pub["scale"], reps * pub["scale"], notes, trials)
    result["ours_per_seed"] = [float(v) * pub["scale"] for v in per_seed]
    result["variants"] = {k: v * pub["scale"] if isinstance(v, float) else v
                          for k, v in variants(ours, states[0], metric).items()}
    return result


def _default_metric(ours: Ours, primary: str) -> str:
    """The task spec's primary metric; for DART runs that scored only the official mode, its official_ key."""
    official = f"official_{primary}"
    if ours.data == "dart" and primary not in ours.runs[0].recorded and official in ours.runs[0].recorded:
        return official
    return primary


def variants(ours: Ours, state: State, metric: str) -> dict[str, float | str]:
    """Other scorers of the same outputs, outside the chain (point values, the state's aggregation)."""
    out: dict[str, float | str] = {}
    if ours.data == "e2e" and metric in ("BLEU", "NIST"):
        from lodabench.scoring.mteval import perl_bleu_nist

        refs = [list(g) for g in state.gold]
        perl = [perl_bleu_nist(list(o), refs)[metric] for o in state.outputs]
        out[f"Perl mteval-v13a (measure_scores.py without -p, 4 decimals)"] = _agg_point(perl, state, metric)
        if metric == "BLEU":
            out["sacrebleu corpus_bleu (13a, /100)"] = _agg_point(_sacrebleu(state), state, metric)
    if ours.data == "dart" and dart_scorer(metric) == "lora" and metric != "BLEU_NLTK":
        name = f"official_{metric}"
        values = [_recorded(r.recorded, name) for r in ours.runs]
        out["DART official scorer (" + name + ", recorded)"] = (
            _agg_point(values, state, metric) if all(map(math.isfinite, values)) else f"{name} not recorded")
    return out


def _agg_point(values, state: State, metric: str) -> float:
    return float(aggregate(np.asarray(values, dtype=float), state.aggregate, metric))


def _sacrebleu(state: State) -> list[float]:
    import sacrebleu

    width = max(len(g) for g in state.gold)
    streams = [[g[j] if j < len(g) else None for g in state.gold] for j in range(width)]  # None: no such ref
    return [sacrebleu.corpus_bleu(list(o), streams).score / 100.0 for o in state.outputs]


def _data_root(ours: Ours) -> Path | None:
    from lodabench.paths import resolve_data_root

    try:
        return resolve_data_root((ours.configs[0].get("paths") or {}).get("data_root"))
    except LodabenchError:
        return None


def _report(ours, proto, pub, metric, steps, points, reps, notes, trials) -> dict[str, Any]:
    k = len(ORDER)
    seq, solo = points[:k + 1], points[k + 1:]
    factors = []
    for i, step in enumerate(steps):
        e, e_alone = seq[i] - seq[i + 1], seq[0] - solo[i]
        factors.append({"factor": step.factor, "ours": step.ours, "paper": step.paper, "status": step.status,
                        "note": step.note, "explains": float(e), "ci95": _ci(reps[:, i] - reps[:, i + 1]),
                        "alone": float(e_alone), "alone_ci95": _ci(reps[:, 0] - reps[:, k + 1 + i])})
    explained = float(seq[0] - seq[k])
    interaction = explained - sum(f["alone"] for f in factors)
    gap = float(seq[0] - pub["value"])
    return {"metric": metric, "scale": pub["scale"], "paper": {**pub, "protocol": proto.source},
            "ours": float(seq[0]), "ours_ci95": _ci(reps[:, 0]), "gap": gap, "order": list(ORDER),
            "factors": factors, "explained": explained, "explained_ci95": _ci(reps[:, 0] - reps[:, k]),
            "interaction": float(interaction), "remainder": float(seq[k] - pub["value"]),
            "remainder_ci95": None if _ci(reps[:, k]) is None else [x - pub["value"] for x in _ci(reps[:, k])],
            "n_seeds": len(ours.runs), "n_items": len(ours.keys), "trials": trials, "notes": notes
            + ([] if pub["same_model"] else [f"our model {ours.model} is not the paper's {pub['model']}: the "
                                              "remainder includes the model"])}
