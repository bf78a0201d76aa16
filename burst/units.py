"""Parsing of the small units an operator writes in YAML: durations ("15m") and money ("40000 EUR")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: object) -> timedelta:
    """'90s', '15m', '2h', '1d', '1w' or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhdw])", value)
        if parts and re.fullmatch(r"(\s*\d+(?:\.\d+)?\s*[smhdw])+\s*", value):
            return timedelta(seconds=sum(float(n) * _SECONDS[u] for n, u in parts))
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _SECONDS[m.group(2)])
    raise ValueError(f"not a duration: {value!r} (write e.g. 90s, 15m, 2h, 1d)")


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


@dataclass(frozen=True, slots=True)
class Money:
    amount: float
    currency: str

    def __str__(self) -> str:
        return f"{self.amount:,.2f} {self.currency}"


_MONEY = re.compile(r"^\s*([0-9][0-9_,]*(?:\.\d+)?)\s*([A-Za-z]{3})\s*$")


def parse_money(value: object) -> Money:
    """'40000 EUR', '1,500.50 USD' or {amount, currency}."""
    if isinstance(value, Money):
        return value
    if isinstance(value, dict) and set(value) == {"amount", "currency"}:
        return Money(float(value["amount"]), str(value["currency"]).upper())
    if isinstance(value, str):
        m = _MONEY.match(value)
        if m:
            amount = float(m.group(1).replace(",", "").replace("_", ""))
            return Money(amount, m.group(2).upper())
    raise ValueError(f"not an amount of money: {value!r} (write e.g. '40000 EUR')")


MoneyField = Annotated[Money, BeforeValidator(parse_money), PlainSerializer(str, return_type=str)]
