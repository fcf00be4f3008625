"""Unit tests of lodabench.state_files (issue 27, "nothing trusted that is not recorded"): every JSON
state file is checked against its shape on read, strict JSON on write and read, hypotheses line by line,
non-finite weights refused."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest
import torch

from lodabench import io as lb_io
from lodabench import state_files as sf
from lodabench.errors import CheckpointError, DataError
from lodabench.run.records import RunRecord
from lodabench.train.trainer import TrainState

GOOD_STATE = {"epoch": 0, "batch_in_epoch": 6, "global_step": 6, "finished": True, "dev_loss": {"1": 10.7},
              "train_loss": {"1": 10.8}, "last_loss": 10.7, "epoch_loss_sum": 64.7, "epoch_loss_count": 6,
              "train_tokens": 2571}


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


# ----------------------------------------------------------------------------- shapes
def test_trainer_state_shape_lists_every_trainstate_field():
    """A field added to TrainState must be added to its shape (else every resume would be refused)."""
    assert set(sf.TRAINER_STATE_SHAPE.fields) == {f.name for f in dataclasses.fields(TrainState)}


def test_good_trainer_state_and_an_older_one_pass():
    sf.validate(GOOD_STATE, "trainer_state", "ts.json")
    older = {k: GOOD_STATE[k] for k in ("epoch", "batch_in_epoch", "global_step", "finished", "dev_loss",
                                        "train_loss", "last_loss")}
    sf.validate(older, "trainer_state", "ts.json")  # written before the cost block's fields


@pytest.mark.parametrize("bad, field, words", [
    ({**GOOD_STATE, "global_step": "6"}, "global_step", "must be int, found str"),
    ({**GOOD_STATE, "global_step": 6.0}, "global_step", "must be int, found number"),
    ({**GOOD_STATE, "finished": 1}, "finished", "must be bool, found int"),
    ({**GOOD_STATE, "epoch": -1}, "epoch", "must be >= 0"),
    ({**GOOD_STATE, "extra": 1}, "extra", "unknown field"),
    ({k: v for k, v in GOOD_STATE.items() if k != "epoch"}, "epoch", "missing"),
    ({**GOOD_STATE, "dev_loss": {"one": 1.0}}, "dev_loss.one", "unexpected key"),
    ({**GOOD_STATE, "train_loss": {"1": "low"}}, "train_loss.1", "must be number or null"),
])
def test_bad_trainer_state_names_file_and_field(bad, field, words):
    with pytest.raises(CheckpointError) as err:
        sf.validate(bad, "trainer_state", "/r/checkpoints/step-6/trainer_state.json")
    msg = str(err.value)
    assert "/r/checkpoints/step-6/trainer_state.json has the wrong shape" in msg
    assert f"field '{field}'" in msg and words in msg and "delete" in msg


def test_a_list_at_the_top_is_refused():
    with pytest.raises(DataError, match=r"record.json has the wrong shape: the top level must be object, found list"):
        sf.validate([1, 2], "record", "record.json")


@pytest.mark.parametrize("patch, field", [
    ({"status": "done"}, "status"), ({"seed": "110"}, "seed"), ({"attempts": [1]}, "attempts[0]"),
    ({"attempts": [{"n": "1"}]}, "attempts[0].n"), ({"config": []}, "config"), ({"wall_time_s": -3}, "wall_time_s"),
])
def test_bad_record_fields(tmp_path, patch, field):
    _write(tmp_path / "record.json", {"status": "complete", "config": {}, **patch})
    with pytest.raises(DataError, match=rf"field '{re.escape(field)}'.*delete it"):
        RunRecord(tmp_path)


def test_record_may_carry_new_keys_and_legacy_attempt_count(tmp_path):
    """A record gains keys over versions (``inputs``, ``cost``): unknown keys are kept, not refused."""
    _write(tmp_path / "record.json", {"status": "complete", "config": {}, "attempts": 2, "cost": {"x": 1}})
    assert RunRecord(tmp_path).data["cost"] == {"x": 1}


def test_record_without_status_is_refused(tmp_path):
    _write(tmp_path / "record.json", {"config": {}})
    with pytest.raises(DataError, match="field 'status' missing"):
        RunRecord(tmp_path)


@pytest.mark.parametrize("latest, words", [
    ({"dir": "../../elsewhere", "global_step": 6}, "is not a plain name"),
    ({"dir": "step-0000006"}, "field 'global_step' missing"),
    ({"dir": "step-0000009", "global_step": 9}, "does not exist"),
    ({"dir": ["step-0000006"], "global_step": 6}, "must be str, found list"),
])
def test_latest_json(tmp_path, latest, words):
    (tmp_path / "step-0000006").mkdir()
    _write(tmp_path / "latest.json", latest)
    with pytest.raises(CheckpointError, match=words) as err:
        sf.read_latest(tmp_path)
    assert str(tmp_path / "latest.json") in str(err.value)


def test_latest_json_good(tmp_path):
    (tmp_path / "step-0000006").mkdir()
    _write(tmp_path / "latest.json", {"dir": "step-0000006", "global_step": 6})
    assert sf.read_latest(tmp_path)["global_step"] == 6


@pytest.mark.parametrize("patch, words", [
    ({"global_step": 7}, "global_step' is 7 but latest.json says 6"),
    ({"epoch": 3}, "epoch' is 3, beyond this run's 1"),
    ({"batch_in_epoch": 9}, "batch_in_epoch' is 9, beyond this run's 8"),
])
def test_resume_state_must_fit_latest_and_schedule(tmp_path, patch, words):
    schedule = {"total_steps": 6, "epochs": 1, "batches_per_epoch": 8}
    sf.check_resume_state(GOOD_STATE, tmp_path / "ts.json", 6, schedule)
    with pytest.raises(CheckpointError, match=words):
        sf.check_resume_state({**GOOD_STATE, **patch}, tmp_path / "ts.json", 6, schedule)


# ----------------------------------------------------------------------------- strict JSON
def test_non_finite_floats_are_written_as_null(tmp_path):
    path = tmp_path / "metrics.json"
    lb_io.atomic_write_json(path, {"BLEU": float("nan"), "x": [float("inf"), 1.5], "t": (float("-inf"),)})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"BLEU": None, "x": [None, 1.5], "t": [None]}


def test_bare_nan_is_refused_on_read(tmp_path):
    path = _write(tmp_path / "metrics.json", '{"BLEU": NaN}')
    with pytest.raises(ValueError, match="bare NaN is not JSON"):
        lb_io.read_json(path)
    with pytest.raises(DataError, match=rf"{path} is damaged.*bare NaN"):
        sf.read_state(path, "metrics")


def test_metrics_must_be_an_object(tmp_path):
    with pytest.raises(DataError, match="metrics.json has the wrong shape: the top level must be object"):
        sf.read_state(_write(tmp_path / "metrics.json", "[]"), "metrics")


# ----------------------------------------------------------------------------- hypotheses
def _hyps(tmp_path, text: str | bytes):
    path = tmp_path / "hyp.partial.jsonl"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_hypotheses_read_back(tmp_path):
    path = _hyps(tmp_path, '{"i": 0, "hyp": "a"}\n{"i": 2, "hyp": "c"}\n')
    assert sf.read_partial_hypotheses(path, 3) == {0: "a", 2: "c"}


def test_torn_last_line_is_cut_so_the_next_append_starts_clean(tmp_path):
    path = _hyps(tmp_path, '{"i": 0, "hyp": "a"}\n{"i": 1, "hy')
    assert sf.read_partial_hypotheses(path, 3) == {0: "a"}
    assert path.read_text() == '{"i": 0, "hyp": "a"}\n'


@pytest.mark.parametrize("text, line, words", [
    ('{"i": 0, "hyp": "a"}\n{"i": 1, "hy\n{"i": 2, "hyp": "c"}\n', 2, "is not a JSON object"),
    ('[0, "a"]\n', 1, "top level must be object, found list"),
    ('{"i": "0", "hyp": "a"}\n', 1, "field 'i' must be int"),
    ('{"i": 0}\n', 1, "field 'hyp' missing"),
    ('{"i": 0, "hyp": "a"}\n{"i": 0, "hyp": "b"}\n', 2, "repeats item 0"),
    ('{"i": 7, "hyp": "a"}\n', 1, "names item 7, but this evaluation has 3 items"),
    (b'{"i": 0, "hyp": "\xff"}\n', 1, "is not a JSON object"),
    ('\n', 1, "is not a JSON object"),
])
def test_damaged_hypothesis_line_names_file_and_line(tmp_path, text, line, words):
    path = _hyps(tmp_path, text)
    with pytest.raises(DataError) as err:
        sf.read_partial_hypotheses(path, 3)
    msg = str(err.value)
    assert msg.startswith(f"{path}: line {line} ") and words in msg and f"delete {path}" in msg


# ----------------------------------------------------------------------------- weights
def test_nonfinite_weights_are_refused():
    good = {"a": torch.zeros(4), "ids": torch.arange(3)}
    sf.refuse_nonfinite(good, "checkpoint x", "fix")
    bad = {"a": torch.tensor([1.0, math.nan, math.inf, 0.0]), "b": torch.zeros(2)}
    with pytest.raises(CheckpointError, match=r"checkpoint x holds non-finite weights in 1 tensor\(s\) "
                                              r"\(a: 2 of 4 values NaN/inf\); they are not used\. fix"):
        sf.refuse_nonfinite(bad, "checkpoint x", "fix")


def test_optimizer_moments_are_found():
    blob = {"optimizer": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.full((2,), math.nan)}}}}
    assert sf.nonfinite_tensors(sf.optimizer_tensors(blob)) == {"param0.exp_avg": "2 of 2 values NaN/inf"}
    assert sf.optimizer_tensors({"optimizer": None}) == {}
