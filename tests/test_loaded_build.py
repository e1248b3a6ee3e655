"""benchmarks/loaded_build.sh, exercised with stand-in commands (the real run takes about an hour)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "loaded_build.sh"

pytestmark = pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                                reason="needs a git checkout to clone")

# What each stand-in build checks: it runs in a fresh clone (not this checkout), from an empty _build, with the
# clone's library on PYTHONPATH and none of the thread variables a reader would not have set.
IN_A_FRESH_CLONE = (
    f"test \"$PWD\" != {str(ROOT)!r} && test -f _config.yml && test ! -e _build && mkdir _build"
    " && test \"$PYTHONPATH\" = \"$PWD/lib\" && test -z \"${OMP_NUM_THREADS:-}${ICAR_THREADS:-}${ICAR_QUICK:-}${ICAR_SCALE:-}\""
)


def run_script(tmp_path, **env):
    full = {**os.environ, "TMPDIR": str(tmp_path), "LOADED_STRESS_CMD": "sleep 300", **env}
    return subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=full, capture_output=True, text=True, timeout=240)


def test_dry_run_prints_the_commands(tmp_path):
    out = run_script(tmp_path, LOADED_DRY_RUN="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("+ rm -rf _build && jupyter-book build . -W -n --keep-going") == 3
    assert out.stdout.count("+ pytest\n") == 3
    assert "nothing executed" in out.stdout and re.search(r"icar from \S+/clone/lib/icar/__init__.py", out.stdout)
    assert not list(tmp_path.glob("icar-loaded.*"))   # the clone is removed afterwards


def test_runs_pass_are_timed_and_the_load_is_stopped(tmp_path):
    out = run_script(tmp_path, LOADED_BUILD_CMD=IN_A_FRESH_CLONE, LOADED_TEST_CMD="true", LOADED_TESTS="2")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = re.findall(r"== (book build \d/3|tests \d/2): pass in [\d.]+ s, load average after: [\d.]+ [\d.]+ [\d.]+",
                       out.stdout)
    assert lines == ["book build 1/3", "book build 2/3", "book build 3/3", "tests 1/2", "tests 2/2"]
    assert "all 5 runs passed" in out.stdout
    pid = int(re.search(r"\(pid (\d+)\)", out.stdout).group(1))
    assert not Path(f"/proc/{pid}").exists() or "sleep" not in Path(f"/proc/{pid}/cmdline").read_text()


def test_any_failure_makes_it_exit_non_zero(tmp_path):
    out = run_script(tmp_path, LOADED_BUILD_CMD="true", LOADED_TEST_CMD="exit 3", LOADED_BUILDS="1", LOADED_TESTS="2")
    assert out.returncode == 1
    assert len(re.findall(r"^== tests .*FAIL \(exit 3\)", out.stdout, re.M)) == 2 and "2 of 3 runs FAILED" in out.stdout
    out = run_script(tmp_path, LOADED_BUILD_CMD="false", LOADED_TEST_CMD="true", LOADED_BUILDS="2", LOADED_TESTS="0")
    assert out.returncode == 1 and "2 of 2 runs FAILED" in out.stdout   # every build still runs after a failure


def test_bad_settings_get_a_clear_error(tmp_path):
    out = run_script(tmp_path, LOADED_BUILDS="three")
    assert out.returncode == 2 and "must be non-negative integers; got 'three'" in out.stderr
    out = run_script(tmp_path, LOADED_REF="no-such-ref")
    assert out.returncode == 2 and "unknown ref 'no-such-ref'" in out.stderr


def test_ci_builds_once_and_pins_a_kernel_without_the_raw_reply_send():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.count("jupyter-book build . -W -n --keep-going") == 1   # no retry that could hide a flaky notebook
    from packaging.requirements import Requirement
    line = next(l for l in (ROOT / "requirements.txt").read_text().splitlines() if l.startswith("ipykernel"))
    spec = Requirement(line).specifier
    assert "7.4.0" in spec and not any(v in spec for v in ("7.0.0", "7.2.0", "7.3.0"))
