#!/usr/bin/env bash
# The whole GPU check in one call, within ~10 minutes, on a machine with a CUDA GPU, a CUDA build
# of torch and nvcc (no network needed):
#
#   bash benchmarks/gpu/device_check.sh [OUT_DIR]        # default: $OUT, else ./gpu-check
#
# Stages (each logged to OUT_DIR/<stage>.log; one line per stage in OUT_DIR/summary.txt):
#   env       versions (GPU, driver, torch, triton, nvcc, pytest plugins)
#   build     pip install --no-build-isolation --no-deps .  (CUDA kernels for sm_90 only, to save
#             time: TUSK_CUDA_ARCHS=90; falls back to an in-place build if pip cannot install)
#   info      tusk info
#   kernels   tests/test_cuda_kernels.py on cuda (raw CUDA ops vs references, half precision, big
#             shapes, determinism, no host sync; its emulated half runs in CI, not here)
#   suite     the rest of the test suite on the GPU targets (-k cuda)
#   bench-*   benchmarks/bm_gpu.py per op (cuda, triton, eager reference), JSON per op
#   compile   torch.compile of the reference on the large config (what time is left)
#   summary   benchmarks/gpu/summarize.py over all JSON files -> OUT_DIR/summary.md
# A stage that overruns is interrupted (SIGINT, so pytest still writes its JSON) and the next
# one starts; stages are skipped once the budget (TUSK_CHECK_BUDGET_S, default 560 s) is spent.
# TUSK_CHECK_SKIP_BUILD=1 reuses an in-place build (a rerun on the same machine, or a dry run of
# the script on a CPU machine, where every GPU row skips with "needs a CUDA GPU").
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

OUT_DIR=${1:-${OUT:-gpu-check}}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
BUDGET=${TUSK_CHECK_BUDGET_S:-560}
PY=${PYTHON:-python}
START=$SECONDS
: > "$OUT_DIR/summary.txt"

# stage NAME LIMIT_S COMMAND...: run with a time limit capped by the remaining budget.
# TUSK_CHECK_STAGES (comma-separated stage names or prefixes, e.g. "kernels,bench") limits the run.
stage() {
  local name=$1 limit=$2
  shift 2
  if [ -n "${TUSK_CHECK_STAGES:-}" ] && [ "$name" != build ] && [ "$name" != build-inplace ]; then
    local wanted=0 s
    IFS=, read -ra selected <<< "$TUSK_CHECK_STAGES"
    for s in "${selected[@]}"; do [[ $name == "$s"* ]] && wanted=1; done
    [ $wanted = 0 ] && return 0
  fi
  local left=$((BUDGET - (SECONDS - START)))
  if [ "$left" -lt 15 ]; then
    echo "$name: SKIPPED (budget spent)" | tee -a "$OUT_DIR/summary.txt"
    return 124
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$SECONDS
  timeout --signal=INT --kill-after=15 "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
  local rc=$?
  echo "$name: rc=$rc in $((SECONDS - t0)) s (limit $limit s)" | tee -a "$OUT_DIR/summary.txt"
  tail -n 8 "$OUT_DIR/$name.log"
  return $rc
}

stage env 30 bash -c "nvidia-smi; $PY -c 'import torch, sys; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.get_device_name(0))'; nvcc --version; $PY -m pip list 2>/dev/null | grep -i -E 'torch|triton|pytest|numpy|ninja|setuptools'"

export TUSK_BUILD_CUDA=1 TUSK_CUDA_ARCHS=${TUSK_CUDA_ARCHS:-90} MAX_JOBS=${MAX_JOBS:-16}
if [ "${TUSK_CHECK_SKIP_BUILD:-0}" = 1 ]; then  # rerun on a warm machine, or a dry run elsewhere
  echo "build: skipped (TUSK_CHECK_SKIP_BUILD=1); using the in-place build" | tee -a "$OUT_DIR/summary.txt"
  export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
elif ! stage build 300 "$PY" -m pip install --no-build-isolation --no-deps -v .; then
  echo "pip install failed; building in place instead" | tee -a "$OUT_DIR/summary.txt"
  stage build-inplace 300 "$PY" setup.py build_ext --inplace || { echo "build failed: stopping"; exit 1; }
  export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
fi

# Python and pytest run from OUT_DIR with absolute paths, so the source tree's tusk/ (which has no
# compiled extension after `pip install .`) never shadows the installed package.
IN_OUT=(bash -c 'cd "$0" && exec "$@"' "$OUT_DIR")
stage info 60 "${IN_OUT[@]}" "$PY" -m tusk.cli info

PYTEST=("${IN_OUT[@]}" "$PY" -m pytest -q -p no:cacheprovider -rfE --rootdir "$REPO")
# The emulated half of test_cuda_kernels and the emulator's own tests need no GPU (CI runs them):
# not here, where device time is scarce.
stage kernels 150 "${PYTEST[@]}" "$REPO/tests/test_cuda_kernels.py" -k "not emulated" --junitxml="$OUT_DIR/kernels.xml"
stage suite 100 "${PYTEST[@]}" "$REPO/tests" -k cuda --ignore="$REPO/tests/test_cuda_kernels.py" \
  --ignore="$REPO/tests/test_cuda_emulator.py" --junitxml="$OUT_DIR/suite.xml"

BENCH=("${PYTEST[@]}" "$REPO/benchmarks/bm_gpu.py" --benchmark-columns=min,median,mean,rounds)
for op in sample_descriptors splat_gaussians alpha_composite detect_keypoints sliced_wasserstein gmm_prototype_samples; do
  stage "bench-$op" 40 "${BENCH[@]}" -k "$op and not compile" --benchmark-json="$OUT_DIR/bench-$op.json"
done
stage compile 150 "${BENCH[@]}" -k "compile and large" --benchmark-json="$OUT_DIR/bench-compile.json"

shopt -s nullglob
jsons=("$OUT_DIR"/bench-*.json)
if [ ${#jsons[@]} -gt 0 ]; then
  "$PY" "$REPO/benchmarks/gpu/summarize.py" "${jsons[@]}" --markdown > "$OUT_DIR/summary.md" 2>&1
  echo "summarize: rc=$?" | tee -a "$OUT_DIR/summary.txt"
  cat "$OUT_DIR/summary.md"
fi
echo "total: $((SECONDS - START)) s" | tee -a "$OUT_DIR/summary.txt"
