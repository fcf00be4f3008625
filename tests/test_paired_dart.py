"""compare's per-item statistics of DART's scorers (scoring/sufficient_dart.py) and of the Perl mteval.

Exact on the full sample: summed rows, scored, give the scorer's own value -- the golden values of
the official DART scorers (../shared/golden/dart_*: ``scores`` = LoRA's eval.py, ``dart_repo_scorer``
= run_eval_on_dart.sh) and score_dart's on a made-up corpus with the edge cases (empty output,
outputs shorter than 4 tokens, more than 6 references, an order without a match). BLEU is printed
with 2 decimals (4 for the Perl mteval): there the unrounded recomputation must round to the printed
value and equal the scorer's unrounded BLEU. Exact under resampling: the metric of a resample
(items drawn with repeats) recomputed from the rows equals the scorer run on that resampled corpus.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from dart_golden_outputs import case_outputs

from lodabench.paths import shared_dir
from lodabench.results.compare import compare_runs
from lodabench.results.paired import Sides, compare_metric
from lodabench.scoring import dart
from lodabench.scoring.multibleu import multi_bleu, multi_bleu_detok
from lodabench.scoring.sufficient import full_sample, generation_metrics
from lodabench.scoring.sufficient_dart import DART_METRICS, dart_item_metrics
from lodabench.scoring.textio import read_hypotheses, read_reference_groups, write_hypotheses, write_reference_groups

REPO = Path(__file__).resolve().parent.parent
NO_JAVA = ["BLEU", "BLEU_NLTK", "TER", "official_BLEU", "official_TER"]
TOL = 1e-12
PERL_DEFAULT = {"e2e_tiny3", "e2e_example_baseline10", "e2e_dev_empty5pct"}  # the other 547-item cases: slow

# A made-up corpus: an empty output, outputs of 1-3 tokens, an item with 7 references (LoRA keeps 6,
# the official mode 3), punctuation the tokenizers split, and no 4-gram match in item 3.
HYPS = [
    "The Eagle is a coffee shop near Burger King, with a 5 star rating.",
    "",
    "Alimentum",
    "Pietro Canonica designed it in 1900 .",
    "Acharya Institute of Technology's motto is \"Nurturing Excellence\".",
    "a b",
]
REFS = [
    ["The Eagle is a coffee shop near Burger King; it has a 5-star rating.", "The Eagle coffee shop is rated 5 stars."],
    ["Green Man is a pub.", "The Green Man pub."],
    ["Alimentum serves Italian food.", "Alimentum is Italian.", "It is called Alimentum."],
    ["The Ataturk Monument was designed by Pietro Canonica.", "Pietro Canonica designed the Atatürk Monument.",
     "Canonica designed it.", "It was designed in 1900.", "Pietro Canonica, 1900.", "r6 only", "r7 is ignored"],
    ["The motto of the Acharya Institute of Technology is \"Nurturing Excellence\"."],
    ["a b c d", "a"],
]


def _cases(prefix: str) -> list[str]:
    root = shared_dir()
    golden = root / "golden" if root is not None else None
    names = sorted(p.name for p in golden.iterdir() if p.name.startswith(prefix)) if golden and golden.is_dir() else []
    return names or [f"{prefix}tiny3"]  # the golden_dir fixture then skips (or fails under CI)


def _golden(case: Path) -> dict:
    scores = json.loads((case / "scores.json").read_text(encoding="utf-8"))
    return {**scores["scores"], **{f"official_{k}": v for k, v in scores["dart_repo_scorer"]["scores"].items()}}


def _check(metric, stats: np.ndarray, expected: float) -> float:
    """The full-sample value against a scorer's value (its printed decimals for BLEU); the abs diff."""
    value = full_sample(metric, stats)
    if metric.decimals is not None:
        assert float(f"{value:.{metric.decimals}f}") == expected, (metric.name, value, expected)
        return abs(float(f"{value:.{metric.decimals}f}") - expected)
    assert value == pytest.approx(expected, rel=TOL, abs=TOL), (metric.name, value, expected)
    return abs(value - expected)


def _unrounded_bleu(hyps, refs) -> dict[str, float]:
    """The Moses scripts' unrounded BLEU (0-100) of both modes."""
    lora = multi_bleu_detok(hyps, [list(c) for c in zip(*dart.pad_lora_refs(refs))])
    return {"BLEU": 100 * lora.bleu, "official_BLEU": 100 * multi_bleu(hyps, dart.official_ref_columns(refs)).bleu}


