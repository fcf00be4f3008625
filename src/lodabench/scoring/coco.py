"""METEOR, ROUGE_L and CIDEr exactly as e2e-metrics' bundled MS-COCO caption evaluation runs them.

measure_scores.py feeds outputs and references to ``COCOEvalCap``, which (1) runs the Stanford
PTBTokenizer 3.4.1 jar with ``-preserveLines -lowerCase`` once over all references and once over
all outputs, (2) deletes the tokens in ``PUNCTUATIONS``, (3) scores with METEOR 1.5 (``-l en
-norm``, the modified jar whose ``EVAL`` line aggregates the statistics of all items into one
corpus score), ROUGE_L and CIDEr(-D). The jars, the punctuation list and the ROUGE/CIDEr code are
taken from the installed ``pycocoevalcap`` package (1.2, the same jars byte for byte), so the
numbers are the official ones; only the process handling is ours, because pycocoevalcap's wrappers

* write their temporary file into site-packages (fails on a read-only install) and call ``java``
  from PATH without checking it exists;
* silently misalign items when the tokenizer emits more or fewer lines than it got (``zip``);
  a vertical tab, form feed, ``\\r`` or U+2028/U+2029 inside a sentence makes PTBTokenizer break
  the line, so we fail loudly instead;
* talk to METEOR one blocking line at a time with stderr piped but never read: if the JVM dies or
  prints an error, ``readline`` hangs forever. Here every read has a timeout and checks for a dead
  process, and all lines go through a writer thread.

Like pycocoevalcap's wrapper (one ``Meteor()`` object for all ``compute_score`` calls), a process
keeps one METEOR JVM and reuses it (:func:`shared_meteor`): its ``SCORE`` and ``EVAL`` lines carry
all the state a score needs, and loading the paraphrase table costs ~5 s and ~7 s of CPU per JVM --
paid once per process, not once per scoring (a sweep in one process, the dev scoring of every
epoch, the test suite). The first scoring starts the JVM before tokenizing so the loading overlaps.
A JVM that failed is dropped and the next scoring starts a fresh one; the JVM exits with its
Python process (its stdin closes).

Java is forced to UTF-8 (``-Dfile.encoding``) so a POSIX locale cannot garble non-ASCII text; the
golden values were made under ``LC_ALL=C.UTF-8``, where that is the default anyway.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from lodabench.errors import ScoringError
from lodabench.scoring.java import java_executable, pycocoevalcap_dir

_UTF8 = ["-Dfile.encoding=UTF-8", "-Dsun.stdout.encoding=UTF-8", "-Dsun.stderr.encoding=UTF-8"]
METEOR_LINE_TIMEOUT_S = 300.0


def punctuation_tokens() -> frozenset[str]:
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

    return frozenset(PUNCTUATIONS)


# --- PTB tokenization ---------------------------------------------------------------------------


def _start_ptb(sentences: list[str], workdir: Path, name: str) -> subprocess.Popen:
    """Start the tokenizer on one file, the way pycocoevalcap's PTBTokenizer does."""
    jar = pycocoevalcap_dir() / "tokenizer" / "stanford-corenlp-3.4.1.jar"
    path = workdir / name
    path.write_bytes("\n".join(s.replace("\n", " ") for s in sentences).encode("utf-8"))
    cmd = [java_executable(), *_UTF8, "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer",
           "-preserveLines", "-lowerCase", str(path)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish_ptb(proc: subprocess.Popen, sentences: list[str], what: str) -> list[str]:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise ScoringError(f"PTBTokenizer failed on the {what} (exit {proc.returncode}): {err.decode('utf-8', 'replace')[-2000:]}")
    lines = out.decode("utf-8").split("\n")
    if len(lines) != len(sentences):
        raise ScoringError(
            f"PTBTokenizer returned {len(lines)} lines for {len(sentences)} {what}: a sentence contains a "
            "character the tokenizer treats as a line break (\\r, vertical tab, form feed, U+2028/U+2029). "
            "Replace those characters by spaces; the official scorer would silently misalign the items."
        )
    punct = punctuation_tokens()
    return [" ".join(w for w in line.rstrip().split(" ") if w not in punct) for line in lines]


def ptb_tokenize(sentences: list[str]) -> list[str]:
    """PTB-tokenized, lowercased sentences with the punctuation tokens removed (one JVM)."""
    with tempfile.TemporaryDirectory(prefix="lodabench-ptb-") as tmp:
        return _finish_ptb(_start_ptb(sentences, Path(tmp), "sentences.txt"), sentences, "sentences")


# --- METEOR 1.5 -------------------------------------------------------------------------------


class Meteor:
    """One METEOR 1.5 JVM in ``-stdio`` mode; ``corpus_score`` is pycocoevalcap's compute_score."""

    def __init__(self) -> None:
        meteor_dir = pycocoevalcap_dir() / "meteor"
        cmd = [java_executable(), *_UTF8, "-jar", "-Xmx2G", "meteor-1.5.jar", "-", "-", "-stdio", "-l", "en", "-norm"]
        self._proc = subprocess.Popen(cmd, cwd=meteor_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        self.owner_pid = os.getpid()  # a forked child (a DataLoader worker) must not share the pipes
        self._lines: queue.Queue = queue.Queue()
        self._stderr: list[bytes] = []
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        self._stderr_pump = threading.Thread(target=self._pump_stderr, daemon=True)
        self._stderr_pump.start()

    def _pump_stdout(self) -> None:
        for line in iter(self._proc.stdout.readline, b""):
            self._lines.put(line)
        self._lines.put(b"")  # EOF marker

    def _pump_stderr(self) -> None:  # drained so a chatty JVM can never block on a full pipe
        for line in iter(self._proc.stderr.readline, b""):
            self._stderr.append(line)

    def _fail(self, why: str) -> ScoringError:
        self.close()
        # stdout's EOF can arrive before the stderr pump has read the dying JVM's last words: once the
        # process is gone its stderr pipe hits EOF too, so wait (briefly) for the pump to finish.
        self._stderr_pump.join(timeout=5)
        tail = b"".join(self._stderr).decode("utf-8", "replace")[-2000:]
        return ScoringError(f"METEOR 1.5 (pycocoevalcap meteor-1.5.jar) {why}. Its stderr: {tail or '(empty)'}")

    def _readline(self) -> str:
        try:
            line = self._lines.get(timeout=METEOR_LINE_TIMEOUT_S)
        except queue.Empty:
            raise self._fail(f"gave no answer within {METEOR_LINE_TIMEOUT_S:.0f} s") from None
        if line == b"":
            raise self._fail(f"exited unexpectedly (exit code {self._proc.poll()})")
        return line.decode("utf-8").strip()

    def _write_all(self, text: str, close: bool) -> threading.Thread:
        def write() -> None:
            try:
                self._proc.stdin.write(text.encode("utf-8"))
                self._proc.stdin.flush()
                if close:
                    self._proc.stdin.close()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the reader notices the dead process and reports it

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        return thread

    def corpus_score(self, hyps: list[str], refs: list[list[str]]) -> float:
        """Aggregated METEOR over all items (tokenized text), as COCOEvalCap reports it."""
        return self.scored(hyps, refs)[1]

    def scored(self, hyps: list[str], refs: list[list[str]], clean: bool = True,
               score: bool = True) -> tuple[list[str], float | None]:
        """(the jar's ``SCORE`` statistics line per item, the ``EVAL`` aggregate of them all, or None
        without ``score``). ``clean``: pycocoevalcap's wrapper's cleaning of each hypothesis (E2E);
        DART sends its lines as its files hold them (lodabench.scoring.dart)."""
        stats = self.segment_stats(hyps, refs, clean)
        if not score:
            return stats, None
        self._write_all("EVAL" + "".join(f" ||| {s}" for s in stats) + "\n", close=False)
        segment_lines = [self._readline() for _ in hyps]
        final = self._readline()
        try:
            segments = [float(x) for x in segment_lines]
            aggregate = float(final)
        except ValueError:
            raise self._fail(f"answered {final!r} where a score was expected") from None
        if not 0.0 <= aggregate <= 1.0 or any(not 0.0 <= s <= 1.0 for s in segments):
            raise self._fail(f"returned the out-of-range score {aggregate!r}")
        return stats, aggregate

    def segment_stats(self, hyps: list[str], refs: list[list[str]], clean: bool = True) -> list[str]:
        """The jar's ``SCORE`` answer (one statistics line) per item, for tokenized text."""
        lines = [" ||| ".join(("SCORE", " ||| ".join(group), _clean(hyp) if clean else hyp)) + "\n"
                 for hyp, group in zip(hyps, refs)]
        self._write_all("".join(lines), close=False)
        return [self._readline() for _ in hyps]

    def usable(self) -> bool:
        """Running, and started by this process."""
        return self._proc.poll() is None and self.owner_pid == os.getpid()

    def __enter__(self) -> "Meteor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def _clean(hyp: str) -> str:
    return hyp.replace("|||", "").replace("  ", " ")  # the wrapper's cleaning, hypothesis only


_shared: Meteor | None = None
_shared_lock = threading.Lock()


@contextlib.contextmanager
def shared_meteor() -> Iterator[Meteor]:
    """This process's METEOR JVM, started on first use and kept for the next scoring (one user at a time).

    An error while it is in use closes and drops it, so no half-read answer reaches the next caller.
    """
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.usable():
            _shared = Meteor()
        meteor = _shared
        try:
            yield meteor
        except BaseException:
            meteor.close()
            _shared = None
            raise


@atexit.register
def _close_shared() -> None:
    if _shared is not None and _shared.owner_pid == os.getpid():
        _shared.close()


# --- the COCOEvalCap run ------------------------------------------------------------------------


def coco_scores(hyps: list[str], refs: list[list[str]]) -> dict[str, float]:
    """METEOR, ROUGE_L, CIDEr of measure_scores.py's ``run_coco_eval`` for aligned hyps/refs."""
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    java_executable()  # fail early and clearly when Java is missing
    with shared_meteor() as meteor:  # a new JVM loads its paraphrase table while the tokenizers run
        with tempfile.TemporaryDirectory(prefix="lodabench-ptb-") as tmp:
            flat_refs = [r for group in refs for r in group]
            ref_proc = _start_ptb(flat_refs, Path(tmp), "refs.txt")
            hyp_proc = _start_ptb(hyps, Path(tmp), "hyps.txt")
            tok_refs_flat = _finish_ptb(ref_proc, flat_refs, "references")
            tok_hyps = _finish_ptb(hyp_proc, hyps, "hypotheses")
        tok_refs, start = [], 0
        for group in refs:
            tok_refs.append(tok_refs_flat[start:start + len(group)])
            start += len(group)
        meteor_score = meteor.corpus_score(tok_hyps, tok_refs)

    ids = [f"inst-{i}" for i in range(len(hyps))]  # measure_scores.py's image ids, in item order
    gts = dict(zip(ids, tok_refs))
    res = {i: [h] for i, h in zip(ids, tok_hyps)}
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    return {"METEOR": float(meteor_score), "ROUGE_L": float(rouge), "CIDEr": float(cider)}
