"""DART task: LoRA's linearisation, merged eval items, counts (MANIFEST section 2), schema errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lodabench.tasks import EvalItem, Pair, get_task
from lodabench.tasks.dart import linearise, read_dart_json
from lodabench.errors import DataError


@pytest.fixture(scope="module")
def dart(data_root):
    return get_task({"name": "dart"}, data_root)


def _raw(data_root: Path, split: str) -> list[dict]:
    return json.loads((data_root / "dart" / f"dart-v1.1.1-full-{split}.json").read_text("utf-8"))


# --- real data ------------------------------------------------------------------------------

def test_dev_counts_and_merging(dart, data_root):
    raw = _raw(data_root, "dev")
    assert (len(raw), sum(len(e["annotations"]) for e in raw)) == (2768, 6980)  # MANIFEST
    pairs = dart.train_pairs("dev")
    items = dart.eval_items("dev")
    assert len(pairs) == 6980
    assert len(items) == 2721
    assert sum(len(i.references) for i in items) == 6980  # every reference kept
    # independent count: entries keyed by their triples with lower-cased predicates
    keys = {tuple((s, p.lower(), o) for s, p, o in e["tripleset"]) for e in raw}
    assert len(keys) == 2721


def test_test_counts(dart, data_root):
    raw = _raw(data_root, "test")
    assert (len(raw), sum(len(e["annotations"]) for e in raw)) == (5097, 12552)  # MANIFEST
    assert len(dart.train_pairs("test")) == 12552
    items = dart.eval_items("test")
    assert sum(len(i.references) for i in items) == 12552
    keys = {tuple((s, p.lower(), o) for s, p, o in e["tripleset"]) for e in raw}
    assert len(items) == len(keys)


def test_first_dev_item_is_lora_linearisation(dart):
    assert dart.eval_items("dev")[0] == EvalItem(
        "Mars Hill College : joined : 1973 | Mars Hill College : location : Mars Hill, North Carolina",
        ["A school from Mars Hill, North Carolina, joined in 1973."],
    )


def test_merged_item_collects_references_of_all_its_entries(dart, data_root):
    raw = _raw(data_root, "dev")
    by_source: dict[str, list[int]] = {}
    for index, entry in enumerate(raw):
        by_source.setdefault(linearise(entry["tripleset"]), []).append(index)
    source, indices = next((s, ix) for s, ix in by_source.items() if len(ix) > 1)
    item = next(i for i in dart.eval_items("dev") if i.source == source)
    expected = [a["text"].strip() for ix in indices for a in raw[ix]["annotations"]]
    assert item.references == expected


def test_linearise_lowercases_only_the_predicate():
    triples = [["[TABLECONTEXT]", "[TITLE]", "Jeff Daniels"], ["Hawaii Five-O", "NOTES", "Ep: X"]]
    assert linearise(triples) == "[TABLECONTEXT] : [title] : Jeff Daniels | Hawaii Five-O : notes : Ep: X"


# --- schema errors --------------------------------------------------------------------------

def _write(tmp_path: Path, data, split: str = "dev") -> Path:
    path = tmp_path / "dart" / f"dart-v1.1.1-full-{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2), encoding="utf-8")
    return path


def _entry(text="A is b.", triples=(("A", "REL", "b"),)):
    return {"tripleset": [list(t) for t in triples], "annotations": [{"source": "x", "text": text}]}


@pytest.mark.parametrize(
    "data, pattern",
    [
        ({"tripleset": []}, r"top level is dict, expected a list"),
        ([_entry(), {"tripleset": [["A", "R", "b"]]}], r"entry 1: missing key 'annotations'"),
        ([_entry(), _entry(), {"tripleset": [["A", "R"]], "annotations": []}],
         r"entry 2: tripleset\[0\] .* not a list of 3 strings"),
        ([{"tripleset": "A | R | b", "annotations": [{"source": "x", "text": "t"}]}],
         r"entry 0: 'tripleset' must be a non-empty list"),
        ([_entry(), {"tripleset": [["A", "R", "b"]], "annotations": [{"source": "x"}]}],
         r"entry 1: annotations\[0\]\['text'\] is missing"),
        ([{"tripleset": [["A", "R", "b"]], "annotations": []}], r"entry 0: 'annotations' must be"),
    ],
)
def test_schema_errors_name_file_entry_and_key(tmp_path, data, pattern):
    path = _write(tmp_path, data)
    with pytest.raises(DataError, match=pattern) as err:
        read_dart_json(path)
    assert str(path) in str(err.value)


def test_invalid_json_names_line(tmp_path):
    path = _write(tmp_path, '[\n  {"tripleset": [["A", "R", "b"]],\n   "annotations": [}\n]')
    with pytest.raises(DataError, match=rf"{path}: line 3 column \d+: invalid JSON"):
        read_dart_json(path)


def test_fixture_pairs_and_items(tmp_path):
    _write(tmp_path, [_entry("One."), _entry("Two.", [("C", "R", "d")]), _entry(" Three. ")])
    task = get_task({"name": "dart"}, tmp_path)
    assert task.train_pairs("dev") == [
        Pair("A : rel : b", "One."), Pair("C : r : d", "Two."), Pair("A : rel : b", "Three.")
    ]
    assert task.eval_items("dev") == [
        EvalItem("A : rel : b", ["One.", "Three."]), EvalItem("C : r : d", ["Two."])
    ]


def test_missing_train_file_names_path(tmp_path):
    task = get_task({"name": "dart"}, tmp_path)
    with pytest.raises(DataError) as err:
        task.train_pairs("train")
    assert str(tmp_path / "dart" / "dart-v1.1.1-full-train.json") in str(err.value)
    assert "github.com/Yale-LILY/dart" in str(err.value)


# --- references of the eval split (issue #17): checked when the split loads, before training --

def test_eval_item_without_reference_names_file_line_and_entry(tmp_path):
    path = _write(tmp_path, [_entry("One."), _entry("  ", [("C", "R", "d")])])
    task = get_task({"name": "dart", "eval_split": "dev"}, tmp_path)
    with pytest.raises(DataError, match=rf"{path}: line 17: entry 1 \(0-based\): every annotation "
                                        "text is empty") as err:
        task.eval_items("dev")   # what run.py calls before training
    assert "add a reference or remove the entry" in str(err.value)
    assert json.loads(path.read_text())[1]["tripleset"] == [["C", "R", "d"]]
    assert path.read_text().split("\n")[16] == "  {"   # line 17 opens entry 1


def test_empty_annotation_beside_others_is_kept(tmp_path):
    """As in the staged test split (entry 115): LoRA keeps it as an empty reference."""
    entry = _entry("One.")
    entry["annotations"].append({"source": "x", "text": ""})
    _write(tmp_path, [entry, _entry("", [("C", "R", "d")]), _entry("Two.", [("C", "R", "d")])])
    task = get_task({"name": "dart", "eval_split": "dev"}, tmp_path)
    assert task.eval_items("dev") == [   # entry 1's empty text merges with entry 2's reference
        EvalItem("A : rel : b", ["One.", ""]), EvalItem("C : r : d", ["", "Two."])
    ]


def test_only_the_eval_split_is_checked(tmp_path):
    _write(tmp_path, [_entry(""), _entry("Two.", [("C", "R", "d")])])
    task = get_task({"name": "dart", "eval_split": "test"}, tmp_path)
    assert task.train_pairs("dev") == [Pair("A : rel : b", ""), Pair("C : r : d", "Two.")]


def test_staged_test_split_loads_with_its_empty_annotation(dart):
    items = dart.eval_items("test")
    assert any("" in item.references for item in items)


def test_utf8_bom_is_accepted(tmp_path):
    path = _write(tmp_path, "\ufeff" + json.dumps([_entry("One.")]))
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
    assert read_dart_json(path)[0]["annotations"][0]["text"] == "One."
