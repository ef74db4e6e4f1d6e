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
"""

from __future__ import annotations

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
        from latte_bench.options import api_name

        return self.render(api_name)

    def with_context(self, prefix: str = "", suffix: str = "") -> "UserError":
        """The same error with text before and after its message (the settings still rendered per reader)."""
        if not self.settings:
            return UserError(prefix + self.template + suffix)
        return UserError(literal(prefix) + self.template + literal(suffix), **self.settings)
