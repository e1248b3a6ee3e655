r"""Student versions of the course notebooks, made with nbgrader's own machinery (``pip install -e ".[classroom]"``).

``python -m icar.classroom`` (from the repository root) writes

* ``book/student/assignments/chNN/chNN_assignment.ipynb``: what ``nbgrader generate_assignment`` makes of the
  instructor versions ``book/assignments/chNN/`` with the course's ``nbgrader_config.py`` (solutions replaced by
  ``raise NotImplementedError()`` stubs, hidden tests removed, cells locked and checksummed);
* ``book/student/NN_*.ipynb``: the chapters with the solutions of their markdown exercises removed by nbgrader's
  ``ClearSolutions`` preprocessor: each MyST block ``:::{solution} label`` ... ``:::`` is framed by the markers
  :data:`SOLUTION_BEGIN` / :data:`SOLUTION_END` and ClearSolutions replaces the framed region by a stub; the
  exercise statements and everything else stay.

The student files are committed, so that a student on Colab can open them from the repository;
``tests/test_classroom.py`` checks that they are in sync with their sources and that no solution survives in them.
"""
from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from pathlib import Path

import nbformat

#: the region markers that nbgrader's ClearSolutions removes in a chapter's markdown: each MyST ``{solution}`` block
#: (its opening fence line ``:::{solution} label`` to its closing fence, any number of colons) is first framed by them
SOLUTION_BEGIN = "<!-- icar: begin of a solution -->"
SOLUTION_END = "<!-- icar: end of a solution -->"
SOLUTION_STUB = ("*(The solution is not in the student copy. Work it out, then compare with the solution in the "
                 "book.)*")
_FENCE = re.compile(r"^(?P<colons>:{3,})\{solution\}[^\n]*\n(?:.*\n)*?(?P=colons)[ \t]*$", re.M)
CHAPTER_GLOB = "[0-9][0-9]_*.ipynb"


def repo_root() -> Path:
    """The repository root (the folder holding ``nbgrader_config.py``), found from the working directory upwards."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file() and (folder / "book").is_dir():
            return folder
    raise FileNotFoundError("run this from the course repository (no nbgrader_config.py found above "
                            f"{here})")


def course_config(root: Path, release: Path | None = None, db: Path | None = None):
    """The course's nbgrader configuration (``nbgrader_config.py``) with ``root`` as the course directory; ``release``
    and ``db`` redirect the student versions and the gradebook (used by the tests)."""
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    cfg.CourseDirectory.root = str(root)
    if release is not None:
        cfg.CourseDirectory.release_directory = str(release)
    if db is not None:
        cfg.CourseDirectory.db_url = f"sqlite:///{db}"
    return cfg


def make_student_assignments(root: Path, release: Path | None = None) -> list[Path]:
    """Run nbgrader's ``generate_assignment`` on every ``book/assignments/chNN``; returns the files written."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    with tempfile.TemporaryDirectory() as tmp:
        cfg = course_config(root, release=release, db=Path(tmp) / "gradebook.db")
        api = NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)
        names = sorted(p.name for p in (root / "book" / "assignments").iterdir() if p.is_dir())
        for name in names:
            result = api.generate_assignment(name, force=True)
            if not result["success"]:
                raise RuntimeError(f"nbgrader generate_assignment {name} failed:\n{result['error']}\n{result['log']}")
        out = Path(release) if release is not None else root / cfg.CourseDirectory.release_directory
        return sorted(out.glob("ch*/*.ipynb"))


def student_chapter(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A chapter without the solutions of its markdown exercises (nbgrader's ``ClearSolutions``) and without
    outputs (nbconvert's ``ClearOutput``)."""
    from nbconvert.preprocessors import ClearOutputPreprocessor
    from nbgrader.preprocessors import ClearSolutions

    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = frame_solutions(cell.source)
    clear = ClearSolutions(begin_solution_delimeter=SOLUTION_BEGIN, end_solution_delimeter=SOLUTION_END,
                           text_stub=SOLUTION_STUB, enforce_metadata=False)
    nb, _ = clear.preprocess(nb, {})
    nb, _ = ClearOutputPreprocessor().preprocess(nb, {})
    return nb


def frame_solutions(markdown: str) -> str:
    """Frame every MyST ``{solution}`` block of a markdown cell by :data:`SOLUTION_BEGIN` / :data:`SOLUTION_END`
    (the block's own fence lines included), so that nbgrader's ClearSolutions can remove it."""
    return _FENCE.sub(lambda m: f"{SOLUTION_BEGIN}\n{m.group(0)}\n{SOLUTION_END}", markdown)


def make_student_chapters(root: Path, out: Path | None = None) -> list[Path]:
    """Write the student copy of every chapter ``book/NN_*.ipynb`` to ``out`` (default ``book/student``)."""
    out = Path(out) if out is not None else root / "book" / "student"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted((root / "book").glob(CHAPTER_GLOB)):
        nb = student_chapter(nbformat.read(path, as_version=4))
        target = out / path.name
        nbformat.write(nb, target)
        written.append(target)
    return written


def make_student_versions(root: Path | None = None, out: Path | None = None) -> list[Path]:
    """Both: the student assignments (under ``out/assignments``) and the student chapters (under ``out``); ``out``
    defaults to ``book/student``."""
    root = repo_root() if root is None else Path(root).resolve()
    release = None if out is None else Path(out) / "assignments"
    if release is not None and release.exists():
        shutil.rmtree(release)
    return make_student_assignments(root, release) + make_student_chapters(root, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m icar.classroom", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the student files (default book/student)")
    args = parser.parse_args(argv)
    for path in make_student_versions(out=args.out):
        print(path)


if __name__ == "__main__":
    main()
