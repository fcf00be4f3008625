"""DART v1.1.1: official JSON -> (linearised tripleset, annotation) pairs.

Files (``<data_root>/dart/``): ``dart-v1.1.1-full-{train,dev,test}.json``
(https://github.com/Yale-LILY/dart, ``data/v1.1.1/``). Schema: a JSON list of entries, each
``{"tripleset": [[subject, predicate, object], ...], "annotations": [{"source": str,
"text": str}, ...]}`` (plus an optional ``subtree_was_extended``, ignored).

Linearisation, as LoRA's ``examples/NLG/src/format_converting_dart.py`` does it::

    for i, (subj, rela, obj) in enumerate(tripleset):
        rela = rela.lower(); sep ' | ' before every triple but the first; '{subj} : {rela} : {obj}'

i.e. ``"Mars Hill College : joined : 1973 | Mars Hill College : location : Mars Hill, North
Carolina"``: subject and object verbatim, the predicate lower-cased (``[TITLE]`` ->
``[title]``), no other change. LoRA writes one (context, completion) line per annotation, so
training pairs are every (tripleset, annotation) in file order. Annotation texts are used as
they are (only leading/trailing whitespace stripped, as ``gpt2_decode.py`` strips references),
so DART has one text, ``data.text: official`` (E2E's ``lora`` text does not apply).

Eval items: ``gpt2_decode.py`` keys references by the context string, so entries whose
linearised triplesets are identical are merged into one item, in order of first appearance,
with all their references (dev: 2,768 entries -> 2,721 items). Every reference is kept; the DART
scorer pads/truncates to its fixed number of reference files. The one empty annotation of the
staged test file (entry 115, beside a non-empty one) is kept as an empty reference, as LoRA would
have (logged when the split is loaded). An eval item with NO non-empty reference cannot be scored
(``scoring.dart`` rejects it), so loading the eval split raises ``DataError`` naming the file and
the entries, when the task is built, before training. A UTF-8 byte-order mark is accepted.

The sequence built from a pair is the same as for E2E (see ``lodabench.tasks.e2e`` and
``collate.encode_pair``).

Two test files, the same 12,552 annotations
-------------------------------------------
The staged test JSON (a data root's ``dart/dart-v1.1.1-full-test.json``) was converted from the
official test XML (shared/data/MANIFEST.md): 5,097 triplesets / 12,552 annotations, the 2021-04
release (4,159 distinct linearised triplesets, so 4,159 eval items). microsoft/LoRA used the 2020
test JSON, which groups the same annotations into 6,959 triplesets; the hub's DART
(``Yale-LILY/dart``) groups them that way too (issue #26). The data-root path reads whichever file
the root holds and is unchanged; the hub path (no data root, ``lodabench.tasks.hub``) yields one
entry per hub row, i.e. the 2020 grouping. Training pairs are one per annotation and eval items
merge identical linearised triplesets either way; how many eval items the 2020 grouping gives is
not measured here (no copy of it is staged).

Hub rows: ``data.hub_id`` at ``data.hub_revision``, by default the parquet export of
``Yale-LILY/dart`` (``refs/convert/parquet``, ``default/{train,validation,test}/0000.parquet``;
the repo itself holds a loading script), columns ``tripleset`` (a list of [s, p, o]),
``subtree_was_extended`` (ignored) and ``annotations`` ({"source": [...], "text": [...]}, how
``datasets`` stores a list of structs), checked as a JSON file's entries are.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lodabench.tasks.hub import PARQUET_EXPORT, DataSource, as_source
from lodabench.tasks.registry import TaskSpec
from lodabench.tasks.specs import DATA_ROOT_HINT, DataConfig, GenerationTask, Metric, Pair, TaskMetrics
from lodabench.errors import ConfigError, DataError
from lodabench.config.typed import hp

log = logging.getLogger(__name__)

NAME = "dart"
FILES = {
    "train": "dart-v1.1.1-full-train.json",
    "dev": "dart-v1.1.1-full-dev.json",
    "test": "dart-v1.1.1-full-test.json",
}
HUB_ID = "Yale-LILY/dart"  # formerly "dart"; note its test split is the 2020 release
HUB_REVISION = PARQUET_EXPORT  # the repo holds a loading script; its parquet export holds the rows
HUB_CONFIG = "default"
HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
HUB_COLUMNS = ("tripleset", "annotations")
HOW_TO_GET = (
    "Download the DART v1.1.1 JSON files (dart-v1.1.1-full-{train,dev,test}.json) from "
    "https://github.com/Yale-LILY/dart/tree/master/data/v1.1.1 into <data_root>/dart/. "
    + DATA_ROOT_HINT + "."
)


def linearise(tripleset: list[list[str]]) -> str:
    """LoRA's linearisation: ``subj : predicate.lower() : obj`` joined by `` | ``."""
    return " | ".join(f"{s} : {p.lower()} : {o}" for s, p, o in tripleset)


