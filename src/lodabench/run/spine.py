"""The one train+eval pipeline: compose → validate → train (resumable) → decode/predict → score → record.

Hydra calls ``job`` for each job of a command (``python -m lodabench``; run/entry.py launches it).
Each run owns ``cfg.run_dir``; a run whose record is complete is skipped unless ``force=true``; an
interrupted run resumes from its last checkpoint (run/attempts.py: what a launch tidies and sets
aside first); a crash during decoding keeps the hypotheses already decoded (``hyp.partial.jsonl``)
and a re-run decodes only the rest; a crash during scoring re-scores from the written ``hyp.txt``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from lodabench.train import distributed as D
from lodabench.errors import ConfigError, LodabenchError
from lodabench.io import atomic_write_text, finite_json
from lodabench.machine import keep_freed_memory
from lodabench.train.preemption import RunInterrupted, hand_off, interrupts_raise
from lodabench.run import attempts
from lodabench.run.records import Metrics, RunRecord, config_conflicts
from lodabench.run.runlock import RunLock
from lodabench.run.preflight import Plan

if TYPE_CHECKING:
    from lodabench.train.trainer import TrainState

log = logging.getLogger(__name__)

MIN_FREE_MB = 200


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_writable(run_dir: Path) -> None:
    """Fail before any training if results cannot be written (unwritable dir, disk full)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"results directory {run_dir} is not writable ({exc.strerror or exc}). "
                          "Fix its permissions or set paths.results_dir=<writable dir>.") from exc
    free_mb = shutil.disk_usage(run_dir).free / 2**20
    if free_mb < MIN_FREE_MB:
        raise ConfigError(f"only {free_mb:.0f} MiB free on the disk of {run_dir} (need at least {MIN_FREE_MB} MiB "
                          "for checkpoints and outputs). Free space or set paths.results_dir elsewhere.")


def pick_device(name: str) -> torch.device:
    """``trainer.device``; a visible GPU torch cannot use is refused, not replaced by the CPU (lodabench.train.device)."""
    from lodabench.train.device import pick_device as pick
    return pick(name)


class WandbLogger:
    """wandb, offline by default; only created when ``logger=wandb``."""

    def __init__(self, cfg: DictConfig, run_dir: Path, config: dict[str, Any]):
        import wandb
        os.environ.setdefault("WANDB_MODE", cfg.logger.mode)
        self.run = wandb.init(project=cfg.logger.project, entity=cfg.logger.entity, dir=str(run_dir),
                              name=cfg.run_name, id=hashlib.sha1(str(run_dir).encode()).hexdigest()[:12],
                              resume="allow", config=config, tags=list(cfg.logger.tags),
                              mode=cfg.logger.mode)

    def log(self, data: dict[str, Any], step: int | None = None) -> None:
        self.run.log(data, step=step)

    def finish(self, summary: dict[str, Any] | None = None) -> None:
        if summary:
            self.run.summary.update(summary)
        self.run.finish()


# ----------------------------------------------------------------------------- the job
# Failed jobs of a multirun are appended here (one JSON line each) by whichever process ran them
# (basic, joblib or submitit launcher: all inherit the environment); entry.main prints them at the end.
FAILED_JOBS_ENV = "LODABENCH_FAILED_JOBS_FILE"
_job_log = logging.getLogger("lodabench")


def job(cfg: DictConfig) -> float | None:
    """What Hydra runs for each job of a command (entry.main launches it on the composed config):
    the job's own config checked (a sweep's values included), the run, and how it ended said once;
    returns the objective a sweeper (Optuna) optimises."""
    from lodabench.config.schema import check_composed
    try:
        check_composed(cfg)  # no key outside the schema
        metrics = run(cfg)  # refused or skipped: nothing written into the run directory (lodabench.run.capture)
    except RunInterrupted as exc:
        print(f"lodabench: {exc}; the record says so (status interrupted). Re-run the command to resume.",
              file=sys.stderr)
        raise SystemExit(128 + exc.signum) from None
    except LodabenchError as exc:
        _job_log.error("%s", exc)
        print(f"lodabench: error: {exc}", file=sys.stderr)
        # Under multirun a failing job must not stop the others: Hydra's basic launcher would
        # re-raise, so report and continue; the failed record marks the cell for the tables.
        if _is_multirun():
            _note_failed_job(cfg, exc)
            return None
        raise SystemExit(2)
    except Exception as exc:
        if _is_multirun():
            _job_log.exception("job failed; continuing with the rest of the sweep")
            _note_failed_job(cfg, exc)
            return None
        raise
    finally:
        from lodabench.run.capture import close_job_log
        close_job_log()  # each job of a multirun logs into its own run directory
    return None if metrics is None else metrics.get("objective")


