"""The one exception type that reaches the user as a one-line message.

Raise :class:`UserError` for anything the user can fix (a missing folder, a corrupt
video, a missing weight file). The CLI prints ``latte-bench: error: <message>`` and
exits with status 2, without a traceback. The message should name the file and the fix.

A message that names a setting says it the way the reader passed it: the setting is a
``{field}`` placeholder with the field given as a keyword, ``UserError("only 3 clips for
{num_clips}; pass {allow_fewer}", num_clips=2048, allow_fewer=True)``. ``str(e)`` (a Python
caller) reads ``num_clips=2048 ... allow_fewer=True``; the command line renders the same
error with :meth:`UserError.render` and the option's flag, ``--num-clips 2048 ... --allow-fewer``.
A keyword given :data:`NAME_ONLY` is named without a value; one given ``Setting(field, value)``
names another value of a setting (``"use {cpu}", cpu=Setting("device", "cpu")``). Other text in
such a template (a path, a value) goes through :func:`literal`.

:func:`check_int` is the one check of a whole-number setting, used by the command-line parsers
(``latte_bench.options.AtLeast``, which the option metadata's ``minimum`` applies) and by the settings objects alike.
:func:`third_party_quiet` keeps what libraries print while loading a file off the terminal, so that the one
line is all there is.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple


class _NameOnly:
    def __repr__(self) -> str:
        return "NAME_ONLY"


NAME_ONLY = _NameOnly()  # a setting named without its value


class Setting(NamedTuple):
    """A setting and a value of it, for a placeholder whose name is not the field's."""

    field: str
    value: object


def literal(text) -> str:
    """``text`` for a message template that names settings: its braces doubled, so they stay as written."""
    return str(text).replace("{", "{{").replace("}", "}}")


def api_name(name: str, value=NAME_ONLY) -> str:
    """``name`` or ``name=value``: how a Python caller spells the setting (``str(UserError)``)."""
    return name if value is NAME_ONLY else f"{name}={value!r}"


class UserError(Exception):
    """A problem with the user's input or environment, reported in one line (exit 2)."""

    exit_code = 2

    def __init__(self, message: str, **settings):
        super().__init__(message)
        self.template, self.settings = message, settings

    def render(self, name) -> str:
        """The message with each setting written by ``name(field, value)`` (e.g. as a flag)."""
        if not self.settings:
            return self.template
        return self.template.format_map({k: name(*v) if isinstance(v, Setting) else name(k, v)
                                         for k, v in self.settings.items()})

    def __str__(self) -> str:
        return self.render(api_name)

    def with_context(self, prefix: str = "", suffix: str = "") -> "UserError":
        """The same error with text before and after its message (the settings still rendered per reader)."""
        if not self.settings:
            return UserError(prefix + self.template + suffix)
        return UserError(literal(prefix) + self.template + literal(suffix), **self.settings)


def check_int(field: str, value, minimum: int, *, flag: str | None = None) -> int:
    """Return ``value`` if it is an integer >= ``minimum``; else a :class:`UserError` naming the setting
    ``field`` as its reader passes it (``flag`` instead: an argument of the command line alone) and the value."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        if flag is not None:
            raise UserError(f"{literal(flag)} must be an integer >= {minimum}, got {literal(repr(value))}")
        raise UserError(f"{{{field}}} must be an integer >= {minimum}, got {literal(repr(value))}", **{field: NAME_ONLY})
    return value


@contextlib.contextmanager
def third_party_quiet():
    """Silence every log record and Python warning inside the block (diffusers' eight lines around a bad VAE
    file, torch's pickle-protocol warning on a raw pickle); a failure reaches the user as one UserError line.

    Use around a third-party load only: ``logging.disable`` and the warning filters are process-wide
    while the block runs. Both are restored on exit.
    """
    import logging
    import warnings

    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(before)
