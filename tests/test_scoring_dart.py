"""DART scorers reproduce the official scorers' golden values (../shared/golden/dart_*).

Every ``dart_*`` golden case is discovered at collection time and scored in both modes; ``lora``
mode must give the printed BLEU exactly and BLEU_NLTK/METEOR/TER within 1e-6, ``official`` mode
the printed BLEU exactly and METEOR/TER within 1e-6. The 3-item case runs by default; the
2,721-item dev cases take minutes on 2 CPUs and are marked slow.

``official`` TER is also checked against tercom 7.25 itself on the long cases of
tests/golden/dart_ter_long/ (5,097 DART test items each, rebuilt from ../shared by
scripts/dart_ter_long.py; ``bart_large_dart`` needs LODABENCH_DART_EVALUATION): every 10th
segment's edits and average reference length by default, the whole corpus TER (the exact double
tercom printed) in the slow tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
from pathlib import Path

import pytest
from dart_golden_outputs import case_outputs

from lodabench.errors import ScoringError
from lodabench.paths import shared_dir
from lodabench.scoring import coco, dart, tercom_compat
from lodabench.scoring.java import java_executable
from lodabench.scoring.multibleu import detok_tokenize, multi_bleu, multi_bleu_detok
from lodabench.scoring.nltk_compat import word_tokenize_35
from lodabench.scoring.textio import read_hypotheses, read_reference_groups


def _discover_cases() -> list[str]:
    root = shared_dir()
    golden = root / "golden" if root is not None else None
    if golden is None or not golden.is_dir():
        return ["<no golden dir>"]  # the golden_dir fixture then skips (or fails under CI)
    return sorted(p.name for p in golden.iterdir() if p.is_dir() and p.name.startswith("dart_"))


CASES = _discover_cases()
SMALL = {"dart_tiny3"}
TOL = 1e-6


def _case_params():
    for name in CASES:
        for mode in ("lora", "official"):
            marks = [pytest.mark.java] + ([] if name in SMALL else [pytest.mark.slow])
            yield pytest.param(name, mode, marks=marks, id=f"{name}-{mode}")


@pytest.fixture(scope="module")
def score_case(golden_dir: Path, session_folder):
    """(score_dart's scores, golden scores) of a golden case and mode; the scores are computed once
    per test session for this module and tests/test_paired_dart.py (tests/dart_golden_outputs.py)."""

    def run(name: str, mode: str) -> tuple[dict, dict]:
        expected = json.loads((golden_dir / name / "scores.json").read_text(encoding="utf-8"))
        outputs = case_outputs(session_folder, golden_dir, name)
        assert len(outputs.hyps) == expected["n_items"]
        golden = expected["scores"] if mode == "lora" else expected["dart_repo_scorer"]["scores"]
        return outputs.scores[mode], golden

    return run


@pytest.mark.parametrize("name,mode", list(_case_params()))
def test_golden_case(score_case, name, mode):
    got, golden = score_case(name, mode)
    expected_keys = {"BLEU", "METEOR", "TER"} | ({"BLEU_NLTK"} if mode == "lora" else set())
    assert set(got) == expected_keys
    assert set(golden) == expected_keys
    assert got["BLEU"] == golden["BLEU"], f"{name} {mode} BLEU {got['BLEU']} != {golden['BLEU']}"
    for key in expected_keys - {"BLEU"}:
        assert got[key] == pytest.approx(golden[key], abs=TOL), f"{name} {mode} {key}: {got[key]!r} vs {golden[key]!r}"


# ------------------------------------------------------------------------------ tokenizer (no Java)
@pytest.mark.parametrize(
    "text,tokens",
    [
        # nltk 3.5 keeps a leading quote glued to a capitalised name (3.10 splits it off)
        (
            "Its motto is 'Nurturing Excellence'.",
            ["Its", "motto", "is", "'Nurturing", "Excellence", "'", "."],
        ),
        # nltk 3.5 does not split en dashes (3.10 does)
        ("It costs £20–25 per person.", ["It", "costs", "£20–25", "per", "person", "."]),
        # 'n is not a clitic for nltk 3.5 (3.10 keeps "'n" together)
        ("Rock 'n' roll.", ["Rock", "'", "n", "'", "roll", "."]),
        # Punkt (English parameters) splits sentences before the word rules, "p.m." is an abbreviation
        (
            "He went to Washington. He arrived at 3 p.m. on Friday.",
            ["He", "went", "to", "Washington", ".", "He", "arrived", "at", "3", "p.m.", "on", "Friday", "."],
        ),
        ('He said "hello" to them...', ["He", "said", "``", "hello", "''", "to", "them", "..."]),
        ("", []),
    ],
)
def test_word_tokenize_35(text, tokens):
    assert word_tokenize_35(text) == tokens


# ------------------------------------------------------------------------------ BLEU (no Java)
def test_detok_tokenization_rules():
    assert detok_tokenize("It's £20-25, i.e. 3.5 &amp; more.".encode()) == b"It's \xc2\xa320 - 25 , i . e . 3.5 & more ."  # the apostrophe is not split
    # only ASCII whitespace separates tokens (Perl reads bytes): a no-break space stays inside
    assert detok_tokenize("a\u00a0b".encode()).split() == ["a\u00a0b".encode()]


def test_multi_bleu_empty_padding_reference_is_closest_for_empty_output():
    # item 2's output is empty: the empty padding reference (length 0) is its closest reference,
    # so the corpus reference length is 4 (item 1) + 0 and no brevity penalty applies.
    stats = multi_bleu(["a b c d", ""], [["a b c d", "x y z w v"], ["", ""]])
    assert (stats.hyp_len, stats.ref_len) == (4, 0 + 4)
    assert stats.printed == 100.0


def test_multi_bleu_zero_reference_length_prints_zero():
    # 3 words, references of 6 and 0 words: the tie goes to the empty one, total ref length 0
    assert multi_bleu(["The cat sat."], [["The cat sat on the mat."], [""]]).printed == 0.0


def test_multi_bleu_detok_ties_pick_shorter_reference():
    stats = multi_bleu_detok(["a b c d e"], [["a b c d"], ["a b c d e f"]])
    assert stats.ref_len == 4  # |5-4| == |5-6|: the shorter one


# ------------------------------------------------------------------------------ input errors
def test_count_mismatch_names_both_counts():
    with pytest.raises(ScoringError, match=r"2 hypotheses but 3 reference groups"):
        dart.score_dart(["a", "b"], [["a"], ["b"], ["c"]])


def test_empty_hypotheses_rejected():
    with pytest.raises(ScoringError, match="no hypotheses"):
        dart.score_dart([], [])


def test_item_without_reference_rejected():
    with pytest.raises(ScoringError, match="item 2 has no"):
        dart.score_dart(["a", "b"], [["a"], []])


def test_unknown_mode():
    with pytest.raises(ScoringError, match="unknown DART scoring mode 'webnlg'"):
        dart.score_dart(["a"], [["a"]], mode="webnlg")


# ------------------------------------------------------------------------------ Java / METEOR errors
@pytest.fixture
def no_java(monkeypatch, tmp_path):
    monkeypatch.setenv("LODABENCH_JAVA", str(tmp_path / "no-such-java"))
    java_executable.cache_clear()
    yield
    monkeypatch.undo()
    java_executable.cache_clear()


@pytest.mark.parametrize("mode", ["lora", "official"])
def test_java_missing_raises_with_fix(no_java, mode):
    with pytest.raises(ScoringError, match="default-jre-headless"):
        dart.score_dart(["The cat sat."], [["The cat sat on the mat."]], mode=mode)


@pytest.mark.java
def test_meteor_failure_is_an_error_not_a_score(monkeypatch, tmp_path):
    bogus = tmp_path / "not-a-jar.jar"
    bogus.write_text("not a jar")
    _, paraphrase = dart.meteor_files()
    monkeypatch.setattr(dart, "meteor_files", lambda: (bogus, paraphrase))
    with pytest.raises(ScoringError, match="Final score"):
        dart.meteor_15_file(["a b"], [["a b"]], num_refs=1)


# Items the line protocol could get wrong if it were not the file mode's equal: an empty hypothesis,
# empty references (first, middle and last), runs of blanks and a tab.
EDGE_HYPS = ["", "  the  cat  sat ", "x y\tz", "the cat"]
EDGE_REFS = [["a cat sat .", "", "", "", "", ""], [" the cat sat ", "cat", "", "", "", ""],
             ["", "x  y z", "", "", "", "w"], ["", "", "", "", "", ""]]


@pytest.mark.java
@pytest.mark.slow  # two CMU-jar JVMs (~7 s of CPU each loading the paraphrase table)
def test_meteor_jvm_equals_the_cmu_jar_in_file_mode(golden_dir):
    """The process's METEOR JVM (SCORE/EVAL lines) gives what the CMU jar's file mode prints, to the bit:
    every -ssOut statistics line and the Final score, on dart_tiny3's -r 6 input and the edge items
    (the dev cases, both modes, were measured equal too: lodabench.scoring.dart's docstring)."""
    case = golden_dir / "dart_tiny3"
    hyps, refs = dart.lora_tokenized(read_hypotheses(case / "hyp.txt"), read_reference_groups(case / "refs.txt"))
    hyps, refs = hyps + EDGE_HYPS, refs + EDGE_REFS
    stats, score = dart.meteor_15_scored(hyps, refs, dart.LORA_NUM_REFS)
    assert stats == dart.meteor_15_file_stats(hyps, refs, dart.LORA_NUM_REFS)
    assert score == dart.meteor_15_file(hyps, refs, dart.LORA_NUM_REFS)
    assert coco._shared is not None and coco._shared.usable()  # asked of the process's JVM


@pytest.mark.parametrize("text", ["a ||| b", "a\rb"])
def test_meteor_texts_the_line_protocol_cannot_carry_go_to_the_file_mode(monkeypatch, text):
    calls = []

    def file_mode(hyps, refs, num_refs, extra=()):
        calls.append((list(hyps), list(extra)))
        return ["java"], ("1.0 2.0\n" if extra else "Final score:            0.25\n")

    monkeypatch.setattr(dart, "run_meteor_15", file_mode)
    monkeypatch.setattr(coco, "shared_meteor", lambda: pytest.fail("the JVM's line protocol was used"))
    assert dart.meteor_15_scored([text], [["a b"]], 1) == (["1.0 2.0"], 0.25)
    assert dart.meteor_15_scored(["a b"], [[text]], 1) == (["1.0 2.0"], 0.25)
    assert calls == [([text], ["-ssOut"]), ([text], []), (["a b"], ["-ssOut"]), (["a b"], [])]


# ------------------------------------------------------------------------------ TER (no Java)
def test_pyter_compat_equals_pyter():
    import random

    import pyter

    from lodabench.scoring.pyter_compat import ter

    rng = random.Random(7)
    vocab = "a b c d e the of .".split()
    for _ in range(400):
        hyp = [rng.choice(vocab) for _ in range(rng.randint(0, 15))]
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 15))]
        assert ter(hyp, ref) == pyter.ter(hyp, ref), (hyp, ref)
    hyp = "THIS WEEK THE SAUDIS denied information published in the new york times".split()
    ref = "SAUDI ARABIA denied THIS WEEK information published in the AMERICAN new york times".split()
    assert ter(hyp, ref) == pyter.ter(hyp, ref) == 4 / 13


