"""E2E references as LoRA's files have them: two word-tokenization rules, rebuilt from the data.

LoRA (microsoft/LoRA ``examples/NLG``) trains, decodes and scores E2E on
``data/e2e/{train,valid,test}.txt``; its README's E2E commands (``create_datasets.sh`` ->
``format_converting_e2e.py`` -> ``gpt2_decode.py`` -> ``measure_scores.py``) never touch the
official CSVs. Those files are Li & Liang's prefix-tuning data (``XiangLi1999/PrefixTuning``
``data/e2e_data/src1_{train,valid,test}.txt``, the same git blobs), one ``MR||reference `` line
per CSV row, in CSV order, each reference word-tokenized and followed by one space.

No code that made them is published; the two rules below were inferred from the files and are
checked against them (``scripts/e2e_lora_text_agreement.py``):

* ``train`` and ``dev`` (``moses_style``): the references of Wiseman et al. (2018)'s
  ``harvardnlp/neural-template-gen`` ``data/e2e_aligned.tar.gz``: its ``valid.txt`` holds the
  4,672 references of LoRA's ``valid.txt`` verbatim, and its ``train.txt`` references with
  ``e2e.format_mr_lora`` sources give a file with the git blob id of LoRA's ``train.txt``. They
  behave as the Moses tokenizer (``tokenizer.perl -l en -a``, run on the stripped sentence with no
  padding spaces, the aggressive ``@-@`` written as a plain ``-``) applied to each sentence of a
  punkt-style sentence split: ``isn 't``, ``family - friendly``, ``£ 20- £ 25``, ``'Strada`` at a
  sentence start kept whole, ``5. it`` kept (a number before a lower-case word ends no sentence)
  but ``£20. it`` split.
* ``test`` (``spacy_style``): behaves as spaCy 2's English tokenizer (prefix / suffix / infix
  rules and its exception table): ``is n't``, ``that s`` (the ``thats`` exception), ``5-star``
  kept (hyphens split between letters only), ``£ 20-£25`` (a currency prefix splits, an infix one
  does not).

Measured (official CSVs of shared/data -> these rules + ``e2e.format_mr_lora``): every line of
``valid.txt`` and ``test.txt`` identical, and the generated ``train.txt`` has the git blob id of
LoRA's (``LORA_BLOB_IDS``), i.e. is byte-identical to a file we do not have. README.md (E2E text)
has the numbers the script prints.

We write these rules ourselves (no code from Moses, nltk's punkt or spaCy; the project does not
depend on them); they cover what E2E contains, not every input those tokenizers handle.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

#: LoRA's file per split (examples/NLG/data/e2e/).
LORA_FILES = {"train": "train.txt", "dev": "valid.txt", "test": "test.txt"}

#: git blob ids of microsoft/LoRA@c4593f060e6a368d7bb5af5273b8e42810cdef90
#: examples/NLG/data/e2e/{train,valid,test}.txt (shared/data/MANIFEST.md section 1b).
LORA_BLOB_IDS = {
    "train": "2f92a2790c00a48574dcc89465a326f33d7e7cc6",
    "dev": "94f87112e11198710d65a1d5dc7d0b8d9155a07d",
    "test": "084da9f4409d98058bcb020614afa83824440484",
}


def git_blob_id(data: bytes) -> str:
    """``git hash-object`` of ``data``: identifies a file's exact bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# ---------------------------------------------------------------------------------------------
# train / dev: Moses-style words inside punkt-style sentences

_ALPHA = r"[^\W\d_]"            # a letter (any script)
_NON_ALPHA = r"[\W\d_]"         # anything else, whitespace included
#: Words whose final period never splits off (Moses' English non-breaking prefixes that occur
#: in E2E: single capitals as in "20-25 L.", and "St." as in "St. John's College").
_NONBREAKING = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ") | {"St"}
_NUMBER = re.compile(r"-?[.,]?\d[\d,.\-]*\.?")   # punkt's number token
_CLOSERS = "\"')]}"                             # punkt re-attaches these to the sentence before


def _ends_sentence(word: str, next_word: str) -> bool:
    """punkt's decision for one whitespace word: a final period ends a sentence, except after a
    number or a single letter when the next word starts lower-case (its orthographic heuristic)."""
    core = word.rstrip(_CLOSERS).lstrip("(\"`{[:;&#*@)}]-,")
    if not core.endswith(".") or core.endswith(".."):
        return False
    initial_or_number = _NUMBER.fullmatch(core) or re.fullmatch(r"[^\W\d]\.", core)
    return not (initial_or_number and next_word[:1].islower())


