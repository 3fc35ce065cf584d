"""Unknown names and typos on the command line, told in one line with the closest valid names.

jsonargparse reports a bad option or class name after a usage dump of some hundred lines, as a
nested message. :func:`one_line_errors` keeps that dump off the terminal and turns the message
into one :class:`~ar_models.errors.UsageError`, e.g.

    --trainer.max_epohcs: the Trainer has no option max_epohcs; closest: max_epochs

The valid names are looked up where the CLI finds them: the concrete subclasses of
``DensityModel`` / ``LightningDataModule`` / ``Callback`` imported so far (``--model``, ``--data``,
``--trainer.callbacks``), a class's constructor arguments (``--model.init_args.<name>``) and the
Trainer's (``--trainer.<name>``). Abbreviations are not accepted (``max_epoch`` is not
``max_epochs``).
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import io
import re
import sys
from collections.abc import Iterator
from typing import Any

from ar_models.errors import CheckpointError, UsageError, UserError
from model_checkpoints import import_class

#: the base class of each option that takes a class, by its key in the config
CLASS_KEYS = {
    "model": ("ar_models.base", "DensityModel", "model class"),
    "data": ("pytorch_lightning", "LightningDataModule", "data module"),
    "trainer.callbacks": ("pytorch_lightning", "Callback", "callback"),
    "trainer.logger": ("pytorch_lightning.loggers", "Logger", "logger"),
}


def offered_classes(base: type) -> dict[str, type]:
    """The concrete subclasses of ``base`` imported so far, by class name: not abstract, not
    private, and not a base by name (``PixelCNNBase``) or kept in a library module named ``base``
    (``ArrayDataModule``)."""
    found: dict[str, type] = {}
    stack = list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        private = cls.__name__.startswith("_")
        library_base = cls.__name__.endswith("Base") or (
            cls.__module__.endswith(".base") and bool(cls.__subclasses__())
        )
        if not (inspect.isabstract(cls) or private or library_base):
            found.setdefault(cls.__name__, cls)
    return found


def base_class(key: str) -> tuple[type, str]:
    """The base class that ``--<key>`` takes and what to call its subclasses."""
    module, name, kind = CLASS_KEYS[key]
    return getattr(__import__(module, fromlist=[name]), name), kind


def closest(name: str, names: list[str], n: int = 3) -> list[str]:
    """The valid names closest to ``name`` (case ignored), best first."""
    by_lower = {v.lower(): v for v in names}
    return [by_lower[m] for m in difflib.get_close_matches(name.lower(), by_lower, n, 0.6)]


def suggestion(name: str, names: list[str], what: str) -> str:
    """``closest: a, b`` or, when nothing is close, every valid name."""
    near = closest(name, names)
    if near:
        return f"closest: {', '.join(near)}"
    return f"{what}: {', '.join(sorted(names)) or 'none'}"


def arguments(cls: type) -> list[str]:
    """The named constructor arguments of ``cls``, and of its bases where it passes them
    ``**kwargs`` (as jsonargparse resolves them)."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        names += [p.name for p in parameters if p.name != "self" and p.kind not in kinds]
        if not any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters):
            break
    return list(dict.fromkeys(names))


def import_object(path: str) -> type:
    """The model class named by a dotted import path, or the bare name of an offered model."""
    if "." in path:
        return import_class(path)
    from ar_models.base import DensityModel

    offered = offered_classes(DensityModel)
    if path not in offered:
        raise CheckpointError(f"unknown model class {path}")
    return offered[path]


def unknown_options(tokens: list[str], options: list[str], trainer_class: type) -> str:
    """``--trainer.<name>`` or another option that the subcommand does not have."""
    problems = []
    for token in (t.split("=", 1)[0] for t in tokens if t.startswith("-")):
        if token.startswith("--trainer."):
            name = token.removeprefix("--trainer.").split(".")[0].rstrip("+")
            valid = arguments(trainer_class)
            if name in valid:
                continue
            hint = suggestion(name, valid, "its options")
            problems.append(f"{token}: the Trainer has no option {name}; {hint}")
        else:
            near = closest(token, [o for o in options if o.startswith("--")])
            hint = f"closest: {', '.join(near)}" if near else "--help lists the options"
            problems.append(f"{token}: no such option; {hint}")
    values = [t for t in tokens if not t.startswith("-")]
    return "; ".join(problems) or f"unexpected argument(s): {' '.join(values)}"


