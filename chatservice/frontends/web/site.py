"""
The web front end's HTTP side: the page at C{/}, the WebSocket at C{/ws},
and the headers that keep the page to itself.

Every response carries a strict Content-Security-Policy (scripts, styles
and images from this origin only, no inline script, connections to this
origin only, never framed), C{X-Content-Type-Options: nosniff} and
C{Referrer-Policy: no-referrer}. The WebSocket handshake checks C{Origin}
against the host the browser asked for, or the origins given with
C{--web-origin}: a page on another site must not open a chat connection
with its visitor's cookies and address (cross-site WebSocket hijacking).
A request without C{Origin} comes from no browser, and is let in.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from urllib.parse import urlsplit

from twisted.logger import Logger
from twisted.python.filepath import FilePath
from twisted.web.pages import notFound
from twisted.web.resource import IResource
from twisted.web.server import Request, Site
from twisted.web.static import File
from twisted.web.websocket import WebSocketResource

from chatservice import _twisted_private
from chatservice.frontends.web.session import WebFactory, WebRefusal, WebSession
from chatservice.frontends.web.wire import FastFrames

log = Logger()

# Seconds an HTTP connection may sit idle; a WebSocket is not idle-timed
# by the HTTP layer (its session has the --idle-timeout).
HTTP_TIMEOUT = 60

SECURITY_HEADERS = {
    b"Content-Security-Policy": (
        b"default-src 'none'; script-src 'self'; style-src 'self'; "
        b"img-src 'self'; connect-src 'self'; base-uri 'none'; "
        b"form-action 'none'; frame-ancestors 'none'"
    ),
    b"X-Content-Type-Options": b"nosniff",
    b"Referrer-Policy": b"no-referrer",
    b"X-Frame-Options": b"DENY",
    b"Cache-Control": b"no-cache",
}


def static_path() -> FilePath[str]:
    """Where the page's files are: package data of this package."""
    return FilePath(str(resources.files(__package__) / "static"))


def origin_of(value: str) -> str | None:
    """
    C{value} as an origin, C{scheme://host[:port]} in lower case, if it is
    an http or https origin with nothing after the host.
    """
    try:
        parts = urlsplit(value.strip().lower())
        parts.port  # noqa: B018 (a port out of range raises)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    return f"{parts.scheme}://{parts.netloc}"


class StaticFiles(File):
    """The page's files; a directory is not listed."""

    def directoryListing(self) -> IResource:
        return notFound()


class ChatSocket(WebSocketResource):
    """
    C{/ws}: the Origin check, then Twisted's WebSocket handshake, then a
    web session (or the admission's refusal).

    @param origins: the origins allowed; empty: the host the request names.
    """

    def __init__(self, factory: WebFactory, origins: Sequence[str] = ()) -> None:
        super().__init__(self)
        self.web = factory
        self.origins = frozenset(origins)

    def allowed(self, request: Request) -> bool:
        origin = request.getHeader("origin")
        if origin is None:
            return True
        if self.origins:
            return origin_of(origin) in self.origins
        host = request.getHeader("host")
        return host is not None and urlsplit(origin.lower()).netloc == host.lower()

    def render_GET(self, request: Request) -> bytes | int:
        if not self.allowed(request):
            log.info(
                "{peer} refused: WebSocket from origin {origin}",
                peer=request.getClientAddress(),
                origin=request.getHeader("origin"),
                reason="origin",
            )
            request.setResponseCode(403)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"Cross-origin WebSocket refused.\n"
        self._built: WebSession | WebRefusal | None = None
        result = super().render_GET(request)
        session, self._built = self._built, None
        if isinstance(session, WebSession) and session._ws is not None:
            # Text frames of a size no message may exceed in UTF-8.
            fast = FastFrames(session.messagesReceived, 4 * session.limits.max_line)
            _twisted_private.watch_websocket_input(
                request.channel, session._ws, session.arrived, fast
            )
        return result

    def buildProtocol(self, request: Request) -> WebSession | WebRefusal:
        """The WebSocket factory's method: this resource is its own."""
        transport = request.channel.transport
        assert transport is not None
        self._built = self.web.session(transport)
        return self._built


class ChatSite(Site):
    """A L{Site} whose every response carries the security headers."""

    def getResourceFor(self, request: Request) -> IResource:
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        resource: IResource = super().getResourceFor(request)
        return resource


def web_site(factory: WebFactory, origins: Sequence[str] = ()) -> ChatSite:
    """
    The site one or more C{--web} listeners serve: the page, and the
    WebSocket for C{factory}'s sessions, on the factory's reactor.
    """
    root = StaticFiles(static_path().path)
    root.putChild(b"ws", ChatSocket(factory, origins))
    site = ChatSite(root, timeout=HTTP_TIMEOUT, reactor=factory.reactor)
    site.noisy = False
    return site
