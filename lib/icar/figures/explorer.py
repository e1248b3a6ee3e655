"""Explorers that work with and without a kernel.

In Jupyter or Colab, :func:`show` opens the live ``ipywidgets.interact`` explorer with every control. In the static
book there is no kernel behind the page, so :func:`show` draws the explorer once for each of a few values of its main
parameter and embeds the pictures with a slider that swaps them in the browser (plain HTML and a one-line script, no
kernel, no widget state): a reader moves through that parameter, the other controls keep their default values.

Which one a cell shows is decided by the environment variable ``ICAR_EXPLORERS``: ``"static"`` (set by the book
build, through the Sphinx extension :mod:`icar.figures.sphinx`) or ``"live"`` (the default).
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
from typing import Any, Callable, Sequence

import matplotlib.pyplot as plt

from .style import CONTENT_PX, FIGURE_DPI, PAGE_WIDTH_IN

MODES = ("live", "static")
#: Resolution of the static frames: a figure ``PAGE_WIDTH_IN`` wide becomes a PNG 1.5 times the content column's CSS
#: width, so that, shown at the column width, its text has the size it has in the chapter's other figures (and stays
#: sharp on high-density screens).
FRAME_DPI = round(1.5 * CONTENT_PX / PAGE_WIDTH_IN)


def mode() -> str:
    """``"static"`` or ``"live"``, from ``ICAR_EXPLORERS`` (default ``"live"``)."""
    m = os.environ.get("ICAR_EXPLORERS", "live").strip().lower() or "live"
    if m not in MODES:
        raise ValueError(f"ICAR_EXPLORERS must be one of {MODES}; got {m!r}")
    return m


def _label(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def render_frames(fn: Callable[..., Any], name: str, values: Sequence[Any], *, dpi: int = FRAME_DPI,
                  **fixed: Any) -> list[bytes]:
    """PNG bytes of the figure(s) ``fn(**fixed, name=v)`` draws, one image per ``v`` in ``values``.

    ``fn`` may create its figure with ``plt.subplots`` and call ``plt.show()`` (as a live explorer does): ``show`` is
    held back while a frame is drawn, and every new figure is saved and closed (several figures are stacked)."""
    if not values:
        raise ValueError(f"values of {name!r} must hold at least one value; got {values!r}")
    frames = []
    show = plt.show
    plt.show = lambda *a, **k: None
    try:
        for v in values:
            before = set(plt.get_fignums())
            fn(**{**fixed, name: v})
            new = [n for n in plt.get_fignums() if n not in before]
            if not new:
                raise ValueError(f"{getattr(fn, '__name__', fn)}({name}={v!r}) drew no figure")
            buf = io.BytesIO()
            figs = [plt.figure(n) for n in new]
            if len(figs) == 1:
                figs[0].savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
            else:  # several figures: stack them vertically in one image
                import numpy as np
                imgs = []
                for f in figs:
                    b = io.BytesIO()
                    f.savefig(b, format="png", dpi=dpi, bbox_inches="tight")
                    b.seek(0)
                    imgs.append(plt.imread(b))
                w = max(i.shape[1] for i in imgs)
                pad = [np.pad(i, ((0, 0), (0, w - i.shape[1]), (0, 0)), constant_values=1.0) for i in imgs]
                plt.imsave(buf, np.concatenate(pad, axis=0), format="png")
            for f in figs:
                plt.close(f)
            frames.append(buf.getvalue())
    finally:
        plt.show = show
    return frames


def _png_width(png: bytes) -> int | None:
    """Pixel width read from a PNG header (``None`` if ``png`` is not a PNG)."""
    return int.from_bytes(png[16:20], "big") if png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) >= 24 else None


def display_width(png: bytes, dpi: int = FRAME_DPI) -> str:
    """CSS width of a frame in the page: the share of the content column that a chapter figure as wide as the PNG
    (rendered at ``dpi``) takes, shown at ``FIGURE_DPI`` up to the column width; at most ``100%``."""
    w = _png_width(png)
    if w is None:
        return "100%"
    return f"{min(100.0, 100.0 * w / dpi * FIGURE_DPI / CONTENT_PX):.0f}%"


def player_html(frames: Sequence[bytes], name: str, values: Sequence[Any], *, start: int = 0,
                note: str = "", dpi: int = FRAME_DPI) -> str:
    """A self-contained HTML slider over precomputed PNG frames: moving it shows frame ``k`` and the value
    ``values[k]``; only one ``<img>`` is visible at a time. Needs no kernel and no external script.

    The controls are one row, the same in every chapter: the parameter's name, the slider, the value shown. Each frame
    is shown at the width a chapter figure of its size takes (see :func:`display_width`; frames rendered at ``dpi``)."""
    if len(frames) != len(values):
        raise ValueError(f"one frame per value expected; got {len(frames)} frames and {len(values)} values")
    if not 0 <= start < len(frames):
        raise ValueError(f"start must be in 0..{len(frames) - 1}; got {start}")
    labels = [_label(v) for v in values]
    imgs = "".join(
        f'<img class="icar-frame" data-frame="{k}" alt="{html.escape(name)} = {html.escape(lab)}" '
        f'style="width:{display_width(f, dpi)};max-width:100%;height:auto" {"" if k == start else "hidden "}'
        f'src="data:image/png;base64,{base64.b64encode(f).decode()}">'
        for k, (f, lab) in enumerate(zip(frames, labels)))
    js = ("var r=this.closest('.icar-explorer'),k=+this.value;"
          "r.querySelectorAll('img.icar-frame').forEach(function(im){im.hidden=(+im.dataset.frame!==k);});"
          "r.querySelector('output').textContent=JSON.parse(r.dataset.labels)[k];")
    return (
        f'<div class="icar-explorer" data-labels="{html.escape(json.dumps(labels))}">'
        f'<p style="margin:0 0 .3em 0;font-size:90%"><b>Static explorer</b> ({len(frames)} precomputed frames): '
        f'move the slider to change <code>{html.escape(name)}</code>. {html.escape(note)}</p>'
        f'<label style="display:flex;flex-wrap:nowrap;align-items:center;gap:.6em;margin:.2em 0 .4em 0;'
        f'white-space:nowrap"><span><code>{html.escape(name)}</code> =</span>'
        f'<input type="range" min="0" max="{len(frames) - 1}" step="1" value="{start}" '
        f'style="flex:0 1 18em;min-width:6em;margin:0" '
        f'aria-label="{html.escape(name)}" oninput="{html.escape(js)}">'
        f'<span style="min-width:4em"><output>{html.escape(labels[start])}</output></span></label>{imgs}</div>')


LIVE_NOTE = "Every other control keeps its default value; run the notebook (Jupyter or Colab) for the live explorer."


def show(fn: Callable[..., Any], *, over: tuple[str, Sequence[Any]], controls: dict[str, Any],
         fixed: dict[str, Any] | None = None, default: Any = None, dpi: int = FRAME_DPI) -> Any:
    """Show the explorer ``fn``: live (``ipywidgets.interact(fn, **controls)``) or static (a slider over
    ``fn(**fixed, name=v)`` for ``(name, values) = over``, starting at ``default``). See :func:`mode`."""
    name, values = over
    values = list(values)
    fixed = dict(fixed or {})
    if mode() == "live":
        import ipywidgets

        ipywidgets.interact(fn, **controls)
        return None
    from IPython.display import HTML, display

    start = values.index(default) if default is not None else 0
    frames = render_frames(fn, name, values, dpi=dpi, **fixed)
    display(HTML(player_html(frames, name, values, start=start, note=LIVE_NOTE, dpi=dpi)))
    return None
