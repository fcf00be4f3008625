"""The results page's Pareto view: quality against cost, one point per method and seed, the frontier drawn.

Points come from the run records only (``Seed.record``): the metric of each complete seed (printed
scale, ``display_scale``) against four costs. Where a record predates the cost block
(``lodabench.train.phase_cost``), two axes fall back on what the record does hold, and the point says so:
train time -> ``wall_time_s`` (training and evaluation together), peak memory -> ``peak_memory.cpu_rss_mb``
(process-wide); adapter bytes have no fallback, so such a point is left off that axis and the panel counts
it. The papers' own points (``lodabench.results.paper`` tables; ``published_count`` for their units) are
drawn beside ours on the parameter axis, the only cost the papers print.

The frontier is the classic Pareto set (no other point is at most as costly and at least as good, one
strictly); PEFT's method-comparison app draws the same front of quality against parameters/memory/time.
The SVG is written here, server-side, so the page needs no plotting library and the marks can be tested
without a browser; ``html_assets/page.js`` only adds the hover tooltip.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lodabench.results.paper import display_scale
from lodabench.results.vocab import lower_is_better, method_label

# (key, axis title, unit note). Order = the order of the small multiples on the page.
AXES = (("params", "trainable parameters", "record trainable_params (without the head)"),
        ("adapter_bytes", "adapter bytes", "record cost.adapter_bytes"),
        ("train_s", "train time (s)", "record cost.train_s"),
        ("peak_mb", "peak memory (MB)", "record cost.peak_memory_mb.train"))
# Tableau 20's colours, one per method in order of appearance (a grid rarely has more than 20 methods).
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac", "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d", "#f1ce63", "#499894",
           "#86bcb6", "#d37295", "#fabfd2", "#d4a6c8")
W, H, LEFT, RIGHT, TOP, BOTTOM = 430, 260, 58, 12, 12, 40   # SVG geometry (px)


@dataclass
class Point:
    method: str
    label: str
    source: str
    seed: int | None
    y: float
    x: dict[str, float] = field(default_factory=dict)
    fallback: dict[str, str] = field(default_factory=dict)   # axis -> which older record field it used
    run: str = ""                                            # the page's run anchor id ("" = published)
    published: bool = False


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok and value > 0 else None


def _params(record: dict[str, Any]) -> float | None:
    tp = record.get("trainable_params")
    if isinstance(tp, dict):
        return _number(tp.get("trainable_without_head", tp.get("trainable")))
    return _number(tp)


def _cost(record: dict[str, Any]) -> dict[str, Any]:
    cost = record.get("cost")
    return cost if isinstance(cost, dict) else {}


def record_costs(record: dict[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """The four costs of one run record, and which axes used an older field (see the module docstring)."""
    cost, out, fallback = _cost(record), {}, {}
    peaks = cost.get("peak_memory_mb") if isinstance(cost.get("peak_memory_mb"), dict) else {}
    older = {"train_s": ("wall_time_s", record.get("wall_time_s")),
             "peak_mb": ("peak_memory.cpu_rss_mb", (record.get("peak_memory") or {}).get("cpu_rss_mb"))}
    found = {"params": _params(record), "adapter_bytes": _number(cost.get("adapter_bytes")),
             "train_s": _number(cost.get("train_s")), "peak_mb": _number(peaks.get("train"))}
    for key, value in found.items():
        if value is None and key in older and _number(older[key][1]) is not None:
            value, fallback[key] = _number(older[key][1]), older[key][0]
        if value is not None:
            out[key] = value
    return out, fallback


def seed_points(rows: Sequence[Any], dataset: str, metric: str, source: str,
                run_id: Callable[[Any, Any], str]) -> list[Point]:
    """One point per complete seed of every row of ``dataset`` (``run_id(row, seed)`` names its anchor)."""
    scale = display_scale(dataset, metric)[0]
    out = []
    for row in rows:
        if row.data != dataset:
            continue
        for s in row.complete:
            value = s.metrics.get(metric)
            if _number(value) is None and value != 0:
                continue
            x, fallback = record_costs(s.record)
            out.append(Point(row.method, row.label, source, s.seed, float(value) * scale, x, fallback,
                             run_id(row, s)))
    return out


def published_points(paper_rows: Sequence[dict[str, Any]], dataset: str, metric: str,
                     count: Callable[[dict[str, Any]], float | None]) -> list[Point]:
    """The paper's own rows of ``dataset``/``metric`` that print a parameter count."""
    out = []
    for p in paper_rows:
        n = count(p)
        if p["dataset"] == dataset and p["metric"] == metric and n:
            scale = display_scale(dataset, metric, p.get("file"))[0] / display_scale(dataset, metric)[0]
            out.append(Point(str(p["method"]), str(p.get("row_label") or p["method"]), f"published ({p['model']})",
                             None, float(p["value"]) / scale, {"params": float(n)}, published=True))
    return out