@pytest.fixture(scope="module")
def case_stats(golden_dir, session_folder):
    """(hyps, refs, golden scores, dart_item_metrics of ``names``) of a golden case; the statistics
    are computed once per test session for this module and tests/test_scoring_dart.py
    (tests/dart_golden_outputs.py: every DART metric in one call; each metric's rows are the same
    as computed alone)."""

    def get(name: str, names: tuple[str, ...]) -> tuple:
        outputs = case_outputs(session_folder, golden_dir, name)
        return outputs.hyps, outputs.refs, _golden(golden_dir / name), outputs.metrics(names)
    return get


def _case_params(java: bool):
    for name in _cases("dart_"):
        marks = ([pytest.mark.java] if java else []) + ([] if name == "dart_tiny3" else [pytest.mark.slow])
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_case_params(java=False)))
def test_golden_full_sample_without_java(case_stats, name):
    hyps, refs, golden, metrics = case_stats(name, tuple(NO_JAVA))
    unrounded = _unrounded_bleu(hyps, refs)
    for m, (metric, stats) in metrics.items():
        _check(metric, stats[0], golden[m])
        if m in unrounded:  # the unrounded value is the scripts' own, to the last bit
            assert full_sample(metric, stats[0]) == unrounded[m]


@pytest.mark.parametrize("name", list(_case_params(java=True)))
@pytest.mark.parametrize("meteor", ["METEOR", "official_METEOR"])
def test_golden_full_sample_meteor(case_stats, name, meteor):
    _, _, golden, metrics = case_stats(name, (meteor,))  # the jar's -ssOut rows of that mode
    metric, stats = metrics[meteor]
    _check(metric, stats[0], golden[meteor])


# --- a made-up corpus ----------------------------------------------------------------------------


def _no_java_scores(hyps, refs) -> dict[str, float]:
    """score_dart's numbers that need no JVM, from the very functions it uses."""
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    hyps_tok, refs_tok = dart.lora_tokenized(hyps, refs)
    _, nltk_refs, nltk_hyps = dart.nltk_bleu_inputs(hyps_tok, refs_tok)
    ter = dart.lora_ter_items(hyps_tok, refs_tok)
    return {**_unrounded_bleu(hyps, refs), "TER": sum(ter) / len(ter), "official_TER": dart.official_ter(hyps, refs),
            "BLEU_NLTK": corpus_bleu(nltk_refs, nltk_hyps, smoothing_function=SmoothingFunction().method3)}


def test_made_up_corpus_full_sample_without_java():
    metrics = dart_item_metrics([HYPS], REFS, NO_JAVA)
    expected = _no_java_scores(HYPS, REFS)
    for m, (metric, stats) in metrics.items():
        assert full_sample(metric, stats[0]) == pytest.approx(expected[m], rel=TOL, abs=TOL), m


def test_resamples_equal_the_scorers_on_the_resampled_corpus():
    """Items drawn with repeats: the rows' sums give what the scorers give on that corpus."""
    rng = np.random.default_rng(3)
    metrics = dart_item_metrics([HYPS], REFS, NO_JAVA)
    for _ in range(4):
        idx = rng.integers(0, len(HYPS), size=len(HYPS))
        expected = _no_java_scores([HYPS[i] for i in idx], [REFS[i] for i in idx])
        for m, (metric, stats) in metrics.items():
            assert float(metric.score(stats[0][idx].sum(0))) == pytest.approx(expected[m], rel=TOL, abs=TOL), m


def test_degenerate_corpora_score_as_the_scripts():
    """No 4-gram match: multi-bleu's log(0) = -9999999999 gives 0 (nltk's method3 smooths instead);
    all outputs empty: BLEU 0 and BLEU_NLTK 0, TER 1."""
    refs = [["a b c"], ["c d f g"]]
    for hyps in (["a b", "c d e"], ["", ""]):
        metrics = dart_item_metrics([hyps], refs, NO_JAVA)
        expected = _no_java_scores(hyps, refs)
        for m, (metric, stats) in metrics.items():
            assert full_sample(metric, stats[0]) == pytest.approx(expected[m], rel=TOL, abs=TOL), (hyps, m)
        assert full_sample(metrics["BLEU"][0], metrics["BLEU"][1][0]) == 0.0


@pytest.fixture(scope="module")
def made_up():
    """The made-up corpus scored once per module (each needs METEOR JVMs): ``stats()`` is
    dart_item_metrics of every DART metric, ``score(hyps)`` score_dart's numbers in both modes."""
    cache: dict = {}

    def stats() -> dict:
        if "stats" not in cache:
            cache["stats"] = dart_item_metrics([HYPS], REFS, DART_METRICS)
        return cache["stats"]

    def score(hyps) -> dict:
        key = ("score", tuple(hyps))
        if key not in cache:
            cache[key] = {**dart.score_dart(hyps, REFS, "lora"),
                          **{f"official_{k}": v for k, v in dart.score_dart(hyps, REFS, "official").items()}}
        return dict(cache[key])

    return SimpleNamespace(stats=stats, score=score)


