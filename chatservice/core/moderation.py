"""
Room moderation: who may enter a room, who may speak in it, and rooms that
keep their owners. For every front end alike.

Operators of a room (L{chatservice.core.operators}) change its settings
(invite only, key, member limit, moderated, outside messages, secret, topic
lock), keep its lists of masks (bans: who may not enter; quiets: who may
not speak) and invite people in. A logged-in operator may register the
room to its account: then its settings, lists and operators are kept in a
L{RoomRecord} that outlives the room's members and the server's process,
and its founder (and every account it made an operator) is an operator
again on entering, whatever its nickname.

Where the costs go: masks are matched when someone enters a room, is
renamed, logs in, or when a list changes; never per line delivered. A
room's L{Room.gagged} says whether speaking in it is checked at all, and
who a quiet matches is kept in L{Room.silenced}, so a line said costs one
attribute test in an ordinary room and a set look-up in a gagged one,
however long its lists.

L{RoomModeration} is a part of L{chatservice.core.chat.Chat}, as
L{chatservice.core.operators.RoomOperators} is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.logger import Logger

from chatservice.core import errors, events, names
from chatservice.core.audit import Audit
from chatservice.core.durations import DURATION_MAX
from chatservice.core.events import Ban, MaskKind, Setting
from chatservice.core.fanout import Fanout
from chatservice.core.masks import BadMask, Identity, Mask, MaskList, parse_mask
from chatservice.core.rooms import Member, Room
from chatservice.core.sanitize import safe
from chatservice.core.whowas import identity

# The most entries in one list (bans or quiets) of one room: enough for a
# busy public room's history of trolls, small enough that matching a
# newcomer against all of them stays well under a millisecond.
LIST_MAX = 1000
# The longest reason kept with a ban or mute, in characters.
REASON_MAX = 200
# The longest room key, in characters (as IRC servers commonly allow).
KEY_MAX = 23
# The highest member limit.
LIMIT_MAX = 1_000_000

FLAGS: frozenset[Setting] = frozenset(
    ["invite_only", "moderated", "no_external", "secret", "topic_locked"]
)

log = Logger()


@dataclass(frozen=True, slots=True)
class RoomRecord:
    """
    What a registered room keeps while empty and across restarts: its
    founder's account, settings, lists and operator accounts. (Its topic
    is kept with the history, as every room's is.)
    """

    key: str
    name: str
    founder: str
    invite_only: bool = False
    room_key: str | None = None
    limit: int | None = None
    moderated: bool = False
    no_external: bool = True
    secret: bool = False
    topic_locked: bool = True
    bans: tuple[Ban, ...] = ()
    quiets: tuple[Ban, ...] = ()
    op_accounts: frozenset[str] = frozenset()


def identity_of(member: Member) -> Identity:
    """What masks are matched against, for C{member}."""
    return Identity(member.folded, identity(member)[0], member.address, member.account)


def _mask(text: str) -> Mask:
    try:
        return parse_mask(text)
    except BadMask as e:
        raise errors.BadMask(safe(text)[:64], str(e)) from None


def _prune(entries: MaskList[Ban], now: float) -> None:
    """Drop the entries of C{entries} that have expired."""
    expired = [
        key
        for key, (_, ban) in entries.items()
        if ban.expires is not None and ban.expires <= now
    ]
    for key in expired:
        del entries[key]


def _until(
    entries: MaskList[Ban], who: Identity, now: float
) -> tuple[bool, float | None]:
    """
    Whether an entry of C{entries} in force matches C{who}, and until when
    the last of those lasts (None: for ever).
    """
    matched = False
    until: float | None = 0.0
    for _, ban in entries.matching(who):
        if ban.expires is not None and ban.expires <= now:
            continue
        matched = True
        if ban.expires is None:
            return True, None
        if until is not None:
            until = max(until, ban.expires)
    return matched, until


class RoomModeration:
    """
    The entry, speaking and settings rules of L{chatservice.core.chat.Chat}.
    """

    fanout: Fanout
    members: dict[str, Member]
    rooms: dict[str, Room]
    clock: Callable[[], float]
    audit: Audit
    # Registered rooms, by folded name, and where changes to them go.
    room_records: dict[str, RoomRecord]
    save_room: Callable[[RoomRecord], object] | None
    forget_room: Callable[[str], object] | None

    if TYPE_CHECKING:

        def _as_operator(self, member: Member, room: Room) -> None: ...

        def _remove(self, member: Member, room: Room) -> None: ...

        def find(self, nick: str) -> Member: ...

    # Entering

    def _owns(self, member: Member, room: Room) -> bool:
        """
        Whether C{member} is logged in as the founder of C{room} or an
        account it keeps as an operator: such members pass every entry
        rule, and are operators on entering.
        """
        account = member.account
        return account is not None and (
            account == room.founder or account in room.op_accounts
        )

    def _admit(self, member: Member, room: Room, key: str | None) -> None:
        """
        Check that C{member} may enter C{room}, giving C{key}: refused, in
        this order, if banned, if not invited to an invite-only room, if
        the key is wrong, if the room is full.
        """
        if self._owns(member, room):
            return
        if room.bans:
            now = self.clock()
            for _, ban in room.bans.matching(identity_of(member)):
                if ban.expires is None or ban.expires > now:
                    raise errors.Banned(room.name, ban.reason)
        if room.invite_only and not self._invited(member, room):
            raise errors.InviteOnly(room.name)
        if room.key is not None and key != room.key:
            raise errors.BadKey(room.name)
        if room.limit is not None and len(room.members) >= room.limit:
            raise errors.RoomFull(room.name)

    def _invited(self, member: Member, room: Room) -> bool:
        return member.folded in room.invited or (
            member.account is not None and member.account in room.invited
        )

    def _entered(self, member: Member, room: Room) -> None:
        """
        C{member} is now in C{room}: its invitation is used up, it is an
        operator if the room keeps its account as one, and silenced if a
        quiet matches it.
        """
        if room.invited:
            room.invited.discard(member.folded)
            if member.account is not None:
                room.invited.discard(member.account)
        if self._owns(member, room):
            room.operators.add(member)
        if room.quiets:
            self._silence(member, room)

    def _silence(self, member: Member, room: Room) -> None:
        """Work out again whether a quiet of C{room} matches C{member}."""
        matched, until = _until(room.quiets, identity_of(member), self.clock())
        if matched:
            room.silenced[member] = until
        else:
            room.silenced.pop(member, None)

    def _renamed(self, member: Member) -> None:
        """
        C{member}'s nickname or account changed: whom the quiets of its
        rooms match may have too.
        """
        for room in member.rooms.values():
            if room.quiets:
                self._silence(member, room)

    def _check_rename(self, member: Member, nick: str) -> None:
        """
        Refuse to let C{member} take C{nick} if a ban of a room it is in
        (and does not run) matches it under that name: a rename must not
        be a way around a ban.
        """
        if not any(room.bans for room in member.rooms.values()):
            return
        user = identity(member)[0]
        who = Identity(names.fold(nick), user, member.address, member.account)
        now = self.clock()
        for room in member.rooms.values():
            if not room.bans or member in room.operators:
                continue
            if _until(room.bans, who, now)[0]:
                raise errors.BannedNick(room.name, nick)

    # Speaking

    def _check_voice(self, member: Member, room: Room) -> None:
        """
        Check that C{member}, in the gagged C{room}, may speak: operators
        and voiced members may; in a moderated room nobody else; else
        whoever no quiet matches.
        """
        if member in room.operators or member in room.voiced:
            return
        if room.moderated:
            raise errors.CannotSpeak(room.name, "moderated")
        silenced = room.silenced
        if member in silenced:
            until = silenced[member]
            if until is not None and until <= self.clock():
                self._silence(member, room)
                if member not in silenced:
                    return
            raise errors.CannotSpeak(room.name, "muted")

    def _check_outsider(self, member: Member, room: Room) -> None:
        """
        Check that C{member}, not in C{room}, may speak to it: only if the
        room takes outside messages (C{no_external} off), and the member
        is neither banned nor muted there, nor the room moderated.
        """
        if room.no_external:
            raise errors.NotInRoom(room.name)
        now = self.clock()
        who = identity_of(member)
        if _until(room.bans, who, now)[0]:
            raise errors.CannotSpeak(room.name, "banned")
        if room.moderated:
            raise errors.CannotSpeak(room.name, "moderated")
        if _until(room.quiets, who, now)[0]:
            raise errors.CannotSpeak(room.name, "muted")

    # Settings

    def set_setting(
        self,
        member: Member,
        room: Room,
        setting: Setting,
        value: bool | int | str | None,
    ) -> None:
        """
        Change the setting C{setting} of C{room} to C{value}; only an
        operator may. The room is told only of a change.
        """
        value = _checked(setting, value)
        self._as_operator(member, room)
        attribute = "key" if setting == "key" else setting
        if getattr(room, attribute) == value:
            return
        setattr(room, attribute, value)
        if setting == "moderated":
            room.regag()
        self.fanout.post(
            room, None, events.SettingChanged(room.name, member.nick, setting, value)
        )
        self.audit.record(
            _actor(member),
            "set",
            setting,
            room.name,
            "" if value is None else str(value),
        )
        self._keep(room)

    def settings_of(self, member: Member, room: Room) -> events.RoomSettings:
        """
        The settings of C{room} as C{member} may see them: its key only if
        it is in the room.
        """
        inside = member.rooms.get(room.folded) is room
        return events.RoomSettings(
            room.name,
            room.invite_only,
            room.key if inside else None,
            room.limit,
            room.moderated,
            room.no_external,
            room.secret,
            room.topic_locked,
            room.founder,
            room.created,
        )

    # Lists of masks

    def _entries(self, room: Room, kind: MaskKind) -> MaskList[Ban]:
        return room.bans if kind == "ban" else room.quiets

    def add_mask(
        self,
        member: Member,
        room: Room,
        kind: MaskKind,
        text: str,
        duration: float | None = None,
        reason: str = "",
    ) -> Ban:
        """
        Put the mask C{text} on the C{kind} list of C{room} for
        C{duration} seconds (None: until taken off), for C{reason}; only
        an operator may. Adding a mask already there sets its duration
        and reason anew. A ban puts out the members it matches who do not
        run the room; a quiet silences them.
        """
        mask = _mask(text)
        if duration is not None and not 0 < duration <= DURATION_MAX:
            raise errors.BadDuration(str(duration))
        self._as_operator(member, room)
        entries = self._entries(room, kind)
        now = self.clock()
        if mask.text not in entries and len(entries) >= LIST_MAX:
            # Only a full list is worth going through for what expired.
            _prune(entries, now)
            if len(entries) >= LIST_MAX:
                raise errors.ListFull(room.name, kind, LIST_MAX)
        reason = safe(reason).strip()[:REASON_MAX]
        expires = None if duration is None else now + duration
        ban = Ban(mask.text, member.nick, now, expires, reason)
        entries[mask.text] = (mask, ban)
        self.fanout.post(
            room, None, events.MaskAdded(room.name, member.nick, kind, ban)
        )
        self.audit.record(_actor(member), kind, mask.text, room.name, reason)
        log.info(
            "{nick} added {mask} to the {kind} list of {room}",
            nick=member.nick,
            mask=mask.text,
            kind=kind,
            room=room.name,
        )
        if kind == "ban":
            self._enforce_ban(member, room, mask, reason)
        else:
            room.regag()
            for each in room.members:
                if mask.matches(identity_of(each)):
                    self._silence(each, room)
        self._keep(room)
        return ban

    def _enforce_ban(self, member: Member, room: Room, mask: Mask, reason: str) -> None:
        """Put out of C{room} the members C{mask} matches who do not run it."""
        banned = [
            each
            for each in room.members
            if each not in room.operators
            and not self._owns(each, room)
            and mask.matches(identity_of(each))
        ]
        for each in banned:
            event = events.Kicked(room.name, each.nick, member.nick, reason or "Banned")
            self.fanout.post(room, None, event)
            self._remove(each, room)

    def remove_mask(
        self, member: Member, room: Room, kind: MaskKind, text: str
    ) -> None:
        """
        Take the mask C{text} (spelt any way that means the same mask) off
        the C{kind} list of C{room}; only an operator may.
        """
        mask = _mask(text)
        self._as_operator(member, room)
        entries = self._entries(room, kind)
        if entries.pop(mask.text, None) is None:
            raise errors.NoSuchMask(room.name, kind, mask.text)
        self.fanout.post(
            room, None, events.MaskRemoved(room.name, member.nick, kind, mask.text)
        )
        self.audit.record(_actor(member), "un" + kind, mask.text, room.name)
        if kind == "quiet":
            room.regag()
            for each in list(room.silenced):
                self._silence(each, room)
        self._keep(room)

    def list_masks(self, member: Member, room: Room, kind: MaskKind) -> None:
        """
        Tell C{member} the C{kind} list of C{room}. Anyone who may see the
        room may see its lists.
        """
        if not room.visible_to(member):
            raise errors.NotInRoom(room.name)
        entries = self._entries(room, kind)
        _prune(entries, self.clock())
        self.fanout.tell(
            member,
            events.MaskList(room.name, kind, [ban for _, ban in entries.values()]),
        )

    # Invitations

    def invite(self, member: Member, room: Room, nick: str) -> None:
        """
        Invite the member called C{nick} into C{room}, past its
        invite-only setting (and only that). A member of the room may
        invite; into an invite-only room, only an operator.
        """
        if member.rooms.get(room.folded) is not room:
            raise errors.NotInRoom(room.name)
        if room.invite_only and member not in room.operators:
            raise errors.NotOperator(room.name)
        target = self.find(nick)
        if target.rooms.get(room.folded) is room:
            raise errors.AlreadyInRoom(room.name, target.nick)
        room.invited.add(target.folded)
        if target.account is not None:
            room.invited.add(target.account)
        self.fanout.tell(target, events.Invited(room.name, member.nick))
        self.fanout.tell(member, events.InviteSent(room.name, target.nick))

    # Registered rooms

    def register_room(self, member: Member, room: Room) -> None:
        """
        Register C{room} to C{member}'s account, which must be logged in
        and an operator of it. The accounts of its operators now are kept
        as operators too.
        """
        if member.account is None:
            raise errors.NotLoggedIn("register_room")
        self._as_operator(member, room)
        if room.founder is not None:
            raise errors.RoomAlreadyRegistered(room.name, room.founder)
        room.founder = member.account
        room.op_accounts = {
            each.account for each in room.operators if each.account is not None
        }
        self.fanout.post(
            room, None, events.RoomRegistered(room.name, member.nick, member.account)
        )
        self.audit.record(_actor(member), "register", "", room.name)
        self._keep(room)

    def unregister_room(
        self, member: Member, room: Room, overrule: bool = False
    ) -> None:
        """
        Make C{room} an ordinary room again: its founder may, or anyone
        C{overrule} says may (a server operator).
        """
        if room.founder is None:
            raise errors.RoomNotRegistered(room.name)
        if not overrule and member.account != room.founder:
            raise errors.NotFounder(room.name)
        room.founder = None
        room.op_accounts = set()
        self.room_records.pop(room.folded, None)
        if self.forget_room is not None:
            self.forget_room(room.folded)
        self.fanout.post(
            room, None, events.RoomRegistered(room.name, member.nick, None)
        )
        self.audit.record(_actor(member), "unregister", "", room.name)

    def _operator_changed(self, room: Room, target: Member, operator: bool) -> None:
        """
        C{target} was made (or unmade) an operator of C{room}: a
        registered room keeps (or forgets) its account as one.
        """
        if room.founder is None or target.account is None:
            return
        if operator:
            room.op_accounts.add(target.account)
        elif target.account != room.founder:
            room.op_accounts.discard(target.account)
        self._keep(room)

    def _keep(self, room: Room) -> None:
        """Keep what a registered C{room} is now, and store it."""
        if room.founder is None:
            return
        record = RoomRecord(
            room.folded,
            room.name,
            room.founder,
            room.invite_only,
            room.key,
            room.limit,
            room.moderated,
            room.no_external,
            room.secret,
            room.topic_locked,
            tuple(ban for _, ban in room.bans.values()),
            tuple(ban for _, ban in room.quiets.values()),
            frozenset(room.op_accounts),
        )
        self.room_records[room.folded] = record
        if self.save_room is not None:
            self.save_room(record)

    def load_rooms(self, records: list[RoomRecord]) -> None:
        """Take the stored registered rooms, at start-up."""
        for record in records:
            self.room_records[record.key] = record

    def _restore(self, room: Room) -> None:
        """Make the newly made C{room} what its record, if any, keeps."""
        record = self.room_records.get(room.folded)
        if record is None:
            return
        # A registered room keeps the spelling it was registered with.
        room.name = record.name
        room.founder = record.founder
        room.invite_only = record.invite_only
        room.key = record.room_key
        room.limit = record.limit
        room.moderated = record.moderated
        room.no_external = record.no_external
        room.secret = record.secret
        room.topic_locked = record.topic_locked
        now = self.clock()
        for ban in record.bans:
            if ban.expires is None or ban.expires > now:
                room.bans[ban.mask] = (Mask(ban.mask), ban)
        for ban in record.quiets:
            if ban.expires is None or ban.expires > now:
                room.quiets[ban.mask] = (Mask(ban.mask), ban)
        room.op_accounts = set(record.op_accounts)
        room.regag()


def _actor(member: Member) -> str:
    """How the audit log names C{member}: its nickname, and its account."""
    if member.account is None or member.account == member.folded:
        return member.nick
    return f"{member.nick} ({member.account})"


def _checked(
    setting: Setting, value: bool | int | str | None
) -> bool | int | str | None:
    """
    C{value}, if it is one the setting C{setting} takes; else a typed
    refusal.
    """
    if setting in FLAGS:
        if not isinstance(value, bool):
            raise errors.BadSetting(setting, str(value))
        return value
    if setting == "key":
        if value is None:
            return None
        if (
            not isinstance(value, str)
            or not value
            or len(value) > KEY_MAX
            or not value.isprintable()
            or " " in value
            or "," in value
        ):
            raise errors.BadSetting(setting, safe(str(value))[:64])
        return value
    if setting == "limit":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise errors.BadSetting(setting, safe(str(value))[:64])
        if not 0 < value <= LIMIT_MAX:
            raise errors.BadSetting(setting, str(value))
        return value
    raise errors.BadSetting(safe(str(setting))[:32], safe(str(value))[:64])
