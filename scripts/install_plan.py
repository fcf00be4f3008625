"""Which lock `make install` installs on this machine, and why (issue #26). `make install-plan` prints it.

Two locks (scripts/lock.sh): requirements.lock pins the CPU torch (2.13.0+cpu, cp311 only where it was
locked against a local wheel directory), requirements-cuda.lock pins PyPI's torch 2.13.0, which is the
CUDA build and also runs on CPU. The choice:

* ``TORCH=cpu`` / ``TORCH=cuda`` (``--torch``): that lock, or a refusal naming the fix.
* otherwise the CUDA lock when ``nvidia-smi -L`` lists a GPU. We ask the driver, not the toolkit: CI and
  the dev machine have ``nvcc`` and no GPU, and a GPU box may have a driver and no toolkit (the CUDA
  wheels bring their own runtime).
* otherwise the CPU lock, when its header lists this interpreter's CPython version; else the CUDA lock
  (PyPI's build is the only torch 2.13.0 locked for that version), saying so and how to lock a CPU build.

Stdlib only and Python 3.6 syntax: it runs before .venv exists, under whatever interpreter ``PYTHON``
names, so that an unsupported one is refused here with a clear message instead of deep inside pip.
Usage: install_plan.py [--torch auto|cpu|cuda] [--venv DIR] [--print plan|lock] | --index-for LOCK
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCKS = {"cpu": "requirements.lock", "cuda": "requirements-cuda.lock"}
PYTORCH_INDEX = "https://download.pytorch.org/whl/"
CPU_LOCK_FOR_ALL = ("`make lock TORCH=cpu TORCH_BACKEND=cpu` (untested: locks torch+cpu from the PyTorch "
                    "CPU index for CPython 3.11-3.13), then `make install TORCH=cpu`")


class PlanError(Exception):
    """No lock fits: the message names the value and the fix."""


def requires_python(root=ROOT):
    """(lowest, first excluded) (major, minor) from pyproject.toml's requires-python, e.g. ((3, 11), (3, 14))."""
    text = open(os.path.join(root, "pyproject.toml")).read()
    spec = re.search(r'^requires-python\s*=\s*"([^"]+)"', text, re.M).group(1)
    low = re.search(r">=\s*(\d+)\.(\d+)", spec)
    high = re.search(r"<\s*(\d+)\.(\d+)", spec)
    return (int(low.group(1)), int(low.group(2))), (int(high.group(1)), int(high.group(2))), spec


def lock_summary(path):
    """What a lock's header and pins say: the CPython versions it serves, torch, its CUDA runtime, sha256."""
    text = open(path).read()
    target = re.search(r"^# Target: CPython ((?:\d+\.\d+, )+)", text, re.M)
    pins = dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", text, re.M))
    runtime = [v for k, v in pins.items() if re.match(r"nvidia-cuda-runtime(-cu\d+)?$", k)]
    backend = re.search(r"--torch-backend (\S+?)\.?$", text, re.M)
    return {"pythons": re.findall(r"\d+\.\d+", target.group(1)) if target else [],
            "torch": pins.get("torch"), "cuda": ".".join(runtime[0].split(".")[:2]) if runtime else None,
            "nvidia": sorted(k for k in pins if k.startswith("nvidia-")), "triton": pins.get("triton"),
            "backend": backend.group(1) if backend else None, "pins": len(pins),
            "sha256": hashlib.sha256(text.encode()).hexdigest()}


def index_for(path):
    """pip's extra index for a lock's torch: the PyTorch CPU index for +cpu (unless PIP_FIND_LINKS holds the
    wheel), the backend's index for a `TORCH_BACKEND` lock, none for PyPI's own torch."""
    info = lock_summary(path)
    if info["backend"]:
        return "--extra-index-url " + PYTORCH_INDEX + info["backend"]
    if (info["torch"] or "").endswith("+cpu") and not os.environ.get("PIP_FIND_LINKS"):
        return "--extra-index-url " + PYTORCH_INDEX + "cpu"
    return ""


