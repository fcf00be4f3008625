"""Numeric domains (lodabench.config.ranges): every numeric config field declares one, preflight refuses a
value outside it naming the full key and the range, and the combinations that used to fail only
after training are refused before it (preflight.py, selection.py). Also: result files honour the umask."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from types import SimpleNamespace

import pytest

from lodabench.config import schema
from lodabench.errors import ConfigError
from lodabench.run.preflight import check_eval_checkpoint, check_metric_items, check_positions, usable_positions
from lodabench.run.config_ranges import check_config_ranges, check_launch_values, registered_config_classes
from lodabench.config.ranges import DOMAIN, check_value, missing_domains, rng
from lodabench.config.schema import compose
from lodabench.train.selection import check_against_trainer, selection_config

BASE = ["model=tiny-gpt2", "method=lora"]


# ------------------------------------------------------------------------------ every field has one
def test_every_numeric_config_field_declares_a_domain():
    """A new int/float field (method, task, trainer, decoding, ...) without a domain fails here."""
    missing = {label: names for label, cls in registered_config_classes().items() if (names := missing_domains(cls))}
    assert missing == {}, f"numeric fields without a domain (add rng(...) to their metadata): {missing}"


def test_the_walk_sees_numeric_fields_without_a_domain():
    """The check above can fail: an undeclared float, optional int or list of ints is reported."""

    @dataclasses.dataclass
    class Plugin:
        name: str = "x"
        scale: float = 1.0
        limit: int | None = None
        epochs: list[int] = dataclasses.field(default_factory=list)
        flag: bool = True
        ok: float = dataclasses.field(default=0.5, metadata={DOMAIN: rng("[0, 1]")})

    assert missing_domains(Plugin) == ["scale", "limit", "epochs"]


def test_registered_configs_cover_every_group():
    labels = set(registered_config_classes())
    assert {"TrainerConfig", "decoding", "SelectionConfig", "RunConfig", "method=lora", "method=prompt",
            "data=e2e", "data=stsb"} <= labels


def test_mirrored_nodes_keep_the_domain():
    """Hydra's nodes are mirrors of the dataclasses: list defaults too keep their metadata."""
    node = schema.node_class("method__prompt")
    fields = {f.name: f for f in dataclasses.fields(node)}
    assert fields["num_virtual_tokens"].metadata[DOMAIN].spec == "[1, inf)"
    beam = {f.name: f for f in dataclasses.fields(schema.node_class("decoding__beam"))}
    assert beam["num_beams"].metadata[DOMAIN].spec == "[1, inf)" and "help" not in beam["extra_eos"].metadata


# -------------------------------------------------------------------------------------- domains
@pytest.mark.parametrize("spec,inside,outside", [
    ("[0, 1)", [0.0, 0.5, 0.999], [1.0, -0.1, math.nan, math.inf]),
    ("(0, 1]", [1e-9, 1.0], [0.0, 1.01]),
    ("(0, inf)", [1e-12, 1e300], [0.0, -1.0, math.inf, math.nan]),
    ("(-inf, inf)", [-1e300, 0.0], [math.nan, math.inf, -math.inf]),
    ("[1, inf)", [1, 10**9], [0, -1]),
])
def test_domain_bounds_and_finiteness(spec, inside, outside):
    domain = rng(spec)
    assert all(domain.contains(v) for v in inside) and not any(domain.contains(v) for v in outside)


@pytest.mark.parametrize("bad", ["0, 1", "[1, 0]", "[a, 1)"])
def test_rng_refuses_what_is_not_an_interval(bad):
    with pytest.raises(ValueError):
        rng(bad)


def test_message_names_key_range_and_default():
    with pytest.raises(ConfigError) as err:
        check_value("trainer.label_smoothing", 1.5, rng("[0, 1)"), integer=False, default=0.1)
    assert str(err.value) == ("trainer.label_smoothing=1.5: must lie in [0, 1). Fix: set trainer.label_smoothing "
                              "to a value in [0, 1) (default 0.1)")
    with pytest.raises(ConfigError, match=r"method\.r=0: must be a positive integer\. Fix: set method\.r to an integer >= 1"):
        check_value("method.r", 0, rng("[1, inf)"), integer=True)
    with pytest.raises(ConfigError, match=r"selection\.epochs\[1\]=0"):
        check_value("selection.epochs", [2, 0], rng("[1, inf)"), integer=True)


