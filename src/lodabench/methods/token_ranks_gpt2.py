"""GPT-2 token ids ranked by frequency: the loader of ``token_ranks_gpt2.json`` (package data).

Where the data comes from: ``scripts/make_token_ranks.py`` tokenizes the text columns of the GLUE
training files (CoLA, SST-2, MRPC, STS-B, RTE train.tsv, from the data root) with the GPT-2 tokenizer
(../shared/tokenizers/gpt2) and ranks the ids by count, most frequent first, ties by the smaller id;
the JSON records the sha256 of the tokenizer and of each corpus file, and ``--check`` reproduces it.
Prompt tuning's sampled-vocabulary init draws from the first ``vocab_top_k`` (Lester et al. 2021:
"the 5,000 most common tokens"); unlike T5's SentencePiece ids, GPT-2's are not frequency-ordered.
The list was Python source until issue #28 made it data; the names below are unchanged.
"""

from __future__ import annotations

import json
from importlib import resources

RESOURCE = "token_ranks_gpt2.json"


def _load() -> dict:
    # importlib.resources, not a path beside __file__: works from a wheel or a zip as well.
    return json.loads(resources.files(__package__).joinpath(RESOURCE).read_text(encoding="utf-8"))


_DATA = _load()
VOCAB_SIZE: int = _DATA["vocab_size"]
IDS: tuple[int, ...] = tuple(_DATA["ids"])
COUNTS: tuple[int, ...] = tuple(_DATA["counts"])
