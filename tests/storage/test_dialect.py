"""
Tests for L{chatservice.storage.dialect}: telling a PostgreSQL URL from a
SQLite path, and keeping its password out of messages.
"""

from __future__ import annotations

from twisted.trial import unittest

from chatservice.storage.dialect import is_postgresql_url, redacted


class DialectTests(unittest.SynchronousTestCase):
    def test_isPostgresqlURL(self) -> None:
        for url in ("postgresql://h/d", "postgres://u@h/d", "postgresql:///d"):
            self.assertTrue(is_postgresql_url(url), url)
        for path in (
            "chat.sqlite3",
            ":memory:",
            "postgresql.db",
            "dir/postgresql://x",
            "POSTGRESQL://h/d",
            "mysql://h/d",
        ):
            self.assertFalse(is_postgresql_url(path), path)

    def test_redacted(self) -> None:
        """A password, in the user part or the query, never shows."""
        for url, shown in [
            ("postgresql://chat:s3cret@db/chat", "postgresql://chat:***@db/chat"),
            (
                "postgresql://db/chat?password=s3cret&sslmode=require",
                "postgresql://db/chat?password=***&sslmode=require",
            ),
            (
                "postgresql://chat@/chat?host=/run/pg",
                "postgresql://chat@/chat?host=/run/pg",
            ),
            (
                "postgresql://chat:p%40ss@[::1]:5433/chat",
                "postgresql://chat:***@[::1]:5433/chat",
            ),
            ("postgresql://chat:s3cret@[::1/chat", "postgresql://..."),
        ]:
            self.assertEqual(redacted(url), shown)