def test_tercom_ter_is_case_insensitive_and_splits_on_ascii_space_only():
    assert dart.tercom_corpus_ter(["The Cat sat"], [["the cat sat"]]) == 0.0
    # a no-break space does not separate words for tercom (Java \\s): 1 hyp word vs 2 ref words
    assert dart.tercom_corpus_ter(["a\u00a0b"], [["a b"]]) == 1.0
    # fewest edits over the references, divided by their average length
    assert dart.tercom_corpus_ter(["a b c"], [["a b c", "x y z w v"]]) == 0.0
    assert dart.tercom_corpus_ter(["a b"], [["a b c", "a b c d e"]]) == pytest.approx(1 / 4)


def test_tercom_empty_strings_and_control_characters():
    # TERnullstr: an empty output costs the reference length; an empty reference has length 0
    assert tercom_compat.segment_ter("", ["a b c"]) == (3, 3.0)
    assert tercom_compat.segment_ter("a b", ["", "a b"]) == (0, 1.0)
    # Java's trim() drops control characters at the ends; tab / vertical tab / form feed split words
    assert tercom_compat.tercom_words("\x01The\tCat\x0bsat\x0c\x02") == ["the", "cat", "sat"]
    # \u0130 lowercases to i + combining dot in Java and Python alike
    assert tercom_compat.tercom_words("\u0130stanbul") == ["i\u0307stanbul"]