def _note_failed_job(cfg: DictConfig, exc: BaseException) -> None:
    path = os.environ.get(FAILED_JOBS_ENV)
    if path:
        line = json.dumps({"run_dir": str(cfg.run_dir), "error": f"{type(exc).__name__}: {exc}"[:500]})
        with open(path, "a", encoding="utf-8") as fh:  # one short append per job: atomic enough on POSIX
            fh.write(line + "\n")


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def run(cfg: DictConfig) -> dict[str, Any] | None:
    """Execute one run; returns its metrics (a complete run is skipped and returns its recorded
    metrics, so a re-launched Optuna study gets the same objective back)."""
    from lodabench.run.config_ranges import check_launch_values
    check_launch_values(cfg)  # seed, trainer.num_threads: used below before preflight checks the rest
    torch.set_num_threads(int(cfg.trainer.num_threads))
    keep_freed_memory(bool(cfg.trainer.keep_freed_memory))  # before training's large tensors (machine.py says why)
    from lodabench.train.device import check_requested_device, use_deterministic_kernels
    check_requested_device(str(cfg.trainer.device))  # before the lock, the record and torchrun's device choice
    use_deterministic_kernels(bool(cfg.trainer.deterministic))  # before anything starts cuBLAS
    # Under torchrun: join the process group. Rank 0 alone writes the record, checkpoints and
    # outputs; the other ranks train and leave (lodabench.train.distributed, docs/cluster.md).
    dctx, ddp_device = D.init_from_env(str(cfg.trainer.device))
    from lodabench.config.run_names import check_run_dir
    run_dir = check_run_dir(cfg)  # name, confinement in paths.results_dir, nesting: before the lock or any write
    lock = RunLock(run_dir) if dctx.is_main else None
    lock_error = None
    if lock is not None:
        try:
            lock.acquire()
        except ConfigError as exc:
            lock_error = str(exc)
    lock_error = D.broadcast_from_main(lock_error)  # rank 0 holds the lock for all
    if lock_error:
        D.finish()
        raise ConfigError(lock_error)
    try:
        return _launch(cfg, run_dir, dctx, ddp_device)
    finally:
        if lock is not None:
            lock.release()


def _launch(cfg: DictConfig, run_dir: Path, dctx: D.DistContext, ddp_device) -> dict[str, Any] | None:
    record = RunRecord(run_dir)
    # A run directory belongs to one config: an edited overlay must not skip to (or resume from)
    # results made with other values under the same command line.
    conflicts = D.broadcast_from_main(  # rank 0 decides for all
        config_conflicts(record.data.get("config") or {}, OmegaConf.to_container(cfg, resolve=True)))
    if conflicts:
        D.finish()
        raise ConfigError(
            f"run directory {run_dir} holds a run ({record.status}) made with other values: "
            f"{'; '.join(conflicts[:8])}{' ...' if len(conflicts) > 8 else ''}. Its results and checkpoints "
            f"do not belong to this config: delete or move that directory to run this config there, or give "
            f"it another run directory (run_name=... or paths.runs_dir=...).")
    if D.broadcast_from_main(record.is_complete() and not cfg.force):  # rank 0 decides for all
        stale = D.broadcast_from_main(_stale_inputs(record, cfg) if dctx.is_main else None)
        D.finish()
        if stale:  # its data, weights or tokenizer no longer hash as recorded: not the old numbers
            raise ConfigError(stale)
        if dctx.is_main:
            log.info("run %s is complete; skipping (force=true re-runs it)", run_dir)
            print(f"[lodabench] skip (complete): {run_dir}")
        return record.data.get("metrics")
    if not dctx.is_main:
        return _run(cfg, run_dir, _NoRecord(), None, dctx, ddp_device)
    check_writable(run_dir)
    attempts.attempt_hygiene(run_dir)  # past the refusals and the skip: only an accepted launch writes into run_dir
    record = RunRecord(run_dir)  # as hygiene left it
    unvouched = attempts.set_aside_unrecorded(run_dir, record)  # work no record vouches for is never resumed
    fresh = bool(cfg.force) or not attempts.has_work(run_dir)
    if cfg.force and record.attempts:
        record.supersede(attempts.move_attempt_aside(run_dir, len(record.attempts)))
    config = OmegaConf.to_container(cfg, resolve=True)
    record.start(config, int(cfg.seed), fresh=fresh, allow_code_change=cfg.allow_code_change)
    attempts.note_set_aside(record, unvouched)
    from lodabench.run.capture import accept_launch
    accept_launch(run_dir, cfg)  # .hydra/ and the job log, which Hydra no longer writes (conf/hydra/default.yaml)
    record.update(sweep=sweep_info(cfg))
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    logger = WandbLogger(cfg, run_dir, config) if cfg.logger.name == "wandb" else None
    try:
        with interrupts_raise():
            metrics = _run(cfg, run_dir, record, logger, dctx, ddp_device)
    except BaseException as exc:
        attempts.record_end(record, run_dir, exc)
        hand_off(exc)  # preempted under submitit: its handler requeues the job and exits
        raise
    finally:
        if logger is not None:
            logger.finish()
    record.complete(metrics)
    print(f"[lodabench] complete: {run_dir}")
    print(json.dumps(finite_json(metrics), indent=2, allow_nan=False))  # strict JSON, as in metrics.json
    return metrics


