"""A report's figure: the main metric against trainable parameters (log x), published and ours, the
Pareto front of each point set marked, every point labelled without overlaps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from lodabench.results.paper import display_scale
from lodabench.results.report_cells import Source, published_count
from lodabench.results.report_specs import PaperSpec
from lodabench.results.stats import summarize
from lodabench.results.vocab import method_label, task_label



def pareto(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-dominated points (fewer parameters, higher metric), by increasing parameters."""
    front, best = [], -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _series(paper: pd.DataFrame, sources: Sequence[Source]) -> dict[str, str]:
    """One color per point set (a published model, a source of ours), the same in every panel."""
    import matplotlib.pyplot as plt
    names = [f"published, {m}" for m in sorted(set(paper["model"]))]
    names += [f"ours, {s.model_text or 'paper setting'} (mean ± std)" for s in sources if s.rows]
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {n: cycle[i % len(cycle)] for i, n in enumerate(names)}


def _panel(ax, data: str, metric: str, paper: pd.DataFrame, sources: Sequence[Source], colors: dict[str, str]) -> None:
    pub = paper[(paper["dataset"] == data) & (paper["metric"] == metric)]
    labels: list[tuple[float, float, str, str]] = []
    for model, grp in pub.groupby("model", sort=True):
        pts = [(published_count(p), float(p["value"]), p["row_label"]) for p in grp.to_dict("records")]
        name = f"published, {model}"
        labels += _points(ax, [p for p in pts if p[0]], name, colors[name], "s", filled=False)
    for src in sources:
        rows = [r for r in src.rows if r.data == data and r.params]
        pts = []
        for r in rows:
            s = summarize(list(r.values(metric, display_scale(data, metric)[0]).values()))
            if s.n:
                label = method_label(r.method)
                pts.append((float(r.params), s.mean, label, 0.0 if math.isnan(s.std) else s.std))
        if pts:
            name = f"ours, {src.model_text or 'paper setting'} (mean ± std)"
            labels += _points(ax, pts, name, colors[name], "o", filled=True)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(metric)
    ax.set_title(f"{task_label(data)}: {metric}", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    if not labels:
        ax.text(0.5, 0.5, "no published or own points", transform=ax.transAxes, ha="center")
        return
    _spread_labels(ax, labels)


def _points(ax, pts: list[tuple], label: str, color: str, marker: str, filled: bool) -> list[tuple]:
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    yerr = [p[3] for p in pts] if filled else None
    ax.errorbar(xs, ys, yerr=yerr, fmt=marker, color=color, mfc=color if filled else "none", ms=6, capsize=2,
                label=label, alpha=0.9, lw=1)
    front = pareto(list(zip(xs, ys)))
    ax.plot([p[0] for p in front], [p[1] for p in front], "--", color=color, lw=1, drawstyle="steps-post")
    ax.scatter([p[0] for p in front], [p[1] for p in front], s=120, facecolors="none", edgecolors=color, lw=1.3)
    return [(x, y, str(text), color) for x, y, text, *_ in pts]


def _spread_labels(ax, labels: list[tuple[float, float, str, str]]) -> None:
    """Label every point; points at (nearly) the same parameter count get a column of labels, spaced
    so they do not overlap, each with a thin line to its point. A column goes to the right of its
    points, or to the left where fewer other points lie under it."""
    lo, hi = ax.get_ylim()
    pad = 0.06 * (hi - lo)
    ax.set_ylim(lo - pad, hi + pad)
    span = hi - lo + 2 * pad
    gap = 0.055 * span
    groups: list[list[tuple]] = []
    for lab in sorted(labels, key=lambda t: (t[3], t[0], t[1])):   # per point set (color), by parameters
        if groups and groups[-1][0][3] == lab[3] and lab[0] / groups[-1][0][0] < 5:
            groups[-1].append(lab)
        else:
            groups.append([lab])
    per_char = _decades_per_char(ax)
    placed: list[tuple[float, float, float, float]] = []      # text boxes: log10 x0, x1, y0, y1
    points = [(math.log10(t[0]), t[1]) for t in labels]
    for group in sorted(groups, key=len, reverse=True):       # the big columns choose their side first
        group.sort(key=lambda t: t[1])
        k = len(group)
        step = min(gap, span / (k + 0.5))
        center = min(max(sum(t[1] for t in group) / k, lo - pad + step * (k - 1) / 2), hi + pad - step * (k - 1) / 2)
        ys = [center + (i - (k - 1) / 2) * step if k > 1 else t[1] for i, t in enumerate(group)]
        width = per_char * max(len(t[2]) for t in group)
        right = math.log10(max(t[0] for t in group)) + (0.28 if k > 1 else 0.06)
        left = math.log10(min(t[0] for t in group)) - (0.28 if k > 1 else 0.06)
        y0, y1 = min(ys) - gap / 2, max(ys) + gap / 2
        sides = {"left": (left - width, left), "right": (right, right + width)}
        cost = {side: sum(a <= px <= b and y0 <= py <= y1 for px, py in points)
                + 3 * sum(a < bx1 and bx0 < b and y0 < by1 and by0 < y1 for bx0, bx1, by0, by1 in placed)
                for side, (a, b) in sides.items()}
        on_left = cost["left"] < cost["right"]
        placed.append((*sides["left" if on_left else "right"], y0, y1))
        x_text = 10 ** (left if on_left else right)
        for (x, y, text, color), y_text in zip(group, ys):
            ax.annotate(text, (x, y), xytext=(x_text, y_text), textcoords="data", fontsize=6.5, color=color,
                        va="center", ha="right" if on_left else "left",
                        arrowprops={"arrowstyle": "-", "color": color, "lw": 0.4, "alpha": 0.6} if k > 1 else None)


def _decades_per_char(ax) -> float:
    """How many decades of the log x axis one 6.5 pt character spans in the saved figure."""
    lo, hi = ax.get_xlim()
    inches = ax.get_position().width * ax.figure.get_figwidth()
    return (6.5 * 0.55 / 72) / (inches / math.log10(hi / lo))


def figure(spec: PaperSpec, paper: pd.DataFrame, sources: Sequence[Source], path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(spec.panels)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols, 4.4 * nrows), squeeze=False)
    colors = _series(paper, sources)
    for ax, (data, metric) in zip(axes.flat, spec.panels):
        _panel(ax, data, metric, paper, sources, colors)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    from matplotlib.lines import Line2D
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    handles["Pareto front of each set (dashed steps, circled points)"] = Line2D(
        [], [], ls="--", color="grey", marker="o", mfc="none", ms=9)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(4, len(handles)), fontsize=8,
               frameon=False)
    fig.suptitle(f"{spec.key}: main metric vs trainable parameters. Open squares: published; filled: ours "
                 "(another model where labelled so, not a reproduction); circled: Pareto front", fontsize=9)
    fig.tight_layout(rect=(0, 0.07 + 0.02 * (len(handles) > 4), 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
