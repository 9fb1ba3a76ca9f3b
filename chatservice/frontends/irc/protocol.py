"""
The IRC protocol: registration and the commands of RFC 2812 and the modern
client protocol document that the chat can carry.

Framing, limits and output are L{chatservice.frontends.stream}'s, on bytes,
as for every front end (not L{twisted.words.protocols.irc.IRC}'s
C{dataReceived}, which decodes each TCP chunk before splitting lines and
drops the connection on a character split across reads). A client is not a
member of the chat until it has registered (C{NICK} and C{USER}, after
C{CAP END} if it began capability negotiation); what it sends before that
is answered from here. Every refusal is the core's typed error or
L{IRCError}, which the renderer turns into a numeric.
"""

from __future__ import annotations

import dataclasses
import re
import time
import weakref
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from chatservice import __version__
from chatservice.core import errors, events, names
from chatservice.core.accounts import Account, Accounts
from chatservice.core.chat import Chat
from chatservice.core.durations import (
    DURATION_MAX,
    looks_like_duration,
    parse_duration,
)
from chatservice.core.errors import ChatError
from chatservice.core.events import Event, LoggedIn, MaskKind, Motd, Refused, Setting
from chatservice.core.moderation import KEY_MAX, LIMIT_MAX, LIST_MAX
from chatservice.core.operators import TOPIC_MAX
from chatservice.core.rooms import Member, Room
from chatservice.core.server_operators import AUDIT_MAX, ServerOperators
from chatservice.core.whowas import identity as _identity
from chatservice.frontends.admission import Admission
from chatservice.frontends.irc import caps, sasl, tags
from chatservice.frontends.irc import renderer as r
from chatservice.frontends.irc.renderer import (
    Departures,
    Echo,
    IRCError,
    IRCRenderer,
    MessageIds,
    Raw,
    Reply,
    TagMsg,
)
from chatservice.frontends.limits import Limits
from chatservice.frontends.stream import StreamFactory, StreamSession

log = Logger()

# Seconds a client has to register before it is disconnected.
REGISTRATION_TIMEOUT = 60.0
# How many audit entries AUDIT shows when not told.
AUDIT_DEFAULT = 20
# What KLINE reads as a duration before the mask: minutes, or ours.
# Bytes of an IRC line before its CRLF, not counting its tags.
IRC_MAX_LINE = 510
# Bytes of a line a client may send: its tags (with their @ and the space
# after them) and the line.
IRC_MAX_TAGGED_LINE = tags.CLIENT_TAGS_MAX + 2 + IRC_MAX_LINE
# Lines a client may send at once: clients burst MODE and WHO on joining.
IRC_FLOOD_BURST = 40
NETWORK = "chatservice"
# The most changes with an argument one MODE line makes (ISUPPORT's MODES).
MODES = 12
# The most characters of a USER name kept (IRC's USERLEN).
USERLEN = 16
TARGMAX = {
    "PRIVMSG": 4,
    "NOTICE": 4,
    "TAGMSG": 4,
    "JOIN": 10,
    "PART": 10,
    "NAMES": 10,
    "WHOIS": 1,
    "KICK": 4,
}


def parse(text: str) -> tuple[str, list[str]] | None:
    """
    The command and parameters of one IRC line (tags and a source, if a
    client sends them, are ignored); None for an empty line.
    """
    if text.startswith("@"):
        text = text.partition(" ")[2]
    text = text.lstrip(" ")
    if text.startswith(":"):
        text = text.partition(" ")[2]
    trailing: str | None = None
    if " :" in text:
        text, _, trailing = text.partition(" :")
    elif text.startswith(":"):
        return None
    words = text.split()
    if not words:
        return None
    params = words[1:]
    if trailing is not None:
        params.append(trailing)
    return words[0].upper(), params


def _ctcp(text: str) -> tuple[str, str] | None:
    """
    The command and argument of a CTCP message, if C{text} is one.
    """
    if not text.startswith("\x01"):
        return None
    body = text[1:].removesuffix("\x01")
    command, _, argument = body.partition(" ")
    return command.upper(), argument


