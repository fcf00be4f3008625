"""`python -m lodabench [hydra overrides]`: the one train+eval entrypoint."""

import gc

# The imports a run needs (torch, transformers, hydra, ...) make ~400k objects that live as long as the
# process, so collections while they are made free nothing and scan ever more: the collector pauses
# until the spine's modules are imported, which then move to the permanent generation
# (lodabench.machine.settle_import_heap, called by entry.main before Hydra launches the jobs).
gc.disable()

from lodabench.run.entry import main  # noqa: E402

if __name__ == "__main__":
    main()
