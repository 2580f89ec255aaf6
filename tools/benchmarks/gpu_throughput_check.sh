#!/usr/bin/env bash
# The GPU throughput check of docs/performance.md as one prepared script.
#
# Runs tools/benchmarks/benchmark_throughput.py on one device at bf16 with channels-last
# inputs, once per mode in MODES (by default: batched augmentation in
# 'gather' mode, in 'dense' mode, and 'dense' with torch.compile), each under
# its own time limit, then prints one Markdown table of the figures and the
# targets (tools/benchmarks/throughput_table.py). A run that fails or times out is
# reported and the others still run; the exit status is 1 if any failed.
#
# Usage (from anywhere):
#   tools/benchmarks/gpu_throughput_check.sh [OUT_DIR]  # default work_dirs/throughput
#   tools/benchmarks/gpu_throughput_check.sh --help     # this text
# Environment:
#   PYTHON   interpreter with hlss_plugin's requirements (default: python,
#            the active environment's)
#   DEVICE   cuda, cuda:1, cpu ... (default cuda)
#   WORKERS  DataLoader workers end to end (default 12)
#   LIMIT_S  seconds per run before it is stopped (default 200)
#   MODES    runs, each gather|dense[+compile] (default "gather dense dense+compile")
#   EXTRA    more benchmark_throughput.py flags, e.g. "--quick" for a smoke
#            run on a CPU: DEVICE=cpu WORKERS=1 MODES="gather dense" EXTRA=--quick
# Writes OUT_DIR/<mode>.json and OUT_DIR/<mode>.log per run and
# OUT_DIR/summary.md; about 5 minutes on one H100 with the defaults.
set -uo pipefail
case "${1:-}" in
  -h|--help)
    # the comment block above, from "The GPU throughput check" to "Writes"
    sed -n '2,/^set -uo pipefail/{/^set /d;s/^# \{0,1\}//;p}' "$0"
    exit 0 ;;
  -*)
    echo "gpu_throughput_check: unknown option '$1'; usage: $0 [OUT_DIR] (--help for more)" >&2
    exit 2 ;;
esac
cd "$(dirname "$0")/../.."
OUT_DIR=${1:-work_dirs/throughput}
PYTHON=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-12}
LIMIT_S=${LIMIT_S:-200}
MODES=${MODES:-gather dense dense+compile}
EXTRA=${EXTRA:-}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1

for mode in $MODES; do
  case "$mode" in
    gather|dense|gather+compile|dense+compile) ;;
    *) echo "gpu_throughput_check: unknown mode '$mode' in MODES; use gather, dense, gather+compile or dense+compile" >&2; exit 2 ;;
  esac
done
"$PYTHON" -c 'import hlss_plugin, torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' \
  || { echo "gpu_throughput_check: $PYTHON cannot import hlss_plugin/torch; run 'pip install -e .' first or set PYTHON" >&2; exit 2; }
if [[ "$DEVICE" == cuda* ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
fi

failed=()
jsons=()
for mode in $MODES; do
  aug=${mode%%+*}
  flags=()
  [[ "$mode" == *+compile ]] && flags+=(--compile)
  name=${mode//+/_}
  echo "== $mode (limit ${LIMIT_S}s) -> $OUT_DIR/$name.json"
  rm -f "$OUT_DIR/$name.json"
  # shellcheck disable=SC2086  # EXTRA holds several flags
  timeout "$LIMIT_S" "$PYTHON" tools/benchmarks/benchmark_throughput.py \
    --device "$DEVICE" --precision bf16 --channels-last \
    --workers "$WORKERS" --augment-mode "$aug" "${flags[@]}" $EXTRA \
    --json-out "$OUT_DIR/$name.json" >"$OUT_DIR/$name.log" 2>&1
  rc=$?
  if [ "$rc" -ne 0 ] || [ ! -s "$OUT_DIR/$name.json" ]; then
    [ "$rc" -eq 124 ] && why="timed out after ${LIMIT_S}s" || why="exit $rc"
    echo "   FAILED ($why); last lines of $OUT_DIR/$name.log:"
    tail -n 15 "$OUT_DIR/$name.log" | sed 's/^/   | /'
    failed+=("$mode")
  else
    jsons+=("$OUT_DIR/$name.json")
    grep -v '^{' "$OUT_DIR/$name.log" | tail -n 13 | sed 's/^/   /'
  fi
done

if [ "${#jsons[@]}" -gt 0 ]; then
  "$PYTHON" tools/benchmarks/throughput_table.py "${jsons[@]}" | tee "$OUT_DIR/summary.md"
fi
if [ "${#failed[@]}" -gt 0 ]; then
  echo "gpu_throughput_check: failed runs: ${failed[*]}" >&2
  exit 1
fi
