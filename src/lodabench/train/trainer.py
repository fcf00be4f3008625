"""The training loop: AdamW + linear warm-up/decay, resumable checkpoints, dev loss per epoch.

Resumability. The order of training examples in epoch e is a permutation drawn from a generator
seeded with (seed, e), so a resumed run can skip exactly the batches it already took without
saving a data-loader state. A checkpoint (every ``trainer.checkpoint_every`` optimizer steps and
at each epoch end) holds the trainable tensors (safetensors), the optimizer and scheduler state,
the RNG states and the loop position; ``checkpoints/latest.json`` is rewritten atomically only
after all of a checkpoint's files are complete, so a crash mid-write leaves the previous
checkpoint in force. Loading uses safetensors and ``torch.load(weights_only=True)`` only.

The optimizer is ``trainer.optimizer`` (``lodabench.train.optim``): ``lora_adamw``, microsoft/LoRA's own
AdamW (examples/NLG/src/optimizer.py: ε added to sqrt(v) BEFORE the bias correction, weight decay
AFTER the Adam step, ``trainer.correct_bias`` honoured; each parameter group updated at once,
``lora_adamw_loop`` tensor by tensor, the same numbers), or ``adamw``, ``torch.optim.AdamW`` (ε
added to the bias-corrected sqrt(v), decay first). The two differ by more than the weight-decay
order: early in training the ε placement dominates (lodabench/train/optim.py says by how much). The
optimizer state is saved in every checkpoint and restored on resume, for either optimizer.
``trainer.num_workers`` (collation in DataLoader workers) and ``trainer.compile`` (torch.compile of
the training forward) are lodabench.train.fast's.

Global batch, accumulation and data parallelism. ``trainer.batch_size`` is the GLOBAL batch of one
optimizer step, whatever the number of processes: the epoch permutation is the same on every rank,
each rank takes its contiguous share (``ceil(B/N)``, the last rank possibly fewer) of every global
batch and splits it into ``grad_accum`` micro-batches (or as many as ``trainer.micro_batch_size``
needs). The loss of a micro-batch is a mean over its own tokens (``losses.lm_loss``) or rows, so
the trainer re-weights it by its share of the global normaliser: with ``w_m`` the micro-batch's
token count (+ lm_loss's 1e-4; rows for classification) and ``W = sum of w_m over all micro-batches
of all ranks`` (one all-reduce per step), each micro-batch back-propagates
``loss_m * w_m / W * N`` (DDP averages gradients over the N ranks, hence ``* N``). The summed
gradient is then exactly that of the token-level mean over the whole global batch, as one process
computes it with ``grad_accum=1``; a plain "mean per rank, then average" would weight a token on a
rank with few tokens more than one on a busy rank. Under DDP the accumulation micro-steps run under
``no_sync`` (one all-reduce per optimizer step); a rank whose share is empty (a short last batch)
does a zero-weighted forward/backward so the all-reduce still sees every rank.

Precision. ``trainer.precision``: ``fp32`` (default), ``bf16`` (autocast; CUDA, or CPU where torch
supports it) or ``fp16`` (autocast + GradScaler; CUDA only). Master weights and optimizer state stay
fp32; the loss functions upcast logits to fp32.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from tqdm.auto import tqdm
from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_linear_schedule_with_warmup)

from lodabench.train import distributed as D
from lodabench.train import fast
from lodabench.train import preemption
from lodabench.errors import CheckpointError, ConfigError, TrainingDiverged
from lodabench.io import atomic_write_json, atomic_write_with, safe_rmtree
from lodabench.methods.checkpoint import load_trainable, save_trainable
from lodabench.train.optim import STATE_FAMILY, build_optimizer, optimizer_name
from lodabench.state_files import (check_resume_state, optimizer_tensors, read_latest, read_state,
                                   refuse_nonfinite)

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]


@dataclass
class TrainState:
    epoch: int = 0               # current epoch (0-based)
    batch_in_epoch: int = 0      # micro-batches of this epoch already consumed
    global_step: int = 0         # optimizer steps taken
    finished: bool = False
    dev_loss: dict[str, float] = field(default_factory=dict)   # epoch -> dev loss
    train_loss: dict[str, float] = field(default_factory=dict)  # epoch -> mean train loss
    last_loss: float | None = None
    # Added with the cost block (issue 27); a checkpoint written before them loads with these defaults.
    # The current epoch's loss sum and step count, so a mid-epoch resume reports the whole epoch's mean
    # (an older checkpoint resumed mid-epoch reports the mean of the resumed steps, as it did then).
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
    train_tokens: int = 0        # non-padding tokens of all optimizer steps taken (lodabench.train.phase_cost)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def length_grouped_order(lengths: Sequence[int], seed: int, epoch: int, batch_size: int,
                         mega_batches: int = 50) -> list[int]:
    """``epoch_order`` with similar lengths batched together (``trainer.group_by_length``).

    HF ``LengthGroupedSampler``'s rule: cut the epoch's random permutation into mega-batches of
    ``mega_batches x batch_size`` examples and sort each one by length, longest first. Batches stay
    random samples of the data at the scale of a mega-batch, but a batch's rows have similar lengths,
    so dynamic padding wastes far fewer tokens (GLUE RTE at 128 tokens: ~2x fewer). A pure function
    of (seed, epoch), so a resumed run skips exactly the batches it took, as with ``epoch_order``.
    """
    order = epoch_order(len(lengths), seed, epoch)
    size = max(int(mega_batches) * int(batch_size), 1)
    out: list[int] = []
    for start in range(0, len(order), size):
        # stable sort: ties keep the random order
        out.extend(sorted(order[start:start + size], key=lambda i: -lengths[i]))
    return out


def check_trainer_values(cfg: Mapping[str, Any]) -> None:
    """Values no run can use, refused before anything is loaded (key, value, fix).

    ``max_steps=0`` is legal and trains nothing, like ``epochs=0`` (an untrained baseline).
    """
    from lodabench.config.schema import trainer_config

    cfg = trainer_config(cfg)  # types checked there (trainer.lr=abc names the key)
    lr = cfg.lr
    if not math.isfinite(lr) or lr <= 0:
        raise ConfigError(f"trainer.lr={lr!r}: the learning rate must be a finite number > 0 (e.g. trainer.lr=2e-4).")
    for key, low in (("epochs", 0), ("batch_size", 1)):
        _check_int(cfg, key, low, required=True)
    _check_int(cfg, "max_steps", 0, required=False)
    if cfg.scheduler not in SCHEDULERS:
        raise ConfigError(f"trainer.scheduler={cfg.scheduler!r} is not one of {', '.join(SCHEDULERS)} "
                          "(linear: LoRA Table 11's linear decay after warm-up).")


def _check_int(cfg: Mapping[str, Any], key: str, low: int, required: bool) -> None:
    value = getattr(cfg, key)
    if value is None and not required:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        what = "null (no limit) or " if not required else ""
        raise ConfigError(f"trainer.{key}={value!r}: must be {what}an integer >= {low}.")


# trainer.scheduler -> transformers' schedule (LoRA's scripts: linear decay after warm-up).
SCHEDULERS = {"linear": get_linear_schedule_with_warmup, "cosine": get_cosine_schedule_with_warmup,
              "constant": lambda opt, warmup, _total: get_constant_schedule_with_warmup(opt, warmup)}


def warmup_steps(cfg: Mapping[str, Any], total_steps: int) -> int:
    """``trainer.warmup_ratio`` x total steps (rounded up, as HF's TrainingArguments.get_warmup_steps,
    which LoRA's GLUE scripts use with --warmup_ratio 0.06) when set, else ``trainer.warmup_steps``."""
    from lodabench.config.schema import trainer_config

    cfg = trainer_config(cfg)  # warmup_ratio inside [0, 1]: its field's domain (config/schema.py)
    ratio = cfg.warmup_ratio
    if ratio is None:
        return int(cfg.warmup_steps)
    return math.ceil(total_steps * float(ratio))


# losses.lm_loss divides the masked sum by ``mask.sum() + 1e-4``; the weights below use the same
# normaliser so that re-weighted micro-batch means add up to exactly the global-batch mean.
LM_LOSS_EPS = 1e-4

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_loss_weight(batch: Batch) -> float:
    """The normaliser of a batch's mean loss: target tokens (+ eps) for LM batches, rows otherwise."""
    if "loss_mask" in batch:
        return float(batch["loss_mask"][:, 1:].sum()) + LM_LOSS_EPS
    if "labels" in batch:
        return float(len(batch["labels"]))
    return float(batch["input_ids"].shape[0])


def rank_chunks(global_batch: Sequence[Any], rank: int, world_size: int, micro_steps: int) -> list[list[Any]]:
    """This rank's contiguous share of a global batch, split into ``micro_steps`` (maybe empty) chunks.

    Every rank gets the same number of chunks (DDP needs the same number of backward passes).
    """
    share = math.ceil(len(global_batch) / world_size)
    mine = list(global_batch[rank * share:(rank + 1) * share])
    size = max(math.ceil(share / micro_steps), 1)
    return [mine[i * size:(i + 1) * size] for i in range(micro_steps)]


FAULT_ENV = "LODABENCH_FAULT_AFTER_STEP"


def _maybe_inject_fault(step: int) -> None:
    """Test hook: die abruptly (like kill -9, no cleanup) right after optimizer step N.

    Under DDP the ranks meet first, so rank 0's checkpoint of that step is complete on disk."""
    at = os.environ.get(FAULT_ENV)
    if at and int(at) == step:
        D.barrier()
        os._exit(75)


def restore_cuda_rng(states: Sequence[torch.Tensor] | None) -> dict[str, int] | None:
    """Restore the CUDA RNG states of a checkpoint that fit the GPUs visible now.

    A checkpoint holds one state per GPU visible at save time (``get_rng_state_all``); torch's
    ``set_rng_state_all`` would fail on a resume with fewer GPUs. GPU i gets saved state i for
    i < min(saved, visible); the others keep their seeding (``set_seed``). Returns None when the counts
    match, else ``{"saved_cuda_states", "visible", "restored"}`` for the record: random draws on
    the GPUs (dropout) then differ from an uninterrupted run's.
    """
    saved = list(states or [])
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    restored = min(len(saved), visible)
    for i in range(restored):
        torch.cuda.set_rng_state(saved[i], i)
    if len(saved) == visible:
        return None
    log.warning("checkpoint has %d CUDA RNG state(s), %d GPU(s) visible now: restored %d, the others keep "
                "their seeding", len(saved), visible, restored)
    return {"saved_cuda_states": len(saved), "visible": visible, "restored": restored}


class Trainer:
    """Trains ``model`` on ``train_examples`` with ``loss_fn(model, batch) -> loss``."""

    # Set by try_resume when the checkpoint's CUDA RNG states did not match the visible GPUs
    # (restore_cuda_rng); the run records it.
    rng_restored: dict[str, int] | None = None

    def __init__(self, model: torch.nn.Module, cfg: Mapping[str, Any], *, seed: int, run_dir: Path,
                 train_examples: Sequence[Any], collate: Callable[[list[Any]], Batch],
                 loss_fn: Callable[[torch.nn.Module, Batch], torch.Tensor],
                 dev_loss_fn: Callable[[torch.nn.Module], float] | None = None,
                 logger=None, device: torch.device | None = None,
                 rank: int = 0, world_size: int = 1,
                 loss_weight_fn: Callable[[Batch], float] | None = None,
                 example_lengths: Sequence[int] | None = None):
        self.model = model
        from lodabench.config.schema import trainer_config

        self.cfg = cfg = trainer_config(cfg)  # complete and typed: read by attribute below
        self.seed = int(seed)
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.examples = train_examples
        self.collate = collate
        self.loss_fn = loss_fn
        self.dev_loss_fn = dev_loss_fn
        self.logger = logger
        self.device = device or torch.device("cpu")
        self.rank, self.world_size = rank, world_size
        self.loss_weight = loss_weight_fn or default_loss_weight
        self.lengths = None
        if cfg.group_by_length:
            if example_lengths is None or len(example_lengths) != len(train_examples):
                raise ConfigError("trainer.group_by_length=true needs the length of every training example; "
                                  "this task's pipeline gives none (set trainer.group_by_length=false).")
            self.lengths = list(example_lengths)
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise CheckpointError("the method left no trainable parameters; check method config.")
        self.batch_size = cfg.batch_size
        self.micro_steps = self._micro_steps(cfg)
        self._setup_precision(cfg)
        # DDP wraps the method-applied model for the training forward/backward only; checkpoints,
        # dev loss and evaluation use the plain model (same parameters, no "module." prefix).
        self.train_model = model
        if world_size > 1:
            self.train_model = D.wrap_ddp(model, self.device,
                                          find_unused_parameters=cfg.ddp_find_unused_parameters)
        if cfg.compile:  # the training forward only (lodabench.train.fast)
            self.train_model = fast.compiled(self.train_model)
        self.batches_per_epoch = math.ceil(len(train_examples) / self.batch_size)
        epochs = cfg.epochs
        total = self.batches_per_epoch * epochs
        if cfg.max_steps is not None:  # 0 trains nothing (like epochs=0), never "no limit"
            total = min(total, cfg.max_steps)
        self.total_steps = total
        self.optimizer = self._build_optimizer()
        # The decay horizon is the run's real length (epochs, or max_steps when that is shorter).
        self.warmup_steps = warmup_steps(cfg, total)
        self.scheduler = SCHEDULERS[cfg.scheduler](self.optimizer, self.warmup_steps, max(total, 1))
        self.state = TrainState()

    # ----------------------------------------------------------------------------- setup
    def _micro_steps(self, c: Mapping[str, Any]) -> int:
        """Backward passes per optimizer step on each rank (the same on all ranks)."""
        accum = c.grad_accum
        micro = c.micro_batch_size
        share = math.ceil(self.batch_size / self.world_size)
        if self.batch_size < 1 or accum < 1:
            raise ConfigError(f"trainer.batch_size={self.batch_size}, trainer.grad_accum={accum}: both must be >= 1.")
        if micro is not None:
            if accum != 1:
                raise ConfigError(f"trainer.grad_accum={accum} and trainer.micro_batch_size={micro} are both set; "
                                  "set one (micro_batch_size derives the accumulation steps).")
            if int(micro) < 1:
                raise ConfigError(f"trainer.micro_batch_size={micro} must be >= 1 (or null).")
            accum = math.ceil(share / int(micro))
        if accum > share:
            raise ConfigError(f"trainer.grad_accum={accum} exceeds the per-process share of the global batch "
                              f"(batch_size {self.batch_size} / {self.world_size} processes = {share}); "
                              f"use grad_accum <= {share}.")
        return accum

    def _setup_precision(self, c: Mapping[str, Any]) -> None:
        name = c.precision
        if name not in PRECISIONS:
            raise ConfigError(f"trainer.precision={name!r} is not one of {', '.join(PRECISIONS)}.")
        if name == "fp16" and self.device.type != "cuda":
            raise ConfigError("trainer.precision=fp16 needs a CUDA device (fp16 autocast + GradScaler); "
                              "use trainer.precision=bf16 or fp32 on the CPU.")
        self.precision = name
        self.amp_dtype = PRECISIONS[name]
        self.scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return build_optimizer(self.params, self.cfg)  # ConfigError on a bad trainer.optimizer

    # ----------------------------------------------------------------------- checkpoints
    def _rng_state(self) -> dict[str, Any]:
        state = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def save_checkpoint(self) -> Path:
        if self.rank != 0:
            return self.ckpt_dir
        name = f"step-{self.state.global_step:07d}"
        target = self.ckpt_dir / name
        target.mkdir(parents=True, exist_ok=True)
        save_trainable(self.model, target / "trainable.safetensors")
        blob = {"optimizer": self.optimizer.state_dict(), "optimizer_name": optimizer_name(self.cfg),
                "scheduler": self.scheduler.state_dict(), "rng": self._rng_state()}
        if self.scaler is not None:
            blob["scaler"] = self.scaler.state_dict()
        atomic_write_with(target / "optimizer.pt", lambda p: torch.save(blob, p))
        atomic_write_json(target / "trainer_state.json", self.state.__dict__)
        atomic_write_json(self.ckpt_dir / "latest.json", {"dir": name, "global_step": self.state.global_step})
        # Older step checkpoints are superseded (epoch checkpoints are kept separately).
        for old in self.ckpt_dir.glob("step-*"):
            if old.name != name and old.is_dir():
                safe_rmtree(old, self.ckpt_dir)  # never outside run_dir/checkpoints
        return target

    def save_epoch_weights(self, epoch: int) -> None:
        if self.rank != 0 or not self.cfg.keep_epoch_checkpoints:
            return
        save_trainable(self.model, self.ckpt_dir / f"epoch-{epoch + 1}" / "trainable.safetensors")

    def try_resume(self) -> bool:
        pointer = self.ckpt_dir / "latest.json"
        if not pointer.is_file():
            return False
        info = read_latest(self.ckpt_dir)  # shape checked, its dir exists (lodabench.state_files)
        ckpt = self.ckpt_dir / info["dir"]
        state = self._resume_state(ckpt, info["global_step"])  # checked before any tensor is loaded
        try:
            self.load_weights(ckpt / "trainable.safetensors")
        except CheckpointError as exc:  # truncated, corrupted, or another method's/rank's checkpoint
            raise CheckpointError(f"cannot resume from {ckpt} (named by {pointer}): {exc}. To restart this "
                                  f"run from scratch delete {self.ckpt_dir} (or run with a fresh "
                                  "paths.results_dir)") from exc
        try:
            blob = torch.load(ckpt / "optimizer.pt", weights_only=True, map_location="cpu")
        except Exception as exc:  # truncated/corrupted file
            raise CheckpointError(f"checkpoint {ckpt / 'optimizer.pt'} is unreadable ({exc}); delete {ckpt} "
                                  "to restart from the previous checkpoint or from scratch.") from exc
        self._check_optimizer_name(blob, ckpt)
        refuse_nonfinite(optimizer_tensors(blob), f"checkpoint {ckpt / 'optimizer.pt'}",
                         f"Delete {self.ckpt_dir} to restart this run from step 0 (or re-run with force=true).")
        self.optimizer.load_state_dict(blob["optimizer"])
        self.scheduler.load_state_dict(blob["scheduler"])
        if self.scaler is not None and "scaler" in blob:
            self.scaler.load_state_dict(blob["scaler"])
        torch.set_rng_state(blob["rng"]["torch"])
        self.rng_restored = restore_cuda_rng(blob["rng"].get("cuda"))
        self.state = state
        log.info("resumed from %s (epoch %d, batch %d, step %d)", ckpt, self.state.epoch + 1,
                 self.state.batch_in_epoch, self.state.global_step)
        return True

    def _resume_state(self, ckpt: Path, latest_step: int) -> TrainState:
        """The checkpoint's trainer state, its shape checked and its position inside this run's schedule
        (a wrong-typed or out-of-schedule step would train extra steps or report a wrong count)."""
        path = ckpt / "trainer_state.json"
        data = read_state(path, "trainer_state")
        check_resume_state(data, path, latest_step, {"total_steps": self.total_steps, "epochs": self.cfg.epochs,
                                                     "batches_per_epoch": self.batches_per_epoch})
        return TrainState(**data)

    def _check_optimizer_name(self, blob: Mapping[str, Any], ckpt: Path) -> None:
        """A checkpoint's moments belong to the optimizer that wrote them (older ones: adamw, the only one then)."""
        saved, now = blob.get("optimizer_name", "adamw"), optimizer_name(self.cfg)
        if STATE_FAMILY.get(saved, saved) != STATE_FAMILY.get(now, now):  # lora_adamw_loop <-> lora_adamw load
            raise CheckpointError(f"checkpoint {ckpt} was written with trainer.optimizer={saved}, this run uses "
                                  f"trainer.optimizer={now}; set trainer.optimizer={saved} to resume it, or delete "
                                  f"{self.ckpt_dir} to restart from scratch.")

    def load_weights(self, path: Path) -> None:
        """Trainable tensors from a checkpoint; another method/rank/config is refused (CheckpointError)."""
        if not Path(path).is_file():
            raise CheckpointError(f"checkpoint {path} is missing; delete {Path(path).parent.parent / 'latest.json'} "
                                  "to restart training from scratch.")
        load_trainable(self.model, path)

    # ------------------------------------------------------------------------------ loop
    def _batches(self, epoch: int) -> Iterable[tuple[int, list[Any]]]:
        """The GLOBAL batches of an epoch (identical on every rank; ``_step`` takes this rank's share)."""
        if self.lengths is not None:
            order = length_grouped_order(self.lengths, self.seed, epoch, self.batch_size)
        else:
            order = epoch_order(len(self.examples), self.seed, epoch)
        for b in range(self.batches_per_epoch):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield b, [self.examples[i] for i in idx]

    def _epoch_batches(self, epoch: int) -> Iterable[tuple[int, list[Any], list[Batch | None] | None]]:
        """The batches not yet consumed, with this rank's micro-batches collated by ``trainer.num_workers``
        worker processes (None: ``_step`` collates them; lodabench.train.fast)."""
        todo = ((b, ex) for b, ex in self._batches(epoch) if b >= self.state.batch_in_epoch)
        if not self.cfg.num_workers:
            return ((b, ex, None) for b, ex in todo)
        split = functools.partial(rank_chunks, rank=self.rank, world_size=self.world_size, micro_steps=self.micro_steps)
        return fast.worker_batches(list(todo), split, self.collate, num_workers=self.cfg.num_workers, seed=self.seed,
                                   epoch=epoch, pin_memory=self.device.type == "cuda")

    def _check_finite(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"loss is {loss.item()} at optimizer step {self.state.global_step + 1} "
                f"(epoch {self.state.epoch + 1}); the last good checkpoint is kept in {self.ckpt_dir}. "
                "Lower trainer.lr, enable trainer.grad_clip, or check the data.")

    def train(self) -> TrainState:
        c = self.cfg
        self.try_resume()
        if self.state.finished:
            return self.state
        epochs = 0 if c.max_steps == 0 else c.epochs
        bar = tqdm(total=self.total_steps, initial=self.state.global_step, desc="train",
                   disable=not c.progress or self.rank != 0, dynamic_ncols=True)
        self.train_model.train()
        try:
            with preemption.at_step_boundaries():  # SIGUSR1/SLURM's SIGTERM: stop after the step in flight
                self._loop(epochs, bar)
        finally:
            bar.close()
        self.model.eval()
        # Drop the DDP wrapper now, while the process group is alive: if its Reducer were the last
        # owner of a gloo group that destroy_process_group() has already released, freeing it would
        # join gloo's worker threads while holding the GIL -> deadlock at exit (seen on torch 2.13).
        self.train_model = self.model
        return self.state

    def _loop(self, epochs: int, bar) -> None:
        c = self.cfg
        every = c.checkpoint_every
        stop = False
        while self.state.epoch < epochs and not stop:
            epoch = self.state.epoch
            running, count = self.state.epoch_loss_sum, self.state.epoch_loss_count  # a resume continues the epoch
            for b, examples, collated in self._epoch_batches(epoch):
                loss_value = self._step(examples, collated)
                running += loss_value
                count += 1
                self.state.epoch_loss_sum, self.state.epoch_loss_count = running, count  # checkpointed
                self.state.batch_in_epoch = b + 1
                self.state.last_loss = loss_value
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
                if self.logger is not None and self.rank == 0:
                    self.logger.log({"train/loss": loss_value, "train/lr": self.scheduler.get_last_lr()[0],
                                     "epoch": epoch + 1}, step=self.state.global_step)
                if c.max_steps and self.state.global_step >= c.max_steps:
                    stop = True
                    break
                saved = bool(every) and self.state.global_step % every == 0
                if saved:
                    self.save_checkpoint()
                _maybe_inject_fault(self.state.global_step)
                self._stop_if_preempted(saved)
            if count:
                self.state.train_loss[str(epoch + 1)] = running / count
            epoch_done = self.state.batch_in_epoch >= self.batches_per_epoch
            if epoch_done or stop:
                if c.eval_dev_loss and self.dev_loss_fn is not None:
                    # Rank 0 computes it on the plain model; the others receive the value.
                    dev = None
                    if self.rank == 0:
                        self.model.eval()
                        with torch.no_grad(), self._autocast():
                            dev = float(self.dev_loss_fn(self.model))
                    dev = D.broadcast_from_main(dev)
                    self.train_model.train()
                    self.state.dev_loss[str(epoch + 1)] = dev
                    log.info("epoch %d dev loss %.4f", epoch + 1, dev)
                    if self.logger is not None and self.rank == 0:
                        self.logger.log({"dev/loss": dev, "epoch": epoch + 1}, step=self.state.global_step)
                self.save_epoch_weights(epoch)
            if epoch_done:
                self.state.epoch += 1
                self.state.batch_in_epoch = 0
                self.state.epoch_loss_sum, self.state.epoch_loss_count = 0.0, 0
            if stop or self.state.epoch >= epochs:
                self.state.finished = True
            self.save_checkpoint()
            self._stop_if_preempted(saved=True)
        if not self.state.finished:  # epochs=0 / max_steps=0: nothing trained; keep the evaluated weights
            self.state.finished = True
            self.save_checkpoint()

    def _stop_if_preempted(self, saved: bool) -> None:
        """At a step boundary: if any rank got a preemption signal (lodabench.train.preemption), save this
        step's checkpoint (unless just saved) and raise RunPreempted on every rank."""
        signum = preemption.pending() or 0
        if self.world_size > 1:  # all ranks stop at the same step, whichever got the signal
            signum = int(D.all_reduce_max(signum, self.device))
        if not signum:
            return
        if not saved:
            self.save_checkpoint()
        D.barrier()  # rank 0's checkpoint is complete before any rank leaves
        log.warning("stopped for %s after optimizer step %d; checkpoint in %s", signal.Signals(signum).name,
                    self.state.global_step, self.ckpt_dir)
        raise preemption.RunPreempted(signum, step=self.state.global_step)

    def _step(self, global_batch: list[Any], collated: list[Batch | None] | None = None) -> float:
        """One optimizer step on a global batch (``collated``: its micro-batches, from the workers); returns
        its loss (token-level mean over all ranks)."""
        c = self.cfg
        ddp = self.world_size > 1
        if ddp:  # dropout masks: distinct per rank, and a function of the step (exact resume)
            torch.manual_seed(self.seed * 1_000_003 + self.state.global_step * self.world_size + self.rank)
        chunks = rank_chunks(global_batch, self.rank, self.world_size, self.micro_steps)
        if collated is None:
            collated = [self.collate(ch) if ch else None for ch in chunks]
        batches = [self._to_device(b) if b is not None else None for b in collated]
        weights = [self.loss_weight(b) if b is not None else 0.0 for b in batches]
        total_weight = D.all_reduce_sum(sum(weights), self.device)
        if total_weight <= 0:
            raise TrainingDiverged(f"global batch at optimizer step {self.state.global_step + 1} carries no loss "
                                   "(no target tokens); check the data and trainer.max_length.")
        local = 0.0
        for m, (batch, w) in enumerate(zip(batches, weights)):
            last = m == len(batches) - 1
            if batch is None:
                if not (ddp and last):
                    continue
                # This rank has nothing left but must join the step's all-reduce: zero-weighted pass.
                batch, w = self._to_device(self.collate(global_batch[:1])), 0.0
            sync = contextlib.nullcontext() if (last or not ddp) else self.train_model.no_sync()
            with sync:
                with self._autocast():
                    loss = self.loss_fn(self.train_model, batch)
                scale = w / total_weight * self.world_size
                scaled = loss * scale
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            local += float(loss.detach()) * (w / total_weight)
        loss_value = D.all_reduce_sum(local, self.device)
        self._check_finite(torch.tensor(loss_value))
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, c.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.global_step += 1
        self._count_tokens(batches)
        return loss_value

    # Non-padding tokens this attempt processed (the record's per-attempt cost; the state's count is the run's).
    attempt_tokens: int = 0

    def _count_tokens(self, batches: list[Batch | None]) -> None:
        """Add the step's non-padding tokens over all ranks (``cost.train_tokens``, lodabench.train.phase_cost)."""
        from lodabench.train.phase_cost import batch_tokens

        tokens = int(D.all_reduce_sum(sum(batch_tokens(b) for b in batches if b is not None), self.device))
        self.state.train_tokens += tokens
        self.attempt_tokens += tokens

    def _to_device(self, batch: Batch) -> Batch:
        pinned = self.cfg.num_workers > 0 and self.device.type == "cuda"  # pinned by the loader: async copy
        return {k: (v.to(self.device, non_blocking=pinned) if torch.is_tensor(v) else v) for k, v in batch.items()}