def test_other_types_are_left_to_the_type_checks():
    for value in (None, "abc", True):
        check_value("method.r", value, rng("[1, inf)"), integer=True)


# --------------------------------------------------------------------------- the composed config
BAD = [
    ("trainer.lr=nan", "trainer.lr=nan", "> 0"),
    ("trainer.lr=inf", "trainer.lr=inf", "> 0"),
    ("trainer.label_smoothing=1.0", "trainer.label_smoothing=1.0", "[0, 1)"),
    ("trainer.adam_beta1=1.0", "trainer.adam_beta1=1.0", "[0, 1)"),
    ("trainer.adam_beta2=-0.1", "trainer.adam_beta2=-0.1", "[0, 1)"),
    ("trainer.adam_eps=0", "trainer.adam_eps=0.0", "> 0"),
    ("trainer.weight_decay=-0.01", "trainer.weight_decay=-0.01", ">= 0"),
    ("trainer.warmup_ratio=1.5", "trainer.warmup_ratio=1.5", "[0, 1]"),
    ("trainer.warmup_steps=-1", "trainer.warmup_steps=-1", ">= 0"),
    ("trainer.grad_clip=-1", "trainer.grad_clip=-1.0", ">= 0"),
    ("trainer.epochs=-1", "trainer.epochs=-1", ">= 0"),
    ("trainer.max_length=1", "trainer.max_length=1", ">= 2"),
    ("trainer.grad_accum=0", "trainer.grad_accum=0", "positive integer"),
    ("trainer.max_dev_batches=0", "trainer.max_dev_batches=0", "positive integer"),
    ("trainer.num_threads=0", "trainer.num_threads=0", "positive integer"),
    ("seed=-1", "seed=-1", "[0, 4294967295]"),
    ("decoding.num_beams=0", "decoding.num_beams=0", "positive integer"),
    ("decoding.length_penalty=nan", "decoding.length_penalty=nan", "finite number"),
    ("decoding.repetition_penalty=0", "decoding.repetition_penalty=0.0", "> 0"),
    ("method.dropout=1.0", "method.dropout=1.0", "[0, 1)"),
    ("method.alpha=-inf", "method.alpha=-inf", "> 0"),
    ("data.max_eval_items=0", "data.max_eval_items=0", "positive integer"),
    ("data.subset_seed=-3", "data.subset_seed=-3", "[0, 4294967295]"),
    ("search.n_trials=0", "search.n_trials=0", "positive integer"),
]


@pytest.mark.parametrize("override,key,allowed", BAD, ids=[b[0] for b in BAD])
def test_out_of_range_values_name_the_full_key(override, key, allowed):
    with pytest.raises(ConfigError) as err:
        check_config_ranges(compose([*BASE, override]))
    assert str(err.value).startswith(f"{key}: must") and allowed in str(err.value)


@pytest.mark.parametrize("overrides,key", [
    (["method=s_loda", "method.keep=1.5"], "method.keep=1.5"),
    (["method=s_loda", "method.keep=0"], "method.keep=0.0"),
    (["method=adapter_h", "method.dropout=1.0"], "method.dropout=1.0"),
    (["method=prefix", "method.init_std=0"], "method.init_std=0.0"),
    (["method=prompt", "method.num_prompts=0"], "method.num_prompts=0"),
    (["method=loda", "method.negative_slope=nan"], "method.negative_slope=nan"),
    (["method=ft_top2", "method.top_layers=0"], "method.top_layers=0"),
    (["data=stsb", "model=tiny-roberta", "data.holdout_fraction=1.0"], "data.holdout_fraction=1.0"),
    (["selection.epochs=[2,0]"], "selection.epochs[1]=0"),
])
def test_method_data_and_selection_domains(overrides, key):
    with pytest.raises(ConfigError) as err:
        check_config_ranges(compose([*BASE, *overrides]))
    assert str(err.value).startswith(f"{key}: must")