def _stale_inputs(record: RunRecord, cfg: DictConfig) -> str | None:
    """Why a complete run may not be skipped (its inputs changed), else None; reads only, writes nothing."""
    from lodabench.run.fingerprints import is_fingerprinted, stale_inputs
    if not is_fingerprinted(record.data.get("inputs")):
        log.warning("run %s was recorded before fingerprints: its inputs cannot be re-checked "
                    "(`lodabench verify` says so; force=true re-runs it with fingerprints)", record.run_dir)
        return None
    return stale_inputs(record, cfg)


def sweep_info(cfg: DictConfig) -> dict[str, Any] | None:
    """Which Hydra sweeper launched this run; for an Optuna search also its study (the command's
    overrides minus the searched keys), the trial number and the searched keys."""
    from hydra.core.hydra_config import HydraConfig

    try:
        hc = HydraConfig.get()
    except ValueError:  # not under Hydra (tests calling run() directly)
        return None
    sweeper = hc.runtime.choices.get("hydra/sweeper")
    if sweeper != "optuna":
        return {"sweeper": sweeper} if _is_multirun() else None
    searched = sorted(cfg.search.space)
    study = " ".join(o for o in hc.overrides.task if o.split("=", 1)[0] not in searched)
    return {"sweeper": "optuna", "study": study, "trial": hc.job.num, "searched": searched}


class _NoRecord:
    """Stands in for the run record on ranks other than 0, which never write it."""

    def update(self, **_: Any) -> None:
        pass

    def note(self, **_: Any) -> None:
        pass

    def note_device(self, _device: torch.device) -> None:
        pass


# ----------------------------------------------------------------------------- the spine
# config -> preflight -> Plan -> build -> Built -> train -> TrainState -> evaluate -> Metrics;
# _launch records them (RunRecord, its schema in run/records.py) around it.
def _run(cfg: DictConfig, run_dir: Path, record: RunRecord, logger,
         dctx: D.DistContext = D.SINGLE, ddp_device: torch.device | None = None) -> dict[str, Any] | None:
    from lodabench.run.preflight import preflight
    from lodabench.train.device import describe
    set_seed(int(cfg.seed))
    device = ddp_device or pick_device(cfg.trainer.device)
    log.info("device: %s (trainer.device=%s)", describe(device), cfg.trainer.device)
    record.note_device(device)  # the attempt says where it ran: "cpu" / "cuda:<local rank>"
    plan = preflight(cfg)  # the whole config, typed once, the data and what evaluation needs: before anything heavy
    # Below this line only the Plan is read (the record keeps the resolved config as data: _launch).
    built = build(plan, run_dir, record, logger, device, dctx)
    state = train(built, record, dctx)
    D.finish()  # all ranks meet after rank 0's last checkpoint; rank 0 evaluates alone
    if not dctx.is_main:
        return None
    from lodabench.train import phase_cost
    with phase_cost.phase(record, "decode", device):  # cost.eval_s, cost.peak_memory_mb.decode
        return evaluate(plan, built, state, run_dir, record)


@dataclass
class Built:
    """The objects a run trains and evaluates, made by ``build`` from the Plan (the model is ``trainer.model``)."""

    pipeline: Any
    trainer: Any


