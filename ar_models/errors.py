"""Every error type of the library and the one argument-checking helper.

Bad input from a user (a config value, a data file, a checkpoint, a command line, a model that
lacks what a callback calls) raises a :class:`UserError`; the command line prints its message as
one line and exits with status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


class UserError(Exception):
    """Bad input; the message names the input, what was wrong and what is expected."""


class ModelConfigError(UserError, ValueError):
    """A model (or callback) was given arguments it cannot work with."""


class DataError(UserError, ValueError):
    """Bad data or data arguments."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, unreadable, or not what the caller expects."""


class UsageError(UserError, ValueError):
    """A command line that cannot run: a config that does not exist, a missing checkpoint, ..."""


class MissingHooksError(UserError, TypeError):
    """A callback was given a model that lacks hooks it calls."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def check(
    error: type[UserError] = ModelConfigError,
    *,
    integer: bool = False,
    minimum: float | None = None,
    below: float | None = None,
    odd: bool = False,
    choices: Iterable[object] | None = None,
    **values: object,
) -> None:
    """Raise ``error`` naming the first of ``values`` (name=value) that breaks a rule: one of
    ``choices``; or an ``integer`` (a bool is not one) or a finite number (NaN and ±inf are not),
    at least ``minimum``, below ``below``, ``odd``.

    ``check(n_filters=64, integer=True, minimum=1)``;
    ``check(DataError, batch_size=b, integer=True, minimum=1)``."""
    for name, value in values.items():
        if choices is not None:
            if value not in tuple(choices):
                raise error(f"{name} must be one of {tuple(choices)}, got {value!r}")
            continue
        if integer and minimum == 1 and below is None and not odd:
            wanted = "a positive integer"
        else:
            rules = [f">= {minimum:g}"] if minimum is not None else []
            rules += [f"< {below:g}"] if below is not None else []
            kind = "an odd integer" if odd else "an integer" if integer else "a finite number"
            wanted = " ".join([kind, " and ".join(rules)]).strip()
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if (
            not is_number
            or (integer and not isinstance(value, int))
            or not math.isfinite(value)
            or (minimum is not None and value < minimum)
            or (below is not None and value >= below)
            or (odd and value % 2 == 0)
        ):
            raise error(f"{name} must be {wanted}, got {value!r}")
