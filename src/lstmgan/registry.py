"""Named entries that declare their own options: Part I's models, Part II's architectures.

An entry is any object with a `name` and `options` (fields made with `config.named_option`). The
registry keeps them by name and answers what both parts ask: the names (a flag's choices), an entry
by name (a one-line error naming the flag otherwise), every entry-specific option once, and which
entries take an option. `config.EntryConfig` joins those options to a run's config.
"""

from __future__ import annotations

from dataclasses import Field
from typing import Generic, TypeVar

from .errors import UsageError

Entry = TypeVar("Entry")


class Registry(dict[str, Entry], Generic[Entry]):
    """A dict of entries by name, with what both parts ask of it."""

    def __init__(self, flag: str):
        super().__init__()
        self.flag = flag                    # the flag that picks an entry: "--model", "--arch"

    def register(self, entry: Entry) -> Entry:
        """Add (or replace) `entry`. An option another entry declares too must be the same declaration
        (one flag, one default, one rule)."""
        for option in entry.options:
            for other in self.values():
                theirs = next((o for o in other.options if o.name == option.name), None)
                if theirs is not None and theirs is not option and other.name != entry.name:
                    raise ValueError(f"{entry.name!r} declares option {option.name!r} again; reuse "
                                     f"{other.name!r}'s declaration")
        self[entry.name] = entry
        return entry

    def names(self) -> tuple[str, ...]:
        return tuple(self)

    def entry(self, name: str) -> Entry:
        """The entry called `name`, or a one-line error naming the flag and the choices."""
        if name not in self:
            raise UsageError(f"{self.flag} must be one of {', '.join(self)} (got {name!r})")
        return self[name]

    def options(self) -> dict[str, Field]:
        """Every entry-specific option, once, in the order the entries declare them."""
        return {option.name: option for entry in self.values() for option in entry.options}

    def taking(self, option: str) -> list[str]:
        return [entry.name for entry in self.values() if option in option_names(entry)]


def option_names(entry) -> tuple[str, ...]:
    return tuple(option.name for option in entry.options)
