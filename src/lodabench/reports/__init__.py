"""``python -m lodabench.reports --paper loda``: the reports' path before issue #28 moved them into
:mod:`lodabench.results.reports`, kept as a re-export (#28: "a moved import path may keep a
re-export"; issue #31 names this command). ``lodabench report`` and ``make report PAPER=`` run the same
``main``."""

from lodabench.results.reports import main

__all__ = ["main"]
