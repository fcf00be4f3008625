"""The papers' weight-level analyses, each a module with pure tensor functions plus a CLI:

* ``spectra``  — LoDA Fig. 2: how much of W_proj = [Wq, Wk, Wv] a rank-R SVD (R-LoDA) or a
  magnitude-pruned copy (S-LoDA) keeps, per layer.
* ``subspace`` — LoRA §7 / CondLoRA: normalised subspace similarity phi between adapters of two
  runs, and between layers' conversion matrices (CondLoRA Fig. 1), with a random baseline.
* ``cost``     — LoDA A.4: MACs per token of the adapted projections, and measured CPU latency.

    python -m lodabench.analysis spectra  --model minilm-l6 --out results/analysis/spectra/minilm-l6
    python -m lodabench.analysis subspace --run RUN_DIR [--run-b RUN_DIR] --out DIR
    python -m lodabench.analysis cost     --model minilm-l6 --out results/analysis/cost/minilm-l6

This module holds what the three share: building a model from ``conf/model/<name>.yaml``
(``lodabench.models.pretrained.read_model_conf``), writing figures atomically, printing tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from lodabench.io import atomic_path


def build_model(model_cfg: Mapping[str, Any] | str, *, seed: int = 0, kind: str | None = None,
                num_labels: int | None = None):
    """Base model in eval mode; random-init models are seeded so their weights are reproducible."""
    import torch

    from lodabench.models.pretrained import load_model, read_model_conf

    import transformers

    cfg = read_model_conf(model_cfg) if isinstance(model_cfg, str) else dict(model_cfg)
    # The "classifier weights newly initialised" report is expected here: only the body is analysed.
    transformers.logging.set_verbosity_error()
    torch.manual_seed(seed)
    model = load_model(cfg, kind=kind, num_labels=num_labels)
    return model.eval()


# Floats in the analysis CSVs keep 6 significant digits (lodabench.io.write_csv's float_format):
# enough for the ratios and similarities, and reruns on another BLAS give the same bytes more often.
CSV_FLOATS = ".6g"


def save_figure(fig, stem: str | Path) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` atomically; the PDF without a timestamp so reruns
    with the same numbers give the same bytes."""
    out = []
    for ext in ("png", "pdf"):
        target = Path(f"{stem}.{ext}")
        meta = {"CreationDate": None} if ext == "pdf" else {"Software": None}
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, dpi=120, bbox_inches="tight", metadata=meta)
        out.append(target)
    return out


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Plain fixed-width text table (for printing to the terminal)."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)
