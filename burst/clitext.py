"""Terminal output that never reads data as markup.

Rich parses ``[...]`` in every string it prints: a path like ``/tmp/[/x]`` crashed the error
path, and pydantic's pattern ``^[a-z][a-z0-9-]{0,19}$`` came out mangled.  The CLI's consoles are
therefore made with markup off, and the few styled words are :class:`~rich.text.Text` spans, so
whatever a file, a cloud or an operator wrote is printed exactly as written.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text


def console(*, stderr: bool = False, width: int | None = None) -> Console:
    """A console that prints strings literally (no markup, no highlighting)."""
    return Console(stderr=stderr, markup=False, highlight=False, width=width)


def one_line(message: str) -> str:
    """``message`` with line breaks and other control characters escaped: an error stays one line
    (a file name may hold a newline; a log line must not be forged from data)."""
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in message)


def error_text(message: str, hint: str = "") -> Text:
    """``error: <message>  (<hint>)``, the message taken literally, on one line."""
    text = Text.assemble(("error:", "bold red"), " ", one_line(message))
    if hint:
        text.append(f"  ({hint})", style="dim")
    return text


def print_error(con: Console, message: str, hint: str = "") -> None:
    """The one way the CLI reports a failure: one line (soft-wrapped), literally."""
    con.print(error_text(message, hint), soft_wrap=True)


def styled(text: str, style: str) -> Text:
    """``text`` (data, taken literally) in ``style``."""
    return Text(text, style=style)
