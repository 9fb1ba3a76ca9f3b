"""
chatservice: a multi-user text chat service on Twisted.

The layers, each a subpackage (docs/architecture.md draws them):

- L{chatservice.core}: rooms, nicknames, accounts, history, the rules of the
  chat; no I/O, so that every front end shares it.
- L{chatservice.storage}: the database behind history and accounts.
- L{chatservice.frontends}: how clients reach the core; C{line} is the
  protocol for C{nc}, C{telnet} and C{chat-client}.
- L{chatservice.server}: the C{twistd chat} plugin's options and service,
  which build one core and hand it to every front end.
- L{chatservice.client}: the C{chat-client} terminal client.
"""

__version__ = "0.1.0"
