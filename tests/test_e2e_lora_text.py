"""data.text=lora (issue #18): LoRA's word-tokenized E2E text, its two tokenization rules, the
measured agreement with LoRA's files (README "E2E text"), configs and the run-identity guard."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lodabench.tasks import EvalItem, get_task
from lodabench.tasks.e2e import lora_text_agreement
from lodabench.tasks.e2e_lora_text import LORA_BLOB_IDS, git_blob_id, moses_style, spacy_style
from lodabench.errors import ConfigError, DataError
from lodabench.paths import CONF_DIR, REPO_ROOT

# --- the train/dev rule ---------------------------------------------------------------------
# Each case is a whole official CSV reference and its reference in LoRA's file: valid.txt line N,
# or train.txt line N (not in ../shared: the line of Wiseman et al.'s e2e_aligned train.txt, whose
# text the generated train.txt, with LoRA's train.txt blob id, shares).


@pytest.mark.parametrize("raw, lora", [
    # valid.txt 26: Moses' English apostrophe (isn 't), aggressive hyphen, final period
    ("Alimentum isn't family-friendly but it is in riverside.",
     "Alimentum isn 't family - friendly but it is in riverside ."),
    # valid.txt 3754: double quotes and £ split off, spaced hyphen kept
    ('A highly rated coffee shop "The Punter" serving English food priced between £20 - £25 and is child friendly',
     'A highly rated coffee shop " The Punter " serving English food priced between £ 20 - £ 25 and is child friendly'),
    # valid.txt 3614: a run of periods is one token
    ("The Punter might have low ratings...but it is riverside and offers a children Friendly great time.",
     "The Punter might have low ratings ... but it is riverside and offers a children Friendly great time ."),
    # valid.txt 1024: a number's period before a lower-case word ends no sentence and stays
    ("Cotto is a coffee shop with Chinese food in the high price range with a customer rating of 1 out of 5. "
     "in the city centre area near The Portland Arms.",
     "Cotto is a coffee shop with Chinese food in the high price range with a customer rating of 1 out of 5. "
     "in the city centre area near The Portland Arms ."),
    # valid.txt 2674: decimals kept, commas split
    ("The Eagle coffee shop, serving Chinese food, prices from £30.99, high profile, riverside, near Burger King, "
     "child friendly",
     "The Eagle coffee shop , serving Chinese food , prices from £ 30.99 , high profile , riverside , near "
     "Burger King , child friendly"),
    # valid.txt 1791: a period that starts a word stays
    ("Kid friendly, .Taste of Cambridge Chinese coffee shop is in riverside, near Crowne Plaza Hotel.",
     "Kid friendly , .Taste of Cambridge Chinese coffee shop is in riverside , near Crowne Plaza Hotel ."),
    # train.txt 2285: "£20." is no number to the sentence splitter: it ends a sentence, split
    ("Strada is located near Rainbow Vegetarian Café that serves English food with a price range less than £20. "
     "it has low customer rating and is family friendly",
     "Strada is located near Rainbow Vegetarian Café that serves English food with a price range less than £ 20 . "
     "it has low customer rating and is family friendly"),
    # train.txt 2534: a word's period ends a sentence even before a lower-case word
    ("Giraffe its a Italian restaurant located near the center. of the city",
     "Giraffe its a Italian restaurant located near the center . of the city"),
    # train.txt 919: no padding, so a sentence-initial quote stays on its word
    ("'Strada' is a pub near Yippee Noodle Bar. It has an average customer rating and serves Italian food. "
     "The prices are moderate.",
     "'Strada ' is a pub near Yippee Noodle Bar . It has an average customer rating and serves Italian food . "
     "The prices are moderate ."),
    # train.txt 40718: "'average.'" closes a sentence (quote re-attached), so its final quote stays
    ("The Golden Curry has been rated as 'average.'  Japanese food is served in a family- friendly environment.",
     "The Golden Curry has been rated as ' average.' Japanese food is served in a family- friendly environment ."),
    # train.txt 10638 / 9286: non-breaking prefixes "St." and a single capital
    ("Blue Spice is a moderately priced adult gathering spot located near St. John's College.",
     "Blue Spice is a moderately priced adult gathering spot located near St. John 's College ."),
    ("Near the Café Rouge is The Plough.  A kids friendly pub serving reasonable Fast food for 20-25 L.",
     "Near the Café Rouge is The Plough . A kids friendly pub serving reasonable Fast food for 20 - 25 L."),
    # train.txt 6311: a final comma after a digit stays (nothing follows it)
    ("Cocum is a fast food coffee shop that is not children friendly. It has a high price range and a customer "
     "rating of 1 out of 5,",
     "Cocum is a fast food coffee shop that is not children friendly . It has a high price range and a customer "
     "rating of 1 out of 5,"),
    # train.txt 13: £ split off first, so "20-£" has no hyphen between alphanumerics to split
    ("Taste of Cambridge is a restaurant with a customer rating of 3 out of 5 and and a price range of £20-£25",
     "Taste of Cambridge is a restaurant with a customer rating of 3 out of 5 and and a price range of £ 20- £ 25"),
    # train.txt 5598: £ split off inside a word too
    ("Green Man is not a family-friendly restaurant located in the riverside .average price range is less than£20.",
     "Green Man is not a family - friendly restaurant located in the riverside .average price range is less "
     "than £ 20 ."),
])
def test_moses_style_reproduces_lora_train_and_valid_lines(raw, lora):
    assert moses_style(raw) == lora


# --- the test rule --------------------------------------------------------------------------

@pytest.mark.parametrize("raw, lora", [
    # test.txt 1539: spaCy's negation exception (is n't), hyphen between letters split
    ("The Mill is a cheap English pub in the riverside area near Raja Indian Cuisine. It isn't family-friendly.",
     "The Mill is a cheap English pub in the riverside area near Raja Indian Cuisine . It is n't family - friendly ."),
    # test.txt 1650: a hyphen after a digit is no infix (5-star stays)
    ("The Mill is a low-cost, fast food, 5-star, pub located near the Café Sicilia by the river.",
     "The Mill is a low - cost , fast food , 5-star , pub located near the Café Sicilia by the river ."),
    # test.txt 1161: the currency prefix splits, the one inside "20-£25" does not
    ("There is a restaurant called The Cricketers that provides Chinese food in the price range of £20-£25 it is "
     "in the city centre  near All Bar One and isn't kids friends.",
     "There is a restaurant called The Cricketers that provides Chinese food in the price range of £ 20-£25 it is "
     "in the city centre near All Bar One and is n't kids friends ."),
    # test.txt 1590: no prefix, no suffix, no infix in "20£-25"
    ("Near the Raja Indian Cuisine in riverside with a price  Range of 20£-25 and is Kids Friendly  is a Fast "
     "food pub called The Mill",
     "Near the Raja Indian Cuisine in riverside with a price Range of 20£-25 and is Kids Friendly is a Fast "
     "food pub called The Mill"),
    # test.txt 3261: quotes are prefixes and suffixes
    ("The pub 'The Vaults' is a French pub who are not children friendly with a price range of over £30. They "
     "are located in the city centre, near 'Raja Indian Cuisine'.",
     "The pub ' The Vaults ' is a French pub who are not children friendly with a price range of over £ 30 . "
     "They are located in the city centre , near ' Raja Indian Cuisine ' ."),
    # test.txt 2208: ".." suffix; test.txt 54: a leading period stays
    ("The Phoenix pub is based in the riverside area near Café Sicilia.  It serves food at mid range prices.  "
     "It is has a three star rating and is family friendly..",
     "The Phoenix pub is based in the riverside area near Café Sicilia . It serves food at mid range prices . "
     "It is has a three star rating and is family friendly .."),
    ("Kid friendly, .Blue Spice Chinese pub is in riverside, near Rainbow Vegetarian Café.",
     "Kid friendly , .Blue Spice Chinese pub is in riverside , near Rainbow Vegetarian Café ."),
    # test.txt 1760: unlike the train/dev rule, a period before a lower-case word splits
    ("The Mill is an inexpensive pub that is unfortunately not family friendly. Located north of the city "
     "center. beside the river, their 1-star fast food is competing against the close by Café Sicilia.",
     "The Mill is an inexpensive pub that is unfortunately not family friendly . Located north of the city "
     "center . beside the river , their 1-star fast food is competing against the close by Café Sicilia ."),
    # test.txt 1602: a capital before "-" is no letter pair to split; E20 is no currency
    ("There is a great pub named The Mill located in the centre of the city near Café Rouge. They offer fast "
     "food, and are reasonably priced with meals costing around E20-E25. They have a high customer rating and "
     "are very kid friendly.",
     "There is a great pub named The Mill located in the centre of the city near Café Rouge . They offer fast "
     "food , and are reasonably priced with meals costing around E20-E25 . They have a high customer rating and "
     "are very kid friendly ."),
])
def test_spacy_style_reproduces_lora_test_lines(raw, lora):
    assert spacy_style(raw) == lora


@pytest.mark.parametrize("raw, lora", [
    ("an average rating thats based", "an average rating that s based"),   # test.txt 1492
    ("If you're looking", "If you 're looking"),                             # test.txt 401
    ("with a $20 or less price range.", "with a $ 20 or less price range ."),   # test.txt 3594
    ("its cheap and it's well run", "its cheap and it 's well run"),         # "its", "well": real words
])
def test_spacy_style_exceptions(raw, lora):
    assert spacy_style(raw) == lora


def test_the_two_rules_differ_where_lora_files_do():
    """valid.txt has "isn 't", test.txt "is n't": the splits were not tokenized alike."""
    assert moses_style("It isn't.") == "It isn 't ."
    assert spacy_style("It isn't.") == "It is n't ."
    assert moses_style("a 1-star pub") == "a 1 - star pub"
    assert spacy_style("a 1-star pub") == "a 1-star pub"


def test_git_blob_id_is_git_hash_object():
    assert git_blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"   # git's empty blob
    assert git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


# --- measured agreement (README "E2E text") -------------------------------------------------

README = REPO_ROOT / "README.md"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _documented_lines(split_file: str) -> tuple[int, int]:
    match = re.search(rf"-> {re.escape(split_file)}: (\d+)/(\d+) lines identical", README.read_text())
    assert match, f"README.md has no agreement line for {split_file}"
    return int(match.group(1)), int(match.group(2))


@pytest.mark.parametrize("split, lora_file", [("dev", "valid.txt"), ("test", "test.txt")])
def test_agreement_with_lora_files_is_at_least_the_documented(data_root, split, lora_file):
    if not (data_root / "e2e_lora" / lora_file).is_file():   # as conftest._need: a failure under CI
        absent = f"{data_root}/e2e_lora/{lora_file} absent (shared/data/MANIFEST.md section 1b)"
        pytest.fail(absent) if IN_CI else pytest.skip(absent)
    agreement = lora_text_agreement(data_root, split)
    documented, total = _documented_lines(lora_file)
    assert agreement.lines == total
    assert agreement.same_line >= documented
    assert agreement.same_mr == agreement.lines          # the MR side was always right
    assert agreement.describe() in README.read_text()    # README quotes the script's output


@pytest.mark.slow  # reads and hashes all 42,061 train lines
def test_made_train_file_is_lora_train_txt_by_blob(data_root):
    """LoRA's train.txt is not in ../shared, but its git blob id is (MANIFEST 1b): the made file's
    bytes hash to it."""
    agreement = lora_text_agreement(data_root, "train")
    assert agreement.blob == LORA_BLOB_IDS["train"]
    assert agreement.lines == 42061
    assert agreement.describe() in README.read_text()


def test_script_prints_the_agreement(data_root):
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "e2e_lora_text_agreement.py"),
         "--data-root", str(data_root), "--splits", "dev"],
        capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(REPO_ROOT / "src"), "PATH": ""},
    ).stdout
    assert out.strip() == lora_text_agreement(data_root, "dev").describe()


# --- the task with data.text=lora -----------------------------------------------------------

def _csv_only_root(data_root: Path, tmp_path: Path) -> Path:
    (tmp_path / "e2e").mkdir()
    for name in ("trainset.csv", "devset.csv", "testset_w_refs.csv"):
        (tmp_path / "e2e" / name).symlink_to(data_root / "e2e" / name)
    return tmp_path


@pytest.mark.parametrize("split", ["dev", "test"])
def test_lora_files_and_made_text_give_the_same_pairs(data_root, tmp_path, split):
    from_files = get_task({"name": "e2e", "text": "lora"}, data_root)
    made = get_task({"name": "e2e", "text": "lora"}, _csv_only_root(data_root, tmp_path))
    assert from_files.train_pairs(split) == made.train_pairs(split)


def test_lora_text_items_group_on_lora_sources(data_root):
    items = get_task({"name": "e2e", "text": "lora"}, data_root).eval_items("test")
    assert (len(items), sum(len(i.references) for i in items)) == (630, 4693)
    assert items[0].source == "name : Blue Spice | Type : coffee shop | area : city centre"
    assert items[0].references[0] == "A coffee shop in the city centre area called Blue Spice ."  # test.txt 1


def test_lora_txt_reader_errors_name_file_and_line(tmp_path):
    folder = tmp_path / "e2e_lora"
    folder.mkdir()
    (folder / "test.txt").write_text("name : A||A is here . \nname : B|| \n", encoding="utf-8")
    task = get_task({"name": "e2e", "text": "lora"}, tmp_path)
    with pytest.raises(DataError, match=rf"{folder / 'test.txt'}: line 2: empty reference"):
        task.eval_items("test")
    (folder / "test.txt").write_text("\ufeffname : A||A .\nname : B, no separator\n", encoding="utf-8")
    task = get_task({"name": "e2e", "text": "lora"}, tmp_path)
    with pytest.raises(DataError, match=r"test.txt: line 2: expected one 'MR\|\|reference' pair"):
        task.eval_items("test")
    (folder / "test.txt").write_text("\ufeffname : A||A . \n", encoding="utf-8")   # a BOM is fine
    task = get_task({"name": "e2e", "text": "lora"}, tmp_path)
    assert task.eval_items("test") == [EvalItem("name : A", ["A ."])]


def test_text_config_errors():
    with pytest.raises(ConfigError, match=r"data.text='tokenized'.*valid: official, lora"):
        get_task({"name": "e2e", "text": "tokenized"}, None)
    with pytest.raises(ConfigError, match="data.text=lora .* data.source_format=lora"):
        get_task({"name": "e2e", "text": "lora", "source_format": "raw"}, None)
    with pytest.raises(ConfigError, match="data.text for dart must be 'official'"):   # E2E only
        get_task({"name": "dart", "text": "lora"}, None)
    assert get_task({"name": "dart", "text": "official"}, None).name == "dart"


# --- configs and the run-identity guard -----------------------------------------------------

@pytest.mark.parametrize("overrides, text", [
    (["data=e2e"], "official"),
    (["experiment=e2e_lora"], "lora"),
    (["experiment=e2e_loda"], "lora"),
    (["experiment=e2e_s_loda_plus_p05"], "lora"),
    (["experiment=smollm2_e2e"], "official"),   # its committed records ran on the official text
    (["experiment=dart_loda"], "official"),     # DART has one text
])
def test_composed_text(overrides, text):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    assert cfg.data.text == text


def test_a_record_without_data_text_conflicts_only_with_lora():
    from lodabench.run.records import config_conflicts

    recorded = {"data": {"name": "e2e", "source_format": "lora"}}
    assert config_conflicts(recorded, {"data": {**recorded["data"], "text": "official"}}) == []
    assert config_conflicts(recorded, {"data": {**recorded["data"], "text": "lora"}}) == [
        "data.text: recorded absent (= 'official', before the key existed), now 'lora'"
    ]
