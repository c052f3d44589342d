"""One declaration per hyperparameter, and everything else derived from it.

A run's configuration is a dataclass whose fields are made with `option(...)`: the default,
the help text, the rule a value must satisfy, and whether the value may change
when a run is resumed. From that one declaration come

* the command-line flags (`add_flags`), with their defaults in the help;
* validation (`Config.validate`), one line per mistake;
* strict loading (`Config.from_dict`: an unknown key is an error, never dropped);
* the resume rule (`Config.changeable_keys`);
* `config.json` and `--config FILE` (`read_config_file`).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar

from .errors import UsageError

CONFIG_VERSION = 1
# keys config.json holds beside the options: what the file is, the versions that wrote it, and how it
# ran (torch's CPU thread count: float sums, and so the last digits of a result, depend on it)
RECORD_KEYS = ("kind", "config_version", "lstmgan_version", "torch_version", "python_version", "threads",
               "cpu_capability", "host_changes")


@dataclass(frozen=True)
class Rule:
    """A check on one option's value, and how to say what it must be."""

    holds: Callable[[Any], bool]
    text: str


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


POSITIVE_INT = Rule(lambda v: _is_int(v) and v >= 1, "a positive integer")
COUNT = Rule(lambda v: _is_int(v) and v >= 0, "0 or a positive integer")
INTEGER = Rule(_is_int, "an integer")
POSITIVE = Rule(lambda v: _is_number(v) and v > 0, "positive")
NON_NEGATIVE = Rule(lambda v: _is_number(v) and v >= 0, "0 or positive")
FRACTION = Rule(lambda v: _is_number(v) and 0 <= v < 1, "in [0, 1)")
OPEN_FRACTION = Rule(lambda v: _is_number(v) and 0 < v < 1, "strictly between 0 and 1")
BOOLEAN = Rule(lambda v: isinstance(v, bool), "true or false")
TEXT = Rule(lambda v: isinstance(v, str), "a string")
OPTIONAL_TEXT = Rule(lambda v: v is None or isinstance(v, str), "a string")


def one_of(*choices) -> Rule:
    return Rule(lambda v: v in choices, "one of " + ", ".join(map(str, choices)))


def option(default, help: str, rule: Rule | None = None, *, parse: Callable[[str], Any] | None = None,
           changeable: bool = False, metavar: str | None = None, architecture: bool = False,
           short: str | None = None, title: str | None = None):
    """A config field. `changeable`: may differ on --resume (how long or where a run goes, not what it computes).
    `architecture`: part of the network's shape (a run started from another's weights must match it).
    `short`: its name in a sweep's run folders (else the key itself). `title`: its column's heading in a sweep's
    table (else its flag)."""
    return field(default=default, metadata={"help": help, "rule": rule, "parse": parse, "changeable": changeable,
                                            "metavar": metavar, "architecture": architecture, "short": short,
                                            "title": title})


def named_option(name: str, default, help: str, rule: Rule | None = None, **kwargs):
    """An option declared outside a config class (a model's own, in its registry entry): the same field, named."""
    declared = option(default, help, rule, **kwargs)
    declared.name = name
    return declared


def relabelled(declared, **metadata):
    """A copy of an option with some of its metadata (help, metavar) replaced."""
    copy = field(default=declared.default, metadata={**declared.metadata, **metadata})
    copy.name = declared.name
    return copy


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def short_name(declared) -> str:
    """An option's name in a sweep's run folders."""
    short = declared.metadata.get("short")
    return declared.name if short is None else short


def column_title(declared) -> str:
    """An option's heading in a sweep's table."""
    return declared.metadata.get("title") or flag_name(declared.name)


class Config:
    """Base of the run configurations (`PalindromeConfig`, `GANConfig`): a dataclass of `option` fields."""

    kind: ClassVar[str]
    # keys a run adds to config.json that are not options (the resolved device, data sizes, ...)
    derived_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def option_fields(cls) -> tuple:
        """Every option: the class's fields, plus any declared elsewhere (see PalindromeConfig)."""
        return fields(cls)

    def validate(self):
        """Check every option's rule, then the rules between options (`check`); UsageError names the flag."""
        for f in self.option_fields():
            rule, value = f.metadata.get("rule"), getattr(self, f.name)
            if rule is not None and not rule.holds(value):
                raise UsageError(f"{flag_name(f.name)} must be {rule.text} (got {value!r})")
        self.check()
        return self

    def check(self) -> None:
        """Rules that involve more than one option (subclasses)."""

    def need(self, ok: bool, key: str, rule: str) -> None:
        if not ok:
            raise UsageError(f"{flag_name(key)} must be {rule} (got {getattr(self, key)!r})")

    @classmethod
    def from_dict(cls, values: dict, source: str = "config"):
        """A config from option values; an unknown key is an error (a typo must not be silently dropped)."""
        names = {f.name for f in cls.option_fields()}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UsageError(f"{source}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                             f"for a {cls.kind} run")
        return cls(**values)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in self.option_fields()}

    @classmethod
    def defaults(cls) -> dict:
        return {f.name: f.default for f in cls.option_fields() if f.default is not MISSING}

    @classmethod
    def option_help(cls, key: str) -> str:
        return next(f.metadata["help"] for f in cls.option_fields() if f.name == key)

    @classmethod
    def changeable_keys(cls) -> set[str]:
        return {f.name for f in cls.option_fields() if f.metadata.get("changeable")}

    def record(self, **derived) -> dict:
        """What config.json holds: the kind, the format version, every option, then the derived values."""
        return {"kind": self.kind, "config_version": CONFIG_VERSION, **self.to_dict(), **derived}


