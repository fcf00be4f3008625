"""The papers' claims as data, and an evaluator that reads each one on a set of results.

A claim is a sentence quoted from the paper (``../shared/papers/*.txt``; tests/test_claims.py checks
every quote is in that text) plus its operational reading: which methods are compared with which,
on which datasets and metrics, and by what rule (``kind``):

- ``beats``: every method in ``a`` has a better mean than every method in ``b`` on every
  (dataset, metric); a tie is not "better". ``at_least=k``: ``a`` needs to beat only k of the
  ``b`` methods ("several baselines"); ``not run`` while too few of them were run to decide.
- ``not_worse``: "better than or at least on-par": every mean of ``a`` is >= the one of ``b``, or
  lower but equivalent by TOST at the stated margin where a seed x item test exists (report_paired),
  else lower by a difference a paired t-test over the shared seeds does not find significant (p >= alpha).
  A lower mean that cannot be tested (no seeds: the published numbers) leaves the claim ``not run``.
- ``on_par``: on every (dataset, metric), TOST shows equivalence at the stated margin where a seed x
  item test exists (report_paired); elsewhere a paired t-test over the shared seeds finds no
  significant difference (p > alpha) — CondLoRA §4.1's own test (p > 0.01 on every task).
- ``fewer_params``: ``a`` trains fewer parameters than ``b`` (counts from the records).
- ``subspace_above_random``: phi(LoRA, CondLoRA) of the value module's A, B and ΔW, averaged over
  layers, is above that of random Gaussian matrices of the same shapes (CondLoRA Table 3).
- ``not_measured``: the results hold nothing to read the claim on (``why`` says what is missing).

Verdicts: ``supported`` / ``not supported`` / ``not run`` (nothing to compare). Where only some of
the compared methods were run, the verdict is read on those and the detail says which were not.
Methods are named by their config name, optionally with the paper's Approx (``s_loda@p=0.6``);
on another model than the paper's the Approx is matched loosely (a narrower model scales R).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from lodabench.results.vocab import claim_metrics, lower_is_better, primary_metric

SUPPORTED, NOT_SUPPORTED, NOT_RUN = "supported", "not supported", "not run"


@dataclass(frozen=True)
class Claim:
    id: str
    quote: str                        # verbatim from the paper's text
    where: str                        # section / table of the paper
    kind: str
    a: tuple[str, ...] = ()
    b: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()     # empty: each dataset's primary metric (its TaskSpec); ("*",): all of them
    alpha: float = 0.05
    at_least: int | None = None
    reading: str = ""                 # how the sentence is read, where it is not literal
    source_file: str | None = None    # ../shared/papers/<file> holding the quote (None: not stored there)
    why: str = ""                     # what is missing where the claim cannot be read (not_measured / not run)


@dataclass
class Entry:
    """One method (at one Approx) on one dataset: values on the paper's printed scale."""

    method: str
    approx: str
    params: int | None
    values: dict[str, dict[Any, float]]          # metric -> seed -> value
    seeded: bool = True                          # keys are real seeds (paired tests possible)
    label: str = ""                              # how the report names it (the paper's row label)
    key: str = ""                                # the run row it comes from (report_paired records name it)


@dataclass
class Results:
    """What a claim is read on: per dataset, the entries of every method run there."""

    name: str
    entries: dict[str, list[Entry]] = field(default_factory=dict)
    loose_approx: bool = False                   # another model than the paper's
    subspace: Any = None                         # DataFrame: slot, kind, layer, phi, phi_random
    # (row a, row b, dataset, metric) -> report_paired record: the seed x item test, Holm, TOST
    paired: dict = field(default_factory=dict)

    def pick(self, data: str, spec: str) -> list[Entry]:
        """Every entry of ``spec`` (``method`` or ``method@approx``) on ``data``; two published rows
        of one method (Adapter^L at 0.37M and 11.09M) are both compared."""
        method, _, approx = spec.partition("@")
        pool = [e for e in self.entries.get(data, []) if e.method == method]
        exact = [e for e in pool if not approx or e.approx == approx]
        return exact or (pool if self.loose_approx else [])


@dataclass(frozen=True)
class Outcome:
    verdict: str
    detail: str