def frontier(points: Sequence[Point], axis: str, lower: bool) -> list[Point]:
    """The Pareto set of ``points`` on (cost ``axis``, quality): sorted by cost, each strictly better."""
    sign = -1.0 if lower else 1.0
    best, out = -math.inf, []
    for p in sorted((p for p in points if axis in p.x), key=lambda p: (p.x[axis], -sign * p.y)):
        if sign * p.y > best:
            best = sign * p.y
            out.append(p)
    return out


# ---------------------------------------------------------------------------------------------- SVG

@dataclass
class Scale:
    lo: float
    hi: float
    log: bool
    a: float   # pixel range
    b: float

    def __call__(self, v: float) -> float:
        f = (math.log10(v) if self.log else v)
        lo, hi = (math.log10(self.lo), math.log10(self.hi)) if self.log else (self.lo, self.hi)
        return self.a + (f - lo) / ((hi - lo) or 1.0) * (self.b - self.a)


def _scale(values: Sequence[float], a: float, b: float, allow_log: bool) -> Scale:
    lo, hi = min(values), max(values)
    log = allow_log and lo > 0 and hi / lo > 20
    if log:
        return Scale(10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi)), True, a, b)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    return Scale(lo - pad, hi + pad, False, a, b)


def _ticks(s: Scale) -> list[float]:
    if s.log:
        return [10.0 ** k for k in range(round(math.log10(s.lo)), round(math.log10(s.hi)) + 1)]
    step = 10 ** math.floor(math.log10((s.hi - s.lo) / 4 or 1.0))
    step *= next(m for m in (1, 2, 5, 10) if (s.hi - s.lo) / (step * m) <= 5)
    return [k * step for k in range(math.ceil(s.lo / step), math.floor(s.hi / step) + 1)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= div:
            return f"{v / div:g}{unit}"
    return f"{v:.4g}"


def _axes_svg(sx: Scale, sy: Scale, title: str, metric: str) -> list[str]:
    out = [f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" class="ax"/>',
           f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" class="ax"/>']
    for t in _ticks(sx):
        out.append(f'<text x="{sx(t):.1f}" y="{H - BOTTOM + 14}" class="tk" text-anchor="middle">{_fmt(t)}</text>')
    for t in _ticks(sy):
        out.append(f'<text x="{LEFT - 4}" y="{sy(t) + 4:.1f}" class="tk" text-anchor="end">{_fmt(t)}</text>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 6}" class="at" text-anchor="middle">'
               f'{html.escape(title)}{" (log)" if sx.log else ""}</text>')
    out.append(f'<text x="12" y="{(TOP + H - BOTTOM) / 2}" class="at" text-anchor="middle" '
               f'transform="rotate(-90 12 {(TOP + H - BOTTOM) / 2})">{html.escape(metric)}</text>')
    return out


def _tip(p: Point, axis: str) -> str:
    seed = f" seed {p.seed}" if p.seed is not None else ""
    used = f" [{p.fallback[axis]}]" if axis in p.fallback else ""
    return f"{p.label} ({p.source}{seed}): {p.y:.4g} at {_fmt(p.x[axis])}{used}"


def _mark(p: Point, axis: str, sx: Scale, sy: Scale, colour: str, on_front: bool) -> str:
    x, y, tip = sx(p.x[axis]), sy(p.y), html.escape(_tip(p, axis), quote=True)
    cls = "mark pub" if p.published else "mark"
    cls += " front" if on_front else ""
    run = f' data-run="{p.run}"' if p.run else ""
    attrs = f'class="{cls}" data-method="{html.escape(p.method)}" data-tip="{tip}"{run}'
    if p.published:
        return (f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="none" stroke="{colour}" '
                f'{attrs}/>')
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}" {attrs}/>'


def _front_path(front: Sequence[Point], axis: str, sx: Scale, sy: Scale, cls: str) -> str:
    """A step line through the frontier (quality holds until the next, costlier point improves it)."""
    if len(front) < 1:
        return ""
    pts = []
    for i, p in enumerate(front):
        if i:
            pts.append(f"{sx(p.x[axis]):.1f},{sy(front[i - 1].y):.1f}")
        pts.append(f"{sx(p.x[axis]):.1f},{sy(p.y):.1f}")
    return f'<polyline points="{" ".join(pts)}" class="{cls}" fill="none"/>'


def svg(points: Sequence[Point], axis: str, title: str, metric: str, lower: bool,
        colours: dict[str, str]) -> str:
    """One small multiple: the points that have ``axis``, ours' and the papers' frontiers."""
    have = [p for p in points if axis in p.x]
    if not have:
        return ""
    sx = _scale([p.x[axis] for p in have], LEFT, W - RIGHT, True)
    sy = _scale([p.y for p in have], H - BOTTOM, TOP, False)
    ours, pub = [p for p in have if not p.published], [p for p in have if p.published]
    fronts = [(frontier(ours, axis, lower), "front"), (frontier(pub, axis, lower), "front pubfront")]
    on = {id(p) for f, _ in fronts for p in f}
    body = _axes_svg(sx, sy, title, metric) + [_front_path(f, axis, sx, sy, c) for f, c in fronts]
    body += [_mark(p, axis, sx, sy, colours.get(p.method, "#555"), id(p) in on) for p in have]
    return (f'<svg class="pareto-svg" data-axis="{axis}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
            f'role="img" aria-label="{html.escape(metric)} against {html.escape(title)}">' + "".join(body) + "</svg>")


def colour_map(points: Sequence[Point]) -> dict[str, str]:
    methods = list(dict.fromkeys(p.method for p in points))
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}


