"""icar.sphinx_cache: a change to the library clears the execution cache and makes Sphinx re-read every page."""
import io
import shutil
from pathlib import Path

import pytest

from icar import sphinx_cache

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def lib_copy(tmp_path):
    """A copy of lib/icar to modify."""
    dst = tmp_path / "icar"
    shutil.copytree(sphinx_cache.LIBRARY, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst


def test_hash_changes_with_any_library_file(lib_copy):
    h0 = sphinx_cache.library_hash(lib_copy)
    assert len(h0) == 64 and h0 == sphinx_cache.library_hash(lib_copy)   # deterministic
    theory = lib_copy / "theory.py"
    text = theory.read_text(encoding="utf-8")
    theory.write_text(text.replace("return", "return ", 1), encoding="utf-8")   # one byte
    h1 = sphinx_cache.library_hash(lib_copy)
    assert h1 != h0
    theory.write_text(text, encoding="utf-8")
    assert sphinx_cache.library_hash(lib_copy) == h0   # content, not modification time
    (lib_copy / "new_module.py").write_text("", encoding="utf-8")   # an added (even empty) file counts
    assert sphinx_cache.library_hash(lib_copy) not in (h0, h1)
    (lib_copy / "new_module.py").unlink()
    (lib_copy / "theory.py").rename(lib_copy / "theory2.py")        # so does a rename
    assert sphinx_cache.library_hash(lib_copy) != h0


def test_hash_ignores_bytecode(lib_copy):
    h0 = sphinx_cache.library_hash(lib_copy)
    (lib_copy / "__pycache__").mkdir()
    (lib_copy / "__pycache__" / "theory.cpython-311.pyc").write_bytes(b"\x00bytecode")
    (lib_copy / "stray.pyc").write_bytes(b"\x00")
    assert sphinx_cache.library_hash(lib_copy) == h0
    assert all("__pycache__" not in p.parts for p in sphinx_cache.library_files(lib_copy))


def test_the_installed_library_is_hashed_with_its_data_files():
    files = {p.relative_to(sphinx_cache.LIBRARY).as_posix() for p in sphinx_cache.library_files()}
    assert {"claims.py", "runtime.py", "sphinx_cache.py"} <= files
    with pytest.raises(ValueError, match="existing directory"):
        sphinx_cache.library_hash(Path("/nonexistent/icar"))


def _fake_cache(path: Path) -> Path:
    (path / "executed").mkdir(parents=True)
    (path / "global.db").write_text("db", encoding="utf-8")
    return path


def test_refresh_cache_clears_only_when_the_library_changed(tmp_path):
    cache = _fake_cache(tmp_path / "_build" / ".jupyter_cache")
    stamp = sphinx_cache.stamp_path(cache)
    assert stamp == tmp_path / "_build" / ".jupyter_cache.icar-library"   # beside the cache, not inside it
    assert sphinx_cache.refresh_cache(cache, "aaa") is True     # no stamp yet: a cache of unknown provenance
    assert not cache.exists() and stamp.read_text().strip() == "aaa"
    _fake_cache(cache)                                          # the build fills it again
    assert sphinx_cache.refresh_cache(cache, "aaa") is False    # same library: kept
    assert (cache / "global.db").exists()
    assert sphinx_cache.refresh_cache(cache, "bbb") is True     # library changed: cleared
    assert not cache.exists() and stamp.read_text().strip() == "bbb"
    assert sphinx_cache.refresh_cache(cache, "ccc") is False    # nothing to clear; the stamp still moves on
    assert stamp.read_text().strip() == "ccc"
    with pytest.raises(ValueError, match="non-empty string"):
        sphinx_cache.refresh_cache(cache, "")


def test_a_library_edit_clears_the_cache_end_to_end(tmp_path, lib_copy):
    cache = _fake_cache(tmp_path / "cache")
    sphinx_cache.refresh_cache(cache, sphinx_cache.library_hash(lib_copy))
    _fake_cache(cache)
    assert sphinx_cache.refresh_cache(cache, sphinx_cache.library_hash(lib_copy)) is False
    claims = lib_copy / "claims.py"
    claims.write_text(claims.read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")
    assert sphinx_cache.refresh_cache(cache, sphinx_cache.library_hash(lib_copy)) is True and not cache.exists()


def _sphinx_build(src: Path, out: Path) -> list[str]:
    """Build ``src`` with Sphinx in this process; return the documents it (re-)read."""
    from sphinx.application import Sphinx
    read: list[str] = []
    app = Sphinx(str(src), str(src), str(out / "html"), str(out / "doctrees"), "html",
                 status=io.StringIO(), warning=io.StringIO(), freshenv=False)
    app.connect("source-read", lambda _app, docname, _source: read.append(docname))
    app.build()
    return read


def test_sphinx_rereads_every_page_when_the_library_changes(tmp_path, monkeypatch):
    src, out = tmp_path / "src", tmp_path / "_build"
    src.mkdir()
    (src / "conf.py").write_text(f"extensions = ['icar.sphinx_cache']\nnb_execution_cache_path = "
                                 f"{str(out / '.jupyter_cache')!r}\n", encoding="utf-8")
    (src / "index.rst").write_text("Index\n=====\n\n.. toctree::\n\n   page\n", encoding="utf-8")
    (src / "page.rst").write_text("Page\n====\n\ntext\n", encoding="utf-8")
    monkeypatch.setattr(sphinx_cache, "library_hash", lambda root=None: "hash-1")
    assert sorted(_sphinx_build(src, out)) == ["index", "page"]
    _fake_cache(out / ".jupyter_cache")                          # what myst-nb would have written
    assert _sphinx_build(src, out) == []                         # nothing changed: an incremental build reads nothing
    assert (out / ".jupyter_cache" / "global.db").exists()
    monkeypatch.setattr(sphinx_cache, "library_hash", lambda root=None: "hash-2")
    assert sorted(_sphinx_build(src, out)) == ["index", "page"]  # library changed: every page is read again
    assert not (out / ".jupyter_cache").exists()                 # and its notebooks find no cached execution
    assert sphinx_cache.stamp_path(out / ".jupyter_cache").read_text().strip() == "hash-2"


def test_the_book_loads_the_extension():
    config = (ROOT / "_config.yml").read_text(encoding="utf-8")
    assert "- icar.sphinx_cache" in config and "execute_notebooks: cache" in config