def test_defaults_and_edges_pass():
    check_config_ranges(compose([*BASE, "trainer.adam_beta1=0", "trainer.label_smoothing=0", "trainer.warmup_ratio=1",
                                 "method.dropout=0", "seed=4294967295", "decoding.length_penalty=-2"]))


def test_library_configs_are_checked_too():
    """method_config (apply_method's check) applies the same domains to values given in code."""
    from lodabench.methods import method_config

    with pytest.raises(ConfigError, match=r"method\.dropout=nan: must lie in \[0, 1\)"):
        method_config({"name": "lora", "dropout": float("nan")})


def test_launch_values_are_checked_before_run_uses_them():
    """run.run sets the thread count and seeds before preflight: those two are checked first."""
    with pytest.raises(ConfigError, match=r"^seed=99999999999999999999: must"):
        check_launch_values(compose([*BASE, "seed=99999999999999999999"]))
    check_launch_values(compose([*BASE, "method.r=0"]))  # the rest waits for preflight (a failed record)


# ---------------------------------------------------------------------------------- combinations
def test_selection_epochs_need_kept_and_reached_checkpoints():
    trainer = {"epochs": 2, "keep_epoch_checkpoints": False}
    with pytest.raises(ConfigError, match="trainer.keep_epoch_checkpoints=false does not keep"):
        check_against_trainer(selection_config({"selection": {"epochs": [1]}}), trainer)
    with pytest.raises(ConfigError, match=r"epoch\(s\) \[3\] are never completed \(beyond trainer.epochs=2\)"):
        check_against_trainer(selection_config({"selection": {"epochs": [1, 3]}}), {"epochs": 2})
    with pytest.raises(ConfigError, match="trainer.eval_dev_loss=false does not compute"):
        check_against_trainer(selection_config({"selection": {"epochs": [1], "rule": "dev_loss"}}),
                              {"epochs": 2, "eval_dev_loss": False})
    check_against_trainer(selection_config({"selection": {"epochs": [1, 2], "rule": "dev_loss"}}), {"epochs": 2})


@pytest.mark.parametrize("overrides,match", [
    (["trainer.keep_epoch_checkpoints=false"], "trainer.keep_epoch_checkpoints=false does not keep"),
    (["trainer.epochs=0"], r"trainer.epochs=0 trains none"),
    (["trainer.max_steps=0"], r"trainer.max_steps=0 trains none"),
])
def test_best_dev_needs_epoch_checkpoints(overrides, match):
    from lodabench.config.schema import trainer_config
    trainer = trainer_config(compose([*BASE, *overrides]).trainer)
    with pytest.raises(ConfigError, match=match):
        check_eval_checkpoint("best_dev", trainer)
    check_eval_checkpoint("last", trainer)


def _plan(cfg, task=None, kind="causal_lm", method=None):
    """The typed groups of a Plan that the position and item checks read (run.preflight.Plan)."""
    from lodabench.config.schema import trainer_config
    from lodabench.models.pretrained import model_description
    from lodabench.tasks.decoding import decoding_config
    from lodabench.tasks.registry import task_config
    return SimpleNamespace(model=model_description(cfg.model), method=method, trainer=trainer_config(cfg.trainer),
                           decoding=decoding_config(cfg.decoding), data=task_config(cfg.data), seed=int(cfg.seed),
                           task=task, scorer=None, pipeline_cls=SimpleNamespace(model_kind=kind))


def _task(name, metrics, **counts):
    return SimpleNamespace(name=name, metric_names=metrics,
                           protocol_splits=lambda seed: {"select": [0] * counts["select"],
                                                         "test": {"validation": [0] * counts["test"]}})