def unknown_argument(key: str, class_path: str, name: str, args: list[str]) -> str:
    """An init argument ``name`` that the class of ``--<key>`` does not take."""
    try:
        cls = import_class(class_path)
    except CheckpointError:
        return f"--{key}: {class_path} takes no argument {name}"
    given = [f"--{key}.init_args.{name}", f"--{key}.{name}"]
    label = next((g for g in given if any(a.split("=")[0] == g for a in args)), None)
    label = label or f"{key}.init_args.{name} (in a config)"
    hint = suggestion(name, arguments(cls), "its arguments")
    return f"{label}: {cls.__name__} takes no argument {name}; {hint}"


def unknown_class(key: str, value: str, args: list[str]) -> str:
    """A class name or import path for ``--<key>`` that names no offered class."""
    base, kind = base_class(key)
    offered = offered_classes(base)
    plural = f"{kind}es" if kind.endswith("s") else f"{kind}s"
    hint = suggestion(value.rsplit(".", 1)[-1], list(offered), f"the {plural}")
    given = any(value in a for a in args if not a.startswith("--config"))
    label = f"--{key} {value}" if given else f"{key}: class_path {value} (in a config)"
    return f"{label}: no such {kind}; {hint}"


def wrong_type(key: str, message: str) -> str | None:
    """``--<key> <value>: expected int or NoneType`` for a value of none of the option's types."""
    expected = re.findall(r"^\s*- Expected a <class '(\w+)'>\s*$", message, re.MULTILINE)
    given = re.search(r"^\s*Given value: (.*)$", message, re.MULTILINE)
    errors = re.findall(r"^\s*- ", message, re.MULTILINE)
    if not expected or given is None or len(expected) != len(errors):
        return None
    return f"--{key} {given.group(1)}: expected {' or '.join(expected)}"


def one_line(message: str, args: list[str], options: list[str], trainer_class: type) -> str | None:
    """The one-line form of a jsonargparse error ``message`` (None for other errors)."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    unrecognised = re.match(r"unrecognized arguments: (.*)", first)
    if unrecognised:
        return unknown_options(unrecognised.group(1).split(), options, trainer_class)
    required = re.match(r"the following arguments are required: (.*)", first)
    if required:
        keys = [k.strip().split(".", 1)[-1] for k in required.group(1).split(",")]
        needed = " and ".join(f"--{k}" for k in keys)
        return f"{needed} missing: give --config (a shipped config name or a file), or {needed}"
    parser_key = re.match(r'Parser key "(?:(?:fit|validate|test|predict)\.)?([\w.]+)":', first)
    if not parser_key:
        return None
    key = parser_key.group(1)
    if key not in CLASS_KEYS:
        return wrong_type(key, message)
    init = re.search(
        r"Problem with given class_path '([\w.]+)':\s*(?:Option|Key) ['\"]([\w.]+)['\"] is not "
        r"(?:accepted|expected)",
        message,
    )
    if init:
        return unknown_argument(key, init.group(1), init.group(2), args)
    value = re.search(
        r"Problem with given class_path '[\w.]*?(\w+)':\s*Parser key \"(\w+)\":\s*"
        r"Expected a <class '(\w+)'>\. Got value: (.*)",
        message,
    )
    if value:
        cls, name, kind, given = value.groups()
        return f"--{key}.init_args.{name} {given}: {cls} expects {name} to be a {kind}"
    name = re.search(
        r"Expected a dot import path string: (\S+)"
        r"|Problem with given class_path '([\w.]+)':\s*module '[\w.]+' has no attribute"
        r"|Import path (\S+) does not correspond",
        message,
    )
    return unknown_class(key, next(g for g in name.groups() if g), args) if name else None


@contextlib.contextmanager
def one_line_errors(args: list[str], options: list[str], trainer_class: type) -> Iterator[None]:
    """Parse inside: a parser error (usage dump, ``error: ...``, exit status 2) becomes a
    :class:`~ar_models.errors.UsageError` without the dump, in one line where the error is an
    unknown name (:func:`one_line`). ``args``: the command line; ``options``: the subcommand's
    option strings; ``trainer_class``: the Trainer whose options ``--trainer.*`` are."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            yield
    except SystemExit as stop:
        text = captured.getvalue()
        error = re.search(r"^error: ", text, re.MULTILINE)
        if stop.code != 2 or error is None:
            sys.stderr.write(text)
            raise
        message = text[error.end() :].strip()
        raise UsageError(one_line(message, args, options, trainer_class) or message) from None
    sys.stderr.write(captured.getvalue())


def parser_options(parser: Any) -> list[str]:
    """Every option string of a (sub)command parser."""
    return [s for action in parser._actions for s in action.option_strings]


def user_error(error: BaseException) -> UserError | None:
    """The library's bad-input error behind ``error`` (jsonargparse wraps those raised while it
    builds the classes), or None."""
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, UserError):
        seen = seen.__cause__ or seen.__context__
    return seen