def validate_entries(data: Any, where: str) -> list[dict]:
    """Check the v1.1.1 schema; DataError names ``where`` (the file), the entry index and key."""
    if not isinstance(data, list):
        raise DataError(f"{where}: top level is {type(data).__name__}, expected a list of entries "
                        "(DART v1.1.1 JSON)")
    for i, entry in enumerate(data):
        at = f"{where}: entry {i}"
        if not isinstance(entry, dict):
            raise DataError(f"{at}: is {type(entry).__name__}, expected an object")
        for key in ("tripleset", "annotations"):
            if key not in entry:
                raise DataError(f"{at}: missing key {key!r} (DART v1.1.1 entries have "
                                "'tripleset' and 'annotations')")
        triples = entry["tripleset"]
        if not isinstance(triples, list) or not triples:
            raise DataError(f"{at}: 'tripleset' must be a non-empty list of [subject, predicate, "
                            f"object] lists, got {triples!r:.80}")
        for j, triple in enumerate(triples):
            if (not isinstance(triple, list) or len(triple) != 3
                    or not all(isinstance(x, str) for x in triple)):
                raise DataError(f"{at}: tripleset[{j}] = {triple!r:.80} is not a list of 3 strings "
                                "[subject, predicate, object]")
        anns = entry["annotations"]
        if not isinstance(anns, list) or not anns:
            raise DataError(f"{at}: 'annotations' must be a non-empty list of "
                            f"{{'source', 'text'}} objects, got {anns!r:.80}")
        for j, ann in enumerate(anns):
            if not isinstance(ann, dict):
                raise DataError(f"{at}: annotations[{j}] is {type(ann).__name__}, expected an object")
            for key in ("source", "text"):
                if not isinstance(ann.get(key), str):
                    raise DataError(f"{at}: annotations[{j}][{key!r}] is missing or not a string")
    return data


def read_dart_json(path: Path) -> list[dict]:
    """The validated entries of a DART v1.1.1 JSON file."""
    if not path.is_file():
        raise DataError(f"DART file not found: {path}. {HOW_TO_GET}")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid UTF-8 (byte {err.start}): {err.reason}") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: line {err.lineno} column {err.colno}: invalid JSON "
                        f"({err.msg})") from None
    return validate_entries(data, str(path))


def to_pairs(entries: list[dict]) -> list[Pair]:
    """Every (linearised tripleset, annotation text) in file order."""
    pairs = []
    for entry in entries:
        source = linearise(entry["tripleset"])
        pairs.extend(Pair(source, ann["text"].strip()) for ann in entry["annotations"])
    return pairs


def entry_line(path: Path, index: int) -> int | None:
    """The line on which entry ``index`` of a DART JSON list starts (for error messages)."""
    text = path.read_text(encoding="utf-8-sig")
    decoder, pos = json.JSONDecoder(), text.find("[") + 1
    for i in range(index + 1):
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if i == index:
            return text.count("\n", 0, pos) + 1
        try:
            pos = decoder.raw_decode(text, pos)[1]
        except json.JSONDecodeError:
            return None
    return None


def check_eval_references(entries: list[dict], where: str, path: Path | None = None) -> None:
    """Every eval item (entries merged by linearised tripleset) needs a non-empty reference;
    DataError names ``where`` (the file), the entries and the line of the first. Empty
    annotations beside non-empty ones are kept (logged)."""
    by_source: dict[str, list[int]] = {}
    for i, entry in enumerate(entries):
        by_source.setdefault(linearise(entry["tripleset"]), []).append(i)
    for indices in by_source.values():
        texts = [(i, j, ann["text"]) for i in indices for j, ann in enumerate(entries[i]["annotations"])]
        if not any(text.strip() for _, _, text in texts):
            line = entry_line(path, indices[0]) if path is not None else None
            at = f"line {line}: " if line else ""
            raise DataError(
                f"{where}: {at}entry {', '.join(map(str, indices))} (0-based): every annotation text is "
                "empty, so this eval item has no reference to score against; add a reference "
                "or remove the entry"
            )
        for i, j, text in texts:
            if not text.strip():
                log.info("%s: entry %d annotations[%d] is empty: kept as an empty reference, as LoRA "
                         "keeps it (the item has non-empty ones)", where, i, j)


def load_split(split: str, data_root: Path | DataSource | None, eval_split: str | None = None) -> list[Pair]:
    """Pairs of one split; the eval split's references are checked first (``check_eval_references``).
    ``data_root`` None: the hub (``lodabench.tasks.hub``); a DataSource (the task's) records the files."""
    source = as_source(data_root, HUB_ID, HUB_REVISION, HUB_CONFIG)
    if source.is_hub:
        path, entries, where = None, hub_entries(source, split), source.where(HUB_SPLITS[split])
    else:
        path = source.root_file(f"dart/{FILES[split]}")
        entries, where = read_dart_json(path), str(path)
    if split == eval_split:
        check_eval_references(entries, where, path)
    return to_pairs(entries)


