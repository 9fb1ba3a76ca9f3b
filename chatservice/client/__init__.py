"""
C{chat-client}: a terminal client for the line protocol, used like C{nc}.

  - L{chatservice.client.cli}: the command line, and the run of a session.
  - L{chatservice.client.console}: standard input and output.
  - L{chatservice.client.terminal}: line editing and display at a terminal.
  - L{chatservice.client.connection}: one connection to the server, and
    what its end means.
  - L{chatservice.client.reconnect}: C{--reconnect}, across lost
    connections.
  - L{chatservice.client.session_state}: the session, as the server's
    replies describe it.
  - L{chatservice.client.tls} and L{chatservice.client.tls_endpoint}: TLS.

Of the server's code the client uses only L{chatservice.core.names} (how
names compare, and what a guest's looks like). It reads the server's lines
with a parser of its own, which C{tests/client/test_line_format.py} checks
against the server's rendering of them.
"""
