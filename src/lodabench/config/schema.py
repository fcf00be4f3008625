"""The one typed config schema: every key a run can set, its type, its default and its source.

Hydra composes ``conf/config.yaml``'s defaults list onto :class:`RunConfig` (ConfigStore node
``lodabench_schema``), so a value of the wrong type fails while Hydra merges it
(``trainer.lr=abc``: "Value 'abc' could not be converted to Float"). Group options that are
nothing but defaults are ConfigStore nodes built here, not YAML files: ``trainer=default``,
``decoding=beam``, ``selection=default``, ``paths=default``, ``logger=none|wandb``; and one node
per registered method (``method/<name>`` from its config dataclass, lodabench.methods) and per
registered task (``data/<name>`` from its default config, lodabench.tasks.registry), stored as each
registers (config/registry.py). A plugin's method or task therefore gets its node by registering,
which the doors (entry.main, compose) make happen before Hydra composes. The
YAML files left in conf/ only set values: model descriptions, experiment overlays, sweeps, Hydra.

Hydra's ``+key=value`` adds a key even to a typed node (it opens the node to append), so
:func:`check_composed` walks the composed config and refuses every key its node's schema does not
define; entry.main runs it on the command line's config before Hydra makes any directory, and
each job runs it again before anything is built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from lodabench.errors import ConfigError
from lodabench.config.ranges import rng
from lodabench.config.typed import build_config, hp, mirror, omegaconf_message  # noqa: F401  (mirror, omegaconf_message: re-exported)
from lodabench.config.typed import node_source as _class_or_mirror


# Training recipe defaults = LoRA paper Table 11 (GPT-2 on E2E) as microsoft/LoRA examples/NLG/README.md
# runs it; experiment overlays restate the values they rely on.
@dataclass
class TrainerConfig:
    optimizer: str = hp("adamw", "adamw: torch.optim.AdamW | lora_adamw: microsoft/LoRA examples/NLG/src/optimizer.py's "
                        "AdamW (eps before the bias correction, decay after the step; src/lodabench/train/optim.py), each "
                        "parameter group updated at once (FusedLoRAAdamW in optim.py) | lora_adamw_loop: the same tensor by tensor. adamw "
                        "stays the default so existing records keep their meaning; paper overlays choose")
    lr: float = hp(2.0e-4, "LoRA Table 11: learning rate 0.0002", rng("(0, inf)"))
    weight_decay: float = hp(0.01, "LoRA Table 11: weight decay 0.01", rng("[0, inf)"))
    adam_beta1: float = hp(0.9, "LoRA src/optimizer.py default", rng("[0, 1)"))
    adam_beta2: float = hp(0.999, "LoRA examples/NLG/README.md: --adam_beta2 0.999", rng("[0, 1)"))
    adam_eps: float = hp(1.0e-6, "LoRA src/optimizer.py: adam_epislon 1e-6", rng("(0, inf)"))
    correct_bias: bool = hp(True, "LoRA README: --correct_bias (lora_adamw only; adamw always corrects, false is refused)")
    warmup_steps: int = hp(500, "LoRA Table 11: warmup steps 500", rng("[0, inf)"))
    warmup_ratio: Optional[float] = hp(None, "warm-up = ceil(ratio x total steps) when set (LoRA Table 9, GLUE: 0.06); "
                                       "null: warmup_steps", rng("[0, 1]"))
    scheduler: str = hp("linear", "LoRA Table 11: linear decay after warm-up | constant | cosine (transformers' "
                        "get_<name>_schedule_with_warmup)")
    epochs: int = hp(5, "LoRA Table 11: epoch 5", rng("[0, inf)"))
    batch_size: int = hp(8, "LoRA Table 11: batch size 8. The GLOBAL batch per optimizer step whatever the number of "
                         "processes: under torchrun --nproc_per_node=N each process takes ceil(batch_size/N)", rng("[1, inf)"))
    grad_accum: int = hp(1, "micro-batches per optimizer step on each process (the loss stays the token-level mean "
                         "over the global batch: trainer.py re-weights micro-batches)", rng("[1, inf)"))
    micro_batch_size: Optional[int] = hp(None, "alternative to grad_accum: max examples per forward on one process; "
                                         "accumulation steps = ceil(batch_size/N / micro_batch_size); null: off", rng("[1, inf)"))
    ddp_find_unused_parameters: bool = hp(False, "DDP option; true only for a method with trainable tensors unused "
                                          "in forward")
    max_length: int = hp(512, "LoRA README: --seq_len 512 (at least 2: a source token and a target token)",
                         rng("[2, inf)"))
    group_by_length: bool = hp(False, "true: batch examples of similar length (HF LengthGroupedSampler: mega-batches "
                               "of 50 batches sorted by length): less padding, a different batch composition")
    label_smoothing: float = hp(0.1, "LoRA Table 11: label smooth 0.1", rng("[0, 1)"))
    grad_clip: float = hp(0.0, "LoRA gpt2_ft.py --clip default 0.0 (off): the max gradient norm, 0 = off",
                           rng("[0, inf)"))
    max_steps: Optional[int] = hp(None, "stop after this many optimizer steps (tests/demos); null = epochs",
                                  rng("[0, inf)"))
    eval_dev_loss: bool = hp(True, "dev loss after each epoch")
    max_dev_batches: Optional[int] = hp(None, "cap dev-loss batches (quick runs); null = all", rng("[1, inf)"))
    eval_batch_size: int = hp(32, "GLUE: examples per forward when predicting the selection/test splits (eval "
                              "only; predictions do not depend on it beyond float rounding)", rng("[1, inf)"))
    checkpoint_every: int = hp(200, "optimizer steps between resumable checkpoints (and at each epoch end); "
                              "0: at epoch ends only", rng("[0, inf)"))
    keep_epoch_checkpoints: bool = hp(True, "keep each epoch's weights (selection.epochs, eval_checkpoint=best_dev)")
    precision: str = hp("fp32", "fp32 | bf16 (autocast: CUDA, or CPU) | fp16 (autocast + GradScaler, CUDA only); "
                        "weights stay fp32")
    device: str = hp("auto", "auto | cpu | cuda")
    deterministic: bool = hp(False, "deterministic CUDA kernels (torch.use_deterministic_algorithms, fixed cuBLAS "
                             "workspace): bit-equal GPU reruns at some speed cost; CPU runs are deterministic "
                             "already (lodabench.train.device.use_deterministic_kernels)")
    num_threads: int = hp(1, "torch.set_num_threads: 2 threads measured 2-10x slower on 2 vCPUs", rng("[1, inf)"))
    keep_freed_memory: bool = hp(True, "glibc malloc keeps freed memory for reuse (no mmap per large tensor, trim "
                                 "only over 2 GiB): a tiny CPU run's training measured 19 -> 8 s; the process "
                                 "keeps its peak memory; numbers unchanged (lodabench.machine.keep_freed_memory)")
    progress: bool = hp(True, "tqdm bars")
    num_workers: int = hp(0, "DataLoader worker processes collating training batches (pinned memory on CUDA); "
                          "0: on the main thread, as LoRA's gpt2_ft.py. Results are bit-identical for any value "
                          "(src/lodabench/train/fast.py)", rng("[0, inf)"))
    compile: bool = hp(False, "torch.compile of the training forward (issue #30; off: LoRA's scripts run eager). "
                       "Matches eager to float tolerance, not bit-for-bit; warm-up cost in docs/benchmarks.md")


@dataclass
class SelectionConfig:
    """Which checkpoint's numbers a run reports (src/lodabench/train/selection.py). Default: the single
    evaluation eval_checkpoint names (LoRA's NLG scripts score the final model)."""

    epochs: Optional[list[int]] = hp(None, "e.g. [5, 10]: evaluate these epoch checkpoints in one run, each "
                                     "decoded/scored once", rng("[1, inf)"))
    rule: str = hp("last", "last | dev_loss | dev_metric | test (test = choose on the reported split, as LoDA §3 does)")
    metric: Optional[str] = hp(None, "null: the task spec's declared selection metric (TaskMetrics.selection; "
                                     "BLEU for E2E/DART, GLUE: the papers' metric per task)")
    aggregate: str = hp("mean", "how a table combines seeds: mean (LoRA GPT-2 tables, LoDA) | median (LoRA GLUE: 5 seeds)")


@dataclass
class PathsConfig:
    data_root: Optional[str] = hp(None, "local data root holding e2e/, dart/ and glue/ (official file layouts). null: "
                                  "$LODABENCH_DATA_ROOT, else ../shared/data beside the repository, else the hub")
    results_dir: str = hp("${oc.env:LODABENCH_RESULTS_DIR,results}", "everything the harness writes lives under it; "
                          "it never deletes outside it")
    runs_dir: str = hp("${paths.results_dir}/runs", "one directory per run below it")


@dataclass
class LoggerConfig:
    name: str = hp("none", "none | wandb")
    project: str = hp("lodabench", "wandb project")
    entity: Optional[str] = hp(None, "wandb entity (null: your default)")
    mode: str = hp("offline", "wandb mode: offline by default (sync later with `wandb sync`)")
    tags: list[str] = hp([], "wandb tags")


@dataclass
class ModelConfig:
    """A base model: conf/model/<name>.yaml sets every value (there is no default model description)."""

    name: str = hp(MISSING, "the name in run directories and tables")
    family: str = hp(MISSING, "gpt2 | llama | bert | roberta: which projections the methods adapt")
    kind: str = hp("causal_lm", "causal_lm (E2E, DART) | sequence_classification (GLUE)")
    source: str = hp("pretrained", "pretrained (hub id or local dir) | config (random init, no weights) | gguf")
    pretrained: str = hp(MISSING, "hub id, local directory or pkg://<package>/<dir>; source=config: the model_type")
    tokenizer: Optional[str] = hp(None, "null: the model's own (GPT-2 from config: ../shared/tokenizers/gpt2)")
    config_overrides: dict[str, Any] = hp({}, "transformers config values set on load (e.g. GPT-2 dropouts 0.0)")
    gguf_file: Optional[str] = hp(None, "source=gguf: the GGUF file inside `pretrained`")
    revision: Optional[str] = hp(None, "hub weights: the branch, tag or commit to load (transformers "
                                 "from_pretrained(revision=...)); null: main. record.json names the commit loaded")
    pooler: str = hp("cls", "classifiers: cls (the architecture's head input) | mean (masked mean of the tokens)")


@dataclass
class SearchConfig:
    """Hyperparameter search with ``-m hydra/sweeper=optuna`` (entry._with_search_space)."""

    space: dict[str, Any] = hp({}, "keys -> Optuna ranges, e.g. trainer.lr: tag(log, interval(5e-5, 5e-3))")
    n_trials: Optional[int] = hp(None, "trials of the study", rng("[1, inf)"))
    direction: Optional[str] = hp(None, "maximize | minimize metrics.objective (the selection metric)")


RUN_NAME = "${data.name}/${model.name}/${method.name}/${lb_slug:${hydra:job.override_dirname}}/seed${seed}"


@dataclass
class RunConfig:
    """The root: one run = model x method x data x trainer x decoding x seed."""

    seed: int = hp(110, "LoRA's E2E scripts use --random_seed 110 (microsoft/LoRA examples/NLG/README.md); "
                   "numpy's seed range", rng("[0, 4294967295]"))
    force: bool = hp(False, "re-run from step 0 even if the run directory holds a run: the earlier outputs move to "
                     "<run_dir>/attempts/<n>/ and record.json lists both attempts")
    allow_code_change: bool = hp(False, "resume unfinished work made under another git commit or requirements.lock "
                                 "(refused by default: one result from two versions of the code)")
    eval_checkpoint: str = hp("last", "last (LoRA's scripts score the final model) | best_dev (lowest dev loss "
                              "over the epoch checkpoints)")
    init_from: Optional[str] = hp(None, "warm start (LoRA Sec. 5.1 / Table 9: MRPC, RTE, STS-B from the MNLI model): "
                                  "a run directory or trainable.safetensors, or loralib:PATH for a microsoft/LoRA "
                                  "checkpoint (methods/loralib_import.py); see methods/checkpoint.load_warm_start")
    run_name: str = hp(RUN_NAME, "deterministic in the command-line overrides: the same command resumes or skips")
    run_dir: str = hp("${paths.runs_dir}/${run_name}", "the run's directory (also Hydra's output dir)")
    search: SearchConfig = field(default_factory=SearchConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    model: ModelConfig = MISSING
    method: Any = MISSING      # typed by the chosen option's node: the method's config dataclass
    data: Any = MISSING        # typed by the chosen option's node: the task's config dataclass
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    decoding: Any = MISSING    # typed by decoding=beam's node: lodabench.tasks.decoding.DecodingConfig
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


# ---------------------------------------------------------------------------------- ConfigStore
def store_schema() -> None:
    """Register the root schema and every group option that is code, not YAML (idempotent). A method's or
    task's node is stored when it registers (config/registry.py); this registers every built-in, so the
    doors (entry.main, compose) call it after loading the plugins."""
    from hydra.core.config_store import ConfigStore

    from lodabench.config.registry import group_registries
    cs = ConfigStore.instance()
    cs.store(name="lodabench_schema", node=RunConfig)
    cs.store(group="trainer", name="default", node=TrainerConfig)
    cs.store(group="selection", name="default", node=SelectionConfig)
    cs.store(group="paths", name="default", node=PathsConfig)
    cs.store(group="logger", name="none", node=LoggerConfig(name="none"))
    cs.store(group="logger", name="wandb", node=LoggerConfig(name="wandb"))
    group_registries()  # methods and tasks (and decoding=beam, with the tasks) store their nodes as they register


# Values a plugin gives an option on top of its dataclass's defaults (plugins.register_method_config).
_OPTION_VALUES: dict[tuple[str, str], DictConfig] = {}
_NODE_SOURCES: dict[str, tuple[type, Any]] = {}  # <group>__<name> -> (class, defaults) its node was made from
_NODES: dict[str, Any] = {}  # <group>__<name> -> its node: the class, a default instance of it, or a mirror


def store_option(group: str, name: str, cls: type, defaults: dict[str, Any] | None = None) -> None:
    """Store ``<group>=<name>`` as the ConfigStore node of ``cls`` (``defaults`` over its own).

    Called by a registry as a spec registers (config/registry.py): registration is the one source of
    the code-defined options' nodes. The node is ``cls`` itself where Hydra can hold it (a method's
    config dataclass, a task's default config: ``OmegaConf.to_object(cfg.method)`` is then the
    method's own type, and its ``validate`` runs on it); a ``mirror`` only where it cannot (see
    ``node_source``)."""
    from hydra.core.config_store import ConfigStore

    key = f"{group}__{name}"
    if _NODE_SOURCES.get(key) != (cls, defaults):
        _NODES[key] = node_source(key, cls, defaults)
        _NODE_SOURCES[key] = (cls, defaults)
        if isinstance(_NODES[key], type) and _NODES[key].__module__ == __name__:
            globals()[key] = _NODES[key]  # a mirror: a pickled config finds it here (see __getattr__)
    ConfigStore.instance().store(group=group, name=name, node=option_node(group, name))


def node_source(key: str, cls: type, defaults: dict[str, Any] | None) -> Any:
    """``cls`` (or its default instance) where OmegaConf can hold it, else its mirror (``typed.node_source``),
    kept as this module's attribute ``key`` so a pickled config finds it (see ``__getattr__``)."""
    node = _class_or_mirror(key, cls, defaults)
    if isinstance(node, type) and node is not cls:
        node.__module__ = __name__
    return node


def set_option_values(group: str, name: str, values: DictConfig) -> None:
    """``<group>=<name>`` composes to its schema's defaults with ``values`` on top (typed, checked)."""
    _OPTION_VALUES[(group, name)] = values
    from hydra.core.config_store import ConfigStore
    ConfigStore.instance().store(group=group, name=name, node=option_node(group, name))


def option_node(group: str, name: str) -> Any:
    """The ConfigStore node of a code-defined option: its schema class, plus any values set for it."""
    node_class(f"{group}__{name}")  # registered (the built-ins on first use), or a ConfigError
    node = _NODES[f"{group}__{name}"]
    values = _OPTION_VALUES.get((group, name))
    return node if values is None else OmegaConf.merge(OmegaConf.structured(node), values)


def node_class(key: str) -> type:
    """The schema class of a code-defined option, ``<group>__<name>``, as its registration stored it:
    the option's own dataclass, or (a frozen class, one with ``__post_init__``) its mirror.

    A mirror is kept as a module attribute so a config pickled with it (the joblib and submitit
    launchers send configs to other processes) unpickles by reference: see ``__getattr__`` below.
    """
    if key not in _NODES:
        store_schema()  # the built-ins register (and store their nodes) on first use
    if key not in _NODES:
        group, _, name = key.partition("__")
        raise ConfigError(f"{group}={name!r} is not a registered option of the config group {group!r}. Fix: "
                          "register it (lodabench.register_method / register_task) or load its plugin first")
    node = _NODES[key]
    return node if isinstance(node, type) else type(node)


_GROUP_CLASSES = {"trainer": TrainerConfig, "selection": SelectionConfig, "paths": PathsConfig, "logger": LoggerConfig}


def defaults_of(group: str, name: str | None = None) -> dict[str, Any]:
    """What ``<group>=<name>`` composes to before overrides, as plain data (interpolations kept).

    For code that needs a group's defaults without composing a whole run (the parameter table,
    the reference checker, benchmarks): the values come from the schema, the one place they live.
    """
    node = _GROUP_CLASSES.get(group) or option_node(group, name or "beam")
    return OmegaConf.to_container(OmegaConf.structured(node), resolve=False)  # type: ignore[return-value]


def __getattr__(key: str) -> type:
    # A process that unpickles a config (a launcher's worker) is a door: it has not loaded the plugins
    # nor registered the built-ins yet, and the node classes are made as they register.
    if "__" not in key.strip("_"):
        raise AttributeError(f"module {__name__!r} has no attribute {key!r}")
    from lodabench.config.plugin_loader import load_plugins
    load_plugins()
    return node_class(key)


# ------------------------------------------------------------------------------- composed check
def check_composed(cfg: DictConfig) -> None:
    """Refuse keys no schema defines (``+trainer.lrr=1``, a misspelt overlay key), naming each."""
    unknown = sorted(_unknown_keys(cfg, ""))
    if unknown:
        key, valid = unknown[0]
        more = f" (and {', '.join(k for k, _ in unknown[1:])})" if len(unknown) > 1 else ""
        raise ConfigError(f"unknown config key {key}{more}: not in the schema of its group. Valid keys there: "
                          f"{', '.join(valid)}. Fix the spelling, or drop it (see src/lodabench/config/schema.py)")


def _unknown_keys(node: Any, prefix: str) -> list[tuple[str, list[str]]]:
    if not isinstance(node, DictConfig):
        return []
    out: list[tuple[str, list[str]]] = []
    cls = OmegaConf.get_type(node)
    typed = cls is not None and dataclasses.is_dataclass(cls)
    valid = [f.name for f in dataclasses.fields(cls)] if typed else []
    for key in node.keys():
        full = f"{prefix}{key}"
        if key == "hydra" and not prefix:
            continue
        if typed and key not in valid:
            out.append((full, valid))
        elif typed or not prefix:
            out += _unknown_keys(node._get_node(key), full + ".")
    return out


def compose(overrides: list[str] | tuple[str, ...] = (), config_name: str = "config") -> DictConfig:
    """Compose like ``python -m lodabench`` does (plugins, schema nodes, key check), outside Hydra's run.

    For scripts and tests: the config a command line gives, without launching it.
    """
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from lodabench.config.plugin_loader import load_plugins
    from lodabench.paths import CONF_DIR

    load_plugins()  # compose is a door: plugin methods and tasks register (and store their nodes) first
    store_schema()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides), return_hydra_config=False)
    finally:
        GlobalHydra.instance().clear()
    check_composed(cfg)
    return cfg


# ----------------------------------------------------------------------------- the typed root
def trainer_config(values: Any) -> TrainerConfig:
    """The ``trainer`` group, complete and typed (Trainer, optimizer and checks read it by attribute)."""
    return build_config(TrainerConfig, values, "trainer")


__all__ = ["RunConfig", "TrainerConfig", "SelectionConfig", "PathsConfig", "LoggerConfig", "ModelConfig",
           "SearchConfig", "check_composed", "compose", "defaults_of", "omegaconf_message", "trainer_config",
           "mirror", "store_option", "store_schema"]
