"""E2E task: counts on the real CSVs (shared/data/MANIFEST.md), LoRA's source format, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lodabench.tasks import EvalItem, Pair, get_task
from lodabench.tasks.e2e import format_mr_lora, parse_mr, read_e2e_csv
from lodabench.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def e2e(data_root):
    return get_task({"name": "e2e"}, data_root)


# --- real data ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "split, n_pairs, n_mrs",
    [("train", 42061, 4862), ("dev", 4672, 547), ("test", 4693, 630)],  # MANIFEST section 1
)
def test_counts_match_manifest(e2e, split, n_pairs, n_mrs):
    pairs = e2e.train_pairs(split)
    items = e2e.eval_items(split)
    assert len(pairs) == n_pairs
    assert len(items) == n_mrs
    assert sum(len(item.references) for item in items) == n_pairs


def test_test_items_group_references_in_order(e2e, data_root):
    items = e2e.eval_items("test")
    assert (len(items), sum(len(i.references) for i in items)) == (630, 4693)
    # independent reading of the CSV: the first MR and its references, in file order
    with (data_root / "e2e" / "testset_w_refs.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    first_mr = rows[0][0]
    expected_refs = [ref.strip() for mr, ref in rows if mr == first_mr]
    assert items[0] == EvalItem(format_mr_lora(first_mr), expected_refs)
    assert items[0].source == "name : Blue Spice | Type : coffee shop | area : city centre"
    assert items[0].references[0] == "A coffee shop in the city centre area called Blue Spice."
    # order of first appearance
    order = list(dict.fromkeys(format_mr_lora(mr) for mr, _ in rows))
    assert [i.source for i in items] == order


def test_raw_source_format_keeps_official_mr(data_root):
    task = get_task({"name": "e2e", "source_format": "raw"}, data_root)
    items = task.eval_items("test")
    assert len(items) == 630
    assert items[0].source == "name[Blue Spice], eatType[coffee shop], area[city centre]"


def test_pairs_are_file_order_with_stripped_references(e2e):
    pairs = e2e.train_pairs("train")
    assert isinstance(pairs[0], Pair)
    assert all(p.target == p.target.strip() for p in pairs)
    # trainset.csv has a reference with an embedded CRLF (quoted multi-line field): kept inside
    assert any("\r\n" in p.target for p in pairs)


# --- LoRA's source string -------------------------------------------------------------------

@pytest.mark.parametrize(
    "mr, lora",
    [
        # each right-hand side is a source string copied from LoRA's examples/NLG/data/e2e/test.txt
        ("name[Blue Spice], eatType[coffee shop], area[city centre]",
         "name : Blue Spice | Type : coffee shop | area : city centre"),
        ("name[The Cricketers], eatType[restaurant], food[Chinese], priceRange[£20-25], "
         "customer rating[high], area[city centre], familyFriendly[no], near[All Bar One]",
         "name : The Cricketers | Type : restaurant | food : Chinese | price : £ 20 - 25 | "
         "customer rating : high | area : city centre | family friendly : no | near : All Bar One"),
        ("name[The Cricketers], eatType[restaurant], food[Chinese], priceRange[less than £20], "
         "customer rating[low], area[city centre], familyFriendly[no], near[All Bar One]",
         "name : The Cricketers | Type : restaurant | food : Chinese | price : less than £ 20 | "
         "customer rating : low | area : city centre | family friendly : no | near : All Bar One"),
        ("name[The Cricketers], eatType[restaurant], food[Chinese], priceRange[more than £30], "
         "customer rating[high], area[riverside], familyFriendly[yes], near[All Bar One]",
         "name : The Cricketers | Type : restaurant | food : Chinese | price : more than £ 30 | "
         "customer rating : high | area : riverside | family friendly : yes | near : All Bar One"),
        ("name[Blue Spice], eatType[pub], food[Chinese], area[city centre], familyFriendly[no], "
         "near[Rainbow Vegetarian Café]",
         "name : Blue Spice | Type : pub | food : Chinese | area : city centre | "
         "family friendly : no | near : Rainbow Vegetarian Café"),
    ],
)
def test_format_mr_lora_matches_lora_txt(mr, lora):
    assert format_mr_lora(mr) == lora


def test_parse_mr_rejects_garbage():
    assert parse_mr("name[A], near[B C]") == [("name", "A"), ("near", "B C")]
    for bad in ["name[A", "name A", "name[A] near[B]", ""]:
        with pytest.raises(ValueError):
            parse_mr(bad)


# --- malformed files ------------------------------------------------------------------------

def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "e2e" / "testset_w_refs.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


GOOD = 'mr,ref\n"name[A], eatType[pub]",A is a pub.\n'


def test_wrong_header(tmp_path):
    path = _write(tmp_path, 'meaning,text\n"name[A]",x\n')
    with pytest.raises(DataError, match=rf"{path}: line 1: header"):
        read_e2e_csv(path)


def test_wrong_column_count_names_line(tmp_path):
    path = _write(tmp_path, GOOD + '"name[B]",B.\n"name[C]",C.,extra\n')
    with pytest.raises(DataError, match=rf"{path}: line 4: 3 column\(s\), expected 2"):
        read_e2e_csv(path)


def test_missing_column_names_line(tmp_path):
    path = _write(tmp_path, GOOD + '"name[B]"\n')
    with pytest.raises(DataError, match=r"line 3: 1 column\(s\), expected 2"):
        read_e2e_csv(path)


def test_bad_quoting_names_line_after_multiline_record(tmp_path):
    # line 2-3: one quoted record spanning two lines; line 4: a quote in the middle of a field
    path = _write(tmp_path, 'mr,ref\n"name[A]","first\nsecond"\n"name[B]","bad"quote\n')
    with pytest.raises(DataError, match=r"line 4: bad CSV quoting"):
        read_e2e_csv(path)


def test_unterminated_quote_names_line(tmp_path):
    path = _write(tmp_path, GOOD + '"name[B]","never closed\n')
    with pytest.raises(DataError, match=r"line 3: bad CSV quoting"):
        read_e2e_csv(path)


def test_malformed_mr_names_line(tmp_path):
    path = _write(tmp_path, GOOD + 'name[B,B.\n')
    with pytest.raises(DataError, match=r"line 3: malformed MR"):
        read_e2e_csv(path)


def test_valid_fixture_parses(tmp_path):
    _write(tmp_path, GOOD + '"name[A], eatType[pub]",Another.\n')
    task = get_task({"name": "e2e"}, tmp_path)
    assert task.eval_items("test") == [
        EvalItem("name : A | Type : pub", ["A is a pub.", "Another."])
    ]


def test_missing_file_names_path_and_source(tmp_path):
    task = get_task({"name": "e2e"}, tmp_path)
    with pytest.raises(DataError) as err:
        task.train_pairs("train")
    message = str(err.value)
    assert str(tmp_path / "e2e" / "trainset.csv") in message
    assert "github.com/tuetschek/e2e-dataset" in message
    assert "paths.data_root" in message and "LODABENCH_DATA_ROOT" in message


# --- config ---------------------------------------------------------------------------------

def test_slicing_first_and_random(tmp_path):
    body = "".join(f'"name[N{i}]",ref {i}.\n' for i in range(20))
    _write(tmp_path, "mr,ref\n" + body)
    first = get_task({"name": "e2e", "max_eval_items": 3, "max_train_examples": 5}, tmp_path)
    assert [i.source for i in first.eval_items("test")] == ["name : N0", "name : N1", "name : N2"]
    assert len(first.train_pairs("test")) == 5
    cfg = {"name": "e2e", "max_eval_items": 4, "subset": "random", "subset_seed": 7}
    a = get_task(cfg, tmp_path).eval_items("test")
    b = get_task(cfg, tmp_path).eval_items("test")
    assert a == b and len(a) == 4
    indices = [int(i.source.split("N")[1]) for i in a]
    assert indices == sorted(indices) and indices != [0, 1, 2, 3]


@pytest.mark.parametrize("text", ["lora", "official"])
def test_only_the_rows_a_slice_keeps_are_converted(tmp_path, monkeypatch, text):
    """data.text=lora or official: the first N training pairs (and a random subset) are the eager
    list's, and only the rows kept are made (e2e.format_mr_lora counted; for lora also the rewrite)."""
    from lodabench.tasks import e2e as e2e_module
    from lodabench.tasks.e2e_lora_text import lora_reference

    body = "".join(f'"name[N{i}]","The N{i} is near the river, isn\'t it."\n' for i in range(20))
    _write(tmp_path, "mr,ref\n" + body)
    rows = read_e2e_csv(tmp_path / "e2e" / "testset_w_refs.csv")
    target = (lambda ref: lora_reference(ref, "test")) if text == "lora" else str.strip
    eager = [Pair(format_mr_lora(mr), target(ref)) for mr, ref in rows]
    calls = []
    monkeypatch.setattr(e2e_module, "format_mr_lora", lambda mr: calls.append(mr) or format_mr_lora(mr))
    first = get_task({"name": "e2e", "text": text, "max_train_examples": 5}, tmp_path)
    assert first.train_pairs("test") == eager[:5] and len(calls) == 5
    assert first.train_pairs("test") == eager[:5] and len(calls) == 5  # converted once
    cfg = {"name": "e2e", "text": text, "max_train_examples": 4, "subset": "random", "subset_seed": 7}
    picked = get_task(cfg, tmp_path).train_pairs("test")
    assert len(picked) == 4 and all(pair in eager for pair in picked) and len(calls) == 9
    whole = get_task({"name": "e2e", "text": text}, tmp_path)
    assert whole.train_pairs("test") == eager and whole.eval_items("test")[-1].references == [eager[-1].target]


