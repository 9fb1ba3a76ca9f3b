"""
C{python -m chatservice.bench}: the same as C{chat-bench}.
"""

import sys

from chatservice.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