@pytest.mark.java
@pytest.mark.slow
def test_made_up_corpus_equals_score_dart_in_both_modes(made_up):
    metrics = made_up.stats()
    recorded = made_up.score(HYPS)
    assert sorted(metrics) == sorted(DART_METRICS)
    for m, (metric, stats) in metrics.items():
        _check(metric, stats[0], recorded[m])


@pytest.mark.java
@pytest.mark.slow
def test_meteor_resample_equals_the_jar_on_the_resampled_corpus(made_up):
    idx = [0, 0, 3, 5, 1, 3]
    metrics = made_up.stats()  # the rows of every metric (METEOR's are the same computed alone)
    hyps, refs = [HYPS[i] for i in idx], [REFS[i] for i in idx]
    lora = dart.score_dart(hyps, refs, "lora")["METEOR"]
    official = dart.score_dart(hyps, refs, "official")["METEOR"]
    for m, expected in (("METEOR", lora), ("official_METEOR", official)):
        metric, stats = metrics[m]
        assert float(metric.score(stats[0][idx].sum(0))) == pytest.approx(expected, rel=TOL), m


# --- the resampling tests on these statistics ----------------------------------------------------


@pytest.mark.parametrize("test", ["bootstrap", "ar"])
def test_a_system_against_itself(test):
    for m, (metric, stats) in dart_item_metrics([HYPS], REFS, NO_JAVA).items():
        res = compare_metric(metric, Sides([stats[0]], [stats[0]]), test, trials=300, seed=1, margin=0.5)
        assert (res.delta, res.p, res.equivalent) == (0.0, 1.0, True), m


def test_a_better_system_wins_on_bleu():
    worse = ["", "", "", "a", "", ""]
    metrics = dart_item_metrics([HYPS, worse], REFS, ["BLEU", "official_TER"])
    bleu, ter = metrics["BLEU"], metrics["official_TER"]
    res = compare_metric(bleu[0], Sides([bleu[1][0]], [bleu[1][1]]), "bootstrap", trials=500)
    assert res.delta > 0 and res.ci95[0] <= res.delta <= res.ci95[1]
    assert compare_metric(ter[0], Sides([ter[1][0]], [ter[1][1]]), "ar", trials=500).delta < 0


# --- lodabench compare on DART run directories -------------------------------------------------------


def _run_dir(root: Path, name: str, hyps, refs, recorded: dict, seed: int = 1) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(f"seed: {seed}\ndata:\n  name: dart\n  scorer: dart\n", encoding="utf-8")
    write_hypotheses(run / "hyp.txt", hyps)
    write_reference_groups(run / "refs.txt", refs)
    (run / "metrics.json").write_text(json.dumps(recorded), encoding="utf-8")
    return run


def _recorded_without_java(hyps, refs) -> dict[str, float]:
    scores = _no_java_scores(hyps, refs)
    return {**scores, "BLEU": multi_bleu_detok(hyps, [list(c) for c in zip(*dart.pad_lora_refs(refs))]).printed,
            "official_BLEU": multi_bleu(hyps, dart.official_ref_columns(refs)).printed}


def test_compare_two_dart_runs(tmp_path):
    other = [HYPS[0], "Green Man", "Alimentum is Italian", HYPS[3], "", "a b c"]
    a = _run_dir(tmp_path, "a", HYPS, REFS, _recorded_without_java(HYPS, REFS))
    b = _run_dir(tmp_path, "b", other, REFS, _recorded_without_java(other, REFS))
    notes: list[str] = []
    out = compare_runs([a], [b], trials=300, metrics=NO_JAVA, notes=notes)
    assert sorted(out) == sorted(NO_JAVA) and not notes, notes  # BLEU's 2 decimals are matched by rounding
    rec_a, rec_b = json.loads((a / "metrics.json").read_text()), json.loads((b / "metrics.json").read_text())
    for m, r in out.items():
        assert (r["a"], r["b"], r["n_items"]) == (rec_a[m], rec_b[m], len(HYPS))
        assert math.isfinite(r["p"]) and r["ci95"][0] <= r["ci95"][1]
    same = compare_runs([a], [a], trials=200, metrics=NO_JAVA)
    assert all((r["delta"], r["p"]) == (0.0, 1.0) for r in same.values())