@pytest.mark.parametrize("metrics,select,test,metric", [
    (("pearson", "spearman"), 5, 1, "pearson"),
    (("mcc",), 1, 5, "mcc"),
])
def test_a_metric_needs_enough_items(metrics, select, test, metric):
    cfg = compose([*BASE, "data.max_eval_items=1"])
    with pytest.raises(ConfigError, match=rf"{metric} needs at least 2 scored items, .* gives 1 \(data.max_eval_items=1\)"):
        check_metric_items(_plan(cfg, _task("t", metrics, select=select, test=test)))
    check_metric_items(_plan(cfg, _task("t", ("accuracy", "f1"), select=1, test=1)))  # defined on one item


def test_cider_needs_two_items(data_root):
    from lodabench.tasks import get_task
    from lodabench.tasks.registry import data_scorer
    cfg = compose([*BASE, "data.max_eval_items=1", "data.eval_split=dev"])
    plan = _plan(cfg, get_task(cfg.data, data_root))
    plan.scorer = data_scorer(cfg.data)[1]
    with pytest.raises(ConfigError, match=r"e2e: CIDEr needs at least 2 scored items, but the dev split gives 1"):
        check_metric_items(plan)


def test_position_table_sizes():
    from transformers import GPT2Config, LlamaConfig, RobertaConfig

    assert usable_positions(GPT2Config(n_positions=64)) == 64
    assert usable_positions(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512
    assert usable_positions(LlamaConfig()) is None  # rotary: no table to run past


@pytest.mark.parametrize("overrides,match", [
    (["method=prompt", "trainer.max_length=1010"],
     r"method.num_virtual_tokens=20 \+ trainer.max_length=1010 = 1030 positions, but model=tiny-gpt2 has 1024"),
    (["method=prefix", "method.num_virtual_tokens=30", "trainer.max_length=1000"], "= 1030 positions"),
    (["decoding.max_new_tokens=1100"], r"1 \(a prompt token\) \+ decoding.max_new_tokens=1100 = 1101 positions"),
    (["model=tiny-roberta", "data=sst2", "method=prompt", "method.init=random"],
     r"method.num_virtual_tokens=20 \+ trainer.max_length=512 = 532 positions, but model=tiny-roberta has 513"),
])
def test_prompt_longer_than_the_position_table(overrides, match):
    from lodabench import methods
    cfg = compose([*BASE, *overrides])
    method, kind = methods.method_config(cfg.method), ("sequence_classification" if "data=sst2" in overrides else "causal_lm")
    with pytest.raises(ConfigError, match=match):
        check_positions(_plan(cfg, kind=kind, method=method))


def test_sequences_that_fit_pass():
    from lodabench import methods
    cfg = compose([*BASE, "method=prompt", "trainer.max_length=1004"])
    check_positions(_plan(cfg, method=methods.method_config(cfg.method)))
    check_positions(_plan(compose([*BASE, "model=tiny-llama", "trainer.max_length=4096"])))


# ------------------------------------------------------------------------------------------ umask
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_files_follow_the_umask(tmp_path, umask, mode):
    """mkstemp's 0600 is not what a new file gets: the final file has 0666 & ~umask (a fresh process,
    so the umask is the one it starts with, as under a shell's `umask 022`)."""
    code = ("import os, sys; from lodabench import io; p = sys.argv[1]; io.atomic_write_json(p + '/r.json', {'a': 1}); "
            "io.atomic_write_with(p + '/w.bin', lambda t: open(t, 'wb').write(b'x')); "
            "print(oct(os.stat(p + '/r.json').st_mode & 0o777), oct(os.stat(p + '/w.bin').st_mode & 0o777))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                          preexec_fn=lambda: os_umask(umask), check=True)
    assert proc.stdout.split() == [oct(mode), oct(mode)]


def os_umask(mask: int) -> None:
    import os

    os.umask(mask)


def test_umask_is_read_without_changing_it():
    import os

    from lodabench import io
    before = os.umask(0o027)
    try:
        assert io.file_mode() == 0o640 and os.umask(0o027) == 0o027  # still what was set
    finally:
        os.umask(before)
