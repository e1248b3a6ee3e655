"""Explorers: live widgets in a kernel, precomputed frames in the static book; the static slider is driven in a real
headless browser (Debian's chromium; CI installs it, see .ci/run) and must change the picture."""
import os
import re
import shutil
import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from icar.figures import ch02, explorer  # noqa: E402


def _line(a=1.0, b=0.0):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [b, a + b])
    ax.set_ylim(-1, 4)
    plt.show()                                   # a live explorer calls show(); frames must survive it


def test_mode_reads_the_environment(monkeypatch):
    monkeypatch.delenv("ICAR_EXPLORERS", raising=False)
    assert explorer.mode() == "live"
    monkeypatch.setenv("ICAR_EXPLORERS", "static")
    assert explorer.mode() == "static"
    monkeypatch.setenv("ICAR_EXPLORERS", "widgets")
    with pytest.raises(ValueError, match="ICAR_EXPLORERS must be one of .*'widgets'"):
        explorer.mode()


def test_frames_differ_per_value_and_close_their_figures():
    n0 = len(plt.get_fignums())
    frames = explorer.render_frames(_line, "a", [0.0, 1.0, 3.0], b=0.5)
    assert len(frames) == 3 and all(f[:8] == b"\x89PNG\r\n\x1a\n" for f in frames)
    assert len(set(frames)) == 3
    assert len(plt.get_fignums()) == n0
    assert explorer.render_frames(_line, "a", [2.0])[0] == explorer.render_frames(_line, "a", [2.0])[0]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="at least one value"):
        explorer.render_frames(_line, "a", [])
    with pytest.raises(ValueError, match="drew no figure"):
        explorer.render_frames(lambda a: None, "a", [1])
    with pytest.raises(ValueError, match="one frame per value expected; got 1 frames and 2 values"):
        explorer.player_html([b"x"], "a", [1, 2])
    with pytest.raises(ValueError, match=r"start must be in 0\.\.1; got 2"):
        explorer.player_html([b"x", b"y"], "a", [1, 2], start=2)


def test_player_shows_one_frame_and_names_its_parameter():
    page = explorer.player_html([b"A", b"B", b"C"], "d", [1, 5, 16], start=1, note="live: run the notebook")
    assert page.count("<img") == 3 and page.count(" hidden ") == 2
    assert re.search(r'data-frame="1"[^>]*style="[^"]*" src=', page)          # the start frame is not hidden
    assert "Static explorer" in page and "<code>d</code>" in page and "live: run the notebook" in page
    assert "<output>5</output>" in page


def _browser():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _dump_dom(path):
    out = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          f"file://{path}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _visible(dom):
    imgs = re.findall(r"<img[^>]*>", dom)
    shown = [im for im in imgs if not re.search(r"\shidden(=\"\")?[\s>]", im)]
    assert len(shown) == 1, shown
    return int(re.search(r'data-frame="(\d+)"', shown[0]).group(1)), re.search(r'src="([^"]+)"', shown[0]).group(1)


@pytest.mark.skipif(_browser() is None and not os.environ.get("ICAR_REQUIRE_BROWSER"),
                    reason="no headless chromium here (CI installs it and sets ICAR_REQUIRE_BROWSER=1)")
def test_static_slider_changes_the_picture_in_a_browser(tmp_path):
    assert _browser() is not None, "ICAR_REQUIRE_BROWSER is set but no chromium was found"
    d_values = [1, 5, 16]                                   # chapter 2's explorer: the error budget against d
    frames = explorer.render_frames(lambda d: ch02.plot_error_budget(d=d), "d", d_values)
    player = explorer.player_html(frames, "d", d_values, start=1)
    before = tmp_path / "before.html"
    before.write_text(f"<html><body>{player}</body></html>")
    frame0, src0 = _visible(_dump_dom(before))
    assert frame0 == 1
    # A reader drags the slider to the last value: set it and fire the input event the browser would fire.
    drive = ("<script>var s=document.querySelector('.icar-explorer input[type=range]');s.value=2;"
             "s.dispatchEvent(new Event('input'));</script>")
    after = tmp_path / "after.html"
    after.write_text(f"<html><body>{player}{drive}</body></html>")
    dom = _dump_dom(after)
    frame2, src2 = _visible(dom)
    assert frame2 == 2 and src2 != src0
    assert "<output>16</output>" in dom


def test_frames_have_the_text_size_of_the_chapter_figures():
    """A PAGE_WIDTH_IN-wide frame is a PNG 1.5x the column's CSS width, shown at the full column width (so its text
    has the size of a chapter figure of that width); a narrower figure takes the share of the column it takes in a
    chapter, where figures show at FIGURE_DPI up to the column width."""
    from icar.figures import style

    def wide():
        fig, ax = plt.subplots(figsize=(style.PAGE_WIDTH_IN, 3), layout="constrained")
        ax.plot([0, 1], [0, 1])
        ax.set_xlabel("x")

    png = explorer.render_frames(lambda k: wide(), "k", [0])[0]
    width = int.from_bytes(png[16:20], "big")
    assert abs(width / style.CONTENT_PX - 1.5) < 0.1, width
    assert explorer.display_width(png) == "100%"
    narrow = explorer.render_frames(_line, "a", [1.0])[0]                # a 3 in figure
    share = float(explorer.display_width(narrow).rstrip("%"))
    expected = 100 * int.from_bytes(narrow[16:20], "big") / explorer.FRAME_DPI * style.FIGURE_DPI / style.CONTENT_PX
    assert abs(share - expected) < 1 and 35 < share < 55
    assert explorer.display_width(b"not a png") == "100%"


def test_controls_are_one_row_name_slider_value():
    page = explorer.player_html([b"A", b"B"], "train_frac", [0.1, 0.2], start=1)
    row = re.search(r"<label[^>]*>(.*?)</label>", page).group(1)
    assert re.search(r'style="[^"]*display:flex[^"]*flex-wrap:nowrap', page)
    assert row.index("train_frac") < row.index('type="range"') < row.index("<output>0.2</output>")
