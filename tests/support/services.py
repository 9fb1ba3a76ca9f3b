"""
The real services the cluster tests (issue 15) need, found through the
environment that C{.ci/services} sets (C{.ci/run} sources it):

  - L{redis_endpoint}: C{CHAT_TEST_REDIS}, a Twisted client endpoint string
    (C{unix:path=.../redis.sock}).
  - L{postgres_url}: C{CHAT_TEST_POSTGRES}, a libpq connection URI
    (C{postgresql://chat@/chat?host=...&port=5432}), which psycopg takes as
    it is.

Without the variable a test is skipped, with the reason, except in CI
(C{CI=true}), where it fails: there the service must be running, and a skip
would hide that the cluster tests never ran.
"""

from __future__ import annotations

import os
import unittest

from twisted.trial.unittest import SynchronousTestCase

REDIS = "CHAT_TEST_REDIS"
POSTGRES = "CHAT_TEST_POSTGRES"


def _service(testcase: SynchronousTestCase, variable: str, what: str) -> str:
    """The value of C{variable}; without it, skip C{testcase}, or fail it in CI."""
    value = os.environ.get(variable, "")
    if value:
        return value
    reason = f"{what} is not available: {variable} is not set"
    if os.environ.get("CI") == "true":
        raise AssertionError(
            f"{testcase.id()}: {reason} (.ci/run starts it with .ci/services)"
        )
    raise unittest.SkipTest(
        f"{reason}; run the tests under `source .ci/services` to start one"
    )


def redis_endpoint(testcase: SynchronousTestCase) -> str:
    """The Twisted client endpoint string of the test Redis."""
    return _service(testcase, REDIS, "Redis")


def postgres_url(testcase: SynchronousTestCase) -> str:
    """The libpq connection URI of the test PostgreSQL database."""
    return _service(testcase, POSTGRES, "PostgreSQL")
