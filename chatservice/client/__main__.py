"""
C{python -m chatservice.client}: the same as the C{chat-client} script.
"""

from chatservice.client.cli import main

main()
