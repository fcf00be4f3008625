"""``python -m lodabench.bench [--quick] [--out results/bench/NAME.json]``: run the suites, write
the record (JSON) and its Markdown summary, print the goals table. See docs/benchmarks.md."""

from __future__ import annotations

import sys

from lodabench.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
