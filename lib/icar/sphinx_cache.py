"""Sphinx extension: key the book's execution cache on the library as well as on the notebooks.

jupyter-cache (``execute_notebooks: cache``) re-executes a notebook only when its source changes, and Sphinx
re-reads a document only when its file changes. A change to ``lib/icar`` changes neither, so without this extension
a local build stays green with outputs and claims computed by the old library. At every build this extension:

1. hashes the library's sources, :func:`library_hash` (SHA-256 over the relative path and bytes of every file of
   the package, caches excluded);
2. compares it with the hash stored beside the execution cache (``_build/.jupyter_cache.icar-library``); when they
   differ (or the stamp is missing), :func:`refresh_cache` deletes the cache, so every notebook executes again;
3. exposes the hash as the Sphinx config value ``icar_library_hash`` (rebuild ``"env"``), so Sphinx itself sees a
   changed configuration and re-reads every document, the cached-looking notebooks included.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

LIBRARY = Path(__file__).resolve().parent
STAMP_SUFFIX = ".icar-library"
_SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".mypy_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


def library_files(root: Path = LIBRARY) -> list[Path]:
    """Every source file of the package under ``root`` (sorted), without bytecode and tool caches."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"library folder must be an existing directory; got {str(root)!r}")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix not in _SKIP_SUFFIXES
                  and not _SKIP_DIRS.intersection(p.relative_to(root).parts))


def library_hash(root: Path = LIBRARY) -> str:
    """SHA-256 (hex) of ``(relative path, length, bytes)`` of every file of :func:`library_files`.

    Renaming, adding or removing a file changes it, as does any byte of any file; bytecode does not.
    """
    root = Path(root)
    digest = hashlib.sha256()
    for path in library_files(root):
        data = path.read_bytes()
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + str(len(data)).encode() + b"\0")
        digest.update(data)
    return digest.hexdigest()


def stamp_path(cache_dir: Path) -> Path:
    """Where the hash of the library that filled ``cache_dir`` is kept: a file beside it, ``<cache_dir>.icar-library``."""
    cache_dir = Path(cache_dir)
    return cache_dir.with_name(cache_dir.name + STAMP_SUFFIX)


def refresh_cache(cache_dir: Path, digest: str) -> bool:
    """Delete ``cache_dir`` unless the stamp beside it records ``digest``; then record ``digest``.

    Returns True when the cache was deleted. A missing stamp counts as a different library (a cache of unknown
    provenance is not trusted); a missing cache just gets its stamp.
    """
    if not isinstance(digest, str) or not digest:
        raise ValueError(f"digest must be a non-empty string; got {digest!r}")
    cache_dir, stamp = Path(cache_dir), stamp_path(cache_dir)
    recorded = stamp.read_text(encoding="utf-8").strip() if stamp.is_file() else None
    cleared = False
    if recorded != digest and cache_dir.exists():
        shutil.rmtree(cache_dir)
        cleared = True
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n", encoding="utf-8")
    return cleared


def execution_cache_dir(app, config) -> Path:
    """The folder myst-nb caches executions in: ``nb_execution_cache_path``, else ``<outdir>/../.jupyter_cache``."""
    configured = getattr(config, "nb_execution_cache_path", "") or ""
    return Path(configured) if configured else Path(app.outdir).parent / ".jupyter_cache"


def _on_config_inited(app, config) -> None:
    digest = library_hash()
    config.icar_library_hash = digest
    if getattr(config, "nb_execution_mode", "cache") != "cache":
        return
    cache = execution_cache_dir(app, config)
    if refresh_cache(cache, digest):
        from sphinx.util import logging
        logging.getLogger(__name__).info(
            f"icar: the library changed since {cache} was filled; cleared it, every notebook executes again")


def setup(app):
    app.add_config_value("icar_library_hash", "", "env")
    app.connect("config-inited", _on_config_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
