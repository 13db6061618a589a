"""Sample web pages with known accessibility violations, and a loopback server for them.

The pages in ``framework2/sample/pages/`` are what the PUXT accessibility tests scan and what the product demo
serves. With axe-core 4.11 they violate exactly these rules (``SAMPLE_VIOLATIONS``):

================  ==============================================================  ==============================
page              rules violated at WCAG level AA                                 at level A
================  ==============================================================  ==============================
index.html        none                                                            none
checkout.html     button-name, color-contrast, image-alt, label                   button-name, image-alt, label
signup.html       autocomplete-valid, html-has-lang, link-name (two links)        html-has-lang, link-name
================  ==============================================================  ==============================

``color-contrast`` (wcag2aa) and ``autocomplete-valid`` (wcag21aa) are AA-only rules, so they disappear at level A.
No page uses duplicate ids: in axe 4.11 ``duplicate-id`` is deprecated (tag wcag2a-obsolete, not run at A or AA)
and ``duplicate-id-aria`` reports "incomplete" (needs review), not a violation.
Each page carries an HTML comment next to every deliberate violation; apart from those it is valid HTML. Change
a page and these constants together: the tests assert the exact sets.

    with serve_pages() as base_url:
        scans = scan_pages([f"{base_url}/checkout.html"])
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from framework2.errors import DataError

PAGES_DIR = Path(__file__).parent / "pages"

# Rule ids each sample page violates at level AA and at level A (axe-core 4.11).
SAMPLE_VIOLATIONS: dict[str, frozenset[str]] = {
    "index.html": frozenset(),
    "checkout.html": frozenset({"button-name", "color-contrast", "image-alt", "label"}),
    "signup.html": frozenset({"autocomplete-valid", "html-has-lang", "link-name"}),
}
SAMPLE_VIOLATIONS_LEVEL_A: dict[str, frozenset[str]] = {
    "index.html": frozenset(),
    "checkout.html": frozenset({"button-name", "image-alt", "label"}),
    "signup.html": frozenset({"html-has-lang", "link-name"}),
}


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without writing an access log line per request to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def serve_pages(directory: str | Path | None = None) -> Iterator[str]:
    """Serve ``directory`` (default: the sample pages) on 127.0.0.1 on a free port in a background thread.

    Yields the base URL without a trailing slash, e.g. ``http://127.0.0.1:41234``; the server stops on exit.
    Files are read on every request, so a test can change a page between two scans.
    """
    root = Path(directory) if directory is not None else PAGES_DIR
    if not root.is_dir():
        raise DataError(f"cannot serve pages from {root}: not a directory", "pass a directory of .html files")
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # Handler threads must not keep the interpreter alive after a test ends.
    httpd.daemon_threads = True
    # A short poll keeps shutdown quick; the default half second adds up over many tests.
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="sample-pages", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
