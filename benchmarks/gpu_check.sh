#!/usr/bin/env bash
# The checks a GPU session runs (issue 11, item 3): the whole test suite and every chapter notebook in quick, full
# and paper mode on CUDA (icar.setup picks CUDA by itself), the batched-model and paper-mode benchmarks, with
# timings. Everything goes to $OUT (default ./gpu_out): one log per step and summary.txt.
#
#   OUT=/tmp/gpu_out bash benchmarks/gpu_check.sh            # from the repository root, on a machine with CUDA
#
# Exit status: 0 when every step passed; the number of failed steps otherwise (each step runs even if one fails).
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/lib${PYTHONPATH:+:$PYTHONPATH}" ICAR_PROGRESS=0
summary="$OUT/summary.txt"
: > "$summary"
failed=0

step() {  # step NAME COMMAND...: run, log to $OUT/NAME.log, record status and seconds
    local name=$1; shift
    local t0=$SECONDS
    "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    printf '%-28s rc=%-3s %6ss\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$summary"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

{ nvidia-smi; python -c "import torch, icar; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'device', icar.resolve_device('auto'), torch.cuda.get_device_name(0))"; } > "$OUT/machine.txt" 2>&1
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "CUDA is not available on this machine: nothing to check" | tee -a "$summary"; exit 1; }

step tests           python -m pytest -n0 -q tests
step notebooks-quick python -m pytest -n0 -q book            # nbval, ICAR_QUICK=1 from conftest.py
step chapter-times   python benchmarks/chapter_times.py --modes quick,full,paper --timeout 3600 --json "$OUT/chapter_times.json"
step chapter-models  python benchmarks/chapter_models.py --device cuda
step paper-estimate  python benchmarks/paper_estimate.py --device cuda
step batched-loop    python benchmarks/batched_training.py --device cuda
cat "$OUT/chapter-times.log" >> "$summary"
exit "$failed"