def build(plan: Plan, run_dir: Path, record, logger, device: torch.device, dctx: D.DistContext) -> Built:
    """Tokenizer, base model + method (+ warm start), pipeline and trainer; records the counts."""
    from lodabench import methods
    from lodabench.models.pretrained import load_tokenizer

    tokenizer = load_tokenizer(plan.model)
    model = build_model(plan, tokenizer, record).to(device)
    record.update(trainable_params=methods.count_parameters(model))
    pipeline = plan.pipeline_cls(plan, plan.task, tokenizer, device)  # a pipeline reads the plan's groups
    trainer = build_trainer(plan, model, pipeline, run_dir, logger, device, dctx)
    from lodabench.train.selection import check_against_training
    check_against_training(plan.selection, plan.trainer, trainer.batches_per_epoch, trainer.total_steps)
    return Built(pipeline, trainer)


def build_model(plan: Plan, tokenizer, record) -> torch.nn.Module:
    """The base model for the task's pipeline, with the method applied (checked against the model)."""
    from lodabench.models.pretrained import load_model, weights_read

    task, kind = plan.task, plan.pipeline_cls.model_kind
    model = load_model(plan.model, kind=kind, num_labels=getattr(task, "num_labels", None),
                       problem_type=("regression" if getattr(task, "is_regression", False) else None))
    if kind == "sequence_classification" and model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    # What this attempt read: the task's data (lodabench.tasks) and the weights (path, or hub id + commit).
    # With the sha256 of every file read (lodabench.run.fingerprints); a resume from other bytes is refused.
    from lodabench.run.fingerprints import check_resume, run_inputs
    inputs = run_inputs(plan, weights_read(plan.model, model, tokenizer))
    from lodabench.config.replacements import replaced_builtins  # a plugin's code under a built-in name (replace=True)
    inputs["replaced_builtins"] = replaced_builtins()
    record.note(inputs=inputs)
    check_resume(record, inputs)
    set_seed(plan.seed)  # adapter init does not depend on how much randomness loading used
    model = plan.method_spec.attach(model, plan.method)  # validated in preflight: the model checks, then apply
    if plan.init_from:
        _warm_start(model, plan.init_from, record)
    return model


def _warm_start(model: torch.nn.Module, source: str, record) -> None:
    # Warm start (LoRA: MRPC/RTE/STS-B from the MNLI run); a resumed run's checkpoint overrides it.
    from lodabench.methods.checkpoint import load_warm_start
    warm = load_warm_start(model, source)
    record.update(warm_start=warm)
    log.info("warm start from %s: %d tensors carried, dropped %s", warm["path"], len(warm["carried"]),
             sorted(warm["dropped"]) or "none")


def build_trainer(plan: Plan, model, pipeline, run_dir: Path, logger, device, dctx: D.DistContext):
    from lodabench.train.trainer import Trainer

    examples = pipeline.train_examples()  # encoded once: the trainer and the length grouping share them
    lengths = pipeline.example_lengths(examples) if plan.trainer.group_by_length else None
    return Trainer(model, plan.trainer, seed=plan.seed, run_dir=run_dir,
                   train_examples=examples, collate=pipeline.collate,
                   loss_fn=pipeline.loss, dev_loss_fn=pipeline.dev_loss,
                   logger=logger, device=device, rank=dctx.rank, world_size=dctx.world_size,
                   loss_weight_fn=getattr(pipeline, "loss_weight", None), example_lengths=lengths)


def train(built: Built, record, dctx: D.DistContext) -> "TrainState":
    """Train (or resume) to the end; the record gets the schedule before and the losses after."""
    trainer = built.trainer
    sizes = {"examples": len(trainer.examples), "batches_per_epoch": trainer.batches_per_epoch,
             "total_steps": trainer.total_steps}
    record.update(parallel={"world_size": dctx.world_size, "backend": dctx.backend,
                            "micro_steps_per_rank": trainer.micro_steps, "precision": trainer.precision})
    record.update(train=sizes)
    from lodabench.train import phase_cost  # the record's cost block: seconds, tokens, peak memory per phase
    with phase_cost.phase(record, "train", trainer.device, lambda: {"tokens_processed": trainer.attempt_tokens}):
        state = trainer.train()
    phase_cost.note_run_cost(record, train_tokens=state.train_tokens,
                             adapter_bytes=phase_cost.adapter_bytes(trainer.ckpt_dir))
    if trainer.rng_restored:  # resumed on another GPU count: which CUDA RNG states were restored
        record.update(rng_restored=trainer.rng_restored)
    record.update(train={**sizes, "global_step": state.global_step, "train_loss": state.train_loss,
                         "dev_loss": state.dev_loss})
    return state


