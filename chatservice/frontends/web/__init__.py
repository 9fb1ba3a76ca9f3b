"""
The web front end: the chat in a browser, and a JSON protocol over a
WebSocket for any other program, in the same rooms as everyone else.

  - L{chatservice.frontends.web.frames}: WebSocket text frames, encoded once.
  - L{chatservice.frontends.web.renderer}: events as JSON text frames.
  - L{chatservice.frontends.web.requests}: JSON requests, checked and
    carried out.
  - L{chatservice.frontends.web.session}: one WebSocket connection, with the
    limits every front end shares.
  - L{chatservice.frontends.web.site}: the HTTP side: the page, its security
    headers, and the Origin check in front of C{/ws}.

The protocol is documented in C{docs/protocol.md}.
"""
