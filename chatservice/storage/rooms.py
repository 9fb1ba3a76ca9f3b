"""
Registered rooms as rows of the C{rooms} table, and back.

A L{RoomRecord} is one row: its settings an object and its lists arrays,
in JSON, so that the row reads well in the sqlite3 tool and a new setting
is a new key rather than a new column. Reading checks every field's type
and every mask, because the file may have been edited by hand or written
by a server with other ideas: a row that is not a room is refused with a
L{ValueError} saying why (the store skips it), instead of a room that
would fail later, on someone's C{/join}.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chatservice.core.events import Ban
from chatservice.core.masks import BadMask, parse_mask
from chatservice.core.moderation import RoomRecord

Row = tuple[str, str, str, str, str, str, str, float]
"""
A row of the C{rooms} table: key, name, founder, settings, bans, quiets,
op_accounts, updated.
"""

# The settings object's keys besides "key" and "limit".
_FLAGS = ("invite_only", "moderated", "no_external", "secret", "topic_locked")


def _compact(value: object) -> str:
    # ensure_ascii off: Unicode names and reasons stay readable in the file.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _ban_object(ban: Ban) -> dict[str, object]:
    return {
        "mask": ban.mask,
        "by": ban.by,
        "at": ban.at,
        "expires": ban.expires,
        "reason": ban.reason,
    }


def to_row(record: RoomRecord, updated: float) -> Row:
    """The row that keeps C{record}, written at C{updated}."""
    settings = {flag: getattr(record, flag) for flag in _FLAGS}
    settings["key"] = record.room_key
    settings["limit"] = record.limit
    return (
        record.key,
        record.name,
        record.founder,
        _compact(settings),
        _compact([_ban_object(ban) for ban in record.bans]),
        _compact([_ban_object(ban) for ban in record.quiets]),
        _compact(sorted(record.op_accounts)),
        updated,
    )


def _typed(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    # bool is an int to isinstance, but a limit of true is no number.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"{what} is {value!r}")
    return value


def _ban(entry: Any, what: str) -> Ban:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{what} entry is {entry!r}")
    mask = _typed(entry.get("mask"), str, f"{what} mask")
    try:
        canonical = parse_mask(mask).text
    except BadMask as e:
        raise ValueError(f"{what} mask {mask!r}: {e}") from None
    expires = entry.get("expires")
    return Ban(
        canonical,
        _typed(entry.get("by"), str, f"{what} by"),
        float(_typed(entry.get("at"), (int, float), f"{what} at")),
        None
        if expires is None
        else float(_typed(expires, (int, float), f"{what} expires")),
        _typed(entry.get("reason", ""), str, f"{what} reason"),
    )


def _list(text: str, what: str) -> list[Any]:
    return list(_typed(json.loads(text), list, what))


def from_row(row: Row) -> RoomRecord:
    """
    The registered room C{row} keeps; raises L{ValueError} if it keeps
    none (bad JSON, a missing or mistyped field, a mask that is not one).
    """
    key, name, founder, settings_text, bans, quiets, op_accounts, _ = row
    settings = _typed(json.loads(settings_text), dict, "settings")

    def flag(name: str) -> bool:
        return bool(_typed(settings.get(name), bool, f"setting {name}"))

    room_key = settings.get("key")
    limit = settings.get("limit")
    return RoomRecord(
        _typed(key, str, "key"),
        _typed(name, str, "name"),
        _typed(founder, str, "founder"),
        invite_only=flag("invite_only"),
        moderated=flag("moderated"),
        no_external=flag("no_external"),
        secret=flag("secret"),
        topic_locked=flag("topic_locked"),
        room_key=None if room_key is None else _typed(room_key, str, "setting key"),
        limit=None if limit is None else _typed(limit, int, "setting limit"),
        bans=tuple(_ban(entry, "ban") for entry in _list(bans, "bans")),
        quiets=tuple(_ban(entry, "quiet") for entry in _list(quiets, "quiets")),
        op_accounts=frozenset(
            _typed(account, str, "operator account")
            for account in _list(op_accounts, "op_accounts")
        ),
    )
