"""Colab: every notebook installs the release of the library that the book describes, from the book's repository.

One source for each fact: the repository address is ``repository.url`` in ``_config.yml``; the version is
``icar.__version__`` (``pyproject.toml`` reads it, ``version = {attr = "icar.__version__"}``); the release tag is
``v<version>``. A notebook's setup cell runs on Colab *before* ``icar`` is installed, so it writes the address and
the tag out; these tests check that every copy equals the source.
"""
import ast
import json
import re
from pathlib import Path

import pytest
import yaml

import icar

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
# every notebook a student can open on Colab: the chapters, their student copies and the assignments
NOTEBOOKS = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
                   and "_build" not in p.parts)
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
REPO_URL = CONFIG["repository"]["url"]
RELEASE = f"v{icar.__version__}"


def setup_cell(path: Path) -> dict:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return next(c for c in nb["cells"] if c["cell_type"] == "code")


def assigned_strings(source: str) -> dict[str, str]:
    """The ``NAME = "literal"`` assignments at the top level of a cell."""
    out = {}
    for node in ast.parse(source).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            out[node.targets[0].id] = node.value.value
    return out


def test_version_has_one_source():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^dynamic = \["version"\]', text, re.M), "pyproject.toml must not repeat the version"
    assert 'version = {attr = "icar.__version__"}' in text
    assert re.fullmatch(r"\d+\.\d+\.\d+", icar.__version__), icar.__version__


def test_launch_buttons_open_the_release():
    assert REPO_URL.startswith("https://github.com/") and not REPO_URL.endswith((".git", "/"))
    assert CONFIG["repository"]["branch"] == RELEASE, (
        f"_config.yml repository.branch is {CONFIG['repository']['branch']!r}; the Colab button must open the "
        f"notebooks of the release the setup cell installs ({RELEASE!r})")


def test_there_are_chapter_notebooks():
    assert len(CHAPTERS) >= 8 and set(CHAPTERS) <= set(NOTEBOOKS)


GITHUB_LINK = re.compile(r"github(?:\.com)?/([\w.-]+/[\w.-]+?)(?:\.git)?(?:/(?:blob|tree)/([\w.-]+))?(?=[/\s\"')\]@]|$)")
TEXTS = [*NOTEBOOKS, *(ROOT / "book").glob("*.md"), ROOT / "README.md", ROOT / "CONTRIBUTING.md"]


@pytest.mark.parametrize("path", TEXTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_to_the_repository_uses_the_release(path):
    """Colab links written in the pages (``colab.research.google.com/github/<repo>/blob/<tag>/...``) and GitHub
    links name the repository of ``_config.yml`` and, where they name a ref, the release tag."""
    repo = REPO_URL.removeprefix("https://github.com/")
    for m in GITHUB_LINK.finditer(path.read_text(encoding="utf-8")):
        assert m.group(1) == repo, f"{path.name}: link to {m.group(1)!r}, the repository is {repo!r}"
        assert m.group(2) in (None, RELEASE), f"{path.name}: link to ref {m.group(2)!r}, the release is {RELEASE!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_installs_the_release(path):
    src = "".join(setup_cell(path)["source"])
    names = assigned_strings(src)
    assert names.get("REPO") == REPO_URL, f"{path.name}: REPO = {names.get('REPO')!r}, _config.yml says {REPO_URL!r}"
    assert names.get("RELEASE") == RELEASE, f"{path.name}: RELEASE = {names.get('RELEASE')!r}, icar is {RELEASE!r}"
    assert re.search(r'f"icar(\[\w+\])? @ git\+\{REPO\}@\{RELEASE\}"', src), f"{path.name}: install line not found"
    assert "@main" not in src and "github.com" not in src.replace(REPO_URL, ""), f"{path.name}: a second address"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_output_ignored_by_tag_not_comment(path):
    cell = setup_cell(path)
    assert "nbval-ignore-output" in cell["metadata"].get("tags", []), f"{path.name}: tag the setup cell"
    assert "NBVAL" not in "".join(cell["source"]), f"{path.name}: the rendered cell must not show an nbval marker"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_asks_colab_for_a_gpu(path):
    meta = json.loads(path.read_text(encoding="utf-8"))["metadata"]
    assert meta.get("accelerator") == "GPU", f"{path.name}: notebook metadata needs accelerator: GPU"
    assert meta.get("colab", {}).get("gpuType"), f"{path.name}: notebook metadata needs colab.gpuType"


def test_dependency_ranges_accept_colab():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    deps = dict(re.findall(r'^\s+"([A-Za-z0-9_-]+)([^"]*)",', text.split("[project.optional-dependencies]")[0], re.M))
    assert deps["ipywidgets"] == ">=7.7", "Colab ships ipywidgets 7.7: the package must not upgrade it"
    for name in ("torch", "numpy"):
        assert deps[name].startswith(">=") and "<" not in deps[name] and "==" not in deps[name], (name, deps[name])


def test_every_requirement_is_used():
    """Each library named in requirements.txt is imported somewhere (or is a tool run from the command line)."""
    tools = {"jupyter-book", "sphinx-proof", "sphinx-exercise", "sphinxcontrib-bibtex", "pytest", "nbval",
             "pytest-xdist", "nbstripout", "ipykernel", "mutmut"}
    code = "\n".join(p.read_text(encoding="utf-8") for pattern in ("lib/**/*.py", "tests/*.py", "book/*.ipynb",
                                                                  "benchmarks/*.py") for p in ROOT.glob(pattern))
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        name = re.match(r"[A-Za-z0-9_.]+[A-Za-z0-9_.-]*", line.split("#")[0].strip())
        if not name or name.group(0) in tools:
            continue
        module = name.group(0).replace("-", "_")
        assert re.search(rf"(import|from) {module}\b", code), f"requirements.txt names {name.group(0)}, imported nowhere"
