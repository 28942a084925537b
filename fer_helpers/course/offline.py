"""Web pages that work without the internet: local copies of reveal.js and MathJax.

nbconvert's templates load reveal.js, MathJax, require.js, mermaid and the
widgets' renderer from CDNs. A classroom projector (and CI) may have no
internet, so the course's pages load everything from files beside them:

- reveal.js 5 from the `sphinx-revealjs` package (which ships its dist/ files),
- MathJax 2 from `jupyter-server-mathjax` (nbconvert's math code is MathJax 2's),

both pinned in requirements.txt. `remote_references` lists what a page would
still fetch from another host, and the site build refuses to write such a page.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

ASSETS = "assets"  # the folder beside index.html that holds the copies
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"  # the one combined config the package ships
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def package_dir(package: str, *parts: str) -> Path:
    """A folder inside an installed package, found without importing it (Sphinx is slow)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the package {package!r} is not installed: run `python3 tasks.py setup`"
        )
    folder = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is missing: reinstall {package!r}")
    return folder


def reveal_dir() -> Path:
    return package_dir("sphinx_revealjs", "_static", "revealjs")


def mathjax_dir() -> Path:
    return package_dir("jupyter_server_mathjax", "static")


def copy_assets(site: Path, theme: str) -> None:
    """Copy reveal.js (core, one theme and its fonts, speaker notes) and MathJax to site/assets/.

    Only the theme in use: reveal.js's other themes import Google's web fonts.
    """
    reveal, target = reveal_dir(), site / ASSETS / "reveal.js"
    (target / "dist" / "theme").mkdir(parents=True, exist_ok=True)
    for name in ("reveal.js", "reveal.css", "reset.css", f"theme/{theme}.css"):
        shutil.copy2(reveal / "dist" / name, target / "dist" / name)
    skip_maps = shutil.ignore_patterns("*.map", "*.esm.js")
    for folder in ("dist/theme/fonts", "plugin/notes"):
        shutil.copytree(reveal / folder, target / folder, ignore=skip_maps, dirs_exist_ok=True)
    shutil.copy2(reveal / "LICENSE", target / "LICENSE")
    shutil.copytree(mathjax_dir(), site / ASSETS / "mathjax", dirs_exist_ok=True)


def mathjax_url(prefix: str) -> str:
    """MathJax's address from a page whose path to the site's root is prefix ('' or '../')."""
    return f"{prefix}{ASSETS}/mathjax/MathJax.js?config={MATHJAX_CONFIG}"


def reveal_url(prefix: str) -> str:
    return f"{prefix}{ASSETS}/reveal.js"


class _Loads(HTMLParser):
    """Collects the addresses a browser fetches by itself (not links a reader clicks)."""

    SOURCES = {"script", "img", "iframe", "embed", "source", "video", "audio", "track", "input"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag in self.SOURCES and values.get("src"):
            self.urls.append(values["src"])
        if tag == "link" and values.get("href"):
            self.urls.append(values["href"])
        if tag in ("object",) and values.get("data"):
            self.urls.append(values["data"])
        if values.get("style"):
            self.urls += _css_urls(values["style"])
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self.urls += _css_urls(data)
        elif self._in == "script":
            # ES modules (import x from "URL", import("URL")) and absolute addresses in
            # quotes, which scripts hand to the browser (a widget renderer's src, say)
            self.urls += re.findall(r"""\bimport\b[^'"()]*?\(?\s*["']([^"']+)["']""", data)
            self.urls += re.findall(r"""["']((?:[a-z]+:)?//[^"'\s]+)["']""", data)


def _css_urls(css: str) -> list[str]:
    quoted = re.findall(r"""@import\s+["']([^"']+)["']""", css)
    return quoted + re.findall(r"""url\(\s*["']?([^"')]+)["']?\s*\)""", css)


def is_remote(url: str) -> bool:
    """True for an address on another host: http(s)://, ws(s)://, or //host/..."""
    parts = urlsplit(url.strip())
    if parts.scheme in ("", "data", "blob", "about", "javascript") and not url.startswith("//"):
        return False
    return (parts.hostname or "") not in LOCAL_HOSTS


def loaded_urls(html: str) -> list[str]:
    """Every address in a page that a browser fetches on its own, in page order."""
    parser = _Loads()
    parser.feed(html)
    parser.close()
    return parser.urls


def remote_references(html: str) -> list[str]:
    """Addresses in a page that a browser would fetch from the internet on its own."""
    return sorted({url for url in loaded_urls(html) if is_remote(url)})
