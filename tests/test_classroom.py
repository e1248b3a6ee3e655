"""nbgrader itself, offline, on every chapter's assignment; the student files; the links to them.

The module fixture runs the instructor page's commands in a copy of the course: ``nbgrader generate_assignment
"ch*" --force``, then ``nbgrader autograde "ch*" --force`` on three submissions per chapter (the instructor version,
the untouched student version, and the instructor version with the first exercise answered wrongly), then
``nbgrader export``. It prints how long each command took.
"""
import csv
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

import icar
from icar import classroom
from icar.exercises import exercises_of

pytest.importorskip("nbgrader")

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [f"ch{n:02d}" for n in range(1, 9)]
SOURCE = ROOT / "book" / "assignments"
STUDENT = ROOT / "book" / "student"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
COLAB = "https://colab.research.google.com/github/" + CONFIG["repository"]["url"].removeprefix("https://github.com/")
RELEASE = f"v{icar.__version__}"
WRONG_SUFFIX = '''
_right_answer = {fn}
def {fn}(*args):                       # a wrong answer: the right one, scaled
    out = _right_answer(*args)
    return tuple(1.5 * o for o in out) if isinstance(out, tuple) else 1.5 * out'''


def nb_path(folder: Path, chapter: str) -> Path:
    return folder / chapter / f"{chapter}_assignment.ipynb"