class IRCProtocol(StreamSession):
    """
    One IRC client's connection.
    """

    factory: IRCFactory
    _nick: str | None = None
    _user: str | None = None
    realname = ""
    _password: str | None = None
    # The tags of the line being handled, by name.
    _tags: dict[str, str] = {}
    # While a labelled command is handled before registering: its replies.
    _captured: list[bytes] | None = None
    _renderer: IRCRenderer
    # The account proved with SASL before registering (its nickname).
    _account: str | None = None
    _sasl: sasl.Exchange | None = None
    # The connection is gone: an account check that ends later does nothing.
    _gone = False
    _registration: IDelayedCall | None = None
    _pinged = False
    away: str | None = None
    # The renderers' count of quits and renames when this client's output
    # was last searched for them.
    _departures_seen = -1

    # The connection

    def start(self) -> Member | None:
        self._targets: dict[str, Room] = {}
        self.caps = caps.Negotiation(caps.offered(self.factory))
        self._renderer = self.factory.renderer
        self._registration = self.factory.reactor.callLater(
            REGISTRATION_TIMEOUT, self._registration_timeout
        )
        return None

    def _registration_timeout(self) -> None:
        self._registration = None
        if self.member is None and self._reading:
            self.drop(
                IRCError("ERROR", ("Registration timed out",)),
                "registration timeout",
            )

    def connectionLost(self, reason: Any = None) -> None:
        self._gone = True
        if self._registration is not None and self._registration.active():
            self._registration.cancel()
        self._registration = None
        super().connectionLost(
            reason
        ) if reason is not None else super().connectionLost()

    def timeoutConnection(self) -> None:
        # A quiet client is asked first; one that does not answer goes.
        if self._reading and not self._pinged and not self._held:
            self._pinged = True
            self.send(Raw("PING", (self.factory.server,)))
            self.setTimeout(self.limits.idle_timeout)
            return
        super().timeoutConnection()

    def resetTimeout(self) -> None:
        self._pinged = False
        super().resetTimeout()

    @property
    def identity(self) -> tuple[str, str] | None:
        """
        The user name and real name given in C{USER}, once it was sent.
        """
        return None if self._user is None else (self._user, self.realname)

    @property
    def renderer(self) -> IRCRenderer:
        """The renderer for this client's capabilities."""
        return self._renderer

    def tell(self, event: Event) -> None:
        if self._captured is not None and self.member is None:
            self._captured.append(self._renderer.render_to("*", event))
            return
        super().tell(event)

    def send(self, event: Event) -> None:
        self.tell(event)

    def numeric(self, code: str, *params: str) -> None:
        self.tell(Reply(code, params))

    # Input

    def linesReceived(self, lines: list[bytes | None], start: int) -> int:
        # Most lines are PRIVMSGs to the channel the previous line went to.
        # A run of plain ones (one channel, no CTCP, valid UTF-8, not empty)
        # is said in one call; anything else is left to lineReceived, which
        # answers it line by line.
        member = self.member
        if member is None:
            return start
        limit = IRC_MAX_LINE
        texts = []
        target = b""
        for index in range(start, len(lines)):
            line = lines[index]
            if not line or len(line) > limit or not line.startswith(b"PRIVMSG #"):
                break
            head, sep, body = line.partition(b" :")
            name = head[8:]
            if not sep or b"," in name or b" " in name or body.startswith(b"\x01"):
                break
            if target and name != target:
                break
            target = name
            if body.endswith(b"\r"):
                body = body[:-1]
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                break
            if not text:
                break
            texts.append(text)
        if not texts:
            return start
        try:
            room = self._channel(member, target.decode("utf-8"))
        except ChatError:
            return start
        if room.gagged:
            # Who may speak is checked line by line, each refusal answered.
            return start
        # A line that would not fit relayed is refused by lineReceived.
        room_left = r.text_room(member.nick, "PRIVMSG", r.channel(room.name))
        fitting = 0
        for text in texts:
            if len(text.encode("utf-8")) > room_left:
                break
            fitting += 1
        if not fitting:
            return start
        self.chat.say_all(member, room, texts[:fitting])
        return start + fitting

    def lineReceived(self, line: bytes) -> Deferred[None] | None:
        given: dict[str, str] = {}
        if line.startswith(b"@"):
            head, _, line = line.partition(b" ")
            if len(head) - 1 > tags.CLIENT_TAGS_MAX:
                self.tell(Refused(errors.LineTooLong(IRC_MAX_LINE)))
                return None
            given = tags.parse(head[1:].decode("utf-8", "replace"))
        if len(line) > IRC_MAX_LINE:
            self.tell(Refused(errors.LineTooLong(IRC_MAX_LINE)))
            return None
        try:
            text = line.decode("utf-8")
            replaced = False
        except UnicodeDecodeError:
            # Replaced, as in the line protocol; the client is warned.
            text = line.decode("utf-8", "replace")
            replaced = True
        parsed = parse(text)
        if parsed is None:
            return None
        label = given.get("label")
        if label and caps.LABELED_RESPONSE in self.caps.enabled:
            self._labelled(label, parsed, given, replaced)
            return None
        self._tags = given
        try:
            return self._command(*parsed, replaced=replaced)
        finally:
            self._tags = {}

    def _labelled(
        self,
        label: str,
        parsed: tuple[str, list[str]],
        given: dict[str, str],
        replaced: bool,
    ) -> None:
        """
        Handle a command the client labelled: whatever it draws in reply
        carries the label, several lines as a C{labeled-response} batch,
        and nothing as a labelled C{ACK}.
        """
        fanout = self.chat.fanout
        before = self.member
        if before is not None:
            # What the client's rooms had pending is not this command's.
            fanout.flush_rooms_of(before)
        mark = 0 if before is None else len(before.outbox)
        self._captured = []
        self._tags = given
        try:
            self._command(*parsed, replaced=replaced)
        finally:
            self._tags = {}
            captured, self._captured = self._captured, None
        member = self.member
        replies = b"".join(captured)
        if member is not None:
            if not member.connected:
                return
            # Its own lines, echoed, are replies too.
            fanout.flush_rooms_of(member)
            outbox = member.outbox
            if before is not member:
                mark = 0
            replies += b"".join(outbox[mark:])
            del outbox[mark:]
        lines = replies.split(b"\r\n")[:-1]
        escaped = tags.escape(label).encode()
        if not lines:
            ack = self._renderer.render_to(self.nick, Raw("ACK", ()))
            lines = [ack.rstrip(b"\r\n")]
        if len(lines) == 1:
            out = tags.add(lines[0], b"label=" + escaped) + b"\r\n"
        else:
            ref = tags.batch_id()
            opening = self._renderer.render_to(
                self.nick, Raw("BATCH", (f"+{ref}", "labeled-response"))
            )
            closing = self._renderer.render_to(self.nick, Raw("BATCH", (f"-{ref}",)))
            inside = f"batch={ref}".encode()
            out = b"".join(
                [
                    tags.add(opening.rstrip(b"\r\n"), b"label=" + escaped),
                    b"\r\n",
                    *[_in_batch(each, inside) + b"\r\n" for each in lines],
                    closing,
                ]
            )
        if member is None:
            self.deliver(out)
        else:
            fanout.queue(member, out)

    def _command(
        self, command: str, params: list[str], replaced: bool = False
    ) -> Deferred[None] | None:
        """
        Carry out C{command}. One that waits (an account check) returns a
        Deferred, which holds the client's lines after it until it is done;
        a labelled one labels only what it answers at once.

        A line that was not valid UTF-8 (C{replaced}: its bad bytes are
        U+FFFD now) is carried out as it reads now, after a C{WARN}
        C{INVALID_UTF8}, which the UTF8ONLY specification gives for a
        message "modified but still accepted"; a C{NOTICE} draws no reply,
        not even that.
        """
        if replaced and command != "NOTICE":
            self.send(Raw("WARN", (command, "INVALID_UTF8", _INVALID_UTF8)))
        handler: Callable[[list[str]], Deferred[None] | None] | None = getattr(
            self, f"irc_{command}", None
        )
        try:
            if handler is None:
                if self.member is None:
                    raise r.not_registered()
                raise r.unknown_command(command)
            if self.member is None and command not in _BEFORE_REGISTRATION:
                raise r.not_registered()
            # A command that waits (an account check) holds the lines
            # after it until it is done.
            return handler(params)
        except ChatError as e:
            self.tell(Refused(e))
        return None

    # Registration

    def irc_CAP(self, params: list[str]) -> Deferred[None] | None:
        sub = params[0].upper() if params else ""
        me = self.nick
        negotiation = self.caps
        if sub == "LS":
            if self.member is None:
                negotiation.started = True
            for each in negotiation.ls(params[1] if len(params) > 1 else None):
                self.send(Raw("CAP", (me, *each)))
        elif sub == "LIST":
            for each in negotiation.listing():
                self.send(Raw("CAP", (me, *each)))
        elif sub == "REQ":
            if self.member is None:
                negotiation.started = True
            reply = negotiation.req(params[1] if len(params) > 1 else "")
            # The answer is written as the client was before it changed.
            self.send(Raw("CAP", (me, *reply)))
            self._choose_renderer()
        elif sub == "END":
            negotiation.started = False
            return self._register()
        else:
            raise IRCError("410", (sub or "*", "Invalid CAP command"))
        return None

    def _choose_renderer(self) -> None:
        """
        Render for the client's capabilities as they are now: a member
        changes groups in its rooms.
        """
        renderer = self.factory.renderer_for(self.caps.rendering)
        if renderer is self._renderer:
            return
        self._renderer = renderer
        if self.member is not None:
            self.chat.set_renderer(self.member, renderer)

    def irc_PASS(self, params: list[str]) -> None:
        if self.member is not None:
            raise r.already_registered()
        if not params:
            raise r.need_more_params("PASS")
        self._password = params[0]

    def irc_NICK(self, params: list[str]) -> Deferred[None] | None:
        if not params or not params[0]:
            raise r.no_nickname()
        requested = params[0]
        if self.member is not None:
            self.chat.rename(self.member, requested)
            return None
        try:
            nick = names.nickname(requested)
        except names.InvalidName as e:
            raise errors.InvalidName("nickname", requested, str(e)) from None
        # A client with credentials logs in as it registers, and takes its
        # name from whoever holds it: the check waits till then.
        if names.fold(nick) in self.chat.members and not self._credentials:
            raise errors.NickTaken(nick)
        self._nick = nick
        return self._register()

    @property
    def _credentials(self) -> bool:
        return self._account is not None or (
            self._password is not None and self.factory.accounts is not None
        )

    def irc_USER(self, params: list[str]) -> Deferred[None] | None:
        if self.member is not None or self._user is not None:
            raise r.already_registered()
        if len(params) < 4 or not params[0] or not params[3]:
            raise r.need_more_params("USER")
        self._user = params[0][:USERLEN]
        self.realname = params[3]
        return self._register()

    def _register(self) -> Deferred[None] | None:
        """
        Make the client a member once it has sent all registration asks
        for. With C{PASS}, the password is checked first, off the reactor
        thread: the Deferred returned holds the client's next lines until
        that is done.
        """
        nick = self._nick
        if nick is None or self._user is None or self.caps.started:
            return None
        if self.member is not None:
            return None
        if self._sasl is not None and self._sasl.active:
            # Registering ends an exchange left unfinished (sasl-3.1).
            self._sasl.abort()
            self.send(sasl.aborted())
        accounts = self.factory.accounts
        password, self._password = self._password, None
        if self._account is None and password is not None and accounts is not None:
            name, _, secret = password.partition(":")
            if not secret or not _is_nickname(name):
                # PASS password: the account is the nickname.
                name, secret = nick, password
            return Deferred.fromCoroutine(self._pass_login(name, secret))
        self._join_chat(nick, self._account)
        return None

    async def _pass_login(self, name: str, password: str) -> None:
        """
        Register as the account C{name} if C{password} is its password. A
        wrong password is refused with 464 and the connection closed, as
        servers do for a wrong server password; a name that is no account
        is told and registration goes on without one.
        """
        accounts = self.factory.accounts
        assert accounts is not None
        account: Account | None
        try:
            account = await accounts.authenticate(self, name, password)
        except errors.NotRegistered as e:
            account = None
            if not self._gone:
                self.tell(Refused(e))
        except errors.StoreUnavailable as e:
            # Not a bad password: the accounts cannot be read just now.
            if not self._gone:
                self.tell(Refused(e))
                self.drop(
                    IRCError("ERROR", ("Access denied: try again later",)),
                    "accounts unavailable",
                )
            return
        except ChatError as e:
            if not self._gone:
                self.tell(Refused(e))
                self.drop(
                    IRCError("ERROR", ("Access denied: bad password",)),
                    "bad password",
                )
            return
        except Exception:
            log.failure("Checking a password at registration failed")
            if not self._gone:
                self.drop(
                    IRCError("ERROR", ("Access denied: try again later",)),
                    "login failed",
                )
            return
        if self._gone or self.member is not None:
            return
        nick = self._nick
        assert nick is not None
        try:
            self._join_chat(nick, None if account is None else account.nick, False)
        except ChatError as e:
            self.tell(Refused(e))

    def _join_chat(self, nick: str, account: str | None, told: bool = True) -> None:
        """
        Become the member called C{nick}, logged in as the account
        C{account} if given (and tell it so, unless it was C{told} already,
        as SASL does); a nickname that is the account's is taken from
        whoever holds it.
        """
        try:
            member = self.chat.connect(self, nick, account)
        except errors.ServerBanned as e:
            # 465 and ERROR, and the connection goes.
            self._nick = None
            self.drop(e, "server ban")
            return
        except ChatError:
            self._nick = None
            raise
        self.member = member
        if self._registration is not None and self._registration.active():
            self._registration.cancel()
        self._registration = None
        self.joined()
        if account is not None:
            log.info("{account} logged in", account=account)
            if not told:
                self.chat.tell(member, LoggedIn(account))
        self._welcome()

    # SASL

    def irc_AUTHENTICATE(self, params: list[str]) -> Deferred[None] | None:
        if not params or not params[0]:
            raise r.need_more_params("AUTHENTICATE")
        if self.factory.accounts is None:
            self.send(sasl.failed())
            return None
        exchange = self._sasl
        if exchange is None:
            exchange = self._sasl = sasl.Exchange()
        if (
            not exchange.active
            and params[0] != "*"
            and self.member is None
            and self._account is not None
        ):
            # Once before registering is enough; after it, a client may
            # authenticate again, as another account (sasl-3.2).
            raise sasl.already()
        outcome = exchange.receive(params[0])
        if isinstance(outcome, tuple):
            for reply in outcome:
                self.send(reply)
            return None
        return Deferred.fromCoroutine(self._sasl_login(outcome))

    async def _sasl_login(self, credentials: sasl.Credentials) -> None:
        """
        Log in with C{credentials}: before registering, the account is
        taken when the client registers; after, at once.
        """
        accounts = self.factory.accounts
        assert accounts is not None
        member = self.member
        try:
            if member is None:
                account = await accounts.authenticate(
                    self, credentials.authcid, credentials.password
                )
                if self._gone:
                    return
                self._account = account.nick
                nick = self._nick or "*"
                self.send(
                    Reply(
                        "900",
                        (
                            r.user(nick),
                            account.nick,
                            f"You are now logged in as {account.nick}",
                        ),
                    )
                )
            else:
                account = await accounts.authenticate(
                    self, credentials.authcid, credentials.password
                )
                if not member.connected:
                    return
                log.info("{account} logged in", account=account.nick)
                self.chat.log_in(member, account.nick, take_name=False)
                self.chat.tell(member, LoggedIn(account.nick))
        except ChatError as e:
            log.info("SASL failed: {code}", code=e.code)
            if not self._gone:
                self.send(sasl.failed())
            return
        except Exception:
            log.failure("SASL authentication failed")
            if not self._gone:
                self.send(sasl.failed())
            return
        if not self._gone:
            self.send(sasl.succeeded())

    def _welcome(self) -> None:
        factory = self.factory
        server = factory.server
        nick = self.nick
        version = f"chatservice-{__version__}"
        self.numeric("001", f"Welcome to the {NETWORK} IRC Network {r.user(nick)}")
        self.numeric("002", f"Your host is {server}, running version {version}")
        self.numeric("003", f"This server was created {factory.created}")
        self.numeric("004", server, version, "io", "biklmnoqstv", "bkloqv")
        self._isupport()
        self.irc_LUSERS([])
        self.irc_MOTD([])

    def _isupport(self) -> None:
        tokens = self.factory.isupport()
        for start in range(0, len(tokens), 12):
            self.numeric(
                "005", *tokens[start : start + 12], "are supported by this server"
            )

    # Connection upkeep

    def irc_PING(self, params: list[str]) -> None:
        if not params:
            raise IRCError("409", ("No origin specified",))
        self.send(Raw("PONG", (self.factory.server, params[0])))

    def irc_PONG(self, params: list[str]) -> None:
        pass

    def irc_QUIT(self, params: list[str]) -> None:
        message = params[0] if params else ""
        if self.member is None:
            closing = f"Closing link: {message or 'Client quit'}"
            self.tell(Raw("ERROR", (closing,), "none"))
            self.close()
            return
        self.chat.quit(self.member, message)

    # Channels

    def _member(self) -> Member:
        member = self.member
        assert member is not None
        return member

    def irc_JOIN(self, params: list[str]) -> None:
        # JOIN #a,#b k1,k2: each channel with the key in the same place.
        if not params:
            raise r.need_more_params("JOIN")
        member = self._member()
        if params[0] == "0":
            for room in list(member.rooms.values()):
                self.chat.part(member, room)
            return
        keys = params[1].split(",") if len(params) > 1 else []
        for index, target in enumerate(params[0].split(",")[: TARGMAX["JOIN"]]):
            key = keys[index] if index < len(keys) and keys[index] else None
            try:
                if not target.startswith("#"):
                    raise IRCError("403", (target, "No such channel"))
                if names.fold(target[1:]) in member.rooms:
                    continue
                room = self.chat.join(member, target, key=key)
                self.chat.names(member, room)
            except ChatError as e:
                self.tell(Refused(e))

    def irc_PART(self, params: list[str]) -> None:
        if not params:
            raise r.need_more_params("PART")
        member = self._member()
        reason = params[1] if len(params) > 1 else ""
        for target in params[0].split(",")[: TARGMAX["PART"]]:
            try:
                room = self._room_of(target)
                self.chat.part(member, room, reason)
                # The leaver sees its own PART, as IRC clients expect.
                said = (reason,) if reason else ()
                self.send(Raw("PART", (r.channel(room.name), *said), "you"))
            except ChatError as e:
                self.tell(Refused(e))

    def _room(self, target: str) -> Room:
        if not target.startswith("#"):
            raise IRCError("403", (target, "No such channel"))
        return self.chat.room(target)

    def _room_of(self, target: str) -> Room:
        room = self._room(target)
        if self._member().rooms.get(room.folded) is not room:
            raise errors.NotInRoom(target)
        return room

    def irc_NAMES(self, params: list[str]) -> None:
        # Without a channel: every channel one may see, then one end.
        member = self._member()
        if not params:
            rooms = [room for room in self.chat.listing() if room.visible_to(member)]
            target = "*"
        else:
            target = params[0]
            rooms = []
            for each in target.split(",")[: TARGMAX["NAMES"]]:
                try:
                    rooms.append(self._room(each))
                except ChatError:
                    continue
        found = tuple(self._names(member, room) for room in rooms)
        self.tell(r.NamesReply(found, target))

    def _names(self, member: Member, room: Room) -> events.Names:
        """
        Who in C{room} C{member} may see: the chat's answer, less invisible
        users if C{member} is not in the room.
        """
        found = self.chat.names_of(member, room)
        invisible = self.factory.invisible
        if not invisible or member.rooms.get(room.folded) is room:
            return found
        hidden = {each.nick for each in room.members if each in invisible}
        if not hidden:
            return found
        return dataclasses.replace(
            found, nicks=[nick for nick in found.nicks if nick not in hidden]
        )

    def irc_LIST(self, params: list[str]) -> None:
        wanted = _list_filter(params[0], self.chat.clock()) if params else None
        self.chat.list_rooms(self._member(), wanted)

    def irc_TOPIC(self, params: list[str]) -> None:
        if not params:
            raise r.need_more_params("TOPIC")
        member = self._member()
        room = self._room(params[0])
        if len(params) == 1:
            self.chat.topic(member, room)
            return
        self.chat.set_topic(member, room, params[1])

    def irc_KICK(self, params: list[str]) -> None:
        # KICK #a n1,n2 puts both out of #a; KICK #a,#b n1,n2 pairs them.
        if len(params) < 2:
            raise r.need_more_params("KICK")
        member = self._member()
        channels = params[0].split(",")
        nicks = params[1].split(",")[: TARGMAX["KICK"]]
        if len(channels) == 1:
            channels = channels * len(nicks)
        elif len(channels) != len(nicks):
            raise r.need_more_params("KICK")
        reason = params[2] if len(params) > 2 else ""
        for target, nick in zip(channels, nicks, strict=True):
            try:
                self.chat.kick(member, self._room(target), nick, reason)
            except ChatError as e:
                self.tell(Refused(e))

    def irc_MODE(self, params: list[str]) -> None:
        if not params:
            raise r.need_more_params("MODE")
        target = params[0]
        if not target.startswith("#"):
            member = self._member()
            if names.fold(target) != member.folded:
                raise IRCError("502", ("Can't change mode for other users",))
            if len(params) == 1:
                modes = "i" * self._invisible(member)
                modes += "o" * self._is_server_operator(member)
                self.numeric("221", "+" + modes)
            else:
                self._user_modes(member, params[1])
            return
        member = self._member()
        room = self._room(target)
        if not room.visible_to(member):
            # A secret channel is no channel to whoever is not in it.
            raise errors.NoSuchRoom(target)
        if len(params) == 1:
            settings = self.chat.settings_of(member, room)
            inside = member.rooms.get(room.folded) is room
            name = r.channel(room.name)
            shown = r.channel_modes(settings, room.key is not None, inside)
            self.numeric("324", name, *shown)
            self.numeric("329", name, str(int(settings.created)))
            return
        self._channel_modes(member, room, params[1], params[2:])

    def _user_modes(self, member: Member, modes: str) -> None:
        """
        A user mode string for oneself: C{+i}/C{-i} (invisible: left out of
        C{WHO} masks, of C{NAMES} and C{WHO} of a channel, and of C{WHOIS}
        channels, for whoever does not share the channel), answered with the
        change; C{-o} gives up server operator status (C{+o} is had only
        with C{OPER}, and ignored here, as RFC 2812 3.1.5 says). Any other
        letter gets C{501}, once.
        """
        adding = True
        unknown = False
        invisible = self.factory.invisible
        for letter in modes:
            if letter in "+-":
                adding = letter == "+"
            elif letter == "i":
                if adding == (member in invisible):
                    continue
                if adding:
                    invisible.add(member)
                else:
                    invisible.discard(member)
                mode = "+i" if adding else "-i"
                self.send(Raw("MODE", (member.nick, mode), "you"))
            elif letter == "o":
                if not adding and self.factory.operators is not None:
                    self.factory.operators.deoper(member)
            else:
                unknown = True
        if unknown:
            self.numeric("501", "Unknown MODE flag")

    def _channel_modes(
        self, member: Member, room: Room, modes: str, arguments: list[str]
    ) -> None:
        """
        Carry out a channel mode string, each change in turn, through the
        core's operations: C{o} and C{v} with nicknames; the lists C{b}
        (bans) and C{q} (quiets) with masks, or without one to list them
        (once per line); C{k} with a key (C{-k} takes one and ignores it);
        C{l} with a limit (C{-l} takes none); the flags C{i m n s t}. The
        room is told of each change that took effect; a change that did
        not is refused on its own (C{696} for a bad mask, key or limit,
        C{472} for an unknown letter, C{461} for a missing argument, the
        core's refusal else, C{482} for a non-operator), each refusal once
        a line, and the others go on. After L{MODES} changes with an
        argument the rest of the line is ignored, as Solanum does.
        """
        name = r.channel(room.name)
        chat = self.chat
        adding = True
        given = iter(arguments)
        taken = 0
        listed: set[str] = set()
        refusals: dict[str, ChatError] = {}
        for letter in modes:
            if letter in "+-":
                adding = letter == "+"
                continue
            argument: str | None = None
            try:
                if letter in _FLAGS:
                    chat.set_setting(member, room, _FLAGS[letter], adding)
                    continue
                if letter not in _WITH_ARGUMENT:
                    raise IRCError("472", (letter, "is unknown mode char to me"))
                if adding or letter != "l":
                    argument = next(given, None)
                if argument is not None:
                    taken += 1
                    if taken > MODES:
                        break
                if letter in "bq":
                    kind: MaskKind = "ban" if letter == "b" else "quiet"
                    if argument is None:
                        if letter not in listed:
                            listed.add(letter)
                            chat.list_masks(member, room, kind)
                    elif adding:
                        chat.add_mask(member, room, kind, argument)
                    else:
                        chat.remove_mask(member, room, kind, argument)
                elif letter == "k" and not adding:
                    chat.set_setting(member, room, "key", None)
                elif letter == "l" and not adding:
                    chat.set_setting(member, room, "limit", None)
                elif argument is None:
                    raise r.need_more_params("MODE")
                elif letter == "k":
                    chat.set_setting(member, room, "key", argument)
                elif letter == "l":
                    chat.set_setting(member, room, "limit", _limit(argument))
                else:
                    operation = {
                        ("o", True): chat.op,
                        ("o", False): chat.deop,
                        ("v", True): chat.voice,
                        ("v", False): chat.devoice,
                    }[letter, adding]
                    operation(member, room, argument)
            except errors.BadMask as e:
                refusal: ChatError = IRCError(
                    "696", (name, letter, e.mask or "*", f"Invalid mask: {e.reason}")
                )
                refusals.setdefault(repr(refusal), refusal)
            except errors.BadSetting:
                shown = "*" if letter == "k" or not argument else argument
                refusal = IRCError("696", (name, letter, shown, _BAD_SETTING[letter]))
                refusals.setdefault(repr(refusal), refusal)
            except ChatError as e:
                refusals.setdefault(repr(e), e)
        # Whoever may not change the channel's modes is told that alone.
        for each in refusals.values():
            if isinstance(each, errors.NotOperator | errors.NotInRoom):
                self.tell(Refused(each))
                return
        for each in refusals.values():
            self.tell(Refused(each))

    def irc_INVITE(self, params: list[str]) -> None:
        # INVITE nick #channel; INVITE alone lists one's invitations.
        member = self._member()
        if not params:
            for room in self.chat.listing():
                if member.folded in room.invited or (
                    member.account is not None and member.account in room.invited
                ):
                    self.numeric("336", r.channel(room.name))
            self.numeric("337", "End of /INVITE list")
            return
        if len(params) < 2:
            raise r.need_more_params("INVITE")
        room = self._room(params[1])
        if not room.visible_to(member):
            raise errors.NotInRoom(params[1])
        self.chat.invite(member, room, params[0])

    # Talking

    def irc_PRIVMSG(self, params: list[str]) -> None:
        self._talk(params, notice=False)

    def irc_NOTICE(self, params: list[str]) -> None:
        # A NOTICE never draws an error reply.
        try:
            self._talk(params, notice=True)
        except ChatError:
            pass

    def _talk(self, params: list[str], notice: bool) -> None:
        command = "NOTICE" if notice else "PRIVMSG"
        if not params or not params[0]:
            raise r.no_recipient(command)
        if len(params) < 2 or not params[1]:
            raise r.no_text()
        member = self._member()
        text = params[1]
        ctcp = _ctcp(text)
        client = tags.client_only(self._tags) if self._tags else ""
        size = len(text.encode("utf-8"))
        for target in params[0].split(",")[: TARGMAX[command]]:
            try:
                if target.startswith("#"):
                    room = self._speaking_to(member, target)
                    if not notice:
                        self._fits(member, r.channel(room.name), size)
                    if ctcp is not None:
                        if ctcp[0] == "ACTION":
                            self.chat.act(member, room, ctcp[1], client)
                    elif notice:
                        self.chat.notice(member, room, text, client)
                    else:
                        self.chat.say(member, room, text, client)
                elif ctcp is None:
                    if not notice:
                        self._fits(member, self.chat.find(target).nick, size)
                    private = self.chat.whisper(member, target, text, notice, client)
                    if self._renderer.echo:
                        self.send(Echo(target, private))
                    away = self._away(self.chat.find(target))
                    if away is not None and not notice:
                        self.numeric("301", target, away)
            except errors.NotInRoom as e:
                # From outside a room with +n.
                if not notice:
                    self.tell(Refused(r.cannot_send(e.room)))
            except ChatError as e:
                if not notice:
                    self.tell(Refused(e))

    def irc_TAGMSG(self, params: list[str]) -> None:
        if not params or not params[0]:
            raise r.no_recipient("TAGMSG")
        member = self._member()
        event = TagMsg(member.nick, "", tags.client_only(self._tags))
        for target in params[0].split(",")[: TARGMAX["TAGMSG"]]:
            try:
                self._tag_message(member, target, event)
            except ChatError as e:
                self.tell(Refused(e))

    def _tag_message(self, member: Member, target: str, event: TagMsg) -> None:
        """
        Pass a C{TAGMSG} on to the clients of C{target} (a channel or a
        nickname) that read tags, and back to the sender if it has
        C{echo-message}. No other client, nor any other front end, has
        anything to show of it.
        """
        if not target.startswith("#"):
            found = self.chat.find(target)
            event = dataclasses.replace(event, target=found.nick)
            if getattr(found.renderer, "tags", False):
                self.chat.tell(found, event)
            if self._renderer.echo and found is not member:
                self.send(event)
            return
        room = self._channel(member, target)
        event = dataclasses.replace(event, target=r.channel(room.name))
        fanout = self.chat.fanout
        # After what the room has pending, as any line would be.
        fanout.flush_room(room)
        for renderer, members in room.by_renderer.items():
            if not isinstance(renderer, IRCRenderer) or not renderer.tags:
                continue
            data = renderer.render(event)
            for each in members:
                if each is not member or renderer.echo:
                    fanout.queue(each, data)

    def _speaking_to(self, member: Member, target: str) -> Room:
        """
        The room C{member} talks to as C{target}: one it is in, or one it
        is not in, which the core lets it speak to only without C{+n}.
        """
        try:
            return self._channel(member, target)
        except IRCError:
            return self._room(target)

    def _fits(self, member: Member, target: str, size: int) -> None:
        """
        Refuse with C{417} a text of C{size} bytes that would not fit one
        line relayed to C{target} with C{member}'s prefix: the client chose
        to send it as one line, and irctest (with most servers) holds that
        it must arrive as one or not at all. A long line from a member of
        another front end is cut into several instead
        (L{chatservice.frontends.irc.split}),
        and so is a too long NOTICE, which may draw no error.
        """
        if size > r.text_room(member.nick, "PRIVMSG", target):
            raise IRCError("417", ("Input line was too long",))

    def _channel(self, member: Member, target: str) -> Room:
        """
        The room C{member} talks to as C{target}, which it must be in.
        Clients name the same channel line after line, and folding a name
        costs more than the rest of a line: the answer is kept while the
        member stays in the room.
        """
        room = self._targets.get(target)
        if room is None or member.rooms.get(room.folded) is not room:
            room = self._room(target)
            if member.rooms.get(room.folded) is not room:
                raise IRCError("404", (target, "Cannot send to channel"))
            if len(self._targets) > 64:
                self._targets.clear()
            self._targets[target] = room
        return room

    # Who is who

    def irc_WHO(self, params: list[str]) -> None:
        mask = params[0] if params else "*"
        member = self._member()
        if mask.startswith("#"):
            try:
                room = self._room(mask)
            except ChatError:
                room = None
            if room is not None and room.visible_to(member):
                inside = member.rooms.get(room.folded) is room
                for each in room.members:
                    if inside or not self._invisible(each):
                        self._who_reply(each, room)
        else:
            # An invisible user is found by its nickname, or by whoever
            # shares a channel with it; not by a mask.
            exact = "*" not in mask and "?" not in mask and mask != "0"
            for each in self._matching(mask):
                shown = self._shown_room(member, each)
                if (
                    exact
                    or shown is not None
                    or each is member
                    or not self._invisible(each)
                ):
                    self._who_reply(each, shown)
        self.numeric("315", mask, "End of /WHO list.")

    def _matching(self, mask: str) -> list[Member]:
        """
        The members whose nicknames match C{mask}, compared folded; C{*}
        and C{?} are wildcards, and C{0} is C{*}, as RFC 2812 has it.
        """
        members = self.chat.members
        if mask == "0":
            mask = "*"
        if "*" not in mask and "?" not in mask:
            found = members.get(names.fold(mask))
            return [] if found is None else [found]
        pattern = _glob(names.fold(mask))
        return [each for key, each in members.items() if pattern.fullmatch(key)]

    def _who_reply(self, each: Member, room: Room | None) -> None:
        """
        One RPL_WHOREPLY: C{each} as seen in C{room}, or in no channel.
        """
        flags = "G" if self._away(each) else "H"
        if self._is_server_operator(each):
            flags += "*"
        if room is not None:
            flags += _status(each, room)
        user, realname = _identity(each)
        self.numeric(
            "352",
            "*" if room is None else r.channel(room.name),
            user,
            r.CLOAK,
            self.factory.server,
            each.nick,
            flags,
            f"0 {realname}",
        )

    def _shown_room(self, asker: Member, each: Member) -> Room | None:
        """
        The channel WHO names for C{each}: the first one C{asker} shares
        with it, else none.
        """
        for room in each.rooms.values():
            if asker.rooms.get(room.folded) is room:
                return room
        return None

    def _invisible(self, member: Member) -> bool:
        """Whether C{member} is invisible (user mode C{+i})."""
        return member in self.factory.invisible

    def _away(self, member: Member) -> str | None:
        session = member.session
        return session.away if isinstance(session, IRCProtocol) else None

    def irc_WHOIS(self, params: list[str]) -> None:
        if not params:
            raise r.no_nickname()
        nick = params[-1]
        member = self._member()
        target = self.chat.members.get(names.fold(nick))
        if target is None:
            self.numeric("401", nick, "No such nick/channel")
        else:
            user, realname = _identity(target)
            self.numeric("311", target.nick, user, r.CLOAK, "*", realname)
            hidden = target is not member and self._invisible(target)
            rooms = " ".join(
                _status(target, room) + r.channel(room.name)
                for room in target.rooms.values()
                if room.visible_to(member)
                and not (hidden and member.rooms.get(room.folded) is not room)
            )
            if rooms:
                self.numeric("319", target.nick, rooms)
            self.numeric("312", target.nick, self.factory.server, NETWORK)
            away = self._away(target)
            if away is not None:
                self.numeric("301", target.nick, away)
            if self._is_server_operator(target):
                self.numeric("313", target.nick, "is an IRC operator")
            if target.account is not None:
                self.numeric("330", target.nick, target.account, "is logged in as")
        self.numeric("318", nick, "End of /WHOIS list.")

    def irc_WHOWAS(self, params: list[str]) -> None:
        # WHOWAS nick [count]: who had the nickname, newest first; a count
        # that is not positive (or no number) asks for all of them.
        if not params or not params[0]:
            raise r.no_nickname()
        nick = params[0]
        try:
            count = int(params[1]) if len(params) > 1 else 0
        except ValueError:
            count = 0
        server = self.factory.server
        found = self.chat.whowas.lookup(nick, count)
        if not found:
            self.numeric("406", nick, "There was no such nickname")
        for each in found:
            self.numeric("314", each.nick, each.user, r.CLOAK, "*", each.realname)
            left = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(each.when))
            self.numeric("312", each.nick, server, left)
        self.numeric("369", nick, "End of WHOWAS")

    def irc_AWAY(self, params: list[str]) -> None:
        if params and params[0]:
            self.away = params[0]
            self.numeric("306", "You have been marked as being away")
        else:
            self.away = None
            self.numeric("305", "You are no longer marked as being away")

    def irc_USERHOST(self, params: list[str]) -> None:
        if not params:
            raise r.need_more_params("USERHOST")
        found = []
        for nick in params[:5]:
            each = self.chat.members.get(names.fold(nick))
            if each is not None:
                mark = "-" if self._away(each) else "+"
                found.append(f"{each.nick}={mark}{each.nick}@{r.CLOAK}")
        self.numeric("302", " ".join(found))

    def irc_ISON(self, params: list[str]) -> None:
        if not params:
            raise r.need_more_params("ISON")
        wanted = " ".join(params).split()
        online = [
            self.chat.members[names.fold(n)].nick
            for n in wanted
            if names.fold(n) in self.chat.members
        ]
        self.numeric("303", " ".join(online))

    # The server

    def irc_MOTD(self, params: list[str]) -> None:
        self.tell(Motd(self.chat.motd))

    def irc_LUSERS(self, params: list[str]) -> None:
        users = len(self.chat.members)
        invisible = sum(1 for each in self.factory.invisible if each.connected)
        self.numeric(
            "251",
            f"There are {users - invisible} users and {invisible} invisible"
            " on 1 servers",
        )
        operators = self.factory.operators
        online = 0 if operators is None else operators.online()
        self.numeric("252", str(online), "operator(s) online")
        self.numeric("254", str(len(self.chat.rooms)), "channels formed")
        self.numeric("255", f"I have {users} clients and 0 servers")
        most = str(max(users, self.chat.stats.most_members))
        now = str(users)
        self.numeric("265", now, most, f"Current local users {now}, max {most}")
        self.numeric("266", now, most, f"Current global users {now}, max {most}")

    def irc_OPER(self, params: list[str]) -> Deferred[None] | None:
        if len(params) < 2:
            raise r.need_more_params("OPER")
        operators = self.factory.operators
        member = self._member()
        if operators is None:
            raise errors.NotServerOperator(params[0])
        if operators.is_operator(member):
            self.numeric("381", "You are now an IRC operator")
            return None

        def failed(failure: Any) -> None:
            if failure.check(ChatError):
                self.tell(Refused(failure.value))
            else:
                log.failure("OPER failed", failure)
                self.tell(Refused(errors.Failed()))

        work = operators.oper(member, params[0], params[1])
        return Deferred.fromCoroutine(work).addErrback(failed)

    # Server operators' powers (docs/irc.md says how they map)

    def _operators(self) -> ServerOperators:
        """The server operators, for a power: without any, nobody has one."""
        operators = self.factory.operators
        if operators is None:
            raise errors.NoPrivileges()
        return operators

    def irc_KILL(self, params: list[str]) -> None:
        if not params or not params[0]:
            raise r.need_more_params("KILL")
        operators = self._operators()
        operators.kill(self._member(), params[0], params[1] if len(params) > 1 else "")

    def irc_WALLOPS(self, params: list[str]) -> None:
        if not params or not params[0]:
            raise r.need_more_params("WALLOPS")
        self._operators().wall(self._member(), params[0])

    def irc_KLINE(self, params: list[str]) -> None:
        """
        C{KLINE [duration] mask [:reason]}: a bare number is minutes, as
        Charybdis and Solanum read it (0: permanent); our own durations
        (C{30m}, C{2h}, C{7d}, C{forever}) are read too. The duration comes
        before the mask here, so only a first word that is one
        (L{looks_like_duration}) is taken as one: an address mask starts
        like a number too.
        """
        if not params or not params[0]:
            raise r.need_more_params("KLINE")
        operators = self._operators()
        duration = None
        if len(params) >= 2 and looks_like_duration(params[0]):
            typed = params.pop(0).strip()
            if typed.isascii() and typed.isdigit():
                minutes = int(typed)
                duration = None if minutes == 0 else minutes * 60.0
                if duration is not None and duration > DURATION_MAX:
                    raise errors.BadDuration(typed[:32])
            else:
                duration = parse_duration(typed)
        reason = params[1] if len(params) > 1 else ""
        operators.ban(self._member(), params[0], duration, reason)

    def irc_UNKLINE(self, params: list[str]) -> None:
        if not params or not params[0]:
            raise r.need_more_params("UNKLINE")
        self._operators().unban(self._member(), params[0])

    def irc_STATS(self, params: list[str]) -> None:
        """
        C{STATS K}: the K-lines (server bans), for server operators; any
        other letter is answered with its end alone.
        """
        if not params or not params[0]:
            raise r.need_more_params("STATS")
        letter = params[0][:1]
        if letter in ("k", "K"):
            self._operators().bans(self._member())
            return
        self.numeric("219", letter, "End of /STATS report")

    def irc_AUDIT(self, params: list[str]) -> None:
        """
        C{AUDIT [n]}: the newest n (default 20, at most 200) moderation
        actions, as NOTICEs, for server operators.
        """
        operators = self._operators()
        n = AUDIT_DEFAULT
        if params and params[0]:
            if not params[0].isdigit() or not 1 <= int(params[0][:6]) <= AUDIT_MAX:
                raise IRCError("461", ("AUDIT", f"n is 1 to {AUDIT_MAX}"))
            n = int(params[0])
        operators.audit(self._member(), n)

    def _is_server_operator(self, member: Member) -> bool:
        """
        Whether C{member} is a server operator (WHO's C{*}, WHOIS 313).
        """
        operators = self.factory.operators
        return operators is not None and operators.is_operator(member)

    def irc_VERSION(self, params: list[str]) -> None:
        self.numeric("351", f"chatservice-{__version__}.", self.factory.server, "")
        self._isupport()

    def irc_INFO(self, params: list[str]) -> None:
        # INFO [target]: this server, the only one; a target that is neither
        # its name (a mask may match it) nor someone on it gets 402.
        server = self.factory.server
        if params and params[0]:
            target = params[0]
            if (
                not _glob(target.casefold()).fullmatch(server.casefold())
                and names.fold(target) not in self.chat.members
            ):
                raise IRCError("402", (target, "No such server"))
        for text in (
            f"chatservice-{__version__}",
            "A chat server for line, IRC and web clients, built on Twisted.",
            f"Running since {self.factory.created}.",
        ):
            self.numeric("371", text)
        self.numeric("374", "End of INFO list")

    def irc_TIME(self, params: list[str]) -> None:
        now = time.strftime("%a %b %d %Y %H:%M:%S UTC", time.gmtime())
        self.numeric("391", self.factory.server, now)

    # Output

    def deliver(self, data: bytes) -> None:
        # A user who quits or is renamed is told of once by each room this
        # client shares with it; IRC says it once. The changes of a MODE
        # line are each an event of the core's, one MODE line each; IRC
        # says the changes made together in one. Only output written since
        # a quit, rename or mode change was (the renderers count them) is
        # searched; every IRC member of a room is handed the same bytes, so
        # the search and the rewrite are made once for them all.
        written = self.factory.departures.count
        if written != self._departures_seen:
            self._departures_seen = written
            if _needs_once(data):
                data = _once(data)
        super().deliver(data)


