"""One container for a code catalog, so the Xid and SXid catalogs differ only in what they know.

Both map an integer code to a frozen entry read once from a packaged YAML file, iterate in code
order and answer for a code they do not know with an entry that is never destructive. What an
unknown code gets, and how a row becomes an entry, is each catalog's own business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from typing import Any, Generic, Protocol, TypeVar

import yaml


class CodedEntry(Protocol):
    """What the container needs of an entry: its code, for the order of iteration."""

    @property
    def code(self) -> int: ...


EntryT = TypeVar("EntryT", bound=CodedEntry)


def packaged_rows(file_name: str, key: str) -> list[Mapping[str, Any]]:
    """The rows under ``key`` of ``repairbot/data/<file_name>``."""
    text = resources.files("repairbot").joinpath(f"data/{file_name}").read_text(encoding="utf-8")
    return list(yaml.safe_load(text)[key])


def entries_by_code(
    rows: list[Mapping[str, Any]], entry_from_row: Callable[[Mapping[str, Any]], EntryT]
) -> dict[int, EntryT]:
    """Code → entry for every row; a row whose field is wrong raises ValueError naming the code and field."""
    return {int(row["code"]): entry_from_row(row) for row in rows}


class CodeCatalog(Generic[EntryT]):
    """Code → entry. Immutable: a changed catalog is a new one."""

    def __init__(self, entries: Mapping[int, EntryT]) -> None:
        self._entries = dict(entries)

    def __contains__(self, code: object) -> bool:
        return code in self._entries

    def __iter__(self) -> Iterator[EntryT]:
        return iter(sorted(self._entries.values(), key=lambda entry: entry.code))

    def __len__(self) -> int:
        return len(self._entries)

    def known(self, code: int) -> EntryT | None:
        """The catalog's own entry for ``code``, or None where it has none."""
        return self._entries.get(code)
