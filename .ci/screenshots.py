"""Screenshots of the built book, page by page, as a reader sees it: headless Chromium at a laptop's width.

    python .ci/screenshots.py _build/html /tmp/shots            # every page of the table of contents
    python .ci/screenshots.py _build/html /tmp/shots 07_softmax  # pages whose name contains a pattern

Each page is cut into tiles of one screen (``--width`` x ``--height`` CSS pixels, default 1400 x 1600) named
``<page>-NN.png``, so that a reviewer can read them one by one. Static explorers are left at their start frame.
It also lists every display formula, image, table or code block that is wider than the text column (cut off, or
behind a scroll bar), with its position on the page.
Uses the Chrome DevTools Protocol (``websocket-client``) to capture beyond the viewport; needs Debian's ``chromium``.
The pages load MathJax 3 from a CDN; on a machine without internet pass ``--mathjax DIR``, a local copy of MathJax 3's
``es5`` folder (e.g. from the wheel of ``django-static-mathjax``: ``mathjax/static/mathjax/es5``), which is served in
place of the CDN's files, so that the formulas are typeset as a reader's browser would show them.
"""
from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket

CDN = "cdn.jsdelivr.net/npm/mathjax@3/"


class Page:
    """One Chromium tab driven over the DevTools protocol."""

    def __init__(self, port: int, mathjax: Path | None = None):
        for _ in range(100):
            try:
                tabs = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json").read())
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("chromium did not open its DevTools port")
        url = next(t for t in tabs if t["type"] == "page")["webSocketDebuggerUrl"]
        self.ws = websocket.create_connection(url, timeout=120, suppress_origin=True)
        self.n = 0
        self.mathjax = mathjax
        if mathjax is not None:
            self.call("Fetch.enable", patterns=[{"urlPattern": "*" + CDN + "*"}])

    def call(self, method: str, **params) -> dict:
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Fetch.requestPaused":
                self._serve(msg["params"])
            elif msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def _serve(self, req: dict) -> None:
        """Answer a paused request for a CDN MathJax file from the local copy (404 if it has no such file)."""
        rel = req["request"]["url"].split(CDN, 1)[1].split("?")[0].removeprefix("es5/")
        path = self.mathjax / rel
        if path.is_file():
            body = base64.b64encode(path.read_bytes()).decode()
            kind = "application/javascript" if path.suffix == ".js" else "font/woff"
            self.ws.send(json.dumps({"id": 0, "method": "Fetch.fulfillRequest", "params": {
                "requestId": req["requestId"], "responseCode": 200, "body": body,
                "responseHeaders": [{"name": "Content-Type", "value": kind},
                                    {"name": "Access-Control-Allow-Origin", "value": "*"}]}}))
        else:
            self.ws.send(json.dumps({"id": 0, "method": "Fetch.fulfillRequest", "params": {
                "requestId": req["requestId"], "responseCode": 404, "body": ""}}))

    def open(self, url: str, width: int, height: int) -> int:
        """Load ``url`` in a ``width`` x ``height`` viewport; return the page's full height in CSS pixels."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=url)
        for _ in range(300):
            state = self.call("Runtime.evaluate", expression="document.readyState")["result"]["value"]
            if state == "complete":
                break
            time.sleep(0.1)
        expr = "window.MathJax && MathJax.startup && MathJax.startup.promise ? 1 : 0"
        for _ in range(100):                              # MathJax typesets after load
            if self.call("Runtime.evaluate", expression=expr)["result"].get("value"):
                self.call("Runtime.evaluate", expression="MathJax.startup.promise", awaitPromise=True)
                break
            time.sleep(0.1)
        time.sleep(0.5)
        expr = "Math.ceil(document.documentElement.scrollHeight)"
        return int(self.call("Runtime.evaluate", expression=expr)["result"]["value"])

    def overflows(self) -> list[str]:
        """What sticks out of the text column: display formulas, images, tables and code wider than the article."""
        js = r"""(() => {
          const art = document.querySelector('article.bd-article') || document.querySelector('main');
          const right = art.getBoundingClientRect().right + 2;
          const out = [];
          for (const el of art.querySelectorAll('mjx-container[display="true"], img, table, pre, svg')) {
            const r = el.getBoundingClientRect();
            const inner = el.scrollWidth > el.clientWidth + 2 && el.clientWidth > 0;
            if (r.right > right || inner) {
              const text = (el.getAttribute('alt') || el.textContent || el.tagName).replace(/\s+/g, ' ').slice(0, 70);
              out.push(`${el.tagName.toLowerCase()} at y=${Math.round(r.top + window.scrollY)}: ` +
                       `${Math.round(Math.max(r.right - right + 2, el.scrollWidth - el.clientWidth))} px too wide: ${text}`);
            }
          }
          return JSON.stringify(out);
        })()"""
        return json.loads(self.call("Runtime.evaluate", expression=js)["result"]["value"])

    def tile(self, y: int, width: int, height: int) -> bytes:
        clip = {"x": 0, "y": y, "width": width, "height": height, "scale": 1}
        shot = self.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
        return base64.b64decode(shot["data"])


def pages(html: Path, pattern: str | None) -> list[Path]:
    found = sorted(p for p in html.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts
                   and p.name not in ("search.html", "genindex.html"))
    return [p for p in found if pattern is None or pattern in str(p)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("pattern", nargs="?")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1600)
    ap.add_argument("--port", type=int, default=9333)
    ap.add_argument("--mathjax", type=Path, help="a local copy of MathJax 3's es5 folder, served for the CDN's")
    args = ap.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp()
    proc = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             f"--remote-debugging-port={args.port}", f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        tab = Page(args.port, args.mathjax)
        for path in pages(args.html.resolve(), args.pattern):
            name = "-".join(path.relative_to(args.html.resolve()).with_suffix("").parts)
            full = tab.open(path.as_uri(), args.width, args.height)
            n = 0
            for n, y in enumerate(range(0, full, args.height)):
                (args.out / f"{name}-{n:02d}.png").write_bytes(tab.tile(y, args.width, min(args.height, full - y)))
            wide = tab.overflows()
            print(f"{name}: {full} px, {n + 1} tiles, {len(wide)} elements wider than the text column")
            for line in wide:
                print("    " + line)
    finally:
        proc.terminate()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
