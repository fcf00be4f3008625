"""`python -m lodabench [hydra overrides]`: the one train+eval entrypoint."""

from lodabench.run.entry import main

if __name__ == "__main__":
    main()