def _status(member: Member, room: Room) -> str:
    """C{member}'s mark in C{room}: C{@}, C{+} or none."""
    if member in room.operators:
        return "@"
    return "+" if member in room.voiced else ""


def _glob(mask: str) -> re.Pattern[str]:
    """
    An IRC mask (C{*}: any run of characters, C{?}: any one) as a pattern.
    """
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in mask),
        re.DOTALL,
    )


_COMPARE = re.compile(r"([CT]?)([<>])([0-9]{1,9})")


def _list_filter(terms: str, now: float) -> Callable[[Room], bool]:
    """
    Which rooms C{LIST} shows for C{terms}, comma-separated (ISUPPORT's
    C{ELIST=CMNTU}): masks (C{#py*}; several: any of them), C{!mask} (not
    that), C{>n} and C{<n} (more or fewer than n members), C{C<n} and
    C{C>n} (made less or more than n minutes ago), C{T<n} and C{T>n} (the
    topic set less or more than n minutes ago; a room without one fails
    both).
    """
    masks: list[re.Pattern[str]] = []
    unwanted: list[re.Pattern[str]] = []
    checks: list[Callable[[Room], bool]] = []
    for term in terms.split(","):
        compare = _COMPARE.fullmatch(term)
        if compare is not None:
            kind, sign, value = compare.groups()
            checks.append(_comparison(kind, sign == ">", int(value), now))
        elif term.startswith("!"):
            unwanted.append(_glob(names.fold(term[1:])))
        elif term:
            masks.append(_glob(names.fold(term)))

    def wanted(room: Room) -> bool:
        name = "#" + room.folded
        return (
            (not masks or any(mask.fullmatch(name) for mask in masks))
            and not any(mask.fullmatch(name) for mask in unwanted)
            and all(check(room) for check in checks)
        )

    return wanted