# Which metrics are lower-is-better, each dataset's main metric (the paper tables' first column) and
# "all of them" are the tasks' declared metrics (TaskSpec.metrics, read through lodabench.results.vocab).


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    data: str
    metric: str
    diff: float          # oriented: > 0 means a is better
    p: float             # paired t-test over shared seeds; NaN when not testable
    n: int
    item_test: dict | None = None   # report_paired record (seed x item test, Holm p, TOST) when both stored outputs

    def text(self) -> str:
        t = self.item_test
        if t is not None:
            eq = f", TOST ±{t['margin']:g} p={t['p_tost']:.3g}" if "margin" in t else ", no margin set"
            test = f", seed x item p={t['p']:.3g}, Holm p={t['p_holm']:.3g} (m={t['family_m']}){eq}"
        else:
            test = f", paired p={self.p:.3g} (n={self.n})" if not math.isnan(self.p) else ""
        return f"{self.a} vs {self.b} {self.data} {self.metric}: {self.diff + 0.0:+.3g}{test}"  # + 0.0: no "-0"

    @property
    def on_par(self) -> bool | None:
        """TOST at the stated margin (None: no per-item test or no margin: read by the t-test instead)."""
        t = self.item_test
        return None if t is None or "equivalent" not in t else bool(t["equivalent"])

    def lower_significant(self, alpha: float) -> bool:
        """Significantly worse: Holm-adjusted seed x item p where there is one, else the seed t-test's p."""
        p = self.item_test["p_holm"] if self.item_test is not None else self.p
        return self.diff < 0 and p < alpha


def _mean(v: dict[Any, float]) -> float:
    return float(np.mean(list(v.values()))) if v else math.nan


def compare_entries(a: Entry, b: Entry, data: str, metric: str, a_name: str, b_name: str) -> Comparison | None:
    va, vb = a.values.get(metric) or {}, b.values.get(metric) or {}
    if not va or not vb:
        return None
    sign = -1.0 if lower_is_better(data, metric) else 1.0
    diff = sign * (_mean(va) - _mean(vb))
    shared = sorted(set(va) & set(vb)) if a.seeded and b.seeded else []
    p = math.nan
    if len(shared) >= 2:
        from scipy.stats import ttest_rel
        d = np.array([va[s] - vb[s] for s in shared])
        if np.ptp(d) > 0:   # a constant difference has no variance: the t statistic is undefined
            p = float(ttest_rel([va[s] for s in shared], [vb[s] for s in shared]).pvalue)
    return Comparison(a_name, b_name, data, metric, diff, p, len(shared))


def _metrics(claim: Claim, data: str) -> tuple[str, ...]:
    if claim.metrics == ("*",):
        return claim_metrics(data)
    return claim.metrics or (primary_metric(data),)


def _pairs(claim: Claim, res: Results) -> tuple[list[Comparison], list[str]]:
    """All (a, b, data, metric) comparisons the results allow, and what could not be compared."""
    comps, absent = [], []
    for data in claim.data:
        for a in claim.a:
            if not res.pick(data, a):
                absent.append(f"{a} on {data}")
            for ea in res.pick(data, a):
                for b in claim.b:
                    if not res.pick(data, b):
                        absent.append(f"{b} on {data}")
                    for eb in res.pick(data, b):
                        for metric in _metrics(claim, data):
                            c = compare_entries(ea, eb, data, metric, _name(a, ea), _name(b, eb))
                            if c is None:
                                absent.append(f"{metric} of {a}/{b} on {data}")
                            else:
                                comps.append(replace(c, item_test=res.paired.get((ea.key, eb.key, data, metric))))
    return comps, sorted(set(absent))


def _name(spec: str, e: Entry) -> str:
    return e.label or spec


def _detail(lines: list[str], absent: list[str]) -> str:
    out = "; ".join(lines)
    return out + (f" [not run: {', '.join(absent)}]" if absent else "")


def _judge(ok: bool) -> str:
    return SUPPORTED if ok else NOT_SUPPORTED


def evaluate(claim: Claim, res: Results) -> Outcome:
    out = _evaluate(claim, res)
    return Outcome(NOT_RUN, claim.why) if out.verdict == NOT_RUN and claim.why else out


