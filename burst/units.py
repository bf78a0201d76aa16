"""Parsing of the small units an operator writes in YAML: durations ("15m") and money ("40000 EUR")."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}

#: No duration an operator writes is longer: past it a typo (``99999999999999d``) would overflow
#: ``timedelta`` or make a loop over ticks run for ever.
MAX_DURATION = timedelta(days=366)
#: A trace offset may reach further: archive logs span years.
MAX_TRACE_OFFSET = timedelta(days=366 * 30)
#: No site, cloud or job has more cores; past it a count would overflow SQLite's 64-bit integers
#: once multiplied by node counts and seconds.
MAX_CORES = 10_000_000


def parse_duration(value: object, *, maximum: timedelta = MAX_DURATION) -> timedelta:
    """'90s', '15m', '2h', '1d', '1w', '1h30m' or a number of seconds; finite, ≥ 0, ≤ ``maximum``.

    The one duration parser: every duration field of every config section, and every command line
    option that takes a duration, goes through it, so ``2s`` means the same everywhere.
    """
    if isinstance(value, timedelta):
        seconds: float = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"a duration must be a finite number of seconds, not {value}")
        seconds = _bounded(value, maximum)
    elif isinstance(value, str):
        seconds = _parse_text(value, maximum)
    else:
        raise ValueError(f"not a duration: {value!r} (write e.g. 90s, 15m, 2h, 1d)")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > maximum.total_seconds():
        raise ValueError(f"a duration is at most {format_duration(maximum)}, not {_short(value)}")
    return timedelta(seconds=seconds)


def _bounded(value: int | float, maximum: timedelta) -> float:
    # Compared before converting: float() of a 400-digit YAML integer raises OverflowError.
    if value > maximum.total_seconds():
        raise ValueError(f"a duration is at most {format_duration(maximum)}, not {_short(value)} s")
    return float(value)


def _parse_text(value: str, maximum: timedelta) -> float:
    if len(value) <= 64:
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhdw])", value)
        if parts and re.fullmatch(r"(\s*\d+(?:\.\d+)?\s*[smhdw])+\s*", value):
            return math.fsum(float(n) * _SECONDS[u] for n, u in parts)
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _SECONDS[m.group(2)]
    raise ValueError(f"not a duration: {_short(value)} (write e.g. 90s, 15m, 2h, 1d)")


def _short(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def positive_duration(value: object) -> timedelta:
    """A duration that something divides by or loops on (a tick, a timeout): must be > 0."""
    td = parse_duration(value)
    if td <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return td


def seconds(value: object) -> float:
    """A duration kept as float seconds (fields that were numbers before they took ``2s``)."""
    return parse_duration(value).total_seconds()


def format_duration(td: timedelta | float) -> str:
    s = td.total_seconds() if isinstance(td, timedelta) else float(td)
    if s >= 86400 and s % 3600 == 0:
        return f"{s / 86400:g}d" if s % 86400 == 0 else f"{s / 3600:g}h"
    if s >= 3600:
        h, rem = divmod(round(s), 3600)
        return f"{h}h{rem // 60:02d}m" if rem else f"{h}h"
    if s >= 60:
        m, sec = divmod(round(s), 60)
        return f"{m}m{sec:02d}s" if sec else f"{m}m"
    return f"{s:.0f}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
PositiveDuration = Annotated[
    timedelta,
    BeforeValidator(positive_duration),
    PlainSerializer(format_duration, return_type=str),
]
TraceOffset = Annotated[
    timedelta,
    BeforeValidator(lambda v: parse_duration(v, maximum=MAX_TRACE_OFFSET)),
    PlainSerializer(format_duration, return_type=str),
]
#: Float seconds written like any duration (``180``, ``3m``).
Seconds = Annotated[float, BeforeValidator(seconds)]


@dataclass(frozen=True, slots=True)
class Money:
    amount: float
    currency: str

    def __str__(self) -> str:
        return f"{self.amount:,.2f} {self.currency}"


_MONEY = re.compile(r"^\s*([0-9][0-9_,]*(?:\.\d+)?)\s*([A-Za-z]{3})\s*$")


def parse_money(value: object) -> Money:
    """'40000 EUR', '1,500.50 USD' or {amount, currency}; a finite amount ≥ 0."""
    if isinstance(value, Money):
        return value
    money: Money | None = None
    if isinstance(value, dict) and set(value) == {"amount", "currency"}:
        amount, currency = value["amount"], value["currency"]
        if isinstance(amount, int | float) and not isinstance(amount, bool) and isinstance(currency, str):
            money = Money(_amount(amount), currency.upper())
    elif isinstance(value, str) and len(value) <= 64:
        m = _MONEY.match(value)
        if m:
            money = Money(_amount(float(m.group(1).replace(",", "").replace("_", ""))), m.group(2).upper())
    if money is None:
        raise ValueError(f"not an amount of money: {_short(value)} (write e.g. '40000 EUR')")
    return money


def _amount(value: int | float) -> float:
    if not (isinstance(value, int) and abs(value) < 10**15) and not (
        isinstance(value, float) and math.isfinite(value) and abs(value) < 1e15
    ):
        raise ValueError(f"an amount of money must be a finite number below 1e15, not {_short(value)}")
    if value < 0:
        raise ValueError("an amount of money cannot be negative")
    return float(value)


MoneyField = Annotated[Money, BeforeValidator(parse_money), PlainSerializer(str, return_type=str)]