def _comparison(
    kind: str, more: bool, value: int, now: float
) -> Callable[[Room], bool]:
    """
    One of LIST's comparisons: members (C{kind} empty), minutes since the
    room was made (C{C}) or since its topic was set (C{T}); more than
    C{value} if C{more}, else fewer.
    """

    def measure(room: Room) -> float | None:
        if kind == "":
            return len(room.members)
        if kind == "C":
            return (now - room.created) / 60
        return None if room.topic is None else (now - room.topic.time) / 60

    def check(room: Room) -> bool:
        got = measure(room)
        if got is None:
            return False
        return got > value if more else got < value

    return check


_last: list[object] = [None, False]
_last_once: list[bytes] = [b"", b""]


def _needs_once(data: bytes) -> bool:
    """
    Whether C{data} may say a quit or a rename twice; remembered for the
    last C{data} asked about.
    """
    if data is not _last[0]:
        _last[0] = data
        _last[1] = b" QUIT " in data or b" NICK " in data or b" MODE #" in data
    return bool(_last[1])


def _once(data: bytes) -> bytes:
    """
    C{data} with each C{QUIT} and C{NICK} line after the first alike left
    out, and runs of channel C{MODE} lines from one user to one channel
    made one (L{_merge_modes}); remembered for the last C{data} asked
    about.
    """
    if data is _last_once[0]:
        return _last_once[1]
    seen: set[bytes] = set()
    kept = []
    for each in data.split(b"\r\n")[:-1]:
        # Tags (the time) may differ between the rooms' copies.
        bare = each.partition(b" ")[2] if each.startswith(b"@") else each
        parts = bare.split(b" ", 2)
        if len(parts) > 1 and parts[1] in (b"QUIT", b"NICK"):
            if bare in seen:
                continue
            seen.add(bare)
        kept.append(each)
    once = b"".join([each + b"\r\n" for each in _merge_modes(kept)])
    _last_once[:] = [data, once]
    return once


