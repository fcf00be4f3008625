"""The E2E scorer reproduces the official measure_scores.py on every golden case, in both runs.

Golden cases (``../shared/golden/e2e_*``) hold the official scores of the default (Perl mteval)
run and of the ``-p`` run. METEOR/ROUGE_L/CIDEr are the same in both, so each case is scored once
for both modes (``score_e2e_modes``) and the result is cached for the tests of that case. The
547-item dev cases take ~15 s each (mostly the METEOR JVM loading its paraphrase table): slow.
"""

from __future__ import annotations

import functools
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lodabench.errors import ScoringError
from lodabench.paths import shared_dir
from lodabench.scoring import coco, java
from lodabench.scoring.e2e import METRICS, score_e2e, score_e2e_files, score_e2e_modes
from lodabench.scoring.mteval import perl_mteval_tables, python_bleu_nist, tokenize_13a
from lodabench.scoring.textio import read_hypotheses, read_reference_groups

_SHARED = shared_dir()
CASES = sorted(p.name for p in (_SHARED / "golden").glob("e2e_*")) if _SHARED else []
SMALL_CASES = {"e2e_tiny3", "e2e_example_baseline10"}
TOL = 1e-12  # README: compare exactly, METEOR to ~1e-12 (last-bit JVM differences)


def _params(scoring: bool):
    marks = lambda c: ([pytest.mark.java] if scoring else []) + ([pytest.mark.slow] if scoring and c not in SMALL_CASES else [])
    return [pytest.param(c, marks=marks(c)) for c in CASES]


def _load(golden_dir: Path, case: str):
    d = golden_dir / case
    return read_hypotheses(d / "hyp.txt"), read_reference_groups(d / "refs.txt"), json.loads((d / "scores.json").read_text())


@functools.lru_cache(maxsize=None)
def _scored(case_dir: str) -> dict[str, dict[str, float]]:
    d = Path(case_dir)
    return score_e2e_modes(read_hypotheses(d / "hyp.txt"), read_reference_groups(d / "refs.txt"))


def test_golden_cases_discovered(golden_dir):
    found = sorted(p.name for p in golden_dir.glob("e2e_*") if (p / "scores.json").is_file())
    assert found and found == CASES


# --- every golden case, both runs -------------------------------------------------------------


@pytest.mark.parametrize("case", _params(scoring=True))
def test_golden_python_mteval_run(golden_dir, case):
    """`measure_scores.py refs.txt hyp.txt -p`: all five values at full precision and as printed."""
    _, _, gold = _load(golden_dir, case)
    got = _scored(str(golden_dir / case))["python"]
    assert list(got) == list(METRICS)
    for m in METRICS:
        assert got[m] == pytest.approx(gold["scores_python_mteval"][m], abs=TOL, rel=0), m
        assert "%.4f" % got[m] == "%.4f" % gold["printed_python_mteval"][m], m


@pytest.mark.parametrize("case", _params(scoring=True))
def test_golden_perl_mteval_run(golden_dir, case):
    """`measure_scores.py refs.txt hyp.txt`: BLEU/NIST as the Perl script prints them (4 decimals)."""
    _, _, gold = _load(golden_dir, case)
    got = _scored(str(golden_dir / case))["perl"]
    assert got["BLEU"] == gold["scores"]["BLEU"] and got["NIST"] == gold["scores"]["NIST"]
    for m in ("METEOR", "ROUGE_L", "CIDEr"):
        assert got[m] == pytest.approx(gold["scores"][m], abs=TOL, rel=0), m
    for m in METRICS:
        assert "%.4f" % got[m] == "%.4f" % gold["printed"][m], m


@pytest.mark.parametrize("case", _params(scoring=False))
def test_golden_perl_ngram_tables(golden_dir, case):
    """All 36 numbers of the Perl report (individual/cumulative NIST and BLEU, orders 1-9)."""
    hyps, refs, gold = _load(golden_dir, case)
    tables = perl_mteval_tables(hyps, refs)
    rows = [line for line in gold["mteval_output"] if line.startswith(("individual", "cumulative"))]
    assert len(rows) == 4
    for line in rows:
        key, values = line.split(":", 1)
        assert ["%.4f" % v for v in tables[key]] == values.split()[:9], key


@pytest.mark.parametrize("case", _params(scoring=False))
def test_golden_python_bleu_nist_exact(golden_dir, case):
    """The -p BLEU/NIST are bit-identical to pymteval's (same accumulation order)."""
    hyps, refs, gold = _load(golden_dir, case)
    got = python_bleu_nist(hyps, refs)
    assert got == {"BLEU": gold["scores_python_mteval"]["BLEU"], "NIST": gold["scores_python_mteval"]["NIST"]}