def _evaluate(claim: Claim, res: Results) -> Outcome:
    if claim.kind == "not_measured":
        return Outcome(NOT_RUN, claim.why)
    if claim.kind == "fewer_params":
        return _fewer_params(claim, res)
    if claim.kind == "subspace_above_random":
        return _subspace(claim, res)
    comps, absent = _pairs(claim, res)
    if not comps:
        return Outcome(NOT_RUN, _detail(["nothing to compare"], absent))
    if claim.kind == "beats":
        unrun = sum(1 for b in claim.b if not any(res.pick(d, b) for d in claim.data))
        return _beats(claim, comps, absent, unrun)
    if claim.kind == "not_worse":
        return _not_worse(claim, comps, absent)
    if claim.kind == "on_par":
        return _on_par(claim, comps, absent)
    raise ValueError(f"claim {claim.id}: unknown kind {claim.kind!r}")


def _on_par(claim: Claim, comps: list[Comparison], absent: list[str]) -> Outcome:
    """TOST decides where both rows stored per-item outputs and a margin is set (on par = equivalent);
    elsewhere the paper's own reading: the seed t-test finds no difference (p > alpha)."""
    tost = [c for c in comps if c.on_par is not None]
    rest = [c for c in comps if c.on_par is None]
    untested = [c for c in rest if math.isnan(c.p)]
    if len(untested) == len(comps):
        return Outcome(NOT_RUN, _detail(["no seeds shared by both methods: no t-test possible"], absent))
    differ = [c for c in rest if not math.isnan(c.p) and c.p <= claim.alpha]
    not_par = [c for c in tost if not c.on_par]
    lines = []
    if tost:
        lines.append(f"{len(tost) - len(not_par)} of {len(tost)} on par by TOST (seed x item, margins: "
                     f"{_margin_sources(tost)})")
    if rest:
        lines.append(f"{len(rest) - len(differ) - len(untested)} of {len(rest)} with paired p > {claim.alpha}")
    lines += [f"not shown on par: {c.text()}" for c in not_par]
    lines += [c.text() for c in differ] + [f"untested: {c.text()}" for c in untested]
    return Outcome(_judge(not differ and not not_par), _detail(lines, absent))


def _margin_sources(comps: list[Comparison]) -> str:
    return "; ".join(sorted({f"{c.metric} ±{c.item_test['margin']:g} from {c.item_test['margin_source']}"
                             for c in comps}))


def _not_worse(claim: Claim, comps: list[Comparison], absent: list[str]) -> Outcome:
    """Lower and significantly so (Holm-adjusted seed x item p, else the seed t-test's p < alpha)
    refutes; where a seed x item test with a margin exists, a lower mean is "on par" only when TOST
    shows it (else it refutes: on par was not shown); a lower mean without any test (no seeds, e.g.
    the published numbers) can neither support nor refute 'on-par'."""
    lower = [c for c in comps if c.diff < 0]
    bad = [c for c in lower if c.lower_significant(claim.alpha) or c.on_par is False]
    untested = [c for c in lower if math.isnan(c.p) and c.item_test is None]
    lines = [f"{len(comps) - len(lower)} of {len(comps)} means not lower"]
    lines += [f"lower, on par by TOST: {c.text()}" for c in lower if c.on_par]
    lines += [f"{'significantly lower' if c.lower_significant(claim.alpha) else 'lower, not shown on par'}: "
              f"{c.text()}" for c in bad]
    lines += [f"lower, not significant: {c.text()}" for c in lower
              if c not in bad and c not in untested and not c.on_par]
    lines += [f"lower, untestable without seeds: {c.text()}" for c in untested]
    verdict = NOT_SUPPORTED if bad else (NOT_RUN if untested else SUPPORTED)
    return Outcome(verdict, _detail(lines, absent))