def test_converted_rows_index_as_a_list():
    from lodabench.tasks.specs import ConvertedRows

    rows, made = list(range(7)), ConvertedRows(list(range(7)), lambda r: r * 10)
    expected = [r * 10 for r in rows]
    for index in (0, 3, -1, -7, slice(2, 5), slice(None, None, -2), slice(-3, None), slice(9, 12)):
        assert made[index] == expected[index]
    assert len(made) == 7 and list(made) == expected and made.index(30) == 3
    for bad in (7, -8):
        with pytest.raises(IndexError):
            made[bad]


def test_unknown_key_and_bad_values():
    with pytest.raises(ConfigError, match="data.max_train_exmaples"):
        get_task({"name": "e2e", "max_train_exmaples": 3}, None)
    with pytest.raises(ConfigError, match="source_format"):
        get_task({"name": "e2e", "source_format": "tokenized"}, None)
    with pytest.raises(ConfigError, match="data.name"):
        get_task({"name": "webnlg"}, None)
    with pytest.raises(ConfigError, match="no split"):
        get_task({"name": "e2e"}, None).train_pairs("validation")


# --- issue #17: empty references, byte-order mark -------------------------------------------

@pytest.mark.parametrize("ref", ['""', '"   "'])
def test_empty_reference_names_file_and_line(tmp_path, ref):
    path = _write(tmp_path, GOOD + '"name[B]","multi\nline"\n' + f'"name[C]",{ref}\n')
    task = get_task({"name": "e2e"}, tmp_path)
    with pytest.raises(DataError, match=rf"{path}: line 5: empty reference") as err:
        task.eval_items("test")   # what run.py calls before training
    assert "fix or delete that row" in str(err.value)


def test_utf8_bom_is_accepted(tmp_path):
    path = _write(tmp_path, "\ufeff" + GOOD)
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
    assert read_e2e_csv(path) == [("name[A], eatType[pub]", "A is a pub.")]