def run(cmd):
    """(exit status, stdout, stderr) of a short command; status None where it cannot start or hangs."""
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        out, err = proc.communicate(timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, "", str(exc)
    return proc.returncode, out, err


def visible_gpus():
    """(GPU lines of `nvidia-smi -L`, why none) — the driver's own list; an empty list names the reason."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return [], "nvidia-smi is not on PATH (no NVIDIA driver)"
    code, out, err = run([exe, "-L"])
    gpus = [line.strip() for line in out.splitlines() if line.startswith("GPU ")]
    if code != 0 or not gpus:
        first = (err or out).strip().splitlines()[:1]
        return [], "`nvidia-smi -L` lists no GPU (exit {}{})".format(code, ": " + first[0] if first else "")
    return gpus, ""


def driver_cuda():
    """The newest CUDA version the driver supports ("CUDA Version: 13.0" in nvidia-smi's header), or None."""
    code, out, _ = run(["nvidia-smi"])
    found = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", out) if code == 0 else None
    return (int(found.group(1)), int(found.group(2))) if found else None


def interpreter(venv):
    """(executable, version "3.11.7", implementation, venv exists) of the venv's python, else this one's."""
    exe = os.path.join(venv, "bin", "python")
    if not os.path.exists(exe):
        return sys.executable, "{}.{}.{}".format(*sys.version_info[:3]), sys.implementation.name, False
    code, out, err = run([exe, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3], sys.implementation.name)"])
    if code != 0:
        raise PlanError("{} does not run ({}): remove the broken venv (rm -rf {}) and rerun make install".format(
            exe, (err or "").strip()[:200], venv))
    version, impl = out.split()
    return exe, version, impl, True


def check_python(exe, version, impl, existing, venv):
    """Refuse an interpreter outside pyproject.toml's requires-python before any venv or pip work."""
    low, high, spec = requires_python()
    mm = tuple(int(p) for p in version.split(".")[:2])
    if impl != "cpython" or not low <= mm < high:
        fix = ("remove it (rm -rf {}) and rerun with a supported interpreter, e.g. `make install PYTHON=python3.12`"
               .format(venv) if existing else
               "name a supported interpreter: `make install PYTHON=python3.12` (pyenv, conda or `module load "
               "python` provide one)")
        raise PlanError("{} is {} {}, outside requires-python \"{}\" (pyproject.toml) and the locks' CPython "
                        "versions: {}".format(exe, impl, version, spec, fix))
    return "{}.{}".format(*mm)


def choose(torch, minor, gpus, no_gpu_reason, summaries):
    """(lock key, why) for TORCH=torch on CPython `minor`; PlanError where the asked-for lock cannot serve it."""
    cpu_ok = minor in summaries["cpu"]["pythons"]
    if torch == "cpu" and not cpu_ok:
        raise PlanError("TORCH=cpu: requirements.lock serves CPython {} only (its header; the torch+cpu wheel it "
                        "was locked against is built for that) and this interpreter is {}. Fix: TORCH=cuda (PyPI's "
                        "torch runs on CPU), or PYTHON=python{}, or {}".format(
                            ", ".join(summaries["cpu"]["pythons"]), minor, summaries["cpu"]["pythons"][0],
                            CPU_LOCK_FOR_ALL))
    if torch in ("cpu", "cuda"):
        return torch, "TORCH={} asked for it".format(torch)
    if gpus:
        return "cuda", "`nvidia-smi -L` lists {} GPU(s): {} (TORCH=cpu overrides)".format(len(gpus), "; ".join(gpus))
    if cpu_ok:
        return "cpu", "no NVIDIA GPU visible: {} (TORCH=cuda overrides)".format(no_gpu_reason)
    return "cuda", ("no NVIDIA GPU visible ({}), but requirements.lock serves CPython {} only, so CPython {} gets "
                    "PyPI's torch, the CUDA build: it runs on CPU, after downloading CUDA wheels it will not use. "
                    "For a CPU build instead: PYTHON=python{} or {}").format(
                        no_gpu_reason, ", ".join(summaries["cpu"]["pythons"]), minor,
                        summaries["cpu"]["pythons"][0], CPU_LOCK_FOR_ALL)


def driver_warning(info, gpus):
    """A CUDA lock on a driver too old for its runtime: say what to do (the run still starts, on no GPU)."""
    need = tuple(int(p) for p in info["cuda"].split(".")) if info["cuda"] and gpus else None
    have = driver_cuda() if need else None
    if not have or have >= need:
        return ""
    return ("warning: the driver supports CUDA {}.{} (nvidia-smi), this lock's torch needs CUDA {}: update the "
            "NVIDIA driver, or lock a matching build: `make lock TORCH=cuda TORCH_BACKEND=cu126` (untested; "
            "cu126/cu128/cu129 from the PyTorch index)").format(have[0], have[1], info["cuda"])


def torch_build(info):
    """torch's pin and build, read from the lock (its CUDA runtime pin, nvidia-* and triton pins)."""
    if not info["cuda"]:
        return "{} (CPU build)".format(info["torch"])
    return "{} (CUDA {} build: {} nvidia-* wheels, triton {}; also runs on CPU)".format(
        info["torch"], info["cuda"], len(info["nvidia"]), info["triton"])


def installed_lock(venv):
    """The lock the existing .venv was installed from (.venv/.lock), or None."""
    path = os.path.join(venv, ".lock")
    return open(path).read().strip() if os.path.exists(path) else None


def plan(torch, venv):
    """The plan as printable lines and the chosen lock's file name."""
    exe, version, impl, existing = interpreter(venv)
    minor = check_python(exe, version, impl, existing, venv)
    summaries = {key: lock_summary(os.path.join(ROOT, name)) for key, name in LOCKS.items()}
    gpus, no_gpu = visible_gpus()
    key, why = choose(torch, minor, gpus, no_gpu, summaries)
    info, name = summaries[key], LOCKS[key]
    lines = ["make install plan (nothing installed; scripts/install_plan.py)",
             "  python: {} (CPython {}; {})".format(exe, version, "existing {}".format(venv) if existing
                                                    else "the new {} is made from it".format(venv)),
             "  lock:   {} ({} pins, sha256 {})".format(name, info["pins"], info["sha256"][:12]),
             "  torch:  " + torch_build(info),
             "  why:    " + why]
    before = installed_lock(venv)
    if before and before != name:
        lines.append("  switch: {} holds {}; make install removes what that lock pins and this one does not"
                     .format(venv, before))
    warning = driver_warning(info, gpus) if key == "cuda" else ""
    return lines + (["  " + warning] if warning else []), name


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", default="auto", help="auto (default), cpu or cuda: the Makefile's TORCH=")
    parser.add_argument("--venv", default=".venv")
    parser.add_argument("--print", dest="what", choices=("plan", "lock"), default="plan")
    parser.add_argument("--index-for", metavar="LOCK", help="print pip's extra index for LOCK's torch and exit")
    args = parser.parse_args(argv)
    if args.index_for:
        print(index_for(args.index_for))
        return 0
    if args.torch not in ("auto", "cpu", "cuda", ""):
        raise PlanError("TORCH={!r}: use TORCH=cpu, TORCH=cuda, or leave it unset (auto)".format(args.torch))
    lines, name = plan(args.torch or "auto", args.venv)
    print(name if args.what == "lock" else "\n".join(lines))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PlanError as exc:
        sys.exit("make install: " + str(exc))