def _beats(claim: Claim, comps: list[Comparison], absent: list[str], unrun: int) -> Outcome:
    lost = [c for c in comps if not c.diff > 0]
    if claim.at_least is None:
        return Outcome(_judge(not lost), _detail(
            [f"better on {len(comps) - len(lost)} of {len(comps)}"] + [f"not better: {c.text()}" for c in lost], absent))
    beaten = sorted({c.b for c in comps} - {c.b for c in lost})
    lines = [f"beats {len(beaten)} of {len({c.b for c in comps})} run ({', '.join(beaten) or 'none'}); "
             f"the claim needs {claim.at_least}"] + [f"not better: {c.text()}" for c in lost]
    if len(beaten) >= claim.at_least:
        return Outcome(SUPPORTED, _detail(lines, absent))
    # Too few compared methods run to reach at_least either way: undecided, not refuted.
    return Outcome(NOT_RUN if len(beaten) + unrun >= claim.at_least else NOT_SUPPORTED, _detail(lines, absent))


def _fewer_params(claim: Claim, res: Results) -> Outcome:
    lines, absent, ok = set(), set(), True
    for data in claim.data:
        for a in claim.a:
            for b in claim.b:
                for ea in res.pick(data, a) or [None]:
                    for eb in res.pick(data, b) or [None]:
                        if ea is None or eb is None or ea.params is None or eb.params is None:
                            absent.add(f"{a if ea is None or ea.params is None else b} on {data}")
                            continue
                        ok &= ea.params < eb.params
                        lines.add(f"{_name(a, ea)} {ea.params:,} vs {_name(b, eb)} {eb.params:,} "
                                  f"(ratio 1/{eb.params / ea.params:.3g})")
    if not lines:
        return Outcome(NOT_RUN, _detail(["no parameter counts"], sorted(absent)))
    return Outcome(_judge(ok), _detail(sorted(lines), []))


def _subspace(claim: Claim, res: Results) -> Outcome:
    df = res.subspace
    if df is None or len(df) == 0:
        return Outcome(NOT_RUN, "no subspace analysis of LoRA vs CondLoRA runs")
    lines, ok = [], True
    for kind in ("A", "B", "dW"):
        sel = df[(df["slot"] == "v") & (df["kind"] == kind)]
        if sel.empty:
            return Outcome(NOT_RUN, f"no value-module {kind} rows in the subspace analysis")
        phi, rnd = float(sel["phi"].mean()), float(sel["phi_random"].mean())
        ok &= phi > rnd
        lines.append(f"v {kind}: mean phi {phi:.3g} vs random {rnd:.3g} over {sel['layer'].nunique()} layers"
                     + (f" × {sel['source'].nunique()} runs" if "source" in sel else ""))
    return Outcome(_judge(ok), "; ".join(lines))


# ----------------------------------------------------------------------------------------------
# The claims of each paper (quotes: ../shared/papers/<source_file>)

LODA_BASELINES = ("ft", "adapter_l", "adapter_h", "prefix", "ft_top2", "ft_qv", "lora")
E2E_METRICS = ("*",)   # "all 5 evaluation metrics": every metric the e2e task declares
GLUE = ("mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb")

