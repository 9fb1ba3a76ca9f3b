"""
The layering rule, checked: the core imports no front end, no server, no
client, no reactor and no Twisted protocol; storage and the cluster import
no front end.
Every import statement counts, at any depth (a function's, or one under
C{TYPE_CHECKING}), as each is a dependency all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import chatservice
from tests.support.helpers import make_temp_dir

PACKAGE = Path(chatservice.__file__).parent

# What each layer may not import: a module, or anything below it.
FORBIDDEN = {
    "core": (
        "chatservice.frontends",
        "chatservice.server",
        "chatservice.client",
        "chatservice.bench",
        "chatservice.storage",
        "twisted.internet.reactor",
        "twisted.internet.protocol",
        "twisted.internet.tcp",
        "twisted.internet.endpoints",
    ),
    "storage": (
        "chatservice.frontends",
        "chatservice.server",
        "chatservice.client",
        "chatservice.bench",
    ),
    # The backplane and the node's replica: Redis and the core, never a
    # front end's protocol or the server's options.
    "cluster": (
        "chatservice.frontends",
        "chatservice.server",
        "chatservice.client",
        "chatservice.bench",
        "chatservice.storage",
    ),
}


def imports(source: str) -> list[tuple[int, str]]:
    """
    Every module C{source} imports, with the line: C{from a import b} counts
    as C{a.b} too, since C{b} may be a module.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def violations(layer: str, root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted((root / layer).rglob("*.py")):
        for line, module in sorted(imports(path.read_text())):
            for forbidden in FORBIDDEN[layer]:
                if module == forbidden or module.startswith(forbidden + "."):
                    name = path.relative_to(root)
                    found.append(f"{name}:{line} imports {module}")
    return found


class LayerTests(SynchronousTestCase):
    def test_core(self) -> None:
        self.assertEqual(violations("core"), [])

    def test_storage(self) -> None:
        self.assertEqual(violations("storage"), [])

    def test_cluster(self) -> None:
        self.assertEqual(violations("cluster"), [])

    def test_caught(self) -> None:
        """
        The check finds each kind of import it forbids.
        """
        root = make_temp_dir(self)
        (root / "core").mkdir()
        (root / "core" / "bad.py").write_text(
            "from twisted.internet import reactor\n"
            "import chatservice.frontends.line.wire\n"
            "def f():\n"
            "    from chatservice.server import tap\n"
            "from twisted.internet.protocol import Protocol\n"
            "from chatservice.core import names\n"
        )
        self.assertEqual(
            violations("core", root),
            [
                "core/bad.py:1 imports twisted.internet.reactor",
                "core/bad.py:2 imports chatservice.frontends.line.wire",
                "core/bad.py:4 imports chatservice.server",
                "core/bad.py:4 imports chatservice.server.tap",
                "core/bad.py:5 imports twisted.internet.protocol",
                "core/bad.py:5 imports twisted.internet.protocol.Protocol",
            ],
        )