def _mode_line(line: bytes) -> tuple[bytes, bytes, list[bytes]] | None:
    """
    The tags, the C{:source MODE #channel} and the changes (the mode
    string, then the arguments) of a channel C{MODE} line; None for any
    other line, and for one whose arguments could not be moved into the
    middle of a line (empty, or starting with C{:}).
    """
    tagged = b""
    if line.startswith(b"@"):
        tagged, _, line = line.partition(b" ")
    parts = line.split(b" ")
    if len(parts) < 4 or parts[1] != b"MODE" or not parts[2].startswith(b"#"):
        return None
    changes = parts[3:]
    if changes[-1].startswith(b":"):
        changes[-1] = changes[-1][1:]
    if any(not each or each.startswith(b":") for each in changes):
        return None
    # The time a line was written is not what tells lines apart.
    kept = b";".join(
        t for t in tagged.lstrip(b"@").split(b";") if not t.startswith(b"time=")
    )
    return kept, b" ".join(parts[:3]), changes


def _merge_modes(lines: list[bytes]) -> list[bytes]:
    """
    C{lines} with each run of channel C{MODE} lines from one source to one
    channel (with the same tags, but for the time) written as one line,
    as IRC servers show a MODE command's changes: C{+b mask} and C{-l}
    are C{+b-l mask}. A line takes at most L{MODES} arguments and fits
    IRC's 512 bytes; the first line's tags are kept.
    """
    out: list[bytes] = []
    run: tuple[bytes, bytes] | None = None
    signs = b""
    arguments: list[bytes] = []
    tagged = b""
    for line in lines:
        parsed = _mode_line(line)
        if parsed is not None:
            kept, head, changes = parsed
            modes, more = changes[0], changes[1:]
            if (kept, head) == run and len(arguments) + len(more) <= MODES:
                joined = _joined(signs, modes)
                merged = b" ".join([head, joined, *arguments, *more])
                if len(merged) <= 510:
                    signs = joined
                    arguments.extend(more)
                    out[-1] = tagged + merged
                    continue
            run = (kept, head)
            signs, arguments = modes, more
            tagged = line.partition(b" ")[0] + b" " if line.startswith(b"@") else b""
        else:
            run = None
        out.append(line)
    return out


