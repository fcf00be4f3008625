"""Locate the Java runtime and the official jars that METEOR 1.5 and the Stanford PTB tokenizer need.

Never degrade silently: when Java or the jars are missing, scoring stops with a message naming the fix.
The jars (METEOR 1.5, PTBTokenizer 3.4.1, the paraphrase table) come from the installed pycocoevalcap
1.2 wheel, the same files e2e-metrics and the DART scripts run.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from lodabench.errors import ScoringError

# `make install` needs no root (issue #26), so it installs no Java: only these two scorers need it, and
# each names the ways to get it that work without root (conda, environment modules) as well as with.
JAVA_FIX = (
    "Java is required for METEOR 1.5 and the PTB tokenizer (the official scorers' jars); nothing else "
    "needs it, and `make install` does not install it. Get a Java runtime in one of these ways: "
    "`sudo apt-get install default-jre-headless` (Debian/Ubuntu, root), "
    "`conda install -c conda-forge openjdk` (no root), "
    "`module load java` (clusters with environment modules; `module avail java` lists the names), "
    "`make install-java` (runs the apt-get command above). "
    "Or point LODABENCH_JAVA at a java executable."
)


@lru_cache(maxsize=None)
def java_executable() -> str:
    """Path of a working `java`, from $LODABENCH_JAVA or PATH; raises ScoringError otherwise."""
    candidate = os.environ.get("LODABENCH_JAVA") or shutil.which("java")
    if not candidate:
        raise ScoringError(f"java not found on PATH. {JAVA_FIX}")
    try:
        subprocess.run([candidate, "-version"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ScoringError(f"java at {candidate!r} does not run ({exc}). {JAVA_FIX}") from exc
    return candidate


def require_java_and_jars(_data_config: object = None) -> None:
    """A scorer's ``ready`` check: java runs and pycocoevalcap's METEOR/PTB jars are installed."""
    require_java()
    pycocoevalcap_dir()


def require_java() -> str:
    java_executable.cache_clear()
    return java_executable()


def pycocoevalcap_dir() -> Path:
    """The installed pycocoevalcap package folder, which ships the jars (found without importing it).

    The folder must hold ``meteor/meteor-1.5.jar`` (the wheel's layout): a namespace path or a
    partial install without it is refused here, naming the reinstall command, instead of failing
    later inside a java call.
    """
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise ScoringError("pycocoevalcap is not installed; it ships the METEOR 1.5 and PTB tokenizer jars and the "
                           "paraphrase table the scorers need: `pip install pycocoevalcap==1.2`.")
    locations = [Path(p) for p in spec.submodule_search_locations]
    for location in locations:
        if (location / "meteor" / "meteor-1.5.jar").is_file():
            return location
    raise ScoringError(f"pycocoevalcap at {[str(p) for p in locations]} has no meteor/meteor-1.5.jar: reinstall "
                       "`pip install --force-reinstall pycocoevalcap==1.2` (the wheel ships the jars).")