def _legend(colours: dict[str, str]) -> str:
    items = "".join(f'<span class="lg"><i style="background:{c}"></i>{html.escape(method_label(m))}</span>'
                    for m, c in colours.items())
    return f'<div class="legend">{items}<span class="lg">● ours (one per seed) □ published</span></div>'


def _missing_note(points: Sequence[Point], axis: str, title: str, what: str) -> str:
    ours = [p for p in points if not p.published]
    lacking = sum(1 for p in ours if axis not in p.x)
    used = sum(1 for p in ours if axis in p.fallback)
    notes = [f"{lacking} of {len(ours)} runs lack {what}" if lacking else "",
             f"{used} of {len(ours)} runs predate the cost block: {title} read from "
             f"{next(p.fallback[axis] for p in ours if axis in p.fallback)}" if used else ""]
    return "; ".join(n for n in notes if n)


def panel(points: Sequence[Point], dataset: str, metric: str, heading: str) -> str:
    """The 2x2 small multiples of one (dataset, metric), each with its frontier, or why it is empty."""
    lower = lower_is_better(dataset, metric)
    colours = colour_map(points)
    cells = []
    for axis, title, what in AXES:
        plot = svg(points, axis, title, metric, lower, colours)
        note = _missing_note(points, axis, title, what)
        body = plot or f'<p class="empty">No point has {html.escape(what)}.</p>'
        caption = html.escape(title) + (": " + html.escape(note) if note else "")
        cells.append(f'<figure class="pcell" data-axis="{axis}">{body}<figcaption>{caption}</figcaption></figure>')
    better = "lower is better" if lower else "higher is better"
    return (f'<div class="panel" data-dataset="{html.escape(dataset)}"><h3>{html.escape(heading)} — '
            f'{html.escape(metric)} ({better})</h3>{_legend(colours)}<div class="grid">{"".join(cells)}</div></div>')
