"""An answer's page kept compact from its parse to the state, as a `StatusPage` holds it.

A page of 10,000 tasks parsed into a tuple a task holds about 140 bytes a task until the poll
is applied, and 20,000 objects for the garbage collector to walk; a million tasks polled at
once hold 140 MB. Kept as its task IDs in one text, a byte a status naming its kind and the
fields of the few statuses particular to their task (errors) apart, it holds about ten bytes
a task and three objects. A provider builds one where the usual answer allows, and falls back
to its own items for anything else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, ClassVar

from exporter.core.model import APART, StatusPage, TaskStatus

# IDs as an answer wrote them, comma-separated: plain JSON integers in the int64 range, each
# read as str() of the integer would read it.
JSON_INTEGERS = re.compile(r"-?(?:0|[1-9][0-9]{0,17})(?:,-?(?:0|[1-9][0-9]{0,17}))*")
APART_CODE = bytes([APART])


class CompactPage:
    """One page: its IDs (comma-separated), a byte a status (a kind's code, or APART), and the
    fields of the statuses apart, by position."""

    __slots__ = ("apart", "codes", "ids")

    def __init__(self, ids: str, codes: bytes, apart: dict[int, tuple[Any, ...]]) -> None:
        self.ids, self.codes, self.apart = ids, codes, apart

    def __len__(self) -> int:
        return len(self.codes)

    def items(self, kinds: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The page as one item a task: its ID, then the fields of its status."""
        apart, codes = self.apart, self.codes
        return [
            (task_id, *(apart[i] if codes[i] == APART else kinds[codes[i]]))
            for i, task_id in enumerate(self.ids.split(","))
        ]


class ItemPage(list[tuple[Any, ...]]):
    """A page as one item a task (its ID, then the fields of its status): an answer out of the usual."""

    ids: ClassVar[str] = ""  # not kept as a text

    def items(self, kinds: Sequence[tuple[Any, ...]] = ()) -> list[tuple[Any, ...]]:
        return self


Page = CompactPage | ItemPage


def compact_page(
    raw_ids: Iterable[Any],
    words: Iterable[Any],
    codes: Mapping[Any, int],
    apart: Callable[[int], tuple[Any, ...]],
    asked: str = "",
    at: int = 0,
) -> CompactPage | None:
    """A page from its IDs as the answer wrote them (bytes-like JSON values), its status words
    (`codes` names the code of each word that makes a kind; any other is apart, with the fields
    `apart(position)` gives), or None when an ID is not a plain integer or a word not hashable.
    IDs that are those asked (`asked`, comma-separated, checked, from the character `at` on)
    need no other check."""
    ids = b",".join(raw_ids).decode("latin-1")
    try:
        kinds = bytes(map(codes.get, words, repeat(APART)))
    except TypeError:
        return None
    end = at + len(ids)
    as_asked = asked.startswith(ids, at) and asked[end : end + 1] in ("", ",")
    if not kinds or not (as_asked or JSON_INTEGERS.fullmatch(ids)):
        return None
    fields: dict[int, tuple[Any, ...]] = {}
    i = kinds.find(APART_CODE)
    while i >= 0:
        fields[i] = apart(i)
        i = kinds.find(APART_CODE, i + 1)
    return CompactPage(ids, kinds, fields)


def names_as_asked(pages: Sequence[CompactPage], asked: str) -> bool:
    """Whether the pages name every ID of `asked` (comma-separated), each once, in that order."""
    return ",".join(p.ids for p in pages) == asked


def status_page(
    pages: Sequence[CompactPage],
    asked: Sequence[str],
    kinds: Sequence[tuple[Any, ...]],
    decode: Callable[..., TaskStatus],
) -> StatusPage:
    """The pages of one answer that named the IDs `asked` as asked (`names_as_asked`), as one
    StatusPage of those very ID strings."""
    if len(pages) == 1:
        return StatusPage(asked, pages[0].codes, kinds, decode, pages[0].apart)
    apart, offset = {}, 0
    for page in pages:
        apart.update({offset + i: fields for i, fields in page.apart.items()})
        offset += len(page)
    return StatusPage(asked, b"".join(p.codes for p in pages), kinds, decode, apart)
