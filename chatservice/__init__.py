"""
chatservice: a multi-user line-based chat service on Twisted.

The pieces, one idea per module:

- L{chatservice.registry}: who is connected, under which nickname, in which
  rooms, and delivery to them; free of I/O so other front ends can share it.
- L{chatservice.names}: what a valid nickname or room name is.
- L{chatservice.wire}: every line the server sends, in one place.
- L{chatservice.commands}: the table of slash commands.
- L{chatservice.protocol}: the line protocol and the factory that owns the
  registry.
- L{chatservice.tap}: the twistd plugin's options and service.
- L{chatservice.client}: the stdio terminal client.
"""

__version__ = "0.1.0"
