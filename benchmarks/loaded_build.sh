#!/usr/bin/env bash
# Robustness under load: from a fresh clone, build the book three times in a row (each from an empty _build) and run
# the tests three times, while two CPU-bound processes (stress-ng --cpu 2) compete for the cores. Prints the time of
# each run and the load average; exits non-zero if any run fails.
#
#   benchmarks/loaded_build.sh                   # the real thing (about an hour on a 2-core machine)
#   LOADED_DRY_RUN=1 benchmarks/loaded_build.sh  # clone, then print the commands without running them
#
# It reuses the current Python environment (jupyter-book, torch, ...) but imports the clone's library
# (PYTHONPATH=<clone>/lib), and it runs as a new reader would: OMP_NUM_THREADS, MKL_NUM_THREADS, ICAR_THREADS,
# ICAR_QUICK and ICAR_SCALE are unset, so the thread count is icar.setup()'s default and the book builds in full
# mode. Only committed work is cloned.
#
# Settings (environment):
#   LOADED_BUILDS=3  LOADED_TESTS=3        how many book builds and test runs
#   LOADED_REF=HEAD                        what to clone from this repository
#   LOADED_DRY_RUN=1                       print the commands only (no stress, no build, no tests)
#   LOADED_BUILD_CMD, LOADED_TEST_CMD      replace the two commands (the script's own tests use this)
#   LOADED_STRESS_CMD                      replace the background load ("stress-ng --cpu 2")
#   LOADED_KEEP=1                          keep the clone (its path is printed)
set -uo pipefail

repo="$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)" || { echo "loaded_build: not inside a git checkout" >&2; exit 2; }
builds="${LOADED_BUILDS:-3}"
tests="${LOADED_TESTS:-3}"
ref="${LOADED_REF:-HEAD}"
dry="${LOADED_DRY_RUN:-0}"
build_cmd="${LOADED_BUILD_CMD:-jupyter-book build . -W -n --keep-going}"
test_cmd="${LOADED_TEST_CMD:-pytest}"
stress_cmd="${LOADED_STRESS_CMD:-stress-ng --cpu 2 --quiet}"
for n in "$builds" "$tests"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "loaded_build: LOADED_BUILDS and LOADED_TESTS must be non-negative integers; got '$n'" >&2; exit 2; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/icar-loaded.XXXXXX")"
clone="$work/clone"
stress_pid=""
cleanup() {
  if [[ -n "$stress_pid" ]]; then
    kill -- "-$stress_pid" 2>/dev/null || kill "$stress_pid" 2>/dev/null
    wait "$stress_pid" 2>/dev/null
  fi
  [[ "${LOADED_KEEP:-0}" == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

commit="$(git -C "$repo" rev-parse --verify "$ref^{commit}")" || { echo "loaded_build: unknown ref '$ref'" >&2; exit 2; }
git clone -q "$repo" "$clone" && git -C "$clone" checkout -q --detach "$commit" || { echo "loaded_build: clone failed" >&2; exit 2; }
cd "$clone" || exit 2
unset OMP_NUM_THREADS MKL_NUM_THREADS ICAR_THREADS ICAR_QUICK ICAR_SCALE ICAR_CLAIMS_DIR
export PYTHONPATH="$clone/lib"
where="$(python -c 'import icar; print(icar.__file__)' 2>&1)"
echo "== clone of $commit at $clone; icar from $where; $(nproc) cores"
if [[ "$where" != "$clone/lib/"* ]]; then
  echo "loaded_build: python imports icar from $where, not from the clone" >&2; exit 2
fi

load() { cut -d' ' -f1-3 /proc/loadavg; }

if [[ "$dry" == 1 ]]; then
  echo "+ $stress_cmd &"
  for ((i = 1; i <= builds; i++)); do echo "+ rm -rf _build && $build_cmd"; done
  for ((i = 1; i <= tests; i++)); do echo "+ $test_cmd"; done
  echo "== dry run: nothing executed"
  exit 0
fi

if [[ -z "${LOADED_STRESS_CMD:-}" ]] && ! command -v stress-ng >/dev/null; then
  echo "loaded_build: stress-ng is missing (apt-get install stress-ng)" >&2; exit 2
fi
setsid $stress_cmd >/dev/null 2>&1 &
stress_pid=$!
sleep 2
kill -0 "$stress_pid" 2>/dev/null || { echo "loaded_build: the background load did not start: $stress_cmd" >&2; exit 2; }
echo "== background load: $stress_cmd (pid $stress_pid); load average $(load)"

failures=0
summary=()
run() {  # run LABEL COMMAND: time one run, print its outcome and the load average
  local label="$1" cmd="$2" t0 rc secs
  echo "== $label: $cmd (load average before: $(load))"
  t0=$(date +%s.%N)
  bash -c "$cmd"
  rc=$?
  secs=$(python -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
  local line="$label: $([[ $rc == 0 ]] && echo pass || echo "FAIL (exit $rc)") in $secs s, load average after: $(load)"
  echo "== $line"
  summary+=("$line")
  [[ $rc == 0 ]] || failures=$((failures + 1))
}

for ((i = 1; i <= builds; i++)); do
  rm -rf _build
  run "book build $i/$builds" "$build_cmd"
done
for ((i = 1; i <= tests; i++)); do
  run "tests $i/$tests" "$test_cmd"
done

echo "== summary ($commit, under: $stress_cmd)"
printf '   %s\n' "${summary[@]}"
if ((failures)); then
  echo "== $failures of $((builds + tests)) runs FAILED"
  exit 1
fi
echo "== all $((builds + tests)) runs passed"
