"""The one registry mechanism for every plugin kind (judges, engines, formats, importers, suites).

A plugin module registers itself by name when it is imported; a registry knows which modules hold the
built-in plugins and which entry-point group third-party packages use, and imports them on first look-up
(lazily, so importing a registry costs nothing)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> plugin. ``kind`` names the plugin in errors ("unknown judge 'x'; known: …")."""

    def __init__(self, kind: str, *, modules: tuple[str, ...] = (), entry_points: str | None = None,
                 reserved: tuple[str, ...] = ()):  # fmt: skip
        self.kind = kind
        self._modules = modules
        self._group = entry_points
        self._reserved = reserved  # names with a meaning of their own (formats' "auto"), never registrable
        self._items: dict[str, T] = {}
        self._rank: dict[str, tuple[int, int]] = {}
        self._loaded = not modules and entry_points is None

    def add(self, name: str, item: T, *, replace: bool = False) -> T:
        if name in self._reserved:
            raise ValueError(f"{self.kind} name {name!r} is reserved")
        if name in self._items and self._items[name] is not item and not replace:
            old = self._items[name]
            by = old.__module__ if isinstance(old, type) else None  # a class says where it came from
            raise ValueError(f"{self.kind} {name!r} is already registered" + (f" by {by}" if by else ""))
        if name not in self._items:
            # Listed in the built-in modules' declared order, whichever a program happened to import first
            # (a test importing one plugin module directly); others after them, in the order they came.
            self._rank[name] = (self._module_rank(), len(self._rank))
        self._items[name] = item
        self._items = dict(sorted(self._items.items(), key=lambda kv: self._rank[kv[0]]))
        return item

    def _module_rank(self) -> int:
        """Position in ``modules`` of the built-in module whose import is adding a plugin now (found on the
        call stack: the plugin module runs the add, directly or through a decorator); else after them all."""
        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_globals.get("__name__")
            if name in self._modules:
                return self._modules.index(name)
            frame = frame.f_back
        return len(self._modules)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda item: self.add(name, item)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # first: a plugin module may look itself up while it is imported
        for mod in self._modules:
            importlib.import_module(mod)
        if self._group:
            from importlib import metadata  # 25 ms to import: only when plugins are looked up

            for ep in metadata.entry_points(group=self._group):
                ep.load()

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join([*self._reserved, *sorted(self._items)])
            raise ValueError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        self._load()
        return list(self._items)

    def values(self) -> list[T]:
        self._load()
        return list(self._items.values())

    def items(self) -> list[tuple[str, T]]:
        self._load()
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._items)
