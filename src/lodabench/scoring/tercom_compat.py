"""TER exactly as tercom 7.25 (``java -jar tercom.7.25.jar -h HYP -r REF``, default options).

The DART repository scores TER with tercom 7.25 (BBN/UMD, Snover et al. 2006). sacrebleu's
``lib_ter`` is a re-implementation "inspired" by it; it usually finds the same edits, but its
shift search differs (its own ranking of candidate shifts, a 1,000-candidate cap, a band around
the diagonal instead of tercom's cost beam), so on some segments it counts other edits than
tercom, mostly fewer. On the DART repository's BART-large test output (5,097 items) against DART's
own reference files: 28 segments differ, 54,739 edits instead of 54,763, TER 0.4467687 instead of
tercom's 0.4469646; against the test JSON's annotations: 4 segments, 0.6562336 instead of
0.6563297. This module follows tercom's algorithm step by step instead and gives the jar's numbers
on both, segment by segment:

* **lines** (``TERtest.load_segs``): ``<text> (<id>)`` per line; a line containing U+0085, U+2028
  or U+2029 (line terminators for Java's ``.``) does not match and is skipped with a warning;
* **text** (``TERcalc.TER``): Java ``trim()`` (every char <= U+0020 at either end), lowercased (no
  ``-s``; Python's ``str.lower`` and Java's ``toLowerCase`` in a non-Turkish locale agree on the
  DART text, U+0130 included), no normalisation (no ``-N``), punctuation kept (no ``-P``), split on
  Java's ``\\s+`` (ASCII whitespace only: a no-break space joins two words);
* **empty strings** (``TERnullstr``): an empty hypothesis costs the reference length; an empty
  reference costs the hypothesis length and has length 0;
* **edit distance** (``MinEditDist``): Levenshtein over words, all costs 1, computed column by
  column (one column per hypothesis word) with tercom's beam: a cell is not expanded when its cost
  exceeds the cheapest match/substitution step into its column by more than 20 (``-b 20``; never
  in the last column); ties keep the first operation
  written (match/substitution, then insertion, then deletion) and the path is traced back from the
  last cell. The path decides which words count as errors, so it is reproduced exactly;
* **shifts** (``BuildWordMatches``, ``GatherAllPossShifts``, ``CalcBestShift``, ``PerformShift``):
  a shift moves 1..10 hypothesis words that occur as a phrase in the reference, that contain an
  error, to a reference position that contains an error, at most 50 words away (``-d 50``);
  candidates are tried longest first, in tercom's order, each scored by a fresh beam edit
  distance; a candidate replaces the best one so far only if it gains strictly more (a zero gain
  is accepted while no shift has been found yet); the search stops early when no shorter shift
  could gain enough; shifts cost 1 each and are repeated until none is accepted;
* **TER** = (shifts + edit distance) / reference length; with several references, tercom keeps the
  fewest edits and divides by the *average* reference length (``score_all_refs``); the corpus TER
  is the total of edits over the total of those average lengths, summed in input order (the same
  floating-point sums as the Java code).

Speed: every candidate shift is first checked against the exact (bit-parallel) Levenshtein
distance, a lower bound of the beam distance; only shifts that could be accepted are scored with
the beam DP. This changes no result.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple, Sequence

from lodabench.errors import ScoringError
from lodabench.scoring.pyter_compat import levenshtein_to

BEAM_WIDTH = 20  # TERpara: beam_width = 20 (-b)
MAX_SHIFT_SIZE = 10  # TERcalc.MAX_SHIFT_SIZE (not an option)
MAX_SHIFT_DIST = 50  # TERpara: shift_dist = 50 (-d)
SHIFT_COST = 1  # TERcost: all edits cost 1.0, matches 0.0
_UNREACHED = -1
_INF = 999999  # TERcalc.INF

_JAVA_WS = re.compile(r"[ \t\n\x0b\f\r]+")  # Java's \s: ASCII whitespace only
_TRANS_UNREADABLE = re.compile("[\x85\u2028\u2029]")  # line terminators for Java's "." (not \n, \r)


def _java_trim(text: str) -> str:
    """``String.trim()``: strip every char <= U+0020 (control chars too, no Unicode spaces)."""
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def tercom_words(text: str) -> list[str]:
    """tercom's tokens of one segment text (trimmed, lowercased, split on ASCII whitespace)."""
    text = _java_trim(text).lower()
    return _JAVA_WS.split(text) if text else []


class Alignment(NamedTuple):
    words: list[str]  # the (shifted) hypothesis
    edits: int  # beam edit distance to the reference
    path: str  # ' ' match, 'S' substitution, 'I' insertion (hyp word), 'D' deletion (ref word)