# --- mteval details ------------------------------------------------------------------------------


def test_tokenize_13a_unicode_and_case():
    # only ASCII punctuation is split off; en dash and curly quotes stay inside tokens
    assert tokenize_13a("“Aromi” £20–25, It’s") == ["“aromi”", "£20–25", ",", "it’s"]
    assert tokenize_13a("£20-25") == ["£20", "-", "25"]
    assert tokenize_13a("café\u00a0bar & co.") == ["café", "bar", "&", "co", "."]
    assert tokenize_13a("CAFÉ", "python") == ["café"]  # str.lower
    assert tokenize_13a("CAFÉ", "perl") == ["cafÉ"]  # tr/[A-Z]/[a-z]/
    assert tokenize_13a("a &amp; b") == ["a", "&", "b"]


def test_empty_output_token_count_differs_between_variants():
    assert tokenize_13a("", "python") == [""]  # "".split(' ')
    assert tokenize_13a("", "perl") == []


def test_python_nist_undefined_raises_instead_of_zero_division():
    with pytest.raises(ScoringError, match="2-gram total"):
        python_bleu_nist([""], [["the cat sat"]])


def test_perl_mode_rejects_text_that_breaks_the_sgml():
    with pytest.raises(ScoringError, match="SGML"):
        perl_mteval_tables(["a </seg> b"], [["a b"]])


def test_unknown_mteval_mode():
    with pytest.raises(ScoringError, match="mteval"):
        score_e2e(["a"], [["a"]], mteval="java")


# --- input errors ------------------------------------------------------------------------------


def test_count_mismatch_names_counts_and_files(tmp_path):
    hyp, refs = tmp_path / "hyp.txt", tmp_path / "refs.txt"
    hyp.write_text("a\nb\nc\n", encoding="utf-8")
    refs.write_text("a\nx\n\nb\n", encoding="utf-8")
    with pytest.raises(ScoringError) as err:
        score_e2e_files(hyp, refs)
    msg = str(err.value)
    assert "3 hypotheses" in msg and "2 reference groups" in msg and str(hyp) in msg and str(refs) in msg


def test_count_mismatch_in_memory():
    with pytest.raises(ScoringError, match="2 hypotheses.*1 reference groups"):
        score_e2e(["a", "b"], [["a"]])


def test_empty_hypotheses_file(tmp_path):
    hyp, refs = tmp_path / "hyp.txt", tmp_path / "refs.txt"
    hyp.write_text("", encoding="utf-8")
    refs.write_text("a\n", encoding="utf-8")
    with pytest.raises(ScoringError, match=f"hypotheses file {hyp} is empty"):
        score_e2e_files(hyp, refs)


def test_no_items_and_empty_reference():
    with pytest.raises(ScoringError, match="no hypotheses"):
        score_e2e([], [])
    with pytest.raises(ScoringError, match="reference group 2"):
        score_e2e(["a", "b"], [["a"], ["  "]])


@pytest.fixture
def fresh_java_lookup():
    java.java_executable.cache_clear()
    yield
    java.java_executable.cache_clear()


def test_java_missing_from_path(monkeypatch, fresh_java_lookup):
    monkeypatch.delenv("LODABENCH_JAVA", raising=False)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ScoringError, match="java not found on PATH.*default-jre-headless"):
        score_e2e(["a b"], [["a b"]])


def test_java_override_that_does_not_run(monkeypatch, tmp_path, fresh_java_lookup):
    monkeypatch.setenv("LODABENCH_JAVA", str(tmp_path / "no-such-java"))
    with pytest.raises(ScoringError, match="does not run"):
        score_e2e(["a b"], [["a b"]])


# --- METEOR never fails silently ------------------------------------------------------------------


