"""Chapter notebooks are stored without outputs, start with the setup cell, and are all in the table of contents."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no chapter notebook found in book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs; run nbstripout before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_setup_cell(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    src = "".join(code[0]["source"])
    assert "google.colab" in src and "icar.setup" in src, (
        f"{path.name}: the first code cell must be the Colab/device setup cell (see CONTRIBUTING.md)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_in_toc(path):
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    assert f"book/{path.stem}" in toc, f"{path.name} is not listed in _toc.yml"


# A printed line reads as text: `numbers(x, ".3f")` (icar.figures.style) gives "0.123, 0.456". A list of formatted
# strings prints its quotes and brackets (['0.123', '0.456']), and a bare vector prints numpy's own layout. A matrix
# printed on lines of its own (after a "\\n") keeps numpy's layout: its rows and columns line up.
_RAW_PRINTS = (r'\[f"\{[^}]*\}" for ', r"\[round\(", r"\{\w+: f\"", r"\{\w+: \(?round\(", r"\.numpy\(\)\.round\(\d\)\)?[,)]",
               r"np\.round\(")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_printed_numbers_are_formatted(path):
    import re
    nb = json.loads(path.read_text(encoding="utf-8"))
    raw = [(i, line.strip()) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
           for line in "".join(c["source"]).splitlines()
           if "print(" in line and "\\n\"" not in line and any(re.search(p, line) for p in _RAW_PRINTS)]
    assert not raw, f"{path.name}: printed lists or arrays of raw numbers (use icar.figures.style.numbers): {raw}"
