"""Moses ``multi-bleu.perl`` and ``multi-bleu-detok.perl``, re-stated in Python.

The two DART scorers report BLEU from these Perl scripts (Yale-LILY/dart runs ``multi-bleu.perl``;
WebNLG GenerationEval, as LoRA runs it, runs ``multi-bleu-detok.perl``). Both compute the same
corpus BLEU and differ only in tokenization:

* ``multi-bleu.perl``: none; tokens are the whitespace-separated words of the raw line;
* ``multi-bleu-detok.perl``: the mteval-v13a rules (SGML entities, ASCII punctuation split off,
  ``.``/``,`` kept inside numbers, ``-`` split after a digit), case-sensitive.

Details that decide the printed number and are reproduced here:

* Perl reads the files as **bytes** (no ``use utf8``, no I/O layer), so every regex and every
  whitespace split is on bytes: only ASCII whitespace separates tokens (a no-break space does not)
  and only ASCII punctuation is split off. We therefore work on UTF-8 bytes too.
* Lines are compared without their newline; the golden scores (files with and without a final
  newline) agree with that, reference lengths included.
* Closest reference length: smallest ``|hyp - ref|``, ties to the shorter reference; every
  reference takes part, empty ones included (DART's padding lines).
* Clipped n-gram counts against the per-n maximum count over the references; precisions
  ``correct/total`` (0 when no n-gram of that order); ``log 0`` is replaced by -9999999999; the
  brevity penalty is ``exp(1 - ref_len/hyp_len)`` when ``hyp_len < ref_len``; the score is printed
  with ``%.2f`` on the 0-100 scale (both DART variants print 2 decimals), which we return.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

from lodabench.errors import ScoringError

# mteval-v13a tokenization as multi-bleu-detok.perl writes it (byte regexes).
_DETOK_RULES: list[tuple[re.Pattern[bytes], bytes]] = [
    (re.compile(rb"<skipped>"), b""),
    (re.compile(rb"-\n"), b""),
    (re.compile(rb"\n"), b" "),
    (re.compile(rb"&quot;"), b'"'),
    (re.compile(rb"&amp;"), b"&"),
    (re.compile(rb"&lt;"), b"<"),
    (re.compile(rb"&gt;"), b">"),
]
_DETOK_PUNCT: list[tuple[re.Pattern[bytes], bytes]] = [
    # {|}~  [\]^_`  space!"#$%&  ()*+  :;<=>?@  /
    (re.compile(rb"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), rb" \1 "),
    (re.compile(rb"([^0-9])([\.,])"), rb"\1 \2 "),
    (re.compile(rb"([\.,])([^0-9])"), rb" \1 \2"),
    (re.compile(rb"([0-9])(-)"), rb"\1 \2 "),
    (re.compile(rb"\s+"), b" "),  # bytes \s = ASCII whitespace, as Perl's \s on byte strings
]


def detok_tokenize(line: bytes) -> bytes:
    """``tokenization()`` of multi-bleu-detok.perl (mteval-v13a, case kept)."""
    for pattern, repl in _DETOK_RULES:
        line = pattern.sub(repl, line)
    line = b" " + line + b" "
    for pattern, repl in _DETOK_PUNCT:
        line = pattern.sub(repl, line)
    return line.strip(b" \t\n\r\f\v")


def _no_tokenize(line: bytes) -> bytes:
    return line


@dataclass(frozen=True)
class BleuStats:
    bleu: float  # 0-1, full precision
    precisions: tuple[float, float, float, float]
    brevity_penalty: float
    hyp_len: int
    ref_len: int

    @property
    def printed(self) -> float:
        """The BLEU the Perl scripts print (``%.2f`` of 100*BLEU), as a float."""
        return float(f"{100 * self.bleu:.2f}")


def _ngrams(words: list[bytes], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def _my_log(x: float) -> float:
    return math.log(x) if x else -9999999999.0


def item_counts(words: list[bytes], refs_words: Sequence[list[bytes]]) -> list[int]:
    """One line's counts: clipped matches of orders 1-4, n-gram totals of orders 1-4, the line's
    length and its closest reference length (smallest ``|hyp - ref|``, ties to the shorter one, empty
    references included). The corpus counts of the scripts are the sums of these rows."""
    h_len = len(words)
    closest_diff, closest_len = 9999, 9999
    max_ref: dict[tuple[bytes, ...], int] = {}
    for ref_words in refs_words:
        diff = abs(h_len - len(ref_words))
        if diff < closest_diff:
            closest_diff, closest_len = diff, len(ref_words)
        elif diff == closest_diff and len(ref_words) < closest_len:
            closest_len = len(ref_words)
        for n in range(1, 5):
            for gram, count in _ngrams(ref_words, n).items():
                if max_ref.get(gram, 0) < count:
                    max_ref[gram] = count
    correct, total = [0] * 4, [0] * 4
    for n in range(1, 5):
        for gram, count in _ngrams(words, n).items():
            total[n - 1] += count
            correct[n - 1] += min(count, max_ref.get(gram, 0))
    return [*correct, *total, h_len, closest_len]


def moses_item_counts(
    hyps: Sequence[str],
    ref_columns: Sequence[Sequence[str]],
    tokenizer: Callable[[bytes], bytes],
) -> list[list[int]]:
    """:func:`item_counts` of every line; ``ref_columns[k][i]`` is line i of reference file k."""
    n_items = len(hyps)
    for k, col in enumerate(ref_columns):
        if len(col) != n_items:
            raise ScoringError(f"reference file {k} has {len(col)} lines but there are {n_items} hypotheses.")
    columns = [[r.encode("utf-8") for r in col] for col in ref_columns]
    return [item_counts(tokenizer(hyp.encode("utf-8")).split(), [tokenizer(col[i]).split() for col in columns])
            for i, hyp in enumerate(hyps)]


def bleu_from_counts(counts: Sequence[int]) -> BleuStats:
    """The scripts' corpus BLEU from summed :func:`item_counts` rows."""
    correct, total, hyp_len, ref_len = counts[0:4], counts[4:8], counts[8], counts[9]
    precisions = tuple(correct[n] / total[n] if total[n] else 0.0 for n in range(4))
    if ref_len == 0:
        # The chosen (closest) references are all empty: the script prints "BLEU = 0, ..." and exits 1.
        return BleuStats(0.0, precisions, 0.0, hyp_len, 0)
    if hyp_len == 0:
        # Every output is empty: the script dies (division by zero in the brevity penalty); the limit is 0.
        return BleuStats(0.0, precisions, 0.0, 0, ref_len)
    bp = math.exp(1 - ref_len / hyp_len) if hyp_len < ref_len else 1.0
    log_sum = _my_log(precisions[0]) + _my_log(precisions[1]) + _my_log(precisions[2]) + _my_log(precisions[3])
    bleu = bp * math.exp(log_sum / 4)
    return BleuStats(bleu, precisions, bp, hyp_len, ref_len)


def moses_bleu(
    hyps: Sequence[str],
    ref_columns: Sequence[Sequence[str]],
    tokenizer: Callable[[bytes], bytes],
) -> BleuStats:
    """Corpus BLEU as the Moses scripts compute it.

    ``ref_columns[k][i]`` is line i of reference file k (without its newline).
    """
    rows = moses_item_counts(hyps, ref_columns, tokenizer)
    return bleu_from_counts([sum(col) for col in zip(*rows)] if rows else [0] * 10)


def multi_bleu_detok(hyps: Sequence[str], ref_columns: Sequence[Sequence[str]]) -> BleuStats:
    """``multi-bleu-detok.perl ref0 ref1 ... < hyp`` (case-sensitive)."""
    return moses_bleu(hyps, ref_columns, detok_tokenize)


def multi_bleu(hyps: Sequence[str], ref_columns: Sequence[Sequence[str]]) -> BleuStats:
    """``multi-bleu.perl ref0 ref1 ... < hyp`` (whitespace tokens, case-sensitive)."""
    return moses_bleu(hyps, ref_columns, _no_tokenize)
