"""Command-line options built from dataclass fields: each default and help text lives once, in the dataclass.

A field declared with ``option(default, "help")`` becomes ``--field-name``
(``positional=True``: an argument), its type taken from the annotation
(``X | None`` is ``X``; ``bool`` is a switch; ``list[...]`` takes several
values), its default from the field; a field declared with ``nested(Cls)``
holds a dataclass whose options are added flat, in an argument group named
after it (``--attempts``, not ``--retarget.attempts``). Other fields stay off
the command line. ``from_args(Cls, args)`` builds the dataclass back from the
parsed arguments. Standard library only: the lifting environment uses it too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from typing import Any, Callable, TypeVar

T = TypeVar("T")
_KEY = "hop_cli"


class OptionError(ValueError):
    """Options that parse but that the configuration refuses (a usage error: exit status 2)."""


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    default_factory: Any = dataclasses.MISSING,
    positional: bool = False,
    nargs: str | None = None,
    choices: tuple[Any, ...] | None = None,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field that is also a command-line option. ``parse`` turns
    the option's text into the field's value (default: the annotated type)."""
    meta = {"help": help, "positional": positional, "nargs": nargs, "choices": choices, "parse": parse, "metavar": metavar}
    return dataclasses.field(default=default, default_factory=default_factory, metadata={_KEY: meta})


def nested(cls: type, title: str | None = None) -> Any:
    """A dataclass field holding a ``cls`` (default ``cls()``) whose options are added flat."""
    return dataclasses.field(default_factory=cls, metadata={_KEY: {"nested": cls, "title": title}})


def _cli_fields(cls: type) -> list[tuple[dataclasses.Field, dict[str, Any]]]:
    return [(f, f.metadata[_KEY]) for f in dataclasses.fields(cls) if _KEY in f.metadata]


def _resolve(cls: type, f: dataclasses.Field) -> Any:
    """The field's annotation as a type (string annotations evaluated in the class's module)."""
    if not isinstance(f.type, str):
        return f.type
    return eval(f.type, vars(sys.modules[cls.__module__]))  # noqa: S307 (our own annotations)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def add_options(parser: argparse.ArgumentParser | Any, cls: type) -> None:
    """Add the options of dataclass ``cls`` (and of its ``nested`` dataclasses) to ``parser``."""
    for f, meta in _cli_fields(cls):
        if meta.get("nested"):
            sub = meta["nested"]
            title = meta["title"] or (sub.__doc__ or sub.__name__).strip().splitlines()[0].rstrip(".")
            add_options(parser.add_argument_group(title), sub)
            continue
        kind = _resolve(cls, f)
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # X | None
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        default = _default(f)
        kw: dict[str, Any] = {"help": meta["help"]}
        if default is not dataclasses.MISSING and default is not None and kind is not bool:
            kw["help"] += " (default: %(default)s)"
        if meta["metavar"]:
            kw["metavar"] = meta["metavar"]
        if meta["choices"]:
            kw["choices"] = meta["choices"]
        if kind is bool:
            if default is not False:
                raise TypeError(f"{cls.__name__}.{f.name}: a switch defaults to False")
            kw["action"] = "store_true"
        elif typing.get_origin(kind) is list:
            kw["nargs"] = meta["nargs"] or "+"
            kw["type"] = meta["parse"] or typing.get_args(kind)[0]
        else:
            kw["type"] = meta["parse"] or kind
            if meta["nargs"]:
                kw["nargs"] = meta["nargs"]
        if meta["positional"]:
            if default is not dataclasses.MISSING:
                kw["default"] = default
            parser.add_argument(f.name, **kw)
            continue
        if default is dataclasses.MISSING:
            kw["required"] = True
        else:
            kw["default"] = default
        parser.add_argument(_flag(f.name), dest=f.name, **kw)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def from_args(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """A ``cls`` from parsed arguments (its options and its nested dataclasses'); ``overrides`` win."""
    kwargs: dict[str, Any] = {}
    for f, meta in _cli_fields(cls):
        if meta.get("nested"):
            kwargs[f.name] = from_args(meta["nested"], args)
        elif hasattr(args, f.name):
            kwargs[f.name] = getattr(args, f.name)
    kwargs.update(overrides)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # the dataclass refused a value
        raise OptionError(str(exc)) from None


def to_argv(config: Any) -> list[str]:
    """The options that give ``config`` back (those that differ from the defaults),
    e.g. to run a worker process with the same settings."""
    argv: list[str] = []
    for f, meta in _cli_fields(type(config)):
        value = getattr(config, f.name)
        if meta.get("nested"):
            argv += to_argv(value)
            continue
        if meta["positional"] or value is None or value == _default(f):
            continue
        if value is True:
            argv.append(_flag(f.name))
        elif isinstance(value, list):
            argv += [_flag(f.name), *map(str, value)]
        elif isinstance(value, dict):
            argv += [_flag(f.name), json.dumps(value)]
        elif value is not False:
            argv += [_flag(f.name), str(value)]
    return argv


def parse_json(text: str) -> Any:
    """An option's JSON text (argparse names the option and ``JSON`` when it does not parse)."""
    return json.loads(text)


parse_json.__name__ = "JSON"


def add_output_switches(parser: argparse.ArgumentParser, json_help: str = "print one JSON summary", quiet_help: str = "no progress bars") -> None:
    """``--json`` (stdout: one JSON object) and ``--quiet``, as every batch command has them."""
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.add_argument("--quiet", action="store_true", help=quiet_help)