def hub_entries(source: DataSource, split: str) -> list[dict]:
    """One entry per hub row, in the JSON files' shape, validated as they are."""
    rows = source.hub_rows(HUB_SPLITS[split], HUB_COLUMNS)
    entries = [{"tripleset": _triples(row["tripleset"]), "annotations": _annotations(row["annotations"])}
               for row in rows]
    return validate_entries(entries, source.where(HUB_SPLITS[split]))


def _triples(value: Any) -> Any:
    return [list(t) if isinstance(t, (list, tuple)) else t for t in value] if isinstance(value, list) else value


def _annotations(anns: Any) -> Any:
    """``datasets`` stores a list of structs as a struct of lists: {"source": [...], "text": [...]}."""
    if isinstance(anns, dict) and isinstance(anns.get("source"), list) and isinstance(anns.get("text"), list):
        return [{"source": s, "text": t} for s, t in zip(anns["source"], anns["text"])]
    return anns


@dataclass
class DartDataConfig(DataConfig):
    """``data=dart`` (``DESCRIPTION``): the ``data.*`` keys of ``data=dart``, with their defaults and help."""

    name: str = hp(NAME, "the task: data=dart")
    source_format: str = hp("lora", "Triples linearised as LoRA's format_converting_dart.py (\"subj : "
                            "predicate.lower() : obj | ...\"), the only linearisation")
    text: str = hp("official", "DART has one text, the official JSON annotation text LoRA used (data.text=lora "
                   "is E2E's tokenized text)")
    eval_split: str = hp("test", "train | dev | test; eval items = unique linearised triplesets")
    scorer: str = hp(NAME, "the scorer of the decoded outputs (lodabench.scoring.registry): dart = "
                     "lodabench/scoring/dart.py, the modes of score_modes")
    score_modes: list[str] = hp(["lora", "official"], "DART scorers run (lodabench/scoring/dart.py): lora = WebNLG "
                                "GenerationEval eval.py as microsoft/LoRA runs it (-nr 6 -m bleu,meteor,ter), the "
                                "headline numbers; official = Yale-LILY/dart evaluation/run_eval_on_dart.sh, its "
                                "keys prefixed official_")
    hub_id: str = hp(HUB_ID, "Without a data root: the hub dataset read (Yale-LILY/dart, DART of "
                     "https://github.com/Yale-LILY/dart; test = the 2020 JSON LoRA used, 6,959 triplesets), or a local "
                     "folder laid out like its parquet export (default/{train,validation,test}/0000.parquet; "
                     "`hf download Yale-LILY/dart --repo-type dataset --revision refs/convert/parquet --local-dir DIR`) "
                     "(lodabench/tasks/hub.py)")
    hub_revision: str = hp(HUB_REVISION, "Revision of data.hub_id: refs/convert/parquet, the hub's parquet export "
                           "(the repo itself holds only a loading script, which datasets>=4 refuses); a branch, so the "
                           "commit it resolves to is recorded in record.json inputs.data; a commit sha pins it")

    def validate(self) -> None:
        super().validate()
        if self.source_format != "lora":
            raise ConfigError(f"data.source_format for dart must be 'lora' (the only linearisation), "
                              f"got {self.source_format!r}")
        if self.text != "official":
            raise ConfigError(f"data.text for dart must be 'official' (got {self.text!r}): LoRA's DART text is "
                              "the official JSON annotation text (data.text=lora is E2E's tokenized text)")
        if self.eval_split not in FILES:
            raise ConfigError(f"data.eval_split={self.eval_split!r} for dart; valid: {', '.join(FILES)}")


def build_task(conf: DartDataConfig, data_root: Path | None) -> GenerationTask:
    """The DART task of a validated config; the eval split's references are checked when it is loaded."""
    source = DataSource(data_root, conf.hub_id, conf.hub_revision, HUB_CONFIG, HUB_ID)
    return GenerationTask(
        name=NAME,
        splits=tuple(FILES),
        loader=lambda split: load_split(split, source, conf.eval_split),
        slicing=conf.slicing(),
        eval_split=conf.eval_split,
        inputs=source.inputs,
    )


DESCRIPTION = ("DART v1.1.1: lodabench/tasks/dart.py. Triples linearised as LoRA's format_converting_dart.py "
               "(\"subj : predicate.lower() : obj | ...\"); eval items = unique linearised triplesets. Local "
               "files: <data_root>/dart/dart-v1.1.1-full-{train,dev,test}.json; data_root null -> data.hub_id "
               "(Yale-LILY/dart, its parquet export).")
# What LoDA Table 2 / LoRA Table 13 print (the dart scorer's lora-mode keys, records' scales): BLEU 0-100
# with one decimal, METEOR and TER 0-1 with two; TER is an error rate (lower is better).
METRICS = TaskMetrics((Metric("BLEU"), Metric("METEOR", "MET", decimals=2),
                       Metric("TER", decimals=2, lower_is_better=True)), label="DART")

TASKS = [TaskSpec(NAME, DartDataConfig(), build_task, "generation", DESCRIPTION, METRICS)]
