"""
The seam between the chat core and its front ends.

A front end supplies two things:

  - a L{Renderer}, one per kind of front end, shared by all its sessions,
    which turns events into that front end's bytes;
  - a L{Session} per connection, which takes bytes the core has rendered
    and delivers them.

The core renders a room's events once per renderer present in the room and
hands the same C{bytes} to every session of that kind (Ergo's message
cache). Rendering per recipient would cost a format per member per line.
"""

from __future__ import annotations

from typing import Protocol

from chatservice.core.events import Event


class Renderer(Protocol):
    """
    How one kind of front end writes events. Renderers are compared by
    identity: sessions that share one share its output.

    A renderer may have an C{echoed} attribute, a container of the room
    event types whose members get back the ones they caused themselves
    (their own lines, for IRC's C{echo-message}); without it, the member
    who caused a room event is never sent it.
    """

    def render(self, event: Event) -> bytes:
        """
        The bytes that tell any member of this kind of front end C{event}
        (a room's events, shared by all its members of this kind): whole
        protocol units (lines, frames), ready to send.
        """

    def render_to(self, nick: str, event: Event) -> bytes:
        """
        The bytes that tell the member called C{nick} C{event}, a reply or
        notice for it alone: some protocols name the recipient (IRC's
        numerics and private messages do).
        """


class Session(Protocol):
    """
    One member's connection, as the core sees it.

    A session may have an C{identity} attribute: the user name and real
    name its client gave (IRC's C{USER}), which C{WHOWAS} remembers; without
    one, a member is known by its nickname alone.
    """

    @property
    def renderer(self) -> Renderer:
        """What renders this session's events."""

    def deliver(self, data: bytes) -> None:
        """
        Send C{data}, already rendered by L{renderer}, to the member.
        """

    def close(self) -> None:
        """
        End the connection once what was delivered has been sent.
        """
