"""Signals during a run: interruption (stop now) and SLURM time-out/preemption (checkpoint, then requeue).

Two kinds of signal end a run early, and ``interrupts_raise`` (entered by ``run._launch`` around the
whole run) turns both into an exception that unwinds like KeyboardInterrupt, so the record is closed:

* **Interruption** (SIGINT, SIGHUP, and SIGTERM outside SLURM): ``RunInterrupted`` at once. The
  record says ``interrupted`` with the signal and the last checkpoint; exit status 128 + signal.
* **Preemption** (SIGUSR1, submitit's requeue signal, and SIGTERM under SLURM, i.e. when
  ``SLURM_JOB_ID`` is set): while the trainer is in its loop the handler only raises a flag; the
  trainer checks it after every optimizer step, writes a checkpoint of that step and raises
  ``RunPreempted`` (``Trainer._stop_if_preempted``). Outside the loop (loading, decoding, scoring,
  which resume on their own) it raises ``RunPreempted`` at once. The record's attempt says
  ``preempted`` with the signal, the checkpoint and who requeues; then ``hand_off`` calls the handler
  that was installed before ours for the requeue signal: under hydra-submitit-launcher that is
  submitit's ``SignalHandler.checkpoint_and_try_requeue`` (submitit/core/job_environment.py), which
  pickles ``launcher.checkpoint()``'s ``DelayedSubmission`` (the same job, same overrides), runs
  ``scontrol requeue`` and exits. The requeued job composes the same run directory and resumes from
  the checkpoint. Not under submitit there is no previous handler: the process exits 128 + signal
  (138 for SIGUSR1) and re-running the command resumes.

How we differ from submitit alone: its handler runs wherever the signal lands, mid-step, and the job
resumes from the last periodic checkpoint (``trainer.checkpoint_every``); here the step in flight
finishes and is saved first. submitit's requeue signal is ``SIGUSR2`` by default (submitit 1.5,
``SUBMITIT_PREEMPT_SIGNAL``; its sbatch script asks SLURM for ``--signal=USR2@signal_delay_s``);
``SIGUSR1`` is SLURM's customary warning signal for plain ``sbatch --signal=USR1@120``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping

log = logging.getLogger(__name__)

# submitit's own variable and default (submitit/core/job_environment.py, JobEnvironment.USR_SIG).
SUBMITIT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"
SUBMITIT_DEFAULT_SIGNAL = "USR2"


class RunInterrupted(BaseException):
    """SIGTERM/SIGINT/SIGHUP during a run: unwinds like KeyboardInterrupt so the record is closed."""

    def __init__(self, signum: int):
        self.signum, self.signal_name = signum, signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signal_name}")


class RunPreempted(RunInterrupted):
    """A preemption signal: raised at a step boundary after the checkpoint (``step``), or at once
    outside training (``step`` None). A RunInterrupted, so every caller that closes an interrupted
    run (spine.job: exit 128 + signal) closes a preempted one the same way."""

    def __init__(self, signum: int, step: int | None = None):
        super().__init__(signum)
        self.step = step
        where = f" (checkpoint at optimizer step {step})" if step is not None else ""
        self.args = (f"preempted by {self.signal_name}{where}",)


def under_slurm(env: Mapping[str, str] | None = None) -> bool:
    return bool((os.environ if env is None else env).get("SLURM_JOB_ID"))


def requeue_signal(env: Mapping[str, str] | None = None) -> signal.Signals:
    """The signal whose earlier handler requeues the job (submitit's), as submitit reads it."""
    name = (os.environ if env is None else env).get(SUBMITIT_SIGNAL_ENV, SUBMITIT_DEFAULT_SIGNAL)
    return getattr(signal, "SIG" + name, signal.SIGUSR2)


def preempt_signals(env: Mapping[str, str] | None = None) -> list[signal.Signals]:
    """SIGUSR1, submitit's requeue signal, and SIGTERM under SLURM (its kill at the time limit or on
    preemption comes KillWait/GraceTime seconds before SIGKILL: enough to finish a step)."""
    sigs = [signal.SIGUSR1, requeue_signal(env)]
    if under_slurm(env):
        sigs.append(signal.SIGTERM)
    return list(dict.fromkeys(sigs))


def interrupt_signals(env: Mapping[str, str] | None = None) -> list[signal.Signals]:
    return [s for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP) if s not in preempt_signals(env)]


class _Flag:
    """Set by the handler while the trainer defers (``at_step_boundaries``); read after each step."""

    defer = False
    pending: int | None = None


FLAG = _Flag()


def pending() -> int | None:
    """The preemption signal received while deferring, or None."""
    return FLAG.pending


def _interrupt(signum, _frame):
    raise RunInterrupted(signum)


def _preempt(signum, _frame):
    if FLAG.defer:
        if FLAG.pending is None:
            log.warning("%s received: checkpointing after the current optimizer step, then stopping",
                        signal.Signals(signum).name)
        FLAG.pending = signum
        return
    raise RunPreempted(signum)


@contextlib.contextmanager
def _installed(handlers: dict[signal.Signals, Callable]) -> Iterator[None]:
    previous = {s: signal.signal(s, h) for s, h in handlers.items()}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """For the duration of a run (main thread only): interruption signals raise RunInterrupted, the
    preemption signals raise RunPreempted, deferred to a step boundary inside the training loop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    FLAG.pending = None
    handlers = {s: _interrupt for s in interrupt_signals()}
    handlers.update({s: _preempt for s in preempt_signals()})
    with _installed(handlers):
        yield


@contextlib.contextmanager
def at_step_boundaries() -> Iterator[None]:
    """The training loop: a preemption signal only sets the flag. Installs the handler where the run
    did not (torchrun ranks > 0, a Trainer used on its own), so every rank sees the flag."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    missing = {s: _preempt for s in preempt_signals() if signal.getsignal(s) is not _preempt}
    FLAG.defer, FLAG.pending = True, None
    try:
        with _installed(missing):
            yield
        late = FLAG.pending  # arrived after the trainer's last check: training is done and saved
    finally:
        FLAG.defer, FLAG.pending = False, None
    if late:
        raise RunPreempted(late)


def requeue_handler() -> Callable | None:
    """The handler installed before ours for the requeue signal (submitit's), if it is a function."""
    handler = signal.getsignal(requeue_signal())
    if callable(handler) and handler not in (_preempt, _interrupt, signal.default_int_handler):
        return handler
    return None


def describe_requeue() -> str:
    """What the record says will requeue the job."""
    handler = requeue_handler()
    if handler is None:
        return "none: not under submitit; re-run the command to resume"
    return f"{getattr(handler, '__qualname__', repr(handler))} (submitit: checkpoint + scontrol requeue)"


def hand_off(exc: BaseException) -> None:
    """After a preempted run is recorded: give the requeue signal to the handler that was there
    before ours (submitit requeues the job and exits). Returns when there is none."""
    handler = requeue_handler() if isinstance(exc, RunPreempted) else None
    if handler is None:
        return
    log.info("handing %s to %s to requeue the job", exc.signal_name, getattr(handler, "__qualname__", handler))
    handler(exc.signum, None)
