"""The paper's setting: which runs may stand beside a published number (``paper_setting_gaps``).

A run is on the paper's setting when nothing cut it short (limit keys, fewer epochs than its
recipe), its model is the one of conf/model/<name>.yaml, and its parameter counts are that model's
with its method config applied. Everything is read from the run's record.json and overrides.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from lodabench.errors import LodabenchError

NOT_PAPER_SETTING = "not the paper's setting"


def _key(override: str) -> str:
    """The key an override sets (``+a.b=1`` -> ``a.b``)."""
    return override.split("=", 1)[0].lstrip("+~")

# Keys that cut a run short, null = the whole recipe: trainer.max_steps ("tests/demos") and
# trainer.max_dev_batches ("quick runs") in src/lodabench/config/schema.py; every data.max_* key
# (DataConfig.max_train_examples / max_eval_items, "Slicing for tests/demos", data/tasks.py).
LIMIT_KEYS = ("trainer.max_steps", "trainer.max_dev_batches")
# What makes a run's model the model of conf/model/<name>.yaml (model.pretrained may name a local
# copy, model.tokenizer a local tokenizer: the parameter counts decide for those).
MODEL_KEYS = ("source", "gguf_file", "config_overrides")
RECIPE_GROUPS = {"experiment", "model", "method", "data"}   # the overrides that choose the recipe


def paper_setting_gaps(record: dict[str, Any], overrides: Sequence[str], check_counts: bool = True) -> list[str]:
    """Why one run is not on the paper's setting ([] = it is), read from its record.json (resolved
    config and parameter counts) and its overrides, never from its directory name.

    A published number is matched only by runs with none of these gaps:
    - budget: a limit key is set (trainer.max_steps, trainer.max_dev_batches, any data.max_*; null is
      the whole recipe), or trainer.epochs is overridden below what the run's recipe sets (its
      experiment overlay or the defaults, composed from its group overrides);
    - model: config.model's source, gguf_file or config_overrides differ from conf/model/<name>.yaml
      (model.source=config is random weights; model.config_overrides.n_layer=2 another model);
    - the LoRA authors' checkpoint (``init_from=loralib:``): said instead of the epochs gap;
    - parameters (``check_counts``, a complete run): the record's trainable count or total (both
      without the task head) differs from conf/model/<name>.yaml with the run's method config applied,
      counted from configs on the meta device (lodabench.models.params.count_for, as
      results/params/param_counts.csv). This catches a small model given as model.pretrained under
      the paper's model name. Other weights of the same shapes pass: telling those apart needs the
      weights' hashes, not counts.
    """
    cfg = record.get("config") or {}
    # The LoRA authors' own weights (init_from=loralib:, trainer.epochs=0): shown apart under what they are.
    trained = _authors_checkpoint(record) or _epochs_gaps(cfg, overrides)
    gaps = _limit_gaps(cfg) + trained + _model_gaps(cfg.get("model") or {})
    return gaps + (_count_gaps(cfg, record.get("trainable_params")) if check_counts else [])


def _authors_checkpoint(record: dict[str, Any]) -> list[str]:
    """A run that scored the LoRA authors' released checkpoint (methods/loralib_import.py): beside the
    paper's number it separates how we evaluate from how we train; its epochs=0 is not a short run."""
    warm = record.get("warm_start") or {}
    if warm.get("source") != "loralib":
        return []
    name = str(warm.get("path", "")).rsplit("/", 1)[-1]
    return [f"the LoRA authors' checkpoint {name} (sha256 {str(warm.get('sha256', ''))[:12]}, r={warm.get('r')}, "
            f"alpha={warm.get('alpha')}) scored by our pipeline, not trained here"]


def _get(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _limit_gaps(cfg: dict[str, Any]) -> list[str]:
    keys = [*LIMIT_KEYS, *(f"data.{k}" for k in (cfg.get("data") or {}) if k.startswith("max_"))]
    return [f"{k}={_get(cfg, k)} (recipe: null = all)" for k in keys if _get(cfg, k) is not None]


def _epochs_gaps(cfg: dict[str, Any], overrides: Sequence[str]) -> list[str]:
    ran = _get(cfg, "trainer.epochs")
    if ran is None or not any(_key(o) == "trainer.epochs" for o in overrides):
        return []
    recipe = tuple(o for o in overrides if _key(o) in RECIPE_GROUPS)
    try:
        planned = _recipe_epochs(recipe)
    except Exception as exc:  # an overlay renamed or removed since the run: say so, do not guess
        return [f"trainer.epochs={ran} overridden; the recipe's could not be composed ({type(exc).__name__})"]
    return [f"trainer.epochs={ran} (the recipe, {' '.join(recipe) or 'defaults'}: {planned})"] if ran < planned else []


@functools.lru_cache(maxsize=None)
def _recipe_epochs(recipe: tuple[str, ...]) -> int:
    from lodabench.config.schema import compose
    return int(compose(list(recipe)).trainer.epochs)


@functools.lru_cache(maxsize=None)
def _model_conf(name: str) -> dict[str, Any]:
    from lodabench.models.pretrained import read_model_conf
    return read_model_conf(name)


def _model_gaps(model: dict[str, Any]) -> list[str]:
    name = str(model.get("name"))
    try:
        ref = _model_conf(name)
    except LodabenchError:
        return [f"model {name!r}: no conf/model/{name}.yaml to compare with"]
    where = f"conf/model/{name}.yaml"
    gaps = [f"model.{k}={model.get(k)!r} ({where}: {ref.get(k)!r})" for k in MODEL_KEYS[:2]
            if model.get(k) != ref.get(k)]
    ours, theirs = model.get("config_overrides") or {}, ref.get("config_overrides") or {}
    diff = [f"{k}={ours.get(k, 'unset')} (there: {theirs.get(k, 'unset')})"
            for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)]
    return gaps + ([f"model.config_overrides differ from {where}: {', '.join(diff)}"] if diff else [])


def _count_gaps(cfg: dict[str, Any], counts: Any) -> list[str]:
    if not isinstance(counts, dict) or not isinstance(counts.get("total"), int):
        return ["record.json has no parameter counts (trainable_params.total)"]
    name = str(_get(cfg, "model.name"))
    try:
        ref = _reference_counts(name, json.dumps(cfg.get("method") or {}, sort_keys=True))
    except Exception as exc:  # a method config this version cannot apply: the counts stay unchecked
        return [f"parameter counts not checked ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"]
    ours = _body_counts(counts)
    return [f"{what} {o:,} ({name} with this method: {r:,})"
            for what, o, r in zip(("trainable parameters", "total parameters"), ours, ref) if o != r]


def _body_counts(counts: dict[str, Any]) -> tuple[int, int]:
    """(trainable, total), both without the task head (its size follows the task's labels)."""
    head = int(counts.get("head") or 0)
    return int(counts.get("trainable_without_head", counts.get("trainable", 0) - head)), int(counts["total"]) - head


@functools.lru_cache(maxsize=None)
def _reference_counts(model: str, method_json: str) -> tuple[int, int]:
    from lodabench.models.params import count_for
    return _body_counts(count_for(_model_conf(model), json.loads(method_json)))
