"""The README's demo table (issue #17): its block is present and parses, it names the current lock,
and the weights hash it shows changes with any bit of the weights. The slow end-to-end comparison
of a fresh `make demo` with this block is `make demo-check` (scripts/demo.py --check), not here."""

from __future__ import annotations

import importlib.util
import re

import pytest
import torch
from safetensors.torch import save_file

from lodabench.run.lockfile import LOCK, lock_sha256
from lodabench.paths import REPO_ROOT

_spec = importlib.util.spec_from_file_location("demo_script", REPO_ROOT / "scripts" / "demo.py")
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)


@pytest.fixture(scope="module")
def block() -> list[str]:
    return demo.readme_block(demo.README.read_text())


def test_readme_block_has_a_full_row_per_method_and_the_baseline(block):
    rows = demo.table_rows(block)
    assert set(rows) == {*demo.METHODS, "majority class"}, block
    for method in demo.METHODS:
        params, acc, loss, sha = rows[method]
        assert re.fullmatch(r"\d{1,3}(,\d{3})*", params), rows[method]
        assert re.fullmatch(r"\d+\.\d{2}", acc) and 50 < float(acc) <= 100, rows[method]
        assert re.fullmatch(r"\d+\.\d{4}", loss), rows[method]
        assert re.fullmatch(r"`[0-9a-f]{12}`", sha), rows[method]
    assert demo.HEADER in block


def test_readme_block_names_the_current_lock(block):
    """A moved lock needs a regenerated table (scripts/demo.py --write-readme from a fresh clone)."""
    assert block[-1] == demo.lock_line(), (
        f"README's demo table was made under another requirements.lock (now {lock_sha256(LOCK)[:12]}); "
        "regenerate it: scripts/demo.py --write-readme")


def test_check_diff_is_empty_for_the_block_and_names_a_changed_cell(block):
    text = demo.README.read_text()
    assert demo.table_diff(block, text) == []
    changed = [line.replace(demo.table_rows(block)["loda"][1], "99.99") if line.startswith("| loda ") else line
               for line in block]
    diff = demo.table_diff(changed, text)
    assert any(line.startswith("+| loda ") and "99.99" in line for line in diff), diff
    assert any(line.startswith("-| loda ") for line in diff), diff


def test_readme_block_markers_are_required():
    with pytest.raises(ValueError, match="demo-table"):
        demo.readme_block("no markers here")
    with pytest.raises(ValueError, match="demo-table"):
        demo.readme_block(f"{demo.BEGIN}\n{demo.END}\n{demo.BEGIN}\n{demo.END}")


def test_weights_sha256_sees_one_flipped_bit_and_ignores_metadata(tmp_path):
    tensors = {"b.lora_B": torch.randn(3, 4), "a.lora_A": torch.randn(4, 2), "head": torch.zeros(0)}
    save_file(tensors, str(tmp_path / "x.safetensors"), metadata={"method": "lora"})
    save_file(tensors, str(tmp_path / "y.safetensors"), metadata={"method": "lora", "note": "other"})
    flipped = dict(tensors, **{"a.lora_A": tensors["a.lora_A"].clone()})
    flipped["a.lora_A"].view(torch.int32)[0, 0] ^= 1  # lowest mantissa bit
    save_file(flipped, str(tmp_path / "z.safetensors"))
    x, y, z = (demo.weights_sha256(tmp_path / f"{n}.safetensors") for n in "xyz")
    assert x == y != z
