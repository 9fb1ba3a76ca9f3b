"""
The web client's files, read as text: what the browser tests cannot see
every time, checked on every run without a browser.

What users type reaches the page through C{textContent} only: no script
uses an HTML sink, and the page holds no inline script, style or event
handler, which the Content-Security-Policy would refuse anyway. Every
module a script imports is shipped beside it.
"""

from __future__ import annotations

import re

from twisted.trial.unittest import SynchronousTestCase

from chatservice.frontends.web.site import static_path

# Ways of turning a string into markup or code.
_SINKS = re.compile(
    r"\binnerHTML\b|\bouterHTML\b|insertAdjacentHTML|document\.write|"
    r"\beval\s*\(|\bnew\s+Function\b|createContextualFragment|DOMParser|"
    r"setAttribute\(\s*[\"']on|\bsrcdoc\b"
)
_IMPORT = re.compile(r"""^import .* from "\./([\w.-]+)";$""", re.MULTILINE)


class StaticFilesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.static = static_path()
        self.scripts = {
            p.basename(): p.getContent().decode()
            for p in self.static.globChildren("*.js")
        }

    def test_scriptsHaveNoHTMLSinks(self) -> None:
        self.assertIn("app.js", self.scripts)
        for name, text in self.scripts.items():
            self.assertEqual(_SINKS.findall(text), [], name)

    def test_importsAreShipped(self) -> None:
        imported = {
            module for text in self.scripts.values() for module in _IMPORT.findall(text)
        }
        self.assertTrue(imported)
        self.assertLessEqual(imported, set(self.scripts))

    def test_pageHasNoInlineCode(self) -> None:
        page = self.static.child("index.html").getContent().decode()
        self.assertEqual(re.findall(r"<script(?![^>]*\bsrc=)", page), [])
        self.assertEqual(re.findall(r"<style|\sstyle=|\son\w+=", page), [])
        for src in re.findall(r'(?:src|href)="([^"]+)"', page):
            self.assertTrue(self.static.child(src).exists(), src)
