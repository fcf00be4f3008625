"""Sweep plots: a metric against r / rank / keep for every method run at two or more values of it."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from lodabench.results.runs import SWEEP_KEYS, Row
from lodabench.results.stats import summarize
from lodabench.results.vocab import GENERATION_TABLES, method_label, table_metrics


def sweep_plots(rows: Sequence[Row], out_dir: Path) -> list[Path]:
    """Metric vs r / rank / keep for every method run at >= 2 values of that key (mean ± std bars)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    for data in GENERATION_TABLES:
        cols = table_metrics(data)
        for model in sorted({r.model for r in rows if r.data == data}):
            subset = [r for r in rows if r.data == data and r.model == model and r.complete]
            for xkey in SWEEP_KEYS:
                lines: dict[tuple, list[Row]] = {}
                for r in subset:
                    if xkey not in r.method_cfg:
                        continue
                    rest = {k: v for k, v in r.method_cfg.items() if k != xkey}
                    extra = tuple(e for e in r.extra if not e.startswith(f"{xkey}="))
                    lines.setdefault((r.method, json.dumps(rest, sort_keys=True, default=str), extra), []).append(r)
                lines = {k: v for k, v in lines.items() if len({float(r.method_cfg[xkey]) for r in v}) >= 2}
                if not lines:
                    continue
                fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols), 3.0), squeeze=False)
                for ax, c in zip(axes[0], cols):
                    for (method, _, extra), group in sorted(lines.items()):
                        pts = sorted((float(r.method_cfg[xkey]), summarize(list(r.values(c.key, c.scale).values())))
                                     for r in group)
                        pts = [(x, s) for x, s in pts if s.n]
                        if not pts:
                            continue
                        label = method_label(method) + (f" ({', '.join(extra)})" if extra else "")
                        ax.errorbar([x for x, _ in pts], [s.mean for _, s in pts],
                                    yerr=[0 if math.isnan(s.std) else s.std for _, s in pts],
                                    marker="o", capsize=3, label=label)
                    ax.set_xlabel({"r": "adapter rank r", "rank": "approximation rank R", "keep": "keep fraction p"}[xkey])
                    ax.set_title(c.header)
                axes[0][0].legend(fontsize=7)
                fig.suptitle(f"{data} / {model}: mean ± std (ddof=1) over seeds", fontsize=9)
                fig.tight_layout()
                for ext in ("png", "pdf"):
                    path = out_dir / f"sweep__{data}__{model}__{xkey}.{ext}"
                    fig.savefig(path, dpi=150)
                    written.append(path)
                plt.close(fig)
    return written
