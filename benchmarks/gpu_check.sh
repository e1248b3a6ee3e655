#!/usr/bin/env bash
# The checks a GPU session runs (issue 11, item 3): every chapter notebook on CUDA (icar.setup picks CUDA by itself),
# chapter 5 in paper mode, the paper-mode and batched-model benchmarks, and the test suite, with timings. The steps
# run in that order (what matters most first) inside a time budget, so one call of a lent machine gets the most
# important answers even when it cannot get all of them. Everything goes to $OUT (default ./gpu_out): one log per
# step and summary.txt.
#
#   bash benchmarks/gpu_wheels.sh                        # first, where PyPI is reachable: the wheels in .whl/
#   OUT=/tmp/gpu_out BUDGET_S=540 bash benchmarks/gpu_check.sh    # then on the machine with CUDA, repository root
#   STEPS="notebooks-quick paper-ch5" bash benchmarks/gpu_check.sh # a subset, in the order given
#
# If .whl/ holds wheels, they are installed into a private folder (PYTHONPATH) with --no-index, so the machine's own
# torch stays. Each step gets what is left of BUDGET_S (seconds, default 540) as its timeout; a step that would start
# with under 30 s left is skipped and marked so. ICAR_GPU_CHECK_CPU=1 runs the steps without CUDA (a dry run of the
# script itself). Exit status: 0 when every step that ran passed; otherwise the number of failed or skipped steps.
set -u
OUT=${OUT:-gpu_out}
BUDGET_S=${BUDGET_S:-540}
STEPS=${STEPS:-"notebooks-quick paper-ch5 paper-estimate tests chapter-times chapter-models batched-loop"}
mkdir -p "$OUT"
export ICAR_PROGRESS=0 PYTHONUNBUFFERED=1
summary="$OUT/summary.txt"
: > "$summary"
start=$SECONDS

if ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/icar-site \
        .whl/*.whl > "$OUT/wheels.log" 2>&1 || { echo "installing .whl/ failed (see wheels.log)" | tee -a "$summary"; }
    export PYTHONPATH="/tmp/icar-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/lib:${PYTHONPATH:-}"

{ nvidia-smi; python3 -c "import torch, icar; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'device', icar.resolve_device('auto'), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')"; } \
    > "$OUT/machine.txt" 2>&1
if [ "${ICAR_GPU_CHECK_CPU:-0}" != 1 ]; then
    python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
        echo "CUDA is not available on this machine: nothing to check" | tee -a "$summary"; exit 1; }
    dev=cuda
else
    dev=cpu
fi

failed=0
step() {  # step NAME COMMAND...: run under what is left of the budget, log to $OUT/NAME.log, record rc and seconds
    local name=$1; shift
    local left=$((BUDGET_S - (SECONDS - start)))
    if [ "$left" -lt 30 ]; then
        printf '%-16s skipped: %ss of the %ss budget left\n' "$name" "$left" "$BUDGET_S" | tee -a "$summary"
        failed=$((failed + 1)); return
    fi
    local t0=$SECONDS
    timeout --kill-after=10 "$left" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    local note=""; [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && note=" (stopped at the budget)"
    printf '%-16s rc=%-3s %6ss%s\n' "$name" "$rc" "$((SECONDS - t0))" "$note" | tee -a "$summary"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

for s in $STEPS; do
    case $s in
        # nbval over every chapter in quick mode (ICAR_QUICK=1 from conftest.py): each claim asserted on CUDA
        notebooks-quick) step "$s" python3 -m pytest -q -n 4 book ;;
        paper-ch5)       step "$s" python3 benchmarks/chapter_times.py --modes paper --chapters 05 --timeout 3600 \
                                   --json "$OUT/paper_ch5.json" ;;
        paper-estimate)  step "$s" python3 benchmarks/paper_estimate.py --device "$dev" ;;
        # the library tests: the book's toolchain (jupyter-book, nbgrader, Chromium) is not on such a machine
        tests)           step "$s" python3 -m pytest -q -n 8 tests --continue-on-collection-errors \
                                   --ignore=tests/test_pages.py --ignore=tests/test_classroom.py \
                                   --ignore=tests/test_sphinx_cache.py \
                                   --ignore=tests/test_loaded_build.py --ignore=tests/test_ledger.py ;;
        chapter-times)   step "$s" python3 benchmarks/chapter_times.py --modes quick,full,paper --timeout 3600 \
                                   --json "$OUT/chapter_times.json" ;;
        chapter-models)  step "$s" python3 benchmarks/chapter_models.py --quick --device "$dev" ;;
        batched-loop)    step "$s" python3 benchmarks/batched_training.py --device "$dev" ;;
        *) echo "unknown step $s" | tee -a "$summary"; failed=$((failed + 1)) ;;
    esac
done
for f in paper-ch5 chapter-times; do [ -f "$OUT/$f.log" ] && grep -v WARNING "$OUT/$f.log" >> "$summary"; done
echo "total $((SECONDS - start))s of the ${BUDGET_S}s budget" | tee -a "$summary"
exit "$failed"