# ---------------------------------------------------------------------------------- edit distance
def beam_edit_distance(hyp: Sequence[str], ref: Sequence[str]) -> Alignment:
    """``MinEditDist``: tercom's beam-pruned word Levenshtein distance and its path.

    Computed as the full table (fast) whenever the beam would prune nothing, which is checked
    column by column; otherwise by the literal beam search.
    """
    full = _full_edit_distance(hyp, ref)
    return full if full is not None else _literal_beam_edit_distance(hyp, ref)


def _full_edit_distance(hyp: Sequence[str], ref: Sequence[str]) -> Alignment | None:
    """The unpruned table with tercom's tie order; None if tercom's beam would prune a cell.

    In cell (i, j) (i ref words, j hyp words) tercom writes the diagonal step first, then
    replaces it only by a strictly cheaper insertion, then by a strictly cheaper deletion. Its
    beam skips a cell of column j < len(hyp) that costs more than ``BEAM_WIDTH`` above the
    cheapest diagonal step into column j; as long as no cell does, it computes this very table.
    """
    n_ref, last_j = len(ref), len(hyp)
    columns = [list(range(n_ref + 1))]
    for j, word in enumerate(hyp, 1):
        prev = columns[-1]
        new, best_diag, up = [j], _INF, j
        for ref_word, diag, left in zip(ref, prev, prev[1:]):
            cost = diag if ref_word == word else diag + 1
            if cost < best_diag:
                best_diag = cost
            if left + 1 < cost:
                cost = left + 1
            if up + 1 < cost:
                cost = up + 1
            new.append(cost)
            up = cost
        if j < last_j and max(new) > best_diag + BEAM_WIDTH:
            return None
        columns.append(new)
    return Alignment(list(hyp), columns[-1][n_ref], _trace_costs(columns, hyp, ref))


def _trace_costs(columns: list[list[int]], hyp: Sequence[str], ref: Sequence[str]) -> str:
    """The path of the full table: each cell's operation follows from the costs and the tie order."""
    i, j, path = len(ref), len(hyp), []
    while i > 0 or j > 0:
        cost = columns[j][i]
        if i > 0 and j > 0 and cost == columns[j - 1][i - 1] + (ref[i - 1] != hyp[j - 1]):
            op = " " if ref[i - 1] == hyp[j - 1] else "S"
        elif j > 0 and cost == columns[j - 1][i] + 1:
            op = "I"
        else:
            op = "D"
        path.append(op)
        i, j = i - (op != "I"), j - (op != "D")
    return "".join(reversed(path))


def _literal_beam_edit_distance(hyp: Sequence[str], ref: Sequence[str]) -> Alignment:
    """``MinEditDist`` line by line (tercom's beam, its row bounds and write order)."""
    n_ref, n_hyp = len(ref), len(hyp)
    cost = [[_UNREACHED] * (n_ref + 1) for _ in range(n_hyp + 2)]  # cost[j][i], column-major
    back = [["0"] * (n_ref + 1) for _ in range(n_hyp + 2)]
    cost[0][0] = 0
    current_best, current_first_good, cur_last_good = _INF, 0, 0
    for j in range(n_hyp + 1):
        last_best, current_best = current_best, _INF
        first_good, current_first_good = current_first_good, -1
        last_good, cur_last_good = cur_last_good, -1
        col, col_back, nxt, nxt_back = cost[j], back[j], cost[j + 1], back[j + 1]
        inner = j < n_hyp
        word = hyp[j] if inner else None
        limit = last_best + BEAM_WIDTH if inner else float("inf")
        i = first_good
        while i <= n_ref and i <= last_good:
            score = col[i]
            if score < 0 or score > limit:
                i += 1
                continue
            if current_first_good == -1:
                current_first_good = i
            if i < n_ref and inner:
                step = score if ref[i] == word else score + 1
                if nxt[i + 1] < 0 or step < nxt[i + 1]:  # always unset here: only (i, j), (i+1, j) write it
                    nxt[i + 1] = step
                    nxt_back[i + 1] = " " if ref[i] == word else "S"
                    if step < current_best:
                        current_best = step  # the beam's reference value
            cur_last_good = i + 1
            if inner and (nxt[i] < 0 or nxt[i] > score + 1):
                nxt[i] = score + 1
                nxt_back[i] = "I"
            if i < n_ref and (col[i + 1] < 0 or col[i + 1] > score + 1):
                col[i + 1] = score + 1
                col_back[i + 1] = "D"
                if i >= last_good:
                    last_good = i + 1
            i += 1
    return Alignment(list(hyp), cost[n_hyp][n_ref], _trace_back(back, n_ref, n_hyp))


