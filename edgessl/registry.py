"""A small name -> object table, one per extension axis (methods, backbones, formats, runtimes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from edgessl.errors import unknown_choice

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; unknown names raise a ConfigError with a suggestion.

    Args:
        kind: what the entries are, used in error messages ("SSL method", "export format").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = obj
        return obj

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise unknown_choice(self.kind, name, self._entries) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._entries[n]) for n in self.names()]