def _fake_java(tmp_path: Path, script: str, monkeypatch) -> None:
    exe = tmp_path / "fake-java"
    exe.write_text("#!/bin/sh\n" + script + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(coco, "java_executable", lambda: str(exe))


def test_meteor_dead_jvm_raises_with_its_stderr(tmp_path, monkeypatch):
    _fake_java(tmp_path, "echo 'Error: cannot load paraphrase table' >&2; exit 1", monkeypatch)
    with pytest.raises(ScoringError, match="exited unexpectedly.*cannot load paraphrase"):
        coco.Meteor().corpus_score(["a b"], [["a b"]])


def test_meteor_silent_jvm_times_out(tmp_path, monkeypatch):
    _fake_java(tmp_path, "cat > /dev/null", monkeypatch)
    monkeypatch.setattr(coco, "METEOR_LINE_TIMEOUT_S", 1.0)
    with pytest.raises(ScoringError, match="no answer within"):
        coco.Meteor().corpus_score(["a b"], [["a b"]])


def test_meteor_out_of_range_score_raises(tmp_path, monkeypatch):
    _fake_java(tmp_path, 'while read l; do case "$l" in EVAL*) echo -1; echo -1;; *) echo "1 2 3";; esac; done',
               monkeypatch)
    with pytest.raises(ScoringError, match="out-of-range score -1"):
        coco.Meteor().corpus_score(["a b"], [["a b"]])


# --- PTB tokenizer behaviour (real jar) ---------------------------------------------------------


@pytest.mark.java
def test_ptb_tokenizer_unicode_ampersand_and_empty_lines():
    got = coco.ptb_tokenize(["£20–25 “Aromi” It’s café\u00a0bar & co…", "", "Hello, World.", ""])
    # £ -> '#'; en dash -> '--', curly quotes -> `` '' and … -> '...' (all deleted); NBSP splits
    assert got == ["# 20 25 aromi it 's café bar & co", "", "hello world", ""]


@pytest.mark.java
def test_ptb_line_breaking_characters_fail_loudly():
    with pytest.raises(ScoringError, match="returned 3 lines for 2"):
        coco.ptb_tokenize(["a\x0bb", "c"])


# --- the CLI ---------------------------------------------------------------------------------------


@pytest.mark.slow  # the scorer CLI in a subprocess, with Java METEOR
@pytest.mark.java
def test_cli_module_prints_one_json_object(golden_dir):
    case = golden_dir / "e2e_tiny3"
    gold = json.loads((case / "scores.json").read_text())
    proc = subprocess.run(
        [sys.executable, "-m", "lodabench.scoring.cli", "e2e", "--hyp", str(case / "hyp.txt"),
         "--refs", str(case / "refs.txt"), "--mteval", "perl"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    got = json.loads(lines[0])
    assert list(got) == list(METRICS)
    assert got["BLEU"] == gold["scores"]["BLEU"] and got["NIST"] == gold["scores"]["NIST"]
    assert got["CIDEr"] == pytest.approx(gold["scores"]["CIDEr"], abs=TOL, rel=0)


def test_cli_main_plumbing_and_errors(tmp_path, monkeypatch, capsys):
    import lodabench.scoring.e2e as e2e_mod
    from lodabench.scoring.cli import main

    hyp, refs = tmp_path / "hyp.txt", tmp_path / "refs.txt"
    hyp.write_text("a b\n\n", encoding="utf-8")
    refs.write_text("a b\nb a\n\nc\n", encoding="utf-8")
    seen = {}

    def fake_score(hyps, groups, mteval="python"):
        seen.update(hyps=hyps, groups=groups, mteval=mteval)
        return dict.fromkeys(METRICS, 0.5)

    monkeypatch.setattr(e2e_mod, "score_e2e", fake_score)
    assert main(["e2e", "--hyp", str(hyp), "--refs", str(refs), "--mteval", "perl"]) == 0
    assert json.loads(capsys.readouterr().out) == dict.fromkeys(METRICS, 0.5)
    assert seen == {"hyps": ["a b", ""], "groups": [["a b", "b a"], ["c"]], "mteval": "perl"}

    refs.write_text("a b\n", encoding="utf-8")
    assert main(["e2e", "--hyp", str(hyp), "--refs", str(refs)]) == 2
    err = capsys.readouterr()
    assert err.out == "" and "2 hypotheses" in err.err and "1 reference groups" in err.err


def test_line_breaks_inside_sentences_are_spaces_in_memory(monkeypatch):
    """In-memory strings are scored as textio would write them: one line each."""
    seen = {}
    monkeypatch.setattr("lodabench.scoring.e2e.coco_scores", lambda h, r: seen.update(h=h, r=r) or dict.fromkeys(("METEOR", "ROUGE_L", "CIDEr"), 0.0))
    monkeypatch.setattr("lodabench.scoring.e2e.java_executable", lambda: "java")
    score_e2e([" x\u2028y\r\nz and more words "], [["a\x0bb", "c"]])
    assert seen == {"h": ["x y z and more words"], "r": [["a b", "c"]]}
