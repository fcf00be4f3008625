"""One METEOR JVM per process (coco.shared_meteor): reused, stateless between scorings, dropped on error.

The reuse is only worth having if it cannot change a number: a scoring on a JVM that already scored
other text must equal the scoring on a fresh one (the golden cases of test_scoring_e2e check the
values themselves, on whichever JVM their worker has).
"""

from __future__ import annotations

import pytest

from lodabench.errors import ScoringError
from lodabench.scoring import coco

pytestmark = pytest.mark.java

HYPS_A = ["the cat sat on the mat", "a dog runs in the park near the river", ""]
REFS_A = [["a cat is on the mat", "the cat sat on a mat"], ["the dog runs in a park"], ["nothing here"]]
HYPS_B = ["Blue Spice is a coffee shop in the city centre .", "it is cheap"]
REFS_B = [["Blue Spice is a coffee shop in riverside ."], ["it is cheap and family friendly", "cheap food"]]


def _jvm_pid() -> int | None:
    return None if coco._shared is None else coco._shared._proc.pid


def _fake_java(tmp_path, monkeypatch, script: str) -> None:
    """``java`` is the shell ``script`` from now on, and no shared JVM exists yet (the real one, if
    any, comes back when monkeypatch undoes this)."""
    exe = tmp_path / "fake-java"
    exe.write_text(f"#!/bin/sh\n{script}\n")
    exe.chmod(0o755)
    monkeypatch.setattr(coco, "_shared", None)
    monkeypatch.setattr(coco, "java_executable", lambda: str(exe))


@pytest.fixture
def idle_java(tmp_path, monkeypatch):
    """A stand-in ``java`` that stays alive and answers nothing: the lifecycle tests need no real JVM."""
    _fake_java(tmp_path, monkeypatch, "exec cat > /dev/null")
    yield
    if coco._shared is not None:
        coco._shared.close()


def test_scorings_share_one_jvm_and_equal_a_fresh_one():
    first = coco.coco_scores(HYPS_A, REFS_A)
    pid = _jvm_pid()
    assert pid is not None
    other = coco.coco_scores(HYPS_B, REFS_B)
    with coco.shared_meteor() as meteor:
        rows = meteor.segment_stats(["a b c"], [["a b c d"]])
    again = coco.coco_scores(HYPS_A, REFS_A)
    assert _jvm_pid() == pid  # no new JVM for the later scorings
    assert again == first
    with coco.Meteor() as fresh:  # a JVM that scored nothing before
        tok_h = coco.ptb_tokenize(HYPS_B)
        tok_r = [coco.ptb_tokenize(g) for g in REFS_B]
        assert fresh.corpus_score(tok_h, tok_r) == other["METEOR"]
        assert fresh.segment_stats(["a b c"], [["a b c d"]]) == rows
    assert len(rows) == 1 and len(rows[0].split()) > 7


def test_an_error_in_use_drops_the_jvm_and_the_next_use_starts_a_new_one(idle_java):
    with coco.shared_meteor() as meteor:
        broken = meteor
    with pytest.raises(RuntimeError):
        with coco.shared_meteor() as meteor:
            assert meteor is broken  # kept between uses
            raise RuntimeError("caller failed mid-conversation")
    assert coco._shared is None and broken._proc.poll() is not None  # closed, not left half-read
    with coco.shared_meteor() as meteor:
        assert meteor is not broken and meteor.usable()


def test_a_forked_child_does_not_use_its_parents_jvm(idle_java, monkeypatch):
    with coco.shared_meteor() as parent:
        pass
    monkeypatch.setattr(coco.os, "getpid", lambda: parent.owner_pid + 1)  # what a fork's child sees
    assert not parent.usable()
    with coco.shared_meteor() as meteor:
        assert meteor is not parent
    assert parent._proc.poll() is None  # the parent's JVM was left alone
    parent.close()


def test_a_dead_shared_jvm_is_replaced(idle_java):
    with coco.shared_meteor() as dead:
        pass
    dead._proc.kill()
    dead._proc.wait()
    with coco.shared_meteor() as meteor:
        assert meteor is not dead and meteor.usable()


def test_a_jvm_error_reaches_the_caller_and_is_not_kept(tmp_path, monkeypatch):
    _fake_java(tmp_path, monkeypatch, "echo 'Error: cannot load paraphrase table' >&2; exit 1")
    with pytest.raises(ScoringError, match="cannot load paraphrase"):
        with coco.shared_meteor() as meteor:
            meteor.corpus_score(["a b"], [["a b"]])
    assert coco._shared is None