def test_tercom_unreadable_lines_are_left_out_like_tercom():
    # tercom's line pattern stops at U+2028: that output is not scored, that reference not used.
    # tercom.7.25.jar on these inputs: "Warning, Invalid line" then "Total TER: 0.3333333333333333
    # (1.0/3.0)", "Total TER: 0.5 (2.0/4.0)", and "***ERROR*** No reference for segment id0"
    assert dart.tercom_corpus_ter(["a b\u2028c", "x y"], [["a b c"], ["x y z"]]) == 1 / 3
    assert dart.tercom_corpus_ter(["x y"], [["x y\u2029z", "x y w v"]]) == 2 / 4
    with pytest.raises(ScoringError, match="item 1 .* U\\+0085"):
        dart.tercom_corpus_ter(["x"], [["x\x85y"]])


def test_tercom_full_table_equals_literal_beam_search():
    # the fast path (full table, tie order replayed) must give tercom's beam result and path
    # whenever it claims the beam prunes nothing; long, unequal pairs make the beam prune
    rng = random.Random(3)
    pruned = 0
    for k in range(3000):
        vocab = "a b c d e f".split()[: rng.randint(2, 6)]
        hyp = [rng.choice(vocab) for _ in range(rng.randint(1, 60 if k % 4 == 0 else 12))]
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 60 if k % 5 == 0 else 12))]
        full = tercom_compat._full_edit_distance(hyp, ref)
        literal = tercom_compat._literal_beam_edit_distance(hyp, ref)
        if full is None:
            pruned += 1
        else:
            assert full == literal, (hyp, ref)
    assert pruned > 0