def _joined(modes: bytes, more: bytes) -> bytes:
    """Two mode strings as one: C{+b} and C{+k} are C{+bk}, with C{-l}
    C{+bk-l}."""
    sign = next((c for c in reversed(modes) if c in b"+-"), None)
    joined = bytearray(modes)
    for char in more:
        if char in b"+-":
            if char == sign:
                continue
            sign = char
        joined.append(char)
    return bytes(joined)


def _in_batch(line: bytes, tag: bytes) -> bytes:
    """
    C{line} inside the batch C{tag} (C{batch=ref}), unless it is inside a
    batch of its own already (a history batch's lines).
    """
    if line.startswith(b"@") and b"batch=" in line.partition(b" ")[0]:
        return line
    return tags.add(line, tag)


_INVALID_UTF8 = (
    "Invalid UTF-8 replaced; your IRC software must use UTF-8 on this network"
)

# What a client may send before it has registered.
_BEFORE_REGISTRATION = frozenset(
    {"CAP", "PASS", "NICK", "USER", "PING", "PONG", "QUIT", "AUTHENTICATE"}
)


# The channel modes that are room settings without an argument.
_FLAGS: dict[str, Setting] = {
    letter: setting for setting, letter in r.FLAG_MODES.items()
}
# The channel modes with an argument (C{l} only when set, the lists only
# to change them).
_WITH_ARGUMENT = frozenset("bqklov")
# Why a key or a limit was refused (ERR_INVALIDMODEPARAM's text).
_BAD_SETTING = {
    "k": f"Invalid key: 1 to {KEY_MAX} characters, no spaces or commas",
    "l": f"Invalid limit: a whole number from 1 to {LIMIT_MAX}",
}
_DIGITS = re.compile("[0-9]{1,9}")


