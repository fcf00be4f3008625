"""The self-contained HTML results page (issue #31), without a browser: structure, data, offline-ness.

The browser checks (sort, filter, hover, no request) are in test_html_browser.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from lodabench.results import html_page, items, pareto, tables
from lodabench.results.runs import load_runs

REFS = [["A pub near the river.", "There is a pub by the river."], ["Cheap food in town.", "Food is cheap."],
        ["A family friendly cafe.", "The cafe welcomes families."]]
OUTPUTS = {"loda": ["A pub near the river.", "Food in town.", "A cafe."],
           "lora": ["A pub by a river.", "Cheap food in town.", "A family friendly cafe."]}


def _run(root: Path, method: str, seed: int, bleu: float, params: int, cost: dict | None) -> Path:
    d = root / "e2e" / "tiny" / method / "experiment=x" / f"seed{seed}"
    (d / ".hydra").mkdir(parents=True)
    cfg = {"seed": seed, "data": {"name": "e2e", "max_eval_items": 3}, "model": {"name": "tiny"},
           "method": {"name": method}, "paths": {"data_root": str(root / "no-data-here")}}
    record = {"status": "complete", "config": cfg, "seed": seed, "metrics": {"BLEU": bleu},
              "trainable_params": {"trainable": params}, "git": {"commit": "abc123", "dirty": False},
              "wall_time_s": 100.0 + seed, "peak_memory": {"cpu_rss_mb": 900.0},
              "inputs": {"data": {"files": [{"path": "e2e/test.csv", "sha256": "f" * 64}]}}}
    if cost is not None:
        record["cost"] = cost
    (d / "record.json").write_text(json.dumps(record), encoding="utf-8")
    (d / "metrics.json").write_text(json.dumps({"BLEU": bleu}), encoding="utf-8")
    (d / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["experiment=x", f"method={method}",
                                                                   f"seed={seed}"]), encoding="utf-8")
    (d / "hyp.txt").write_text("\n".join(OUTPUTS[method]) + "\n", encoding="utf-8")
    (d / "refs.txt").write_text("\n\n".join("\n".join(g) for g in REFS) + "\n", encoding="utf-8")
    return d


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for seed, (a, b) in zip((110, 111), ((0.50, 0.55), (0.52, 0.57))):
        _run(root, "loda", seed, a, 1000, {"train_s": 10.0, "adapter_bytes": 4000, "peak_memory_mb": {"train": 800}})
        _run(root, "lora", seed, b, 4000, None)   # before the cost block: two axes fall back, one is absent
    return root


def _page(runs: Path, tmp_path: Path) -> str:
    out = tmp_path / "page.html"
    html_page.write_tables_page(out, load_runs(runs), runs, None)
    return out.read_text(encoding="utf-8")


def test_page_is_self_contained_with_the_three_sections(runs: Path, tmp_path: Path) -> None:
    text = _page(runs, tmp_path)
    for sid in ("published-vs-ours", "pareto", "items", "runs"):
        assert f'<section id="{sid}">' in text
    assert "default-src 'none'" in text
    # Nothing that would load: no external script/style/image/font, no URL with a scheme.
    assert not re.search(r"<(script|img|link|iframe|object|embed)[^>]*\b(src|href)=", text)
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, flags=re.I)
    assert "@import" not in text and "url(" not in text
    assert html_page.asset("page.js").strip()[:40] in text   # script inlined, not linked


def test_pareto_one_mark_per_method_and_seed_and_fallbacks_named(runs: Path, tmp_path: Path) -> None:
    text = _page(runs, tmp_path)
    svgs = {m.group(1): m.group(0)
            for m in re.finditer(r'<svg class="pareto-svg" data-axis="(\w+)".*?</svg>', text, flags=re.S)}
    assert set(svgs) == {"params", "adapter_bytes", "train_s", "peak_mb"}
    assert svgs["params"].count("<circle") == 4            # 2 methods x 2 seeds
    assert svgs["adapter_bytes"].count("<circle") == 2     # only LoDA's records have cost.adapter_bytes
    assert "2 of 4 runs lack record cost.adapter_bytes" in text
    assert "train time (s) read from wall_time_s" in text
    assert svgs["params"].count("<polyline") >= 1
    # every mark names its run, and the run's block holds its command and fingerprint
    anchors = set(re.findall(r'data-run="(run-\d+)"', text))
    assert len(anchors) == 4
    for a in anchors:
        assert f'id="{a}"' in text
    assert "python -m lodabench experiment=x method=loda seed=110" in text
    assert "inputs.data.files[0].sha256" in text and "f" * 16 + "…" in text


def test_table_rows_link_to_runs_and_filter_values(runs: Path, tmp_path: Path) -> None:
    text = _page(runs, tmp_path)
    body = re.search(r'<table class="sortable" id="cells">.*?<tbody>(.*?)</tbody>', text, flags=re.S).group(1)
    rows = re.findall(r"<tr [^>]*>.*?</tr>", body, flags=re.S)
    assert len(rows) == 2 * 5                       # 2 rows x E2E's 5 declared metrics
    assert all('data-task="e2e"' in r and 'href="#run-' in r for r in rows)
    assert '<select name="method">' in text and '<option value="lora">' in text
    # a published number links to the paper table it comes from
    runs_index = html_page.RunIndex(tmp_path)
    linked = html_page.table_html([{"dataset": "e2e", "metric": "BLEU", "published": "70.4",
                                    "file": "loda_table1_e2e.csv"}], runs_index)
    assert re.search(r'<a href="[^"]*results/paper/loda_table1_e2e.csv">70.4</a>', linked)


def test_items_rank_by_sentence_bleu_difference(runs: Path, tmp_path: Path) -> None:
    import sacrebleu

    text = _page(runs, tmp_path)
    block = re.search(r'<section id="items">.*?</section>', text, flags=re.S).group(0)
    assert "LoDA vs LoRA, seed 110" in block
    assert "Inputs not shown" in block              # this run's data root does not exist: said, not guessed
    first = re.search(r'<tr class="item"><td>1</td>.*?</tr>', block, flags=re.S).group(0)
    gaps = [abs(sacrebleu.sentence_bleu(a, g).score - sacrebleu.sentence_bleu(b, g).score)
            for a, b, g in zip(OUTPUTS["loda"], OUTPUTS["lora"], REFS)]
    worst = max(range(3), key=gaps.__getitem__)
    assert OUTPUTS["loda"][worst] in first and OUTPUTS["lora"][worst] in first


def test_added_columns_are_shown_when_present() -> None:
    runs = html_page.RunIndex(Path("."))
    base = {"dataset": "e2e", "method": "loda", "metric": "BLEU", "ours": "60.0", "n": 3}
    plain = html_page.table_html([base], runs)
    extra = html_page.table_html([{**base, "ci95": [-1.5, 2.5], "p_holm": 0.04, "paired_verdict": "on par"}], runs)
    for title in ("ci95", "p holm", "paired verdict"):
        assert f"<th>{title}</th>" not in plain and f"<th>{title}</th>" in extra
    assert "[-1.5, 2.5]" in extra and "on par" in extra


def _p(y: float, x: float, method: str = "m") -> pareto.Point:
    return pareto.Point(method, method, "s", None, y, {"params": x})


def test_frontier_higher_and_lower_is_better() -> None:
    pts = [_p(50, 10), _p(60, 100), _p(55, 200), _p(70, 1000), _p(50, 5)]
    assert [(p.x["params"], p.y) for p in pareto.frontier(pts, "params", False)] == [(5, 50), (100, 60), (1000, 70)]
    # TER: lower is better -- the cheapest point, then only strict improvements
    assert [(p.x["params"], p.y) for p in pareto.frontier(pts, "params", True)] == [(5, 50)]
    assert pareto.frontier(pts, "train_s", False) == []


def test_record_costs_prefers_the_cost_block() -> None:
    rec = {"trainable_params": {"trainable": 10, "trainable_without_head": 8}, "wall_time_s": 99.0,
           "cost": {"train_s": 5.0, "peak_memory_mb": {"train": 700}}, "peak_memory": {"cpu_rss_mb": 900}}
    assert pareto.record_costs(rec) == ({"params": 8.0, "train_s": 5.0, "peak_mb": 700.0}, {})
    old = {"trainable_params": {"trainable": 10}, "wall_time_s": 99.0, "peak_memory": {"cpu_rss_mb": 900}}
    assert pareto.record_costs(old) == ({"params": 10.0, "train_s": 99.0, "peak_mb": 900.0},
                                        {"train_s": "wall_time_s", "peak_mb": "peak_memory.cpu_rss_mb"})


def test_item_helpers() -> None:
    assert items.choose_pair(["lora", "ft", "loda"]) == ("loda", "lora")
    assert items.choose_pair(["ft", "prompt"]) == ("ft", "prompt")
    assert items.choose_pair(["ft"]) is None
    assert items.e2e_slots("name : Blue Spice | Type : pub | area : riverside") == 3
    assert items.e2e_slots("name[Blue Spice], eatType[pub]") == 2
    its = [items.Item(i, "x", "", "", [], a, b, {"slot count": s}) for i, (a, b, s) in
           enumerate([(1.0, 0.0, 3), (0.0, 0.0, 3), (1.0, 1.0, 5)])]
    assert items.aggregate(its) == {"slot count": [(3, 2, 0.5, 0.0), (5, 1, 1.0, 1.0)]}
    assert items.attributes("dart", "A : b : C | C : d : E", {"A : b : C | C : d : E": "e2e"}) == \
        {"tripleset size": 2, "annotation source": "e2e"}
    assert items.attributes("dart", None, {}) == {}


def test_lodabench_tables_writes_the_page(runs: Path, tmp_path: Path) -> None:
    written = tables.build(runs, tmp_path / "out", None, plots=False, compare_mode="off")
    assert written["html"] == [tmp_path / "out" / "tables.html"]
    assert '<section id="pareto">' in written["html"][0].read_text(encoding="utf-8")


def test_no_runs_says_so(tmp_path: Path) -> None:
    out = tmp_path / "empty.html"
    html_page.write_tables_page(out, [], tmp_path / "none", None)
    text = out.read_text(encoding="utf-8")
    assert "No stored runs: there is no item-level comparison to show." in text
    assert "nothing to plot" in text


@pytest.mark.slow
def test_loda_report_page_from_committed_records(tmp_path: Path) -> None:
    """The bar: the loda report's page holds >= 20 table rows with LoDA, a mark per method and seed of
    the committed SmolLM2 x E2E grid, and an item-level comparison (inputs from ../shared's data)."""
    from lodabench.results import reports
    from lodabench.results.report_cells import grid_rows

    paths = reports.build("loda", tmp_path, tmp_path / "no-runs", reports.DEFAULT_GRIDS,  # the page's
                          reports.REPO_ROOT / "results" / "paper", paired=None, attribution=False)  # own parts
    text = paths["html"].read_text(encoding="utf-8")
    body = re.search(r'id="cells">.*?<tbody>(.*?)</tbody>', text, flags=re.S).group(1)
    rows = re.findall(r"<tr [^>]*>", body)
    assert len(rows) >= 20 and sum('data-method="loda"' in r for r in rows) >= 1
    grid = reports.DEFAULT_GRIDS[0]
    seeds = sum(len(r.complete) for r in grid_rows(grid.path / "runs", grid.path / "runs_summary.csv")
                if r.data == "e2e")
    e2e = re.search(r'<div class="panel" data-dataset="e2e">.*?<svg[^>]*data-axis="params".*?</svg>', text,
                    flags=re.S).group(0)
    assert e2e.count("<circle") == seeds >= 18
    assert re.search(r'<div class="cmp" data-dataset="e2e" data-a="loda" data-b="lora">', text)
    assert "No stored runs, so no comparison, for: paper setting" in text   # results/runs is not committed


def test_a_grid_on_another_model_reads_published_rows_on_it() -> None:
    import pandas as pd

    class R:
        def __init__(self, model: str):
            self.model = model

    paper = pd.DataFrame({"model": ["gpt2-medium", "roberta-base"]})
    assert html_page._other_model([R("smollm2-135m"), R("smollm2-135m")], paper) == "smollm2-135m"
    assert html_page._other_model([R("gpt2-medium")], paper) is None      # the paper's model: a reproduction
    assert html_page._other_model([R("a"), R("b")], paper) is None        # several models: each on its own
    assert html_page._other_model([R("a")], None) is None


@pytest.mark.slow
def test_minilm_grid_page_from_committed_records(tmp_path: Path, data_root: Path) -> None:
    """`make real-report`'s MiniLM x GLUE page: published GLUE numbers read on MiniLM (never tested as a
    reproduction), a mark per method and seed, a LoDA-vs-LoRA item comparison per task with the sentences."""
    from lodabench.results.report_cells import grid_rows

    grid = html_page.REPO_ROOT / "results" / "minilm_glue"
    out = tmp_path / "index.html"
    assert html_page.main(["--runs-dir", str(grid / "runs"), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    rows = grid_rows(grid / "runs", grid / "runs_summary.csv")
    sst2 = re.search(r'<div class="panel" data-dataset="sst2">.*?<svg[^>]*data-axis="params".*?</svg>', text,
                     flags=re.S).group(0)
    assert sst2.count("<circle") == sum(len(r.complete) for r in rows if r.data == "sst2")
    assert "Δ only: a different model" in text and "read on minilm-l6" in text
    for task in sorted({r.data for r in rows}):
        assert re.search(rf'<div class="cmp" data-dataset="{task}" data-a="loda" data-b="lora">', text)
    assert "Inputs not shown" not in text      # the data root (../shared/data) holds the GLUE dev sets