def test_tercom_shift_search_is_not_sacrebleus():
    # tercom.7.25.jar -h h.txt -r r.txt on this pair printed "Total TER: 0.6896551724137931
    # (20.0/29.0)"; sacrebleu's lib_ter (our TER before) finds a cheaper shift sequence: 17 edits
    from sacrebleu.metrics.lib_ter import translation_edit_rate

    hyp = ("the wharf is a moderately priced thai restaurant in the city centre near blue door . "
           "it has a customer rating of 3 out of 5 .")
    ref = ("A moderate price with a customer rating 3 out of 5, The Wharf is an Thai restaurant near "
           "Blue Door in the center of the city for the kids.")
    assert tercom_compat.segment_ter(hyp, [ref]) == (20, 29.0)
    assert dart.tercom_corpus_ter([hyp], [[ref]]) == 0.6896551724137931
    words = tercom_compat.tercom_words
    assert translation_edit_rate(words(hyp), words(ref)) == (17, 29)


# ------------------------------------------------------------------------------ TER = tercom on long cases
LONG_DIR = Path(__file__).resolve().parent / "golden" / "dart_ter_long"
LONG_CASES = sorted(p.name for p in LONG_DIR.iterdir() if (p / "scores.json").is_file())
SAMPLE_EVERY = 10


def _long_case_generator():
    path = Path(__file__).resolve().parents[1] / "scripts" / "dart_ter_long.py"
    spec = importlib.util.spec_from_file_location("dart_ter_long", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dart_evaluation_dir() -> Path:
    """The Yale-LILY/dart ``evaluation/`` folder for the cases read from it (never part of ../shared)."""
    value = os.environ.get("LODABENCH_DART_EVALUATION")
    if not value or not Path(value).is_dir():
        pytest.skip("set LODABENCH_DART_EVALUATION=<Yale-LILY/dart checkout>/evaluation to run the cases "
                    "read from the DART repository (its BART-large output)")
    return Path(value)


@pytest.fixture(scope="module")
def shared_segment_ter():
    """``tercom_compat.segment_ter`` remembering its results for this module: the sampled segments
    of the fast test are not searched again when the slow test scores the whole corpus (the same
    pure function on the same tokens: the same numbers)."""
    real, memo = tercom_compat.segment_ter, {}

    def remembered(hyp, refs):
        key = (hyp, tuple(refs))
        if key not in memo:
            memo[key] = real(hyp, refs)
        return memo[key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tercom_compat, "segment_ter", remembered)
        yield memo


@pytest.fixture(scope="module")
def long_case(data_root: Path, shared_segment_ter):
    """(hypotheses, reference groups, stored tercom results) of a long case, rebuilt from ../shared."""
    generator = _long_case_generator()
    groups = generator.load_reference_groups(data_root)

    def build(name: str):
        expected = json.loads((LONG_DIR / name / "scores.json").read_text(encoding="utf-8"))
        if name in generator.EXTERNAL:
            hyps, refs = generator.read_external_case(name, _dart_evaluation_dir())
        else:
            hyps, refs = generator.build_case(name, groups)
        assert generator.input_digest(hyps, refs) == expected["inputs_sha256"], (
            f"{name}: the rebuilt outputs differ from the ones tercom scored (rule or data changed); "
            "rerun scripts/dart_ter_long.py score"
        )
        segments = {}
        for line in (LONG_DIR / name / "segments.txt").read_text(encoding="utf-8").splitlines():
            item, edits, words = line.split()
            segments[int(item)] = (float(edits), float(words))
        return hyps, refs, expected, segments

    return build


@pytest.mark.parametrize("name", LONG_CASES)
def test_tercom_long_case_segments(long_case, name):
    hyps, refs, _, segments = long_case(name)
    ter_refs = dart.official_ter_refs(refs)
    for i in range(0, len(hyps), SAMPLE_EVERY):
        hyp = hyps[i].strip()
        if i not in segments:  # tercom could not read this output (U+2028), nor do we score it
            assert dart.tercom_corpus_ter([hyp, "a"], [ter_refs[i], ["a"]]) == 0.0
            continue
        got = tercom_compat.segment_ter(hyp, ter_refs[i])
        assert got == segments[i], f"{name} item {i}: ours {got}, tercom {segments[i]} for {hyp!r}"


@pytest.mark.slow
@pytest.mark.parametrize("name", LONG_CASES)
def test_tercom_long_case_total(long_case, name):
    hyps, refs, expected, _ = long_case(name)
    # the double tercom printed, to the last digit
    assert dart.official_ter(hyps, refs) == expected["TER"], expected["printed"]