def evaluate(plan: Plan, built: Built, state: "TrainState", run_dir: Path, record) -> Metrics:
    """Score the selected checkpoint (or each listed epoch, then pick); returns the run's metrics."""
    from lodabench.train.selection import evaluate_epochs

    selection, trainer, pipeline = plan.selection, built.trainer, built.pipeline
    metric = selection_metric(plan, pipeline)
    if selection.epochs:
        metrics = evaluate_epochs(selection, trainer, state, pipeline, run_dir, metric, declared_lower(plan, metric))
        used = f"epoch {metrics['selection']['selected_epoch']} (selection.rule={selection.rule})"
    else:
        used = _select_checkpoint(plan.eval_checkpoint, trainer, state)
        trainer.model = _after_training(plan, trainer.model, run_dir)
        _refuse_nonfinite_model(trainer.model)
        metrics = pipeline.evaluate(trainer.model, run_dir)
    record.update(checkpoint_used=used)
    metrics["dev_loss"] = state.dev_loss.get(str(max(map(int, state.dev_loss)))) if state.dev_loss else None
    metrics["checkpoint"] = used
    # What a Hydra sweeper (Optuna) optimises: the selection metric, on the selection split where there
    # is one (CondLoRA: the held-out 10% of train), named beside its value and split.
    metrics["objective"], metrics["objective_split"] = _objective(selection, pipeline, trainer.model, metrics, metric)
    metrics["objective_metric"] = metric
    return metrics


def selection_metric(plan: Plan, pipeline: Any) -> str:
    """What selection and the sweeps optimise: ``selection.metric``, else the task spec's declared
    selection metric (TaskMetrics.selection_metric, which may differ from the primary the tables lead
    with); the pipeline's primary metric only for a task that declares none."""
    if plan.selection.metric:
        return plan.selection.metric
    return plan.metrics.selection_metric if plan.metrics is not None else pipeline.primary_metric


def declared_lower(plan: Plan, metric: str) -> bool | None:
    """Whether the task spec declares ``metric`` lower-is-better (TaskSpec.metrics, the one vocabulary,
    carried by the plan); None when the spec does not declare it (selection then reads the metric's name)."""
    found = None if plan.metrics is None else plan.metrics.metric(metric)
    return None if found is None else found.lower_is_better


def _refuse_nonfinite_model(model: torch.nn.Module) -> None:
    """Weights holding NaN/inf are never decoded nor scored (they would still get a number)."""
    from lodabench.state_files import refuse_nonfinite
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    refuse_nonfinite(trainable, "the model to evaluate", "Nothing is decoded or scored. Lower trainer.lr or set "
                     "trainer.grad_clip, then re-run with force=true.")


def _after_training(plan: Plan, model: torch.nn.Module, run_dir: Path) -> torch.nn.Module:
    """The method's own step between training and evaluation (prefix+MLP: merge the projection)."""
    hook = plan.method_spec.after_training
    return model if hook is None else hook(model, run_dir)


def _objective(selection, pipeline, model, metrics: dict[str, Any], metric: str) -> tuple[Any, str]:
    if selection.epochs and selection.rule == "dev_metric":
        return (metrics.get("dev_metrics") or {}).get(metric), "selection"
    if selection.epochs:
        return metrics.get(metric), "reported"
    values, split = pipeline.objective(model, metrics)
    return values.get(metric), split


def _select_checkpoint(eval_checkpoint: str, trainer, state) -> str:
    """Load the weights the reported numbers come from: the last step, or the best dev-loss epoch
    (eval_checkpoint's value was checked in preflight)."""
    if eval_checkpoint == "last":
        return f"last (step {state.global_step})"
    if not state.dev_loss:
        # preflight made sure trainer.eval_dev_loss=true; what is left: no dev split, or nothing trained
        raise ConfigError("eval_checkpoint=best_dev: no dev loss was recorded to select on (the task has no dev "
                          "split, or trainer.max_steps=0 / epochs=0 trained nothing). Fix: eval_checkpoint=last.")
    best = min(state.dev_loss, key=lambda e: state.dev_loss[e])
    trainer.load_weights(trainer.ckpt_dir / f"epoch-{best}" / "trainable.safetensors")
    return f"best_dev (epoch {best}, dev loss {state.dev_loss[best]:.4f})"
