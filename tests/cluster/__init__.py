"""
Tests against a real Redis and PostgreSQL (issue 15), found through
L{tests.support.services}: skipped without them, failed in CI.
"""