def _trace_back(back: list[list[str]], i: int, j: int) -> str:
    path = []
    while i > 0 or j > 0:
        op = back[j][i]
        path.append(op)
        i, j = i - (op != "I"), j - (op != "D")
    return "".join(reversed(path))


def _errors(path: str, n_hyp: int, n_ref: int) -> tuple[list[bool], list[bool], list[int]]:
    """``FindAlignErr``: hyp words in error, ref words in error, ref position -> hyp position."""
    herr, rerr, ralign = [False] * n_hyp, [False] * n_ref, [0] * n_ref
    hpos = rpos = -1
    for op in path:
        if op != "D":
            hpos += 1
            herr[hpos] = op != " "
        if op != "I":
            rpos += 1
            rerr[rpos] = op != " "
            ralign[rpos] = hpos
    return herr, rerr, ralign


# ---------------------------------------------------------------------------------- shifts
def _ref_phrases(hyp: Sequence[str], ref: Sequence[str]) -> dict[tuple[str, ...], list[int]]:
    """``BuildWordMatches``: every ref phrase of hyp words (up to 11) -> its start positions, ascending."""
    hyp_words = set(hyp)
    in_hyp = [word in hyp_words for word in ref]
    phrases: dict[tuple[str, ...], list[int]] = {}
    for start in range(len(ref)):
        end = start
        while end < len(ref) and end - start <= MAX_SHIFT_SIZE and in_hyp[end]:
            phrases.setdefault(tuple(ref[start : end + 1]), []).append(start)
            end += 1
    return phrases


def _can_move(start: int, ralign: list[int], positions: list[int]) -> bool:
    """A shift from ``start`` can reach one of the ref positions of its first word (distance limit)."""
    return any(
        start != ralign[m] and ralign[m] - start <= MAX_SHIFT_DIST and start - ralign[m] - 1 <= MAX_SHIFT_DIST
        for m in positions
    )


def _targets(start: int, end: int, moveto: int, ralign: list[int]) -> list[int]:
    """New locations for hyp[start..end] matched at ref position ``moveto`` (-1 = the very front)."""
    targets = []
    for roff in range(-1, end - start + 1):
        if roff == -1 and moveto == 0:
            targets.append(-1)
        elif start != ralign[moveto + roff] and (roff == 0 or ralign[moveto + roff] != ralign[moveto]):
            targets.append(ralign[moveto + roff])
    return targets


def _candidate_shifts(cur, phrases, herr, rerr, ralign) -> list[list[tuple[int, int, int]]]:
    """``GatherAllPossShifts``: (start, end, new location) by phrase length - 1, in tercom's order."""
    by_size: list[list[tuple[int, int, int]]] = [[] for _ in range(MAX_SHIFT_SIZE + 1)]
    for start in range(len(cur)):
        if (cur[start],) not in phrases or not _can_move(start, ralign, phrases[(cur[start],)]):
            continue
        for end in range(start, min(len(cur), start + MAX_SHIFT_SIZE)):
            positions = phrases.get(tuple(cur[start : end + 1]))
            if positions is None:
                break
            if not any(herr[start : end + 1]):
                continue  # a correct phrase is not moved, but a longer one may be
            reachable = False
            for moveto in positions:
                ra = ralign[moveto]
                if ra == start or start <= ra <= end or abs(ra - start) > MAX_SHIFT_DIST:
                    continue
                reachable = True
                if any(rerr[moveto : moveto + end - start + 1]):
                    by_size[end - start].extend((start, end, to) for to in _targets(start, end, moveto, ralign))
            if not reachable:
                break
    return by_size


def perform_shift(words: list[str], start: int, end: int, newloc: int) -> list[str]:
    """``PerformShift``: move words[start..end] to just after position ``newloc`` (-1: the front)."""
    moved = words[start : end + 1]
    if newloc == -1:
        return moved + words[:start] + words[end + 1 :]
    if newloc < start:
        return words[: newloc + 1] + moved + words[newloc + 1 : start] + words[end + 1 :]
    if newloc > end:
        return words[:start] + words[end + 1 : newloc + 1] + moved + words[newloc + 1 :]
    # inside the moved phrase: it goes (newloc - start) words further right
    after = end + (newloc - start)
    out = words[:start] + words[end + 1 : after + 1] + moved + words[after + 1 :]
    return out + words[len(out) :]  # (Java fills a copy of the array: any tail stays as it was)


