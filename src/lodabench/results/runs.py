"""Run records -> table rows: one ``Row`` per setting (a run directory without its seed), its seeds.

``load_runs`` scans ``<runs>/<data>/<model>/<method>/<slug>/seed<seed>/`` (record.json, and
``.hydra/overrides.yaml`` for the overrides); ``add_expected`` adds the rows a sweep preset expects
but that have no run directory yet. Nothing is dropped: a seed without a complete record keeps its
status (failed, running, no-record, unreadable, no-metrics) and the row says so (``Row.note``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lodabench.errors import LodabenchError
from lodabench.io import read_json
from lodabench.results.render import _tex_escape
from lodabench.results.setting import _key, paper_setting_gaps
from lodabench.results.vocab import method_label, method_tex_label
from lodabench.run.records import NAMING_OPERATIONAL_KEYS, OPERATIONAL_KEYS

# Overrides that do not distinguish table rows: shown elsewhere (the groups, seed, eval_checkpoint,
# init_from), or changing nothing computed (force, logger, allow_code_change, and the operational keys
# that do not name the run directory: device, threads, workers, progress, inference batch sizes).
IGNORED_OVERRIDE_KEYS = ({"seed", "force", "model", "method", "data", "logger", "sweep", "eval_checkpoint",
                          "init_from", "allow_code_change"} | (OPERATIONAL_KEYS - NAMING_OPERATIONAL_KEYS))
IGNORED_OVERRIDE_PREFIXES = ("paths.", "hydra.", "hydra/")
APPROX_KEYS = {"method.rank", "method.keep"}
SWEEP_KEYS = ("r", "rank", "keep")


@dataclass
class Seed:
    seed: int | None
    status: str                   # complete | failed | running | no-record | unreadable
    metrics: dict[str, Any]
    error: str | None = None
    record: dict[str, Any] = field(default_factory=dict, repr=False)   # record.json as read


@dataclass
class Row:
    """One setting = one run directory without the seed component."""

    row_dir: str                  # <data>/<model>/<method>/<slug>, relative to the runs dir
    data: str
    model: str
    method: str
    method_cfg: dict[str, Any]
    overrides: list[str]
    params: int | None = None
    seeds: list[Seed] = field(default_factory=list)
    expected: bool = False        # listed by a --sweep preset
    aggregate: str = "mean"       # the runs' selection.aggregate: how the seeds of this row combine
    _gaps: list[str] | None = field(default=None, repr=False, compare=False)

    @property
    def selected_on_reported_split(self) -> bool:
        """Some seed chose its checkpoint on the numbers it reports (LoDA §3: selection.rule=test)."""
        return any((s.metrics.get("selection") or {}).get("selected_on_reported_split") for s in self.complete)

    @property
    def experiment(self) -> str:
        return next((o.split("=", 1)[1] for o in self.overrides if _key(o) == "experiment"), "")

    @property
    def extra(self) -> list[str]:
        """Overrides that distinguish this row beyond method and Approx (shown after the label)."""
        return [o.lstrip("+~").replace("method.", "", 1) for o in self.overrides
                if _key(o) not in IGNORED_OVERRIDE_KEYS | APPROX_KEYS | {"experiment"}
                and not _key(o).startswith(IGNORED_OVERRIDE_PREFIXES)]

    @property
    def label(self) -> str:
        base = method_label(self.method)
        return f"{base} ({', '.join(self.extra)})" if self.extra else base

    @property
    def tex_label(self) -> str:
        base = method_tex_label(self.method) or _tex_escape(method_label(self.method))
        return f"{base} ({_tex_escape(', '.join(self.extra))})" if self.extra else base

    @property
    def approx(self) -> str:
        if "rank" in self.method_cfg and self.method.startswith("r_loda"):
            return f"R={self.method_cfg['rank']}"
        if "keep" in self.method_cfg and self.method.startswith("s_loda"):
            return f"p={float(self.method_cfg['keep']):g}"
        return "–"

    @property
    def complete(self) -> list[Seed]:
        return [s for s in self.seeds if s.status == "complete"]

    @property
    def setting_gaps(self) -> list[str]:
        """Why this row is not on the paper's setting (``paper_setting_gaps`` of each seed that has a
        config; [] = it is). Computed once: the parameter check builds the model on the meta device."""
        if self._gaps is None:
            gaps = [g for s in self.seeds if s.record.get("config")
                    for g in paper_setting_gaps(s.record, self.overrides, s.status == "complete")]
            self._gaps = list(dict.fromkeys(gaps))
        return self._gaps

    @property
    def not_complete(self) -> list[Seed]:
        return [s for s in self.seeds if s.status != "complete"]

    @property
    def flagged(self) -> bool:
        return bool(self.not_complete) or (self.expected and not self.seeds)

    def values(self, key: str, scale: float = 1.0) -> dict[int | None, float]:
        out = {}
        for s in self.complete:
            v = s.metrics.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out[s.seed] = float(v) * scale
        return out

    def note(self) -> str:
        """Plain-words status: which seeds are complete, failed, running or missing."""
        if not self.seeds:
            return "missing: no run directory" if self.expected else "missing"
        parts = [f"{len(self.complete)} complete (seeds {_seedlist(self.complete)})"] if self.complete else []
        for status in ("failed", "running", "no-record", "unreadable", "no-metrics"):
            group = [s for s in self.seeds if s.status == status]
            if group:
                what = {"no-record": "without record.json", "unreadable": "with unreadable record.json",
                        "no-metrics": "complete but without metrics"}.get(status, status)
                errs = "; ".join(sorted({s.error for s in group if s.error}))
                parts.append(f"{len(group)} {what} (seeds {_seedlist(group)}{': ' + errs if errs else ''})")
        return ", ".join(parts)


def _seedlist(seeds: Sequence[Seed]) -> str:
    return ",".join(str(s.seed) for s in sorted(seeds, key=lambda s: (s.seed is None, s.seed or 0)))


def _read_overrides(run_dir: Path, slug: str) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if path.is_file():
        from omegaconf import OmegaConf
        return [str(o) for o in OmegaConf.load(path)]
    # Without Hydra's capture, fall back on the directory name (the sorted override list).
    return [] if slug == "default" else [p for p in re.split(r",(?=[+~\w./-]+=)", slug) if p]


def load_runs(runs_dir: str | os.PathLike) -> list[Row]:
    """Scan ``<runs>/<data>/<model>/<method>/<slug>/seed<seed>/`` into rows (one per setting)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise LodabenchError(f"runs directory {runs_dir} does not exist: no runs yet. Train first (make e2e-loda, "
                             "or a sweep: make sweep-e2e-table1), or read other runs: --runs-dir DIR (e.g. the "
                             "committed results/smollm2_e2e/runs), or list a sweep's rows to run: --sweep e2e_table1.")
    rows: dict[str, Row] = {}
    for seed_dir in sorted(runs_dir.glob("*/*/*/*/seed*")):
        if not seed_dir.is_dir() or not re.fullmatch(r"seed-?\d+", seed_dir.name):
            continue
        data, model, method, slug = seed_dir.relative_to(runs_dir).parts[:4]
        rec_path = seed_dir / "record.json"
        rec: dict[str, Any] = {}
        if rec_path.is_file():
            try:
                rec = read_json(rec_path)
                status = str(rec.get("status") or "running")
            except (OSError, ValueError) as exc:
                status, rec = "unreadable", {"error": f"{type(exc).__name__}: {exc}"}
        else:
            status = "no-record"
        cfg = rec.get("config") or {}
        seed = rec.get("seed", cfg.get("seed", int(seed_dir.name[4:])))
        row_dir = f"{data}/{model}/{method}/{slug}"
        row = rows.get(row_dir)
        if row is None:
            row = rows[row_dir] = Row(row_dir, (cfg.get("data") or {}).get("name", data),
                                      (cfg.get("model") or {}).get("name", model), method,
                                      dict(cfg.get("method") or {"name": method}), _read_overrides(seed_dir, slug))
        row.aggregate = str((cfg.get("selection") or {}).get("aggregate") or row.aggregate)
        if not row.method_cfg.get("name") and cfg.get("method"):
            row.method_cfg = dict(cfg["method"])
        metrics = rec.get("metrics") or {}
        if status == "complete" and not metrics:
            status = "no-metrics"
        error = rec.get("error")
        row.seeds.append(Seed(int(seed) if seed is not None else None, status, metrics,
                              str(error).splitlines()[0][:160] if error else None, rec))
        tp = rec.get("trainable_params") or {}
        count = tp.get("trainable_without_head", tp.get("trainable")) if isinstance(tp, dict) else tp
        if row.params is None and isinstance(count, (int, float)):
            row.params = int(count)
    return list(rows.values())


def add_expected(rows: list[Row], sweep_names: Sequence[str]) -> list[Row]:
    """Add the rows that sweep presets expect but that have no run directory yet (shown as missing)."""
    from lodabench.run import sweeps
    have = {r.row_dir for r in rows}
    out = list(rows)
    for name in sweep_names:
        for job in sweeps.expand(name):
            if job.row_dir in have:
                next(r for r in out if r.row_dir == job.row_dir).expected = True
                continue
            have.add(job.row_dir)
            out.append(Row(job.row_dir, job.data, job.model, job.method.get("name", ""), job.method,
                           [o for o in job.overrides], expected=True))
    return out
