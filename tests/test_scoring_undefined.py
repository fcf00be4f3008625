"""A metric the official -p scorer cannot compute is an error on the CLI, and null in a run record."""

from __future__ import annotations

import pytest

from lodabench.errors import ScoringError
from lodabench.scoring.e2e import score_e2e

REFS = [["The Eagle is a pub near the river."], ["Alimentum serves Chinese food."]]


@pytest.mark.slow  # the official E2E scorer (Java METEOR) twice
@pytest.mark.java
def test_undefined_nist_raises_when_strict_and_is_none_otherwise():
    hyps = ["", ""]  # no n-grams at all: measure_scores.py -p divides by zero
    with pytest.raises(ScoringError, match="NIST \\(-p\\) is undefined"):
        score_e2e(hyps, REFS)
    scores = score_e2e(hyps, REFS, strict=False)
    assert scores["NIST"] is None
    assert scores["METEOR"] == 0.0 and scores["ROUGE_L"] == 0.0 and scores["CIDEr"] == 0.0
