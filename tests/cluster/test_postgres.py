"""
PostgreSQL through L{twisted.enterprise.adbapi} and psycopg 3, against the
real database of L{tests.support.services}: the plumbing the shared store will
stand on (Synapse's setup, with psycopg 3 in place of psycopg2). Each test
makes its own pool of one connection and closes it; tables are temporary, so
runs never meet.
"""

from __future__ import annotations

from typing import Any

from twisted.enterprise import adbapi
from twisted.trial.unittest import TestCase

from tests.support.helpers import deferred_test
from tests.support.services import postgres_url


class PostgresTests(TestCase):
    def setUp(self) -> None:
        self.pool = adbapi.ConnectionPool(
            "psycopg", postgres_url(self), cp_min=1, cp_max=1, cp_reconnect=True
        )
        self.addCleanup(self.pool.close)

    @deferred_test
    async def test_query(self) -> None:
        """A query answered from the pool's thread, on the test database."""
        rows = await self.pool.runQuery("SELECT current_database(), %s::int + 1", (41,))
        self.assertEqual(rows, [("chat", 42)])

    @deferred_test
    async def test_temporary_table(self) -> None:
        """
        One interaction, one transaction on one connection: create a table,
        insert, conflict, select.
        """

        def interaction(cursor: Any) -> list[tuple[object, ...]]:
            cursor.execute(
                "CREATE TEMPORARY TABLE lines"
                " (seq integer PRIMARY KEY, body text NOT NULL) ON COMMIT DROP"
            )
            cursor.executemany(
                "INSERT INTO lines (seq, body) VALUES (%s, %s)",
                [(1, "one"), (2, "two")],
            )
            # The idempotent write the history will use.
            cursor.execute(
                "INSERT INTO lines (seq, body) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (2, "again"),
            )
            cursor.execute("SELECT seq, body FROM lines ORDER BY seq")
            rows: list[tuple[object, ...]] = cursor.fetchall()
            return rows

        rows = await self.pool.runInteraction(interaction)
        self.assertEqual(rows, [(1, "one"), (2, "two")])

    @deferred_test
    async def test_error_rolls_back(self) -> None:
        """
        An error in an interaction reaches the caller as a psycopg error, and
        the pool's connection stays usable for the next one.
        """
        import psycopg

        with self.assertRaises(psycopg.errors.UndefinedTable):
            await self.pool.runQuery("SELECT * FROM no_such_table")
        self.assertEqual(await self.pool.runQuery("SELECT 1"), [(1,)])
