"""The results page's item-level comparison of two methods: the inputs where their outputs differ most.

compare-mt (Neubig et al., 2019) shows per-sentence differences between two MT systems; this is that
idea on lodabench's run directories. Generation (E2E, DART): each item's sentence BLEU
(``sacrebleu.sentence_bleu``, its default exponential smoothing, against every reference of the item)
for both methods, the items ranked by the difference; aggregated by input attribute where the task has
one (E2E: slot count of the MR; DART: tripleset size and the annotation source). Classification (GLUE):
correct vs wrong per item (STS-B: absolute error), the items where exactly one method is right first.

One seed: the lowest seed both methods completed (the seed fixes the data order and initialisation of
both runs, so their items are paired); the page names it. Items are read from the runs' ``hyp.txt`` /
``refs.txt`` / ``predictions.jsonl`` (``lodabench.results.compare``); the inputs (MR, triples, sentences)
from the task's local data root only -- the page is never a reason to download, and it says when the
inputs cannot be shown.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lodabench.errors import LodabenchError
from lodabench.paths import REPO_ROOT
from lodabench.results.vocab import method_label, task_label

TOP = 12            # items listed per comparison (the rest are in the aggregate table)
# Which two methods to compare, in order of preference: the paper's method against its baseline.
PAIRS = (("loda", "lora"), ("condlora", "lora"), ("lora", "ft"), ("loda_plus", "lora"), ("dora", "lora"))


@dataclass
class Item:
    key: Any
    source: str | None          # the input (MR / triples / sentence pair); None = not available
    out_a: str
    out_b: str
    gold: list[str]
    score_a: float
    score_b: float
    attrs: dict[str, Any]

    @property
    def delta(self) -> float:
        return self.score_a - self.score_b


# ---------------------------------------------------------------------------------------------- choosing

def choose_pair(methods: Sequence[str], prefer: Sequence[tuple[str, str]] = PAIRS) -> tuple[str, str] | None:
    have = set(methods)
    for a, b in prefer:
        if a in have and b in have:
            return a, b
    ordered = list(dict.fromkeys(methods))
    return (ordered[0], ordered[1]) if len(ordered) >= 2 else None


def _row_for(rows: Sequence[Any], dataset: str, method: str) -> Any | None:
    """The plainest complete row of ``method`` on ``dataset`` (fewest extra overrides, then by name)."""
    hits = [r for r in rows if r.data == dataset and r.method == method and r.complete]
    return min(hits, key=lambda r: (len(r.extra), r.row_dir)) if hits else None


def common_seed(row_a: Any, row_b: Any) -> int | None:
    seeds = {s.seed for s in row_a.complete} & {s.seed for s in row_b.complete}
    seeds.discard(None)
    return min(seeds) if seeds else None


# ---------------------------------------------------------------------------------------------- inputs

def _task(record: dict[str, Any]) -> tuple[Any | None, str]:
    """The run's task built on its local data root (never the hub), or why not."""
    from lodabench.paths import resolve_data_root
    from lodabench.tasks import get_task

    cfg = record.get("config") or {}
    try:
        root = resolve_data_root((cfg.get("paths") or {}).get("data_root"))
        if root is None:
            return None, "no local data root (paths.data_root, LODABENCH_DATA_ROOT or ../shared/data)"
        return get_task(cfg.get("data") or {}, root), ""
    except (LodabenchError, OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"the task's data cannot be read here ({str(exc).splitlines()[0][:160]})"


def generation_sources(record: dict[str, Any], keys: Sequence[tuple]) -> tuple[list[str] | None, str]:
    """The inputs of the scored items (``keys``: (reference group, repeat) in hyp.txt order), from the
    task's eval items, which must hold the same references in the same order; or why not."""
    task, why = _task(record)
    if task is None:
        return None, why
    try:
        items = task.eval_items()
    except (LodabenchError, OSError, ValueError) as exc:
        return None, f"the eval items cannot be read here ({str(exc).splitlines()[0][:160]})"
    if len(items) != len(keys):
        return None, f"the task gives {len(items)} eval items here but the run scored {len(keys)}"
    if any(tuple(it.references) != k[0] for it, k in zip(items, keys)):
        return None, "the task's eval items here do not hold the run's references (other data or text)"
    return [it.source for it in items], ""


def glue_inputs(record: dict[str, Any], labels: Sequence[Any]) -> tuple[list[str] | None, str]:
    """The sentence (pair) of each prediction, in ``predictions.jsonl`` order (``labels``: theirs, which the
    task's rows must repeat), or why not."""
    task, why = _task(record)
    if task is None:
        return None, why
    try:
        rows = task.slicing.take(task.rows(task.test_splits[0]), task.slicing.max_eval_items)
    except (LodabenchError, OSError, ValueError) as exc:
        return None, f"the evaluation rows cannot be read here ({str(exc).splitlines()[0][:160]})"
    if len(rows) != len(labels):
        return None, f"the task gives {len(rows)} evaluation rows here but the run predicted {len(labels)}"
    if any(r.label != y for r, y in zip(rows, labels)):
        return None, "the task's evaluation rows here do not hold the run's labels (other data)"
    return [r.text_a + (f"  ||  {r.text_b}" if r.text_b else "") for r in rows], ""


# ---------------------------------------------------------------------------------------------- attributes

def e2e_slots(source: str) -> int:
    """Slots of an E2E MR: ``name[X], eatType[Y]`` (raw) or ``name : X | Type : Y`` (LoRA's format)."""
    if "[" in source:
        from lodabench.tasks.e2e import parse_mr
        return len(parse_mr(source))
    return source.count(" | ") + 1


def dart_annotation_sources(record: dict[str, Any]) -> dict[str, str]:
    """DART: linearised tripleset -> its annotations' sources (e.g. 'WikiTableQuestions_mturk'), from the
    local JSON; {} when it cannot be read (the page then groups by tripleset size only)."""
    from lodabench.paths import resolve_data_root
    from lodabench.tasks import dart

    cfg = record.get("config") or {}
    try:
        root = resolve_data_root((cfg.get("paths") or {}).get("data_root"))
        split = (cfg.get("data") or {}).get("eval_split", "test")
        entries = dart.read_dart_json(root / "dart" / dart.FILES[split]) if root else []
    except (LodabenchError, OSError, ValueError, KeyError):
        return {}
    return {dart.linearise(e["tripleset"]): "/".join(sorted({str(a.get("source", "?")) for a in e["annotations"]}))
            for e in entries}


def attributes(dataset: str, source: str | None, extra: dict[str, str]) -> dict[str, Any]:
    if source is None:
        return {}
    if dataset == "e2e":
        return {"slot count": e2e_slots(source)}
    if dataset == "dart":
        # linearise() joins triples with " | ": a component holding " | " itself would be miscounted.
        return {"tripleset size": source.count(" | ") + 1, "annotation source": extra.get(source, "unknown")}
    return {}


# ---------------------------------------------------------------------------------------------- items

def _read_run(path: Path) -> Any:
    from lodabench.results.compare import load_run
    return load_run(path)


def generation_items(dir_a: Path, dir_b: Path, dataset: str, record: dict[str, Any]) -> tuple[list[Item], str]:
    """Both runs' items matched by reference group (compare.load_run), scored by sentence BLEU."""
    import sacrebleu

    a, b = _read_run(dir_a).files[""], _read_run(dir_b).files[""]
    keys = [k for k in a if k in b]
    sources, why = generation_sources(record, list(a))
    by_key = dict(zip(a, sources)) if sources else {}
    extra = dart_annotation_sources(record) if dataset == "dart" else {}
    out = []
    for k in keys:
        (ha, gold), (hb, _) = a[k], b[k]
        src = by_key.get(k)
        out.append(Item(k, src, ha, hb, list(gold), sacrebleu.sentence_bleu(ha, list(gold)).score,
                        sacrebleu.sentence_bleu(hb, list(gold)).score, attributes(dataset, src, extra)))
    return out, why


def _correct(pred: Any, label: Any, regression: bool) -> float:
    if regression:
        return -abs(float(pred) - float(label)) if pred is not None else -float("inf")
    return 1.0 if pred == label else 0.0


def glue_items(dir_a: Path, dir_b: Path, record: dict[str, Any]) -> tuple[list[Item], str]:
    """Both runs' predictions matched by index; score 1/0 (correct/wrong), STS-B minus the absolute error."""
    a, b = _read_run(dir_a).files.get("", {}), _read_run(dir_b).files.get("", {})
    regression = any(isinstance(y, float) and not float(y).is_integer() for _, y in a.values())
    sources, why = glue_inputs(record, [a[k][1] for k in sorted(a)])
    out = []
    for k in sorted(set(a) & set(b)):
        (pa, y), (pb, _) = a[k], b[k]
        src = sources[k] if sources and isinstance(k, int) and k < len(sources) else None
        out.append(Item(k, src, str(pa), str(pb), [str(y)], _correct(pa, y, regression),
                        _correct(pb, y, regression), {}))
    return out, why


# ---------------------------------------------------------------------------------------------- HTML

def _esc(x: Any) -> str:
    return html.escape(str(x))


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def aggregate(items: Sequence[Item]) -> dict[str, list[tuple[Any, int, float, float]]]:
    """Per attribute and value: (value, n items, mean score A, mean score B)."""
    out: dict[str, list[tuple[Any, int, float, float]]] = {}
    for attr in dict.fromkeys(k for it in items for k in it.attrs):
        groups: dict[Any, list[Item]] = {}
        for it in items:
            if attr in it.attrs:
                groups.setdefault(it.attrs[attr], []).append(it)
        out[attr] = [(v, len(g), sum(i.score_a for i in g) / len(g), sum(i.score_b for i in g) / len(g))
                     for v, g in sorted(groups.items(), key=lambda kv: str(kv[0]).zfill(6))]
    return out


def _aggregate_html(items: Sequence[Item], la: str, lb: str, unit: str) -> str:
    parts = []
    for attr, groups in aggregate(items).items():
        rows = "".join(f"<tr><td>{_esc(v)}</td><td>{n}</td><td>{sa:.2f}</td><td>{sb:.2f}</td>"
                       f"<td>{sa - sb:+.2f}</td></tr>" for v, n, sa, sb in groups)
        parts.append(f'<table class="agg"><caption>mean {unit} by {_esc(attr)}</caption><thead><tr><th>{_esc(attr)}'
                     f"</th><th>items</th><th>{_esc(la)}</th><th>{_esc(lb)}</th><th>Δ</th></tr></thead>"
                     f"<tbody>{rows}</tbody></table>")
    return "".join(parts)


def _gold(gold: Sequence[str]) -> str:
    """One reference (or a label) in the cell; several folded, as E2E's up to ~40 would fill the page."""
    if len(gold) == 1:
        return _esc(gold[0])
    return (f"<details><summary>{len(gold)} references</summary>"
            + "".join(f"<div>{_esc(g)}</div>" for g in gold) + "</details>")


def _top_html(items: Sequence[Item], la: str, lb: str, unit: str, why: str) -> str:
    ranked = sorted(items, key=lambda i: (-abs(i.delta), str(i.key)))[:TOP]
    body = "".join(
        f'<tr class="item"><td>{r}</td><td class="src">{_esc(it.source) if it.source is not None else "—"}</td>'
        f"<td>{_esc(it.out_a)}</td><td>{_esc(it.out_b)}</td><td>{it.score_a:.2f}</td><td>{it.score_b:.2f}</td>"
        f"<td>{it.delta:+.2f}</td><td>{_gold(it.gold)}</td></tr>"
        for r, it in enumerate(ranked, 1))
    note = f'<p class="note">Inputs not shown: {_esc(why)}.</p>' if why else ""
    return (note + f'<table class="items"><thead><tr><th>#</th><th>input</th><th>{_esc(la)} output</th>'
            f"<th>{_esc(lb)} output</th><th>{_esc(la)} {unit}</th><th>{_esc(lb)} {unit}</th><th>Δ</th>"
            f"<th>reference(s) / label</th></tr></thead><tbody>{body}</tbody></table>")


def _summary(items: Sequence[Item], la: str, lb: str, unit: str) -> str:
    n = len(items)
    wins = sum(1 for i in items if i.delta > 0)
    losses = sum(1 for i in items if i.delta < 0)
    mean_a = sum(i.score_a for i in items) / n
    mean_b = sum(i.score_b for i in items) / n
    return (f"<p>{n} items scored by both: {_esc(la)} better on {wins}, {_esc(lb)} better on {losses}, "
            f"equal on {n - wins - losses}; mean {unit} {mean_a:.2f} vs {mean_b:.2f}.</p>")


def _empty(title: str, why: str) -> str:
    return f'<div class="cmp"><h3>{_esc(title)}</h3><p class="empty">{_esc(why)}</p></div>'


def _pair_runs(rows: Sequence[Any], dataset: str, prefer: Sequence[tuple[str, str]]) -> tuple[Any, Any, int] | str:
    """The two rows to compare and their common seed, or why there are none."""
    pair = choose_pair([r.method for r in rows if r.data == dataset and r.complete], prefer)
    if pair is None:
        return "Fewer than two methods have complete runs."
    ra, rb = _row_for(rows, dataset, pair[0]), _row_for(rows, dataset, pair[1])
    seed = common_seed(ra, rb)
    return (ra, rb, seed) if seed is not None else f"{ra.label} and {rb.label} share no seed."


def _unit(generation: bool, its: Sequence[Item]) -> str:
    return "sentence BLEU" if generation else ("minus |error|" if any(i.score_a < 0 for i in its) else "correct")


def comparison(source_name: str, runs_dir: Path, rows: Sequence[Any], dataset: str,
               prefer: Sequence[tuple[str, str]] = PAIRS) -> str:
    """One block: two methods' items on ``dataset`` from one source of runs, or why there is none."""
    title = f"{task_label(dataset)} — {source_name}"
    picked = _pair_runs(rows, dataset, prefer)
    if isinstance(picked, str):
        return _empty(title, picked)
    ra, rb, seed = picked
    dir_a, dir_b = (runs_dir / r.row_dir / f"seed{seed}" for r in (ra, rb))
    record = next(s.record for s in ra.complete if s.seed == seed)
    generation = (dir_a / "hyp.txt").is_file()
    try:
        its, why = (generation_items(dir_a, dir_b, dataset, record) if generation
                    else glue_items(dir_a, dir_b, record))
    except LodabenchError as exc:
        return _empty(title, str(exc))
    if not its:
        return _empty(title, "The two runs share no scored item.")
    unit, la, lb = _unit(generation, its), ra.label, rb.label
    head = (f'<div class="cmp" data-dataset="{_esc(dataset)}" data-a="{_esc(ra.method)}" data-b="{_esc(rb.method)}">'
            f"<h3>{_esc(title)}: {_esc(la)} vs {_esc(lb)}, seed {seed}</h3>"
            f'<p class="note">Runs: <code>{_esc(_rel(dir_a))}</code> and <code>{_esc(_rel(dir_b))}</code>.</p>')
    return head + _summary(its, la, lb, unit) + _aggregate_html(its, la, lb, unit) + \
        _top_html(its, la, lb, unit, why) + "</div>"


def section(sources: Sequence[tuple[str, Path, Sequence[Any]]], prefer: Sequence[tuple[str, str]] = PAIRS) -> str:
    """Every (source, dataset) with runs: one comparison each; says so when there is none at all."""
    blocks = [comparison(name, runs_dir, rows, d, prefer)
              for name, runs_dir, rows in sources for d in dict.fromkeys(r.data for r in rows if r.complete)]
    if not blocks:
        return '<p class="empty">No stored runs: there is no item-level comparison to show.</p>'
    none = [f"{name} (<code>{_esc(_rel(runs_dir))}</code>)" for name, runs_dir, rows in sources
            if not any(r.complete for r in rows)]
    note = f'<p class="empty">No stored runs, so no comparison, for: {", ".join(none)}.</p>' if none else ""
    return note + "".join(blocks)