def _sentences(text: str) -> list[str]:
    words = text.split()
    sentences: list[list[str]] = [[]]
    for i, word in enumerate(words):
        sentences[-1].append(word)
        if _ends_sentence(word, words[i + 1] if i + 1 < len(words) else ""):
            sentences.append([])
    return [" ".join(s) for s in sentences if s]


def _final_period(words: list[str], i: int) -> list[str]:
    """Moses: split a word's final period unless it is a non-breaking prefix, an abbreviation
    with inner periods, or the next word of the sentence starts lower-case."""
    pre, nxt = words[i][:-1], words[i + 1] if i + 1 < len(words) else ""
    if pre in _NONBREAKING or ("." in pre and re.search(_ALPHA, pre)) or nxt[:1].islower():
        return [words[i]]
    return [pre, "."]


_MOSES_STEPS = [(re.compile(pattern), replacement) for pattern, replacement in [
    (r"([^\w\s.'`,\-]|_)", r" \1 "),                  # other symbols: £ : ! ? ( ) ...
    (r"(?<=[^\W_])-(?=[^\W_])", " - "),                # -a: hyphens between alphanumerics
    (r"\.{2,}", lambda m: f" \0{len(m.group())}\0 "),     # runs of periods stay one word: hidden
    (r"(\D),", r"\1 , "),                               # commas, except 5,300 ...
    (r",(\D)", r" , \1"),                               # ... and a final "5," (no padding)
    (rf"({_NON_ALPHA})'({_NON_ALPHA})", r"\1 ' \2"),     # English apostrophes, in Moses' order
    (rf"([\W_])'({_ALPHA})", r"\1 ' \2"),
    (rf"({_ALPHA})'({_NON_ALPHA})", r"\1 ' \2"),
    (rf"({_ALPHA})'({_ALPHA})", r"\1 '\2"),              # isn't -> isn 't
    (r"(\d)'(s)", r"\1 '\2"),                           # 1990's -> 1990 's
]]
_PERIOD_FINAL = re.compile(r"\S+\.")
_DOTS = re.compile("\0(\\d+)\0")


def _moses_sentence(text: str) -> str:
    for pattern, replacement in _MOSES_STEPS:
        text = pattern.sub(replacement, text)
    words = text.split()
    words = [w for i in range(len(words))
             for w in (_final_period(words, i) if _PERIOD_FINAL.fullmatch(words[i]) else [words[i]])]
    return _DOTS.sub(lambda m: "." * int(m.group(1)), " ".join(words))


def moses_style(text: str) -> str:
    """The word tokenization of LoRA's ``train.txt`` and ``valid.txt`` references."""
    return " ".join(_moses_sentence(s) for s in _sentences(text))


# ---------------------------------------------------------------------------------------------
# test: spaCy-2-style English tokenizer

_QUOTES = "'\"”“`‘´’‚,„»«"
_PUNCT = "…,:;!?¿¡()\\[\\]{}<>_#*&"
_CURRENCY = r"\$|£|€|¥"
_LOWER, _UPPER = "a-zß-öø-ÿ", "A-ZÀ-ÖØ-Þ"
_LETTER = _LOWER + _UPPER
_PREFIX = re.compile(rf"[§%=—–]|\+(?![0-9])|[{_PUNCT}]|\.\.+|[{_QUOTES}]|{_CURRENCY}")
_SUFFIX = re.compile(
    rf"(?:[{_PUNCT}]|\.\.+|[{_QUOTES}]|'s|'S|’s|’S|—|–|(?<=[0-9])\+|(?<=[0-9])(?:{_CURRENCY})"
    rf"|(?<=[0-9{_LOWER}%²\-+{_PUNCT}{_QUOTES}])\.|(?<=[{_UPPER}][{_UPPER}])\.)$"
)
_INFIX = re.compile(
    rf"\.\.+|…|(?<=[0-9])[+\-*^](?=[0-9-])|(?<=[{_LOWER}{_QUOTES}])\.(?=[{_UPPER}{_QUOTES}])"
    rf"|(?<=[{_LETTER}]),(?=[{_LETTER}])|(?<=[{_LETTER}])(?:---|--|-|–|—|~)(?=[{_LETTER}])"
    rf"|(?<=[{_LETTER}0-9])[:<>=/](?=[{_LETTER}])"
)


