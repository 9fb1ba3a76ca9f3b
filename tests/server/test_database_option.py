"""
C{--database} with a PostgreSQL URL: what the options take and refuse, and
the installed C{twistd chat} refusing to start, in one line, on a
PostgreSQL it cannot reach.
"""

from __future__ import annotations

from twisted.python import usage
from twisted.trial import unittest

from chatservice.server.options import Options
from tests.storage.test_server import refused
from tests.support.postgres import dead_url


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


class DatabaseOptionTests(unittest.SynchronousTestCase):
    def test_urls(self) -> None:
        """postgresql:// and postgres:// URLs are taken as they are."""
        for url in (
            "postgresql://chat@/chat?host=/run/postgresql",
            "postgres://chat:secret@db.example.org:5433/chat?sslmode=require",
            "postgresql:///chat",
        ):
            self.assertEqual(parse("--database", url)["database"], url)

    def test_paths(self) -> None:
        """Anything without :// is a SQLite file, as before."""
        for path in ("chat.sqlite3", ":memory:", "/var/lib/chat/db", "a:b"):
            self.assertEqual(parse("--database", path)["database"], path)

    def test_otherScheme(self) -> None:
        """Another scheme (or one in capitals, which libpq does not read)."""
        for url in ("mysql://chat@localhost/chat", "POSTGRESQL://chat@localhost/c"):
            with self.assertRaises(usage.UsageError) as caught:
                parse("--database", url)
            self.assertEqual(
                str(caught.exception),
                f"--database {url}: not a SQLite file or a postgresql:// URL",
            )

    def test_badURL(self) -> None:
        """
        A URL libpq cannot read is refused with libpq's reason; the
        password never shows.
        """
        with self.assertRaises(usage.UsageError) as caught:
            parse("--database", "postgresql://chat:s3cret@host/chat?colour=blue")
        message = str(caught.exception)
        self.assertEqual(
            message,
            "--database 'postgresql://chat:***@host/chat?colour=blue': not a "
            'PostgreSQL URL: invalid URI query parameter: "colour"',
        )
        with self.assertRaises(usage.UsageError) as caught:
            parse("--database", "postgresql://chat:s3cret@[::1/chat")
        self.assertIn("not a PostgreSQL URL", str(caught.exception))
        self.assertNotIn("s3cret", str(caught.exception))

    def test_redisNeedsPostgresql(self) -> None:
        """
        With --redis, a SQLite file is refused (each node's own would split
        the chat), however it is spelled.
        """
        for path in ("chat.sqlite3", "postgresql:chat", ":memory:"):
            with self.assertRaises(usage.UsageError) as caught:
                parse("--redis", "unix:/run/redis.sock", "--database", path)
            self.assertIn(
                "with --redis it must be a postgresql:// URL", str(caught.exception)
            )
        url = "postgresql://chat@/chat?host=/run/postgresql"
        options = parse("--redis", "unix:/run/redis.sock", "--database", url)
        self.assertEqual(options["database"], url)


class UnreachableTests(unittest.SynchronousTestCase):
    def test_unreachable(self) -> None:
        """
        A PostgreSQL that cannot be reached stops the server before it
        listens, with one line that names the URL and says why.
        """
        url = dead_url(self)
        line = refused(self, url)
        self.assertTrue(
            line.startswith(f"twistd chat: --database: cannot connect to {url}: "),
            line,
        )
        self.assertIn("No such file or directory", line)

    def test_badURLUnderTwistd(self) -> None:
        line = refused(self, "mysql://chat@localhost/chat")
        self.assertEqual(
            line,
            "twistd chat: --database mysql://chat@localhost/chat: not a SQLite "
            "file or a postgresql:// URL",
        )
