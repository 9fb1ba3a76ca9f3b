"""
Room operators and topics: what the operators of a room may do, for every
front end alike.

Whoever enters a room empty is its operator (L{chatservice.core.chat.Chat.join}
sees to that); operators set the topic, kick, give or take operator
status, and give or take a voice. Status is held per membership, in
L{Room.operators}: leaving the room drops it and a new nickname keeps it.

L{RoomOperators} is a part of L{chatservice.core.chat.Chat}, kept in a module
of its own because it is one idea: the room's moderation, apart from talking
and moving between rooms. Its operations take the room and the nickname
explicitly and raise typed errors, checked in the order IRC's numerics want
them: the member not in the room (442), not an operator (482), no such
nickname (401), the target not in the room (441).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.logger import Logger

from chatservice.core import errors, events, names
from chatservice.core.audit import Audit
from chatservice.core.fanout import Fanout
from chatservice.core.history import History
from chatservice.core.rooms import Member, Room
from chatservice.core.sanitize import safe

# The longest topic, in characters (IRC's TOPICLEN): long enough for a
# sentence and a link, short enough that a TOPIC line still fits IRC's 512
# bytes with a channel name and a prefix, for most text.
TOPIC_MAX = 390

log = Logger()


class RoomOperators:
    """
    The topic and operator operations of L{chatservice.core.chat.Chat}.
    """

    fanout: Fanout
    history: History | None
    members: dict[str, Member]
    clock: Callable[[], float]

    audit: Audit

    if TYPE_CHECKING:

        def _remove(self, member: Member, room: Room) -> None: ...

        def _operator_changed(
            self, room: Room, target: Member, operator: bool
        ) -> None: ...

    def _as_operator(self, member: Member, room: Room) -> None:
        """
        Check that C{member} is in C{room} and one of its operators.
        """
        if member.rooms.get(room.folded) is not room:
            raise errors.NotInRoom(room.name)
        if member not in room.operators:
            raise errors.NotOperator(room.name)

    def _target(self, room: Room, nick: str) -> Member:
        """
        The member called C{nick}, who must be in C{room}.
        """
        target = self.members.get(names.fold(nick))
        if target is None:
            raise errors.NoSuchNick(nick)
        if target.rooms.get(room.folded) is not room:
            raise errors.TargetNotInRoom(room.name, target.nick)
        return target

    def topic(self, member: Member, room: Room) -> None:
        """
        Tell C{member} the topic of C{room}, or that it has none. Anyone may
        ask, in the room or not, as anyone may ask who is there.
        """
        if room.topic is None:
            self.fanout.tell(member, events.NoTopic(room.name))
        else:
            self.fanout.tell(member, room.topic)

    def set_topic(self, member: Member, room: Room, text: str) -> None:
        """
        Make C{text} (cleaned, at most L{TOPIC_MAX} characters) the topic of
        C{room}; an empty text clears it. Only an operator may, unless the
        room's topic is unlocked (the C{topic_locked} setting). Everyone in
        the room, the setter too, is told; the history keeps it.
        """
        if member.rooms.get(room.folded) is not room:
            raise errors.NotInRoom(room.name)
        if room.topic_locked and member not in room.operators:
            raise errors.NotOperator(room.name)
        text = safe(text).strip()
        if len(text) > TOPIC_MAX:
            raise errors.TopicTooLong(TOPIC_MAX)
        topic = events.Topic(room.name, text, member.nick, self.clock())
        room.topic = topic if text else None
        if self.history is not None:
            self.history.set_topic(room.folded, topic)
        log.info("{nick} set the topic of {room}", nick=member.nick, room=room.name)
        self.fanout.post(room, None, events.TopicSet(room.name, member.nick, text))

    def kick(self, member: Member, room: Room, nick: str, reason: str = "") -> None:
        """
        Put the member called C{nick} out of C{room}, for C{reason} (may be
        empty). The room, the one kicked included, is told first; then it is
        out, with its operator status gone. An operator may kick itself, or
        another operator.
        """
        self._as_operator(member, room)
        target = self._target(room, nick)
        event = events.Kicked(room.name, target.nick, member.nick, safe(reason).strip())
        self.fanout.post(room, None, event)
        # _remove flushes the room before the target goes, so the kick
        # reaches it too, after every line said before it.
        self._remove(target, room)
        self.audit.record(member.nick, "kick", target.nick, room.name, event.reason)
        log.info(
            "{by} kicked {nick} from {room}",
            by=member.nick,
            nick=target.nick,
            room=room.name,
        )

    def op(self, member: Member, room: Room, nick: str) -> None:
        """
        Make the member called C{nick} an operator of C{room}.
        """
        self._set_operator(member, room, nick, True)

    def deop(self, member: Member, room: Room, nick: str) -> None:
        """
        Take operator status in C{room} from the member called C{nick}. An
        operator may take its own.
        """
        self._set_operator(member, room, nick, False)

    def _set_operator(
        self, member: Member, room: Room, nick: str, operator: bool
    ) -> None:
        target, changed = self._set_status(
            member, room, nick, operator, room.operators, events.Opped, events.Deopped
        )
        if not changed:
            self.fanout.tell(
                member, events.OperatorUnchanged(room.name, target.nick, operator)
            )
            return
        self.audit.record(
            member.nick, "op" if operator else "deop", target.nick, room.name
        )
        self._operator_changed(room, target, operator)

    def voice(self, member: Member, room: Room, nick: str) -> None:
        """
        Give the member called C{nick} a voice in C{room}; nothing is said
        if it has one.
        """
        self._set_voice(member, room, nick, True)

    def devoice(self, member: Member, room: Room, nick: str) -> None:
        """
        Take the voice of the member called C{nick} in C{room}.
        """
        self._set_voice(member, room, nick, False)

    def _set_voice(self, member: Member, room: Room, nick: str, voice: bool) -> None:
        # A voice given twice says nothing.
        self._set_status(
            member, room, nick, voice, room.voiced, events.Voiced, events.Devoiced
        )

    def _set_status(
        self,
        member: Member,
        room: Room,
        nick: str,
        give: bool,
        holders: set[Member],
        given: type[events.Voiced] | type[events.Opped],
        taken: type[events.Devoiced] | type[events.Deopped],
    ) -> tuple[Member, bool]:
        """
        Give (or take) a status in C{room}, kept as the set C{holders}, to
        the member called C{nick}, and tell the room with C{given} (or
        C{taken}). Returns the member, and whether anything changed: not
        if it had (or lacked) the status already.
        """
        self._as_operator(member, room)
        target = self._target(room, nick)
        if (target in holders) == give:
            return target, False
        if give:
            holders.add(target)
        else:
            holders.discard(target)
        event = (given if give else taken)(room.name, target.nick, member.nick)
        self.fanout.post(room, None, event)
        return target, True