class EntryConfig(Config):
    """A config whose options include those declared by the entries of a registry (Part I's models, Part II's
    architectures; see lstmgan.registry). Each such option joins the config's flags, validation and
    config.json, its help names the entries that take it, and it is refused (one line) for any other entry.

    Subclasses are `@dataclass(init=False, eq=False)` and set `entries` (the Registry) and `entry_key` (the option
    that names the entry: "model", "arch").
    """

    entries: ClassVar[Any]
    entry_key: ClassVar[str]

    def __init__(self, **values):
        """Any option by name (the entry-specific ones included); the rest take their defaults."""
        fields_ = {f.name: f for f in self.option_fields()}
        unknown = sorted(set(values) - set(fields_))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown option{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(unknown)}")
        for name, f in fields_.items():
            setattr(self, name, values.get(name, f.default))

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    @classmethod
    def option_fields(cls) -> tuple:
        """The config's own options (the entry's lists the choices), then each registered entry's own."""
        entries = cls.entries
        choices = ", ".join(f"{e.name} ({e.title})" for e in entries.values())
        shared = tuple(relabelled(f, help=f"{f.metadata['help']}: {choices}", metavar="{" + ",".join(entries) + "}")
                       if f.name == cls.entry_key else f for f in fields(cls))
        own = tuple(relabelled(f, help=f"{', '.join(entries.taking(name))}: {f.metadata['help']}")
                    for name, f in entries.options().items())
        return shared + own

    def check_entry(self):
        """The named entry exists and takes the entry-specific options given (others at their default); returns it."""
        key, entries = self.entry_key, self.entries
        self.need(getattr(self, key) in entries, key, "one of " + ", ".join(entries))
        entry = entries[getattr(self, key)]
        own = [o.name for o in entry.options]
        for name, declared in entries.options().items():
            if name not in own and getattr(self, name) != declared.default:
                takes = ", ".join(map(flag_name, own)) or "none"
                raise UsageError(f"{flag_name(name)} does not apply to {flag_name(key)} {getattr(self, key)} "
                                 f"(its own options: {takes})")
        return entry


def read_config_file(path, config_class: type[Config]) -> dict:
    """The option values in a run's config.json (for `--config FILE`); record and derived keys are dropped."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UsageError(f"--config {path}: not a readable JSON file ({type(error).__name__})") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a JSON object of options")
    if data.get("kind") != config_class.kind:
        raise UsageError(f"--config {path}: this is {'a ' + str(data['kind']) if 'kind' in data else 'not a'} "
                         f"run config; a {config_class.kind} config is needed")
    if data.get("config_version") != CONFIG_VERSION:
        raise UsageError(f"--config {path}: config version {data.get('config_version')!r} is not the one this "
                         f"lstmgan reads ({CONFIG_VERSION}); written by lstmgan {data.get('lstmgan_version', '?')}")
    values = {k: v for k, v in data.items() if k not in RECORD_KEYS and k not in config_class.derived_keys}
    config_class.from_dict(values, f"--config {path}")   # unknown keys fail here, before any work
    if isinstance(data.get("resolved_backend"), str):
        values["backend"] = data["resolved_backend"]      # what really ran ("auto" may pick another elsewhere)
    return values


def recorded_threads(path) -> int | None:
    """The torch thread count a run's config.json records (None if it records none): a re-run with
    `--config` uses it unless `--threads` is given, so that it reproduces metrics.csv to the last digit."""
    try:
        threads = json.loads(Path(path).read_text()).get("threads")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None                                       # read_config_file reports a bad file
    return threads if isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1 else None


# ------------------------------------------------------------------ command-line flags

def describe(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class _BoolList(argparse.Action):
    """A switch in a sweep: `--flag` alone means [True]; `--flag false true` sweeps both."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values or [True])


def add_flags(parser: argparse.ArgumentParser, config_class: type[Config], many: bool = False,
              skip: tuple[str, ...] = ()) -> list[str]:
    """Add one flag per option (hyphenated, with the snake_case spelling as an alias); return the keys.

    Flags left out stay absent from the parsed namespace (`argparse.SUPPRESS`), so the defaults
    live in the config class alone. `many`: each flag takes one or more values (a sweep's grid).
    """
    keys = []
    for f in config_class.option_fields():
        if f.name in skip:
            continue
        meta = f.metadata
        names = [flag_name(f.name)] + ([f"--{f.name}"] if "_" in f.name else [])   # the seed's underscores too
        help_ = f"{meta['help']} (default: {describe(f.default)})"
        kwargs: dict = {"default": argparse.SUPPRESS, "help": help_, "dest": f.name}
        if isinstance(f.default, bool):
            if many:
                kwargs.update(nargs="*", type=parse_bool, action=_BoolList, metavar="BOOL")
            else:
                kwargs.update(action=argparse.BooleanOptionalAction)
        else:
            kind = meta["parse"] or (type(f.default) if f.default is not None else str)
            kwargs.update(type=kind, metavar=meta["metavar"] or f.name.split("_")[-1].upper())
            if many:
                kwargs["nargs"] = "+"
        parser.add_argument(*names, **kwargs)
        keys.append(f.name)
    return keys


def given(args: argparse.Namespace, keys: list[str]) -> dict:
    """The options the user actually passed (a value may be None, e.g. --forget-bias uniform)."""
    return {k: getattr(args, k) for k in keys if hasattr(args, k)}
