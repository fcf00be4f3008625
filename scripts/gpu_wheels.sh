#!/usr/bin/env bash
# `make gpu-wheels`: the wheel folder `make gpu-check` installs from on a GPU machine that has its own
# CUDA torch and no network (issue #26; docs/gpu-check.md). Made here, where PyPI is reachable:
#   * lodabench's runtime pins from the lock (scripts/gpu_check.py --wheel-plan: pyproject's
#     dependencies and what they pull in, never torch, triton, nvidia-* or test-only packages, less
#     the big ones no check imports: gpu_wheel_plan.SKIPPED; plus peft and what only it needs for
#     `make bench-gpu`'s PEFT LoRA step: gpu_wheel_plan.BENCH_EXTRAS), as CPython 3.12 manylinux x86_64 wheels,
#     hash-checked against the lock; a pin PyPI has only as an sdist (antlr4-python3-runtime 4.9.3,
#     rouge-score 0.1.2) is built here, and must come out pure Python (py3-none-any);
#   * gpt2-tokenizer/: the GPT-2 BPE files (tiny-gpt2 and the random-init GPT-2 medium use them);
#   * SOURCE.json: the commit it was made from (a copied checkout may have no .git).
# No lodabench wheel: lodabench finds conf/ beside src/ (lodabench.paths.CONF_DIR), so a wheel
# without the checkout cannot run; gpu_check.py puts the checkout's src/ on PYTHONPATH instead.
# Settings (environment or make variables): GPU_WHEELS_DIR (gpu-wheels), GPU_LOCK (requirements-cuda.lock, else requirements.lock),
# GPU_PYTHON_VERSION (3.12), HAVE (the GPU machine's `pip freeze`: what it holds is not downloaded),
# GPU_WHEELS_WITH (names from gpu_wheel_plan.SKIPPED to carry anyway), GPU_WHEELS_LIMIT_MIB (60).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DIR=${GPU_WHEELS_DIR:-gpu-wheels}
# The CUDA lock where there is one: it is resolved for CPython 3.11-3.13, the GPU machine's world.
LOCK=${GPU_LOCK:-$([ -f requirements-cuda.lock ] && echo requirements-cuda.lock || echo requirements.lock)}
PYV=${GPU_PYTHON_VERSION:-3.12}
LIMIT_MIB=${GPU_WHEELS_LIMIT_MIB:-60}   # issue #26: under 60 MiB, so the folder travels with a checkout
# manylinux_2_28 is the locked wheels' glibc floor (README); pip matches each tag exactly, so name them all.
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_26_x86_64 manylinux_2_24_x86_64
           manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 linux_x86_64)

plan_args=(--wheel-plan --lock "$LOCK")
[ -n "${HAVE:-}" ] && plan_args+=(--have "$HAVE")
for name in ${GPU_WHEELS_WITH:-}; do plan_args+=(--with "$name"); done

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
$PY scripts/gpu_check.py "${plan_args[@]}" > "$tmp/plan.txt"
echo "gpu-wheels: $(wc -l < "$tmp/plan.txt") pins from $LOCK for CPython $PYV manylinux x86_64"

# --no-deps (the plan is the closure already) lets pip take an sdist where a pin has no wheel.
$PY -m pip download -q --no-deps --require-hashes --python-version "$PYV" --implementation cp \
  "${PLATFORMS[@]/#/--platform=}" -d "$tmp/dl" -r "$tmp/plan.txt"
mkdir -p "$tmp/out"
mv "$tmp"/dl/*.whl "$tmp/out/" 2>/dev/null || true
for sdist in "$tmp"/dl/*; do
  [ -e "$sdist" ] || continue
  $PY -m pip wheel -q --no-deps -w "$tmp/built" "$sdist"
done
for wheel in "$tmp"/built/*.whl; do
  [ -e "$wheel" ] || continue
  case "$wheel" in
    *-py3-none-any.whl|*-py2.py3-none-any.whl) mv "$wheel" "$tmp/out/" ;;
    *) echo "gpu-wheels: $(basename "$wheel") was built from an sdist for this machine, not for CPython $PYV:" \
            "carry it from the GPU machine's own pip, or leave it out (gpu_wheel_plan.SKIPPED)" >&2; exit 1 ;;
  esac
done

# The GPT-2 tokenizer: $LODABENCH_GPT2_TOKENIZER, else where tiny-gpt2 finds it (../shared/tokenizers/gpt2),
# else the hub's "gpt2" (its four tokenizer files, into the local HF cache).
tok=${LODABENCH_GPT2_TOKENIZER:-$($PY -c 'from lodabench.models import default_gpt2_tokenizer_location as d; print(d())')}
if [ ! -f "$tok/vocab.json" ]; then
  tok=$($PY -c 'from huggingface_hub import snapshot_download as s; print(s("gpt2", allow_patterns=["vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json"]))')
fi
mkdir -p "$tmp/out/gpt2-tokenizer"
for f in vocab.json merges.txt tokenizer.json tokenizer_config.json; do
  [ -f "$tok/$f" ] && cp "$tok/$f" "$tmp/out/gpt2-tokenizer/"
done

commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
dirty=$([ -n "$(git status --porcelain 2>/dev/null)" ] && echo true || echo false)
printf '{"commit": "%s", "dirty": %s, "lock": "%s", "python_version": "%s", "made": "%s"}\n' \
  "$commit" "$dirty" "$LOCK" "$PYV" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$tmp/out/SOURCE.json"

bytes=$(du -sb "$tmp/out" | cut -f1)
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "gpu-wheels: $(ls "$tmp"/out/*.whl | wc -l) wheels + gpt2-tokenizer/: $mib MiB (limit $LIMIT_MIB MiB)"
if [ "$bytes" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "gpu-wheels: over $LIMIT_MIB MiB: pass HAVE=<the GPU machine's pip freeze> so what it holds is not" \
       "downloaded, or carry fewer GPU_WHEELS_WITH names" >&2
  exit 1
fi
rm -rf "$DIR" && mkdir -p "$(dirname "$DIR")" && mv "$tmp/out" "$DIR"
echo "gpu-wheels: wrote $DIR/; carry it with the checkout and run make gpu-check there (docs/gpu-check.md)"