def test_compare_says_when_a_rounded_record_does_not_match(tmp_path):
    recorded = _recorded_without_java(HYPS, REFS)
    a = _run_dir(tmp_path, "a", HYPS, REFS, {**recorded, "BLEU": round(recorded["BLEU"] + 0.01, 2)})
    notes: list[str] = []
    compare_runs([a], [a], trials=50, metrics=["BLEU"], notes=notes)
    assert notes and all("BLEU recorded" in n for n in notes)  # one per side


def test_without_java_compare_skips_only_meteor_and_says_so(tmp_path, monkeypatch):
    from lodabench.errors import ScoringError
    from lodabench.scoring import java

    def no_java():
        raise ScoringError("java not found on PATH (test)")
    monkeypatch.setattr(java, "java_executable", no_java)
    recorded = {**_recorded_without_java(HYPS, REFS), "METEOR": 0.5, "official_METEOR": 0.5}
    a = _run_dir(tmp_path, "a", HYPS, REFS, recorded)
    notes: list[str] = []
    out = compare_runs([a], [a], trials=100, notes=notes)
    assert sorted(out) == sorted(NO_JAVA)
    assert len(notes) == 1 and notes[0].startswith("METEOR, official_METEOR skipped: they need Java")


@pytest.mark.java
@pytest.mark.slow
def test_compare_two_dart_runs_every_metric(tmp_path, made_up):
    other = [HYPS[0], "Green Man", "Alimentum is Italian", HYPS[3], "", "a b c"]
    runs = []
    for name, hyps in (("a", HYPS), ("b", other)):
        runs.append(_run_dir(tmp_path, name, hyps, REFS, made_up.score(hyps)))  # score_dart, both modes
    notes: list[str] = []
    out = compare_runs([runs[0]], [runs[1]], trials=300, notes=notes)
    assert sorted(out) == sorted(DART_METRICS) and not notes, notes


# --- the Perl mteval variant of E2E BLEU/NIST ---------------------------------------------------------


@pytest.mark.parametrize("name", [pytest.param(c, marks=[] if c in PERL_DEFAULT else [pytest.mark.slow])
                                  for c in _cases("e2e_")])
def test_perl_mteval_rounds_to_the_printed_values(golden_dir, name):
    """The Perl script prints 4 decimals (golden ``scores``); the unrounded recomputation rounds to
    them and equals mteval.perl_bleu_nist_exact (BLEU to the bit, NIST up to the order of its sums)."""
    from lodabench.scoring.mteval import perl_bleu_nist_exact

    case = golden_dir / name
    hyps, refs = read_hypotheses(case / "hyp.txt"), read_reference_groups(case / "refs.txt")
    golden = json.loads((case / "scores.json").read_text(encoding="utf-8"))["scores"]
    exact = perl_bleu_nist_exact(hyps, refs)
    for m, (metric, stats) in generation_metrics([hyps], refs, ["BLEU", "NIST"], mteval="perl").items():
        _check(metric, stats[0], golden[m])
        assert full_sample(metric, stats[0]) == pytest.approx(exact[m], rel=1e-13, abs=0), m


def test_compare_perl_mteval_runs(tmp_path):
    """A data.mteval=perl E2E run: BLEU/NIST are compared (no longer skipped), records matched by rounding."""
    from lodabench.scoring.mteval import perl_bleu_nist

    src = REPO / "results/smollm2_e2e/runs/e2e/smollm2-135m/lora/experiment=smollm2_e2e,trainer.lr=0.001/seed110"
    if not (src / "hyp.txt").is_file():
        pytest.skip(f"{src} is not committed")
    run = tmp_path / "perl"
    shutil.copytree(src, run)
    cfg = (run / "config.yaml").read_text(encoding="utf-8")
    assert "mteval:" not in cfg and "\n  name: e2e\n" in cfg  # the default, python
    (run / "config.yaml").write_text(cfg.replace("\n  name: e2e\n", "\n  name: e2e\n  mteval: perl\n"), encoding="utf-8")
    recorded = json.loads((run / "metrics.json").read_text())
    recorded.update(perl_bleu_nist(read_hypotheses(run / "hyp.txt"), read_reference_groups(run / "refs.txt")))
    (run / "metrics.json").write_text(json.dumps(recorded))
    notes: list[str] = []
    out = compare_runs([run], [run], trials=200, metrics=["BLEU", "NIST"], notes=notes)
    assert not notes and sorted(out) == ["BLEU", "NIST"]
    assert all((r["delta"], r["p"]) == (0.0, 1.0) for r in out.values())