def _best_shift(cur_align: Alignment, ref: Sequence[str], phrases, lower_bound) -> Alignment | None:
    """``CalcBestShift``: the alignment after the best shift, or None when no shift is accepted."""
    cur = cur_align.words
    herr, rerr, ralign = _errors(cur_align.path, len(cur), len(ref))
    by_size = _candidate_shifts(cur, phrases, herr, rerr, ralign)
    best, best_cost = cur_align, 0

    def cannot_improve(max_fix: int) -> bool:  # tercom's early stop, checked before every candidate
        fixed = cur_align.edits - (best_cost + best.edits)
        return fixed > max_fix or (best_cost != 0 and fixed == max_fix)

    for size in range(len(by_size) - 1, -1, -1):
        max_fix = 2 * (1 + size)  # what a shift of size+1 words can gain at most
        if cannot_improve(max_fix):
            break
        for start, end, newloc in by_size[size]:
            if cannot_improve(max_fix):
                break  # (then the next, smaller size stops too)
            shifted = perform_shift(cur, start, end, newloc)
            budget = best.edits + best_cost - SHIFT_COST  # accepted below budget (at it while none found)
            bound = lower_bound(shifted)
            if bound > budget or (bound == budget and best_cost != 0):
                continue  # the beam distance is >= the exact one: this shift cannot be accepted
            candidate = beam_edit_distance(shifted, ref)
            gain = best.edits + best_cost - (candidate.edits + SHIFT_COST)
            if gain > 0 or (best_cost == 0 and gain == 0):
                best, best_cost = candidate, SHIFT_COST
    return best if best_cost else None


# ---------------------------------------------------------------------------------- TER
def ter_edits(hyp: Sequence[str], ref: Sequence[str]) -> tuple[int, int]:
    """(edits, reference length) of tercom's TER for one hypothesis/reference pair of tokens."""
    if not hyp or not ref:  # TERnullstr
        return (len(ref), len(ref)) if ref else (len(hyp), 0)
    phrases = _ref_phrases(hyp, ref)
    lower_bound = levenshtein_to(ref)
    align = beam_edit_distance(hyp, ref)
    shifts = 0
    while (shifted := _best_shift(align, ref, phrases, lower_bound)) is not None:
        shifts += SHIFT_COST
        align = shifted
    return shifts + align.edits, len(ref)


def segment_ter(hyp: str, refs: Sequence[str]) -> tuple[int, float]:
    """``score_all_refs``: (fewest edits over the references, average reference length)."""
    best, total_len = None, 0.0
    for ref in refs:
        edits, ref_len = _text_pair_edits(hyp, ref)
        if best is None or edits < best:
            best = edits
        total_len += ref_len
    return best, total_len / len(refs)


# The shift search is most of the DART official score's time. Its result is a pure function of the
# two texts, kept for the process: the corpus TER (score_dart) and the per-item rows (sufficient_dart,
# behind compare/attribute) of the same outputs then search each pair once, and a pair that repeats
# (the same output and reference) is searched once. Keyed by the texts (a few hundred bytes an entry).
SEGMENT_MEMO_SIZE = 1 << 16


@lru_cache(maxsize=SEGMENT_MEMO_SIZE)
def _text_pair_edits(hyp: str, ref: str) -> tuple[int, int]:
    """:func:`ter_edits` of the tercom words of two segment texts."""
    return ter_edits(tercom_words(hyp), tercom_words(ref))


def _readable(text: str) -> bool:
    """tercom's trans-format line pattern uses ``.``, which stops at U+0085/U+2028/U+2029."""
    return _TRANS_UNREADABLE.search(text) is None


def segment_rows(hyps: Sequence[str], refs_per_item: Sequence[Sequence[str]]) -> list[tuple[float, float]]:
    """(edits, average reference length) per item, as TERtest scores it; (0, 0) for a hypothesis
    tercom cannot read (it prints "Warning, Invalid line" and leaves the segment out), and a
    reference it cannot read is not one of the item's references."""
    rows = []
    for i, (hyp, refs) in enumerate(zip(hyps, refs_per_item)):
        if not _readable(hyp):
            rows.append((0.0, 0.0))
            continue
        readable = [ref for ref in refs if _readable(ref)]
        if not readable:
            raise ScoringError(
                f"TER: every reference of item {i + 1} contains U+0085, U+2028 or U+2029, which tercom "
                "cannot read (it stops with 'No reference for segment'); replace those characters."
            )
        rows.append(segment_ter(hyp, readable))
    return rows


def corpus_ter(hyps: Sequence[str], refs_per_item: Sequence[Sequence[str]]) -> tuple[float, float]:
    """(total edits, total average reference length), summed in item order like TERtest (a left-out
    segment adds 0.0: the same floating-point sums)."""
    total_edits = total_words = 0.0
    for edits, words in segment_rows(hyps, refs_per_item):
        total_edits += edits
        total_words += words
    return total_edits, total_words