def nbgrader(*args: str, cwd: Path) -> float:
    """Run one nbgrader command as the instructor page writes it; return its wall time in seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "[ERROR]" not in proc.stderr and "| ERROR]" not in proc.stderr, proc.stderr
    return time.perf_counter() - t0


def wrong_submission(source: Path, chapter: str) -> nbformat.NotebookNode:
    nb = nbformat.read(source, as_version=4)
    first = exercises_of(chapter)[0]
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")
                and f"def {first.function}(" in c.source)
    cell.source += WRONG_SUFFIX.format(fn=first.function)
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(SOURCE, course / "book" / "assignments")
    (course / "classroom").mkdir()
    times = {"generate_assignment": nbgrader("generate_assignment", "ch*", "--force", cwd=course)}
    release = course / "book" / "student" / "assignments"
    for ch in CHAPTERS:
        subs = {"instructor": nbformat.read(nb_path(SOURCE, ch), as_version=4),
                "blank": nbformat.read(nb_path(release, ch), as_version=4),
                "wrong": wrong_submission(nb_path(SOURCE, ch), ch)}
        for student, nb in subs.items():
            target = nb_path(course / "classroom" / "submitted" / student, ch)
            target.parent.mkdir(parents=True)
            nbformat.write(nb, target)
    times["autograde"] = nbgrader("autograde", "ch*", "--force", cwd=course)
    times["export"] = nbgrader("export", "--to", "classroom/grades.csv", cwd=course)
    with open(course / "classroom" / "grades.csv", newline="") as f:
        grades = {(r["assignment"], r["student_id"]): (float(r["score"]), float(r["max_score"])) for r in csv.DictReader(f)}
    print("\nnbgrader wall times (s):", {k: round(v, 1) for k, v in times.items()})
    for ch in CHAPTERS:
        print(ch, {s: grades[(ch, s)] for s in ("instructor", "blank", "wrong")})
    return course, grades


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_autograde_scores(graded, chapter):
    _, grades = graded
    total = sum(ex.points for ex in exercises_of(chapter))
    first = exercises_of(chapter)[0].points
    assert grades[(chapter, "instructor")] == (total, total)
    assert grades[(chapter, "blank")] == (0, total)
    assert grades[(chapter, "wrong")] == (total - first, total)


def errors(nb: nbformat.NotebookNode) -> list[str]:
    return [o.get("ename", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_student_version_runs_to_the_end_with_only_the_stubs_failing(graded, chapter):
    course, _ = graded
    blank = nbformat.read(nb_path(course / "classroom" / "autograded" / "blank", chapter), as_version=4)
    assert errors(blank) and set(errors(blank)) == {"NotImplementedError"}, errors(blank)
    last = "".join(o.get("text", "") for o in blank.cells[-1].outputs)
    assert "Points so far: 0 / 10" in last and "not attempted" in last, last
    full = nbformat.read(nb_path(course / "classroom" / "autograded" / "instructor", chapter), as_version=4)
    assert errors(full) == []
    assert "Points so far: 10 / 10" in "".join(o.get("text", "") for o in full.cells[-1].outputs)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_committed_student_assignment_is_what_nbgrader_makes(graded, chapter):
    course, _ = graded
    fresh = json.loads(nb_path(course / "book" / "student" / "assignments", chapter).read_text())
    committed = json.loads(nb_path(STUDENT / "assignments", chapter).read_text())
    assert committed == fresh, (f"book/student/assignments/{chapter} is out of date: run `python -m icar.classroom` "
                                "and commit book/student")


# --------------------------------------------------------------------------------------- the instructor versions
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_assignment_structure(chapter):
    nb = nbformat.read(nb_path(SOURCE, chapter), as_version=4)
    meta = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    ids = [m["grade_id"] for m in meta if m]
    assert len(ids) == len(nb.cells) == len(set(ids)), "every cell needs a unique nbgrader grade_id"
    tests = [(c, m) for c, m in zip(nb.cells, meta) if m.get("grade")]
    exercises = exercises_of(chapter)
    assert len(tests) == len(exercises) >= 2
    for (cell, m), ex in zip(tests, exercises):
        i = nb.cells.index(cell)
        sol = meta[i - 1]
        assert sol.get("solution") and not sol.get("grade") and not sol.get("locked"), "a solution cell comes first"
        assert f"def {ex.function}(" in nb.cells[i - 1].source
        assert re.search(r"### BEGIN SOLUTION\n(.|\n)+### END SOLUTION", nb.cells[i - 1].source)
        assert m["locked"] and not m["solution"] and m["points"] == ex.points and m["grade_id"] == ex.grade_id
        assert cell.source.splitlines()[1] == f"ex.{ex.checker.__name__}({ex.function})"
        assert "### BEGIN HIDDEN TESTS" in cell.source and "seed=seed" in cell.source
        statement = nb.cells[i - 2].source
        assert f"({ex.points} points)" in statement.splitlines()[0]
    assert f"**{sum(e.points for e in exercises)}**" in nb.cells[0].source
    assert f'scoreboard("{chapter}", globals())' in nb.cells[-1].source
    for c, m in zip(nb.cells, meta):
        assert m.get("locked") or m.get("solution"), "statements, setup and tests are locked"
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None


# ------------------------------------------------------------------------------------------------ student files
def solution_lines(text: str) -> set[str]:
    """The lines between BEGIN/END SOLUTION and BEGIN/END HIDDEN TESTS (long enough to be distinctive)."""
    out, inside = set(), False
    for line in text.splitlines():
        if "### BEGIN" in line:
            inside = True
        elif "### END" in line:
            inside = False
        elif inside and len(line.strip()) > 12 and not line.strip().startswith("#"):
            out.add(line.strip())
    return out


def chapter_solution_lines(nb: nbformat.NotebookNode) -> set[str]:
    out = set()
    for c in nb.cells:
        if c.cell_type == "markdown":
            for block in classroom._FENCE.finditer(c.source):
                out |= {ln.strip() for ln in block.group(0).splitlines()[1:-1] if len(ln.strip()) > 20 and
                        not ln.startswith(":")}
    return out


STUDENT_FILES = sorted(STUDENT.rglob("*.ipynb"))


def test_there_are_student_files():
    names = {p.relative_to(STUDENT).as_posix() for p in STUDENT_FILES}
    assert {f"assignments/{c}/{c}_assignment.ipynb" for c in CHAPTERS} <= names
    assert {p.name for p in (ROOT / "book").glob(classroom.CHAPTER_GLOB)} <= names


def test_no_solution_survives_in_a_student_file():
    secret = set()
    for ch in CHAPTERS:
        secret |= solution_lines("\n".join(c.source for c in nbformat.read(nb_path(SOURCE, ch), as_version=4).cells))
    for chapter in (ROOT / "book").glob(classroom.CHAPTER_GLOB):
        secret |= chapter_solution_lines(nbformat.read(chapter, as_version=4))
    assert len(secret) > 100
    for path in STUDENT_FILES:
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "{solution}"):
            assert marker not in path.read_text(), f"{path.relative_to(ROOT)} contains {marker!r}"
        lines = {ln.strip() for ln in text.splitlines()}
        leaked = secret & lines
        assert not leaked, f"{path.relative_to(ROOT)} shows solution lines: {sorted(leaked)[:3]}"


@pytest.mark.parametrize("chapter", sorted((ROOT / "book").glob(classroom.CHAPTER_GLOB)), ids=lambda p: p.name)
def test_committed_student_chapter_is_in_sync(chapter):
    fresh = classroom.student_chapter(nbformat.read(chapter, as_version=4))
    committed = nbformat.read(STUDENT / chapter.name, as_version=4)
    assert committed == fresh, f"book/student/{chapter.name} is out of date: run `python -m icar.classroom`"
    n_ex = sum(c.source.count("{exercise}") for c in fresh.cells if c.cell_type == "markdown")
    n_stub = sum(c.source.count(classroom.SOLUTION_STUB) for c in fresh.cells if c.cell_type == "markdown")
    n_sol = sum(c.source.count("{solution}") for c in nbformat.read(chapter, as_version=4).cells
                if c.cell_type == "markdown")
    assert n_stub == n_sol and n_ex >= n_sol


# ------------------------------------------------------------------------------------------------ links
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_links_to_its_assignment_and_student_copy(chapter):
    path = next((ROOT / "book").glob(f"{chapter[2:]}_*.ipynb"))
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    want = {f"{COLAB}/blob/{RELEASE}/book/student/assignments/{chapter}/{chapter}_assignment.ipynb",
            f"{COLAB}/blob/{RELEASE}/book/student/{path.name}"}
    links = set(re.findall(r"\((https://colab\.research\.google\.com/[^)\s]+)\)", text))
    assert want <= links, f"{path.name}: missing links {want - links}"
    for link in links:
        assert link.startswith(f"{COLAB}/blob/{RELEASE}/"), f"{path.name}: {link} is not the book's repository/release"
        assert (ROOT / link.split(f"/blob/{RELEASE}/", 1)[1]).is_file(), f"{path.name}: {link} points nowhere"
    assert not any(c.cell_type == "code" and "BEGIN SOLUTION" in c.source for c in nb.cells), (
        f"{path.name}: graded code belongs in book/assignments/{chapter}")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_assignment_setup_installs_the_release_from_the_book_repository(chapter):
    src = nbformat.read(nb_path(SOURCE, chapter), as_version=4).cells[1].source
    assert f'REPO = "{CONFIG["repository"]["url"]}"' in src and f'RELEASE = "{RELEASE}"' in src


def test_instructor_page_uses_the_book_repository_and_release():
    page = (ROOT / "book" / "instructor.md").read_text(encoding="utf-8")
    assert "book/instructor" in (ROOT / "_toc.yml").read_text(encoding="utf-8")
    url = CONFIG["repository"]["url"]
    assert f'pip install "icar @ git+{url}@{RELEASE}"' in page
    links = re.findall(r"https://(?:colab\.research\.google\.com/github|github\.com)/[^)\s\"]+", page)
    assert links
    for link in links:
        assert link.startswith((f"{COLAB}/blob/{RELEASE}/", f"{url}@{RELEASE}")), link
        if "/blob/" in link:
            assert (ROOT / link.split(f"/blob/{RELEASE}/", 1)[1]).is_file(), link
    for command in ('nbgrader generate_assignment "ch*" --force', 'nbgrader autograde "ch*" --force',
                    "nbgrader export --to classroom/grades.csv", "python -m icar.classroom"):
        assert command in page, command
    source = Path(__file__).read_text(encoding="utf-8")
    assert '"generate_assignment", "ch*", "--force"' in source and '"autograde", "ch*", "--force"' in source
    for ch in CHAPTERS:
        points = [ex.points for ex in exercises_of(ch)]
        row = next(line for line in page.splitlines() if f"| {int(ch[2:])}: " in line)
        assert re.findall(r"\((\d+)\)", row.split("|")[4]) == [str(p) for p in points], row