CLAIMS: dict[str, tuple[Claim, ...]] = {
    "loda": (
        Claim("loda-e2e-all5", "LoDA, LoDA+, and S-LoDA outperform the baselines (including Fine-Tuning methods) "
              "on all 5 evaluation metrics.", "§3, Table 1", "beats", ("loda", "loda_plus", "s_loda@p=0.4"),
              LODA_BASELINES, ("e2e",), E2E_METRICS, source_file="loda_liu2023.txt",
              reading="every mean of each of the three beats every baseline row's (ties are not 'outperform')"),
        Claim("variants-e2e-on-par", "Other variants R-LoDA(+) and S-LoDA+ perform better than or at least on-par "
              "with LoRA and other baselines.", "§3, Table 1", "not_worse",
              ("r_loda@R=300", "r_loda_plus@R=300", "s_loda_plus@p=0.4"), LODA_BASELINES, ("e2e",), E2E_METRICS,
              source_file="loda_liu2023.txt",
              reading="on-par = lower but equivalent by TOST at the margin of results/paper/margins/equivalence.csv "
                      "(seed x item test, vs LoRA); where no per-item test exists: lower but not significantly "
                      "(paired t-test over seeds, p >= 0.05)"),
        Claim("dart-loda-beats-lora-ftqv", "LoDA and especially LoDA+ again outperform LoRA and FT^{W_q,W_v} .",
              "App. A.2, Table 2", "beats", ("loda", "loda_plus"), ("lora", "ft_qv"), ("dart",), ("BLEU",),
              source_file="loda_liu2023.txt",
              reading="read on DART BLEU (the sentence names no metric; METEOR and TER tie in the paper's Table 2)"),
        Claim("s-loda-dart", "even with pruning 40% of the entries in $W_{\\rm proj}$, S-LoDA(+) can outperform LoRA "
              "and FT^{W_q,W_v} .", "App. A.2, Table 2", "beats", ("s_loda@p=0.6", "s_loda_plus@p=0.6"),
              ("lora", "ft_qv"), ("dart",), ("BLEU",), source_file="loda_liu2023.txt",
              reading="Keep 60% rows, on DART BLEU"),
        Claim("loda-beats-ftqv-all", "LoDA and LoDA+ consistently outperform $\\mathrm{FT}^{W_{\\mathbf{q}},"
              "W_{\\mathbf{v}}}$ on all evaluation metrics.", "App. A.3", "beats", ("loda", "loda_plus"),
              ("ft_qv",), ("e2e", "dart"), ("*",), source_file="loda_liu2023.txt",
              reading="every metric of E2E (5) and DART (3); a tie is not 'outperform'"),
    ),
    "lora": (
        Claim("lora-e2e-several", "LoRA outperforms several baselines with comparable or fewer trainable parameters.",
              "Table 3 caption", "beats", ("lora",), ("ft", "ft_top2", "adapter_l", "adapter_h", "prefix"), ("e2e",),
              ("BLEU",), at_least=2, source_file="peft_overview_slides.txt",
              reading="'several' = at least 2 of the baseline methods, on E2E BLEU"),
        Claim("lora-on-par-ft", "LoRA performs on-par or better than fine-tuning in model quality on RoBERTa, "
              "DeBERTa, GPT-2, and GPT-3", "abstract (arXiv:2106.09685; not in ../shared/papers)", "not_worse",
              ("lora",), ("ft",), ("e2e",) + GLUE, (), source_file=None,
              reading="on each dataset's main metric; on-par = lower but equivalent by TOST at the margin of "
                      "results/paper/margins/equivalence.csv (seed x item test); without one: lower but not "
                      "significantly (paired t-test, p >= 0.05)"),
    ),
    "condlora": (
        Claim("condlora-on-par", "The p-values were over 0.01 in all the tasks, indicating that CondLoRA achieves "
              "competitive performance compared to LoRA.", "§4.1, Table 2", "on_par", ("condlora",), ("lora",),
              GLUE, alpha=0.01, source_file="condlora_kim2024.txt",
              reading="on par on every task run: TOST equivalence at the margin of results/paper/margins/"
                      "equivalence.csv (seed x item test) where both stored per-item outputs; else the paper's "
                      "own reading, paired t-test over seeds, p > 0.01"),
        Claim("condlora-beats-3", "CondLoRA outperforms LoRA in SST-2, MRPC, and STS-B tasks.", "§4.1, Table 2",
              "beats", ("condlora",), ("lora",), ("sst2", "mrpc", "stsb"), source_file="condlora_kim2024.txt"),
        Claim("condlora-fewer-params", "CondLoRA maintains a performance on par with LoRA, despite the fact that the "
              "trainable parameters of CondLoRA are fewer than those of LoRA.", "abstract, Table 4", "fewer_params",
              ("condlora",), ("lora",), GLUE, source_file="condlora_kim2024.txt",
              reading="the parameter part (the performance part is condlora-on-par); counts without the head"),
        Claim("condlora-faster", "Contrary to expectations, CondLoRA is slightly faster than LoRA.", "§4.2, Table 4",
              "beats", ("condlora",), ("lora",), ("glue",), ("train_examples_per_s",), source_file="condlora_kim2024.txt",
              reading="training examples per second (Table 4)",
              why="not measured here: the run records hold the wall time of training and evaluation together, "
                  "on a shared CPU; no training throughput (examples/s) to compare"),
        Claim("condlora-subspace", "while the similarities are not exceedingly high, they are higher than those of "
              "random Gaussian matrices.", "§4.2, Table 3", "subspace_above_random", source_file="condlora_kim2024.txt",
              reading="value module, A, B and ΔW, phi averaged over layers vs Gaussian matrices of the same shape"),
    ),
}
