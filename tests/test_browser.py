"""A real browser renders an executed notebook: notebook 05 (the three widgets) is executed with its
widget state saved, converted to HTML by nbconvert, and loaded in headless Chromium (Debian's
``chromium``). Asserted: no JavaScript error (uncaught exceptions, failed script loads, console.error,
unhandled rejections), every saved widget view rendered into live widget DOM (the explorers' boxes,
sliders, dropdowns, toggle buttons, Output areas), and the figures inside them present as ``<img>``.
A screenshot, the HTML, the rendered DOM and Chromium's log go to tests/artifacts/browser/.

Offline: nbconvert's HTML loads require.js and the widget manager (``@jupyter-widgets/html-manager``'s
``embed-amd.js``) from CDNs. Here both are local files next to the HTML: the widget manager from the
npm package (``npm pack``, pinned) and require.js from Debian's ``libjs-requirejs`` or the npm package;
``make browser`` fetches all of it. MathJax is replaced by an empty stub (the notebook has no maths).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from _notebooks import ARTIFACTS, executed, widget_errors

pytestmark = pytest.mark.slow

HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.15"  # the embed manager of ipywidgets 8 (widget state v2)
REQUIREJS_NPM = "requirejs@2.3.7"
DEBIAN_REQUIREJS = Path("/usr/share/javascript/requirejs/require.min.js")
WEB_CACHE = Path(os.environ.get("CLIPINTERP_WEB_CACHE", ARTIFACTS / "web"))
OUT = ARTIFACTS / "browser"

# Injected first in <head>: records every error the page raises, then writes them into the DOM.
PROBE = """<script>
window.__jsErrors = [];
window.addEventListener('error', function (e) {
  var what = e.message || (e.target && (e.target.src || e.target.href)) || String(e);
  window.__jsErrors.push('error: ' + what);
}, true);
window.addEventListener('unhandledrejection', function (e) { window.__jsErrors.push('unhandledrejection: ' + e.reason); });
var __consoleError = console.error;
console.error = function () {
  window.__jsErrors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
  __consoleError.apply(console, arguments);
};
window.addEventListener('load', function () {
  setTimeout(function () {
    var p = document.createElement('pre');
    p.id = 'js-errors';
    p.textContent = JSON.stringify(window.__jsErrors);
    document.body.appendChild(p);
  }, 5000);
});
</script>"""


def _run(cmd, timeout=600, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing (as root), else the test is skipped."""
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("chromium is not installed and cannot be installed here (needs apt-get as root): "
                    "run `make browser` or `apt-get install chromium`")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    result = _run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], env=env)
    if result.returncode != 0 or not shutil.which("chromium"):
        pytest.skip(f"installing chromium with apt-get failed: {result.stderr[-500:]}")
    return shutil.which("chromium")


def _npm_file(spec: str, member: str, dest: Path) -> bool:
    """Extract ``member`` of the npm package ``spec`` to ``dest`` (npm pack; cached)."""
    if dest.exists():
        return True
    if shutil.which("npm") is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        result = _run(["npm", "pack", "--silent", spec], cwd=tmp, timeout=300)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            return False
        with tarfile.open(tarballs[0]) as tar:
            prefix = f"package/{member}"
            names = [m for m in tar.getmembers() if m.name == prefix or m.name.startswith(prefix + "/")]
            if not names:
                return False
            tar.extractall(tmp, members=names, filter="data")
        source = Path(tmp, "package", member)
        dest.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, dest)
    return True


@pytest.fixture(scope="session")
def widget_js() -> dict[str, Path]:
    """Local copies of the widget manager bundle (a folder: embed-amd.js and its fonts) and require.js."""
    manager = WEB_CACHE / "html-manager"
    if not _npm_file(HTML_MANAGER, "dist", manager):
        pytest.skip(f"the widget manager JS ({HTML_MANAGER}) is not cached in {WEB_CACHE} and npm cannot fetch "
                    "it: run `make browser`")
    require = WEB_CACHE / "require.js"
    if not require.exists():
        if DEBIAN_REQUIREJS.exists():
            shutil.copy(DEBIAN_REQUIREJS, require)
        elif not _npm_file(REQUIREJS_NPM, "require.js", require):
            pytest.skip("require.js is missing: install Debian's libjs-requirejs or run `make browser`")
    return {"manager": manager, "require": require}