def _limit(text: str) -> int:
    """The member limit C{text} gives, or the core's refusal."""
    if not _DIGITS.fullmatch(text):
        raise errors.BadSetting("limit", text[:64])
    return int(text)


def _is_nickname(name: str) -> bool:
    try:
        names.nickname(name)
    except names.InvalidName:
        return False
    return True


class IRCFactory(StreamFactory):
    """
    Builds L{IRCProtocol}s for the one chat.

    @param server: the server's name in prefixes and numerics.
    @param accounts: the accounts C{PASS}, SASL and C{OPER} check, if the
        server keeps them.
    @param operators: the server operators, if any may be.
    """

    protocol = IRCProtocol
    renderer: IRCRenderer

    def __init__(
        self,
        chat: Chat,
        admission: Admission,
        server: str,
        accounts: Accounts | None = None,
        limits: Limits | None = None,
        operators: ServerOperators | None = None,
    ) -> None:
        base = admission.limits if limits is None else limits
        super().__init__(
            chat,
            admission,
            accounts,
            dataclasses.replace(
                base,
                max_line=IRC_MAX_TAGGED_LINE,
                flood_burst=max(base.flood_burst, IRC_FLOOD_BURST),
            ),
            operators,
        )
        self.server = server
        self._msgids = MessageIds()
        self.departures = Departures()
        self._renderers: dict[frozenset[str], IRCRenderer] = {}
        self.renderer = self.renderer_for(frozenset())
        # Members with user mode +i; they drop out when collected, and
        # count only while connected.
        self.invisible: weakref.WeakSet[Member] = weakref.WeakSet()
        self.created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())

    def renderer_for(self, enabled: frozenset[str]) -> IRCRenderer:
        """
        The one renderer for clients with the capabilities C{enabled} that
        change rendering: a room's line is rendered once for each such set
        present, never once per client.
        """
        renderer = self._renderers.get(enabled)
        if renderer is None:
            renderer = self._renderers[enabled] = IRCRenderer(
                self.server, enabled, self.chat.clock, self._msgids, self.departures
            )
        return renderer

    def isupport(self) -> list[str]:
        targmax = ",".join(f"{k}:{v}" for k, v in TARGMAX.items())
        return [
            "CASEMAPPING=rfc8265",
            "CHANTYPES=#",
            "PREFIX=(ov)@+",
            f"NICKLEN={names.NICK_MAX}",
            f"CHANNELLEN={names.ROOM_MAX + 1}",
            f"TOPICLEN={TOPIC_MAX}",
            f"TARGMAX={targmax}",
            "CHANMODES=bq,k,l,imnst",
            "EXTBAN=$,a",
            f"MAXLIST=b:{LIST_MAX},q:{LIST_MAX}",
            f"MODES={MODES}",
            f"NETWORK={NETWORK}",
            "ELIST=CMNTU",
            "UTF8ONLY",
        ]
