"""
Every kind of line the server sends, in one place.

C{docs/protocol.md} documents exactly these shapes; keep the two in step.
Lines are built as text here and encoded once by L{encode}, so that a line
fanned out to a thousand members is encoded a single time.
"""

from __future__ import annotations

NEWLINE = b"\r\n"


def encode(line: str) -> bytes:
    """
    The bytes of one outgoing line: UTF-8 with the CRLF every terminal and
    telnet expects.
    """
    return line.encode("utf-8") + NEWLINE


def notice(text: str) -> str:
    """A reply or announcement from the server to one client."""
    return f"*** {text}"


def error(text: str) -> str:
    """A refusal: the request was not carried out."""
    return f"!!! {text}"


def message(room: str, nick: str, text: str) -> str:
    """A chat line said in C{room}."""
    return f"[{room}] <{nick}> {text}"


def action(room: str, nick: str, text: str) -> str:
    """A C{/me} action in C{room}."""
    return f"[{room}] * {nick} {text}"


def joined(room: str, nick: str) -> str:
    return f"[{room}] --> {nick} joined"


def left(room: str, nick: str) -> str:
    return f"[{room}] <-- {nick} left"


def quit(room: str, nick: str, reason: str) -> str:
    return f"[{room}] <-- {nick} quit ({reason})"


def renamed(room: str, old: str, new: str) -> str:
    return f"[{room}] --- {old} is now known as {new}"


def private(nick: str, text: str) -> str:
    """A private message from C{nick}, seen only by its addressee."""
    return f"*{nick}* {text}"


def history_start(room: str, count: int) -> str:
    return notice(f"Last {count} line(s) of {room}:")


def history_end(room: str) -> str:
    return notice(f"End of history of {room}.")


def history_line(room: str, when: str, kind: str, nick: str, text: str) -> str:
    """
    A stored line replayed: the time it was said, in parentheses, tells it
    from a live one.
    """
    if kind == "action":
        return f"[{room}] ({when}) * {nick} {text}"
    return f"[{room}] ({when}) <{nick}> {text}"


def motd_start() -> str:
    return notice("Message of the day:")


def motd_line(text: str) -> str:
    """One line of the operator's message of the day."""
    return notice(f"- {text}" if text else "-")


def shutting_down() -> str:
    """The last line every client gets when the server stops."""
    return notice("The server is shutting down. Goodbye.")


def welcome(nick: str, room: str) -> str:
    return notice(
        f"Welcome to chatservice, {nick}! You are in {room}. Type /help for commands."
    )
