"""
What C{chat-bench} raises when it cannot carry out a run.
"""


class BenchError(Exception):
    """A run that could not be carried out (as opposed to bad results)."""