def _html(nb, site: Path, js: dict[str, Path]) -> Path:
    from nbconvert import HTMLExporter

    shutil.copytree(js["manager"], site / "html-manager", dirs_exist_ok=True)
    shutil.copy(js["require"], site / "require.js")
    (site / "mathjax-stub.js").write_text("/* no MathJax offline; the notebook has no maths */\n")
    exporter = HTMLExporter(require_js_url="require.js", mathjax_url="mathjax-stub.js",
                            widget_renderer_url="html-manager/embed-amd.js")
    body, _ = exporter.from_notebook_node(nb)
    remote = [u for u in re.findall(r'<script[^>]*\ssrc="([^"]+)"', body) if "://" in u]
    assert not remote, f"the HTML still loads scripts from the network: {remote}"
    page = site / "05_interactive.html"
    page.write_text(body.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    return page


def _chromium(binary: str, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    return _run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                 "--virtual-time-budget=20000", "--window-size=1280,3200", "--hide-scrollbars",
                 *extra, page.as_uri()], timeout=180)


def test_interactive_notebook_renders_in_chromium(chromium, widget_js, tmp_path):
    nb = executed("05_interactive.ipynb")
    assert not widget_errors(nb), widget_errors(nb)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
    assert state["version_major"] == 2 and state["state"], "no widget state saved"
    views = [o for c in nb.cells for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 3, "HeadExplorer, ConceptHeadMap and AblationPanel each display one widget view"

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    page = _html(nb, OUT, widget_js)

    dumped = _chromium(chromium, page, tmp_path / "profile-dom", "--dump-dom")
    (OUT / "dom.html").write_text(dumped.stdout, encoding="utf-8")
    (OUT / "chromium-dom.log").write_text(dumped.stderr, encoding="utf-8")
    shot = OUT / "05_interactive.png"
    shooting = _chromium(chromium, page, tmp_path / "profile-shot", f"--screenshot={shot}")
    (OUT / "chromium-screenshot.log").write_text(shooting.stderr, encoding="utf-8")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout

    # JavaScript errors: the in-page probe, and Chromium's console log
    probe = re.search(r'<pre id="js-errors">(.*?)</pre>', dom, re.S)
    assert probe, "the page never finished loading (no error report written)"
    errors = json.loads(probe.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<")
                        .replace("&gt;", ">"))
    assert errors == [], f"JavaScript errors: {errors}"
    console = [line for line in dumped.stderr.splitlines() if ":CONSOLE" in line]
    uncaught = [line for line in console if "Uncaught" in line or "Error" in line.split("source:")[0]]
    assert not uncaught, "\n".join(uncaught)

    # every widget view rendered (the manager replaces each view's <script> by live widget DOM)
    assert "jupyter-widgets" in dom and "widget-vbox" in dom, "no widget rendered"
    for widget in ["widget-output", "widget-dropdown", "widget-hslider", "widget-toggle-button",
                   "widget-select-multiple", "widget-checkbox", "widget-html"]:
        assert widget in dom, f"no {widget} in the rendered page"
    assert dom.count("widget-vbox") >= 3
    for text in ["attn_uniform", "CLS query only", "concept", "L5.H0"]:  # labels of the explorers' controls
        assert text in dom, f"{text!r} missing from the rendered widgets"
    # figures: the notebook shows none outside its widgets, so every PNG <img> was drawn by a widget's Output
    static = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert not static
    figures = len(re.findall(r'<img[^>]+src="data:image/png;base64,', dom))
    assert figures >= 3, f"only {figures} figures rendered inside the widgets' outputs"

    assert shooting.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000, shooting.stderr[-2000:]