def _exceptions() -> dict[str, list[str]]:
    """spaCy's English exception pattern: negations and clitics, with and without apostrophe."""
    table: dict[str, list[str]] = {"St.": ["St."]}
    negated = ["is", "are", "was", "were", "do", "does", "did", "has", "have", "had", "could",
               "would", "should", "might", "must", "need", "ca", "wo", "ai", "sha"]
    clitics = {"i": ["'m", "'ll", "'d", "'ve"], "you": ["'re", "'ll", "'d", "'ve"],
               "he": ["'s", "'ll", "'d"], "she": ["'s", "'ll", "'d"], "it": ["'s", "'ll", "'d"],
               "we": ["'re", "'ll", "'d", "'ve"], "they": ["'re", "'ll", "'d", "'ve"]}
    for word in ["who", "what", "when", "where", "why", "how", "there", "that"]:
        clitics[word] = ["'s", "'ll", "'re", "'ve", "'d"]
    for word in negated:
        clitics[word] = ["n't"]
    # real words that the apostrophe-less forms would split ("its", "well", "hell", ...)
    keep_whole = {"ill", "its", "hell", "shell", "shed", "were", "well", "wed", "id", "hed", "whod",
                  "whore"}
    for word, suffixes in clitics.items():
        for base in {word, word.capitalize(), word.upper() if word == "i" else word}:
            for clitic in suffixes:
                table[base + clitic] = [base, clitic]
                if (base + clitic.replace("'", "")).lower() not in keep_whole:
                    table[base + clitic.replace("'", "")] = [base, clitic.replace("'", "")]
    return table


_EXCEPTIONS = _exceptions()


def _strip_affixes(chunk: str) -> tuple[list[str], str, list[str]]:
    """spaCy's loop: peel one prefix and one suffix per round until neither matches or the rest
    is an exception. Returns (prefixes, rest, suffixes in text order)."""
    prefixes: list[str] = []
    suffixes: list[str] = []
    last = -1
    while chunk and chunk not in _EXCEPTIONS and len(chunk) != last:
        last = len(chunk)
        pre = m.group() if (m := _PREFIX.match(chunk)) else ""
        if pre and chunk[len(pre):] in _EXCEPTIONS:
            return prefixes + [pre], chunk[len(pre):], suffixes
        suf = m.group() if (m := _SUFFIX.search(chunk)) else ""
        if suf and chunk[:-len(suf)] in _EXCEPTIONS:
            return prefixes, chunk[:-len(suf)], [suf] + suffixes
        if pre and suf and len(pre) + len(suf) <= len(chunk):
            prefixes.append(pre); suffixes.insert(0, suf); chunk = chunk[len(pre):-len(suf)]
        elif pre:
            prefixes.append(pre); chunk = chunk[len(pre):]
        elif suf:
            suffixes.insert(0, suf); chunk = chunk[:-len(suf)]
    return prefixes, chunk, suffixes


def _split_infixes(chunk: str) -> list[str]:
    if chunk in _EXCEPTIONS:
        return list(_EXCEPTIONS[chunk])
    pieces, start = [], 0
    for match in _INFIX.finditer(chunk):
        if match.start() == 0:   # an infix cannot start a word
            continue
        pieces += [chunk[start:match.start()], match.group()]
        start = match.end()
    return [p for p in pieces + [chunk[start:]] if p]


def _spacy_chunk(chunk: str) -> list[str]:
    prefixes, rest, suffixes = _strip_affixes(chunk)
    return prefixes + (_split_infixes(rest) if rest else []) + suffixes


def spacy_style(text: str) -> str:
    """The word tokenization of LoRA's ``test.txt`` references."""
    return " ".join(token for chunk in text.split() for token in _spacy_chunk(chunk))


#: Which rule made each split of LoRA's files.
RULES: dict[str, Callable[[str], str]] = {"train": moses_style, "dev": moses_style, "test": spacy_style}


def lora_reference(reference: str, split: str) -> str:
    """An official CSV reference as LoRA's ``split`` file has it (without the line's final space)."""
    return RULES[split](reference)
