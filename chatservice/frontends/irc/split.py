"""
Cutting text to fit IRC's 512-byte lines.

A line user may say up to C{--max-line} bytes; an IRC line holds 512 with
its CRLF, prefix and command. Text is cut on a character boundary, and
never inside a grapheme cluster that a terminal draws as one character: not
before a combining mark, a variation selector, an emoji modifier or a
zero-width joiner, and not after a joiner. (This is the common subset of
Unicode's grapheme rules that chat text meets; a cluster longer than a
whole line is cut where it must be.)
"""

from __future__ import annotations

import unicodedata

_JOINER = "\u200d"


def _extends(char: str) -> bool:
    """
    Whether C{char} belongs to the character before it.
    """
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")
        or char == _JOINER
        or 0xFE00 <= code <= 0xFE0F
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
    )


def split(text: str, limit: int) -> list[str]:
    """
    C{text} in pieces of at most C{limit} bytes of UTF-8 each, cut between
    grapheme clusters. An empty text is one empty piece.
    """
    if len(text) * 4 <= limit or len(text.encode("utf-8")) <= limit:
        return [text]
    pieces = []
    while text:
        data = text.encode("utf-8")
        if len(data) <= limit:
            pieces.append(text)
            break
        # The most characters whose UTF-8 fits the limit.
        end = len(data[:limit].decode("utf-8", "ignore"))
        cut = end
        while cut > 0 and (_extends(text[cut]) or text[cut - 1] == _JOINER):
            cut -= 1
        if cut == 0:
            cut = end
        pieces.append(text[:cut])
        text = text[cut:]
    return pieces
