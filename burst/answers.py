"""What a cloud answers is data from outside: a malformed answer is a typed error, never a crash.

A provider converts its SDK's exceptions at one boundary, but an answer can also be well-formed
HTTP carrying nonsense: a field missing, a number where a string belongs, ``NaN`` nodes, a node
count past int64.  Reading it then raises ``KeyError``/``TypeError``/… deep in the provider, or
worse, returns a :class:`~burst.model.CloudCluster` the reconciler would act on.

:func:`guard_answers` wraps a provider class's cloud-facing methods once, for every provider:

* ``KeyError``, ``IndexError``, ``TypeError``, ``ValueError``, ``AttributeError``,
  ``UnicodeError``, ``OverflowError`` and ``RecursionError`` raised while reading an answer
  become :class:`~burst.errors.ProviderError` ("cloud answered malformed data: …"), retryable,
  with the original chained for the log;
* what the method returns is checked (types, bounds) before anyone sees it, so a garbage answer
  is never acted on as if it were a cluster.

The cost of the net: a bug of burst's own in these methods also reads as a malformed answer (with
its traceback chained).  Provider code raising typed errors on purpose is untouched.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from burst.errors import BurstError, ProviderError
from burst.model import CloudCluster, CloudStatus, Quota

#: No cluster has more nodes, no account more clusters or cores: past these the answer is garbage.
MAX_ANSWER_NODES = 10_000_000
MAX_ANSWER_COUNT = 10**12

#: Exceptions that reading a malformed answer raises in Python code.
MALFORMED = (KeyError, IndexError, TypeError, ValueError, AttributeError, UnicodeError, OverflowError, RecursionError)

#: The Provider methods that read what a cloud answers.
CLOUD_METHODS = (
    "create_cluster", "get_cluster", "resize", "delete_cluster", "list_clusters", "quota", "credentials",
    "remove_nodes",
)  # fmt: skip

C = TypeVar("C", bound=type)


class MalformedAnswer(ProviderError):
    """The cloud answered, but not with what its API promises: retry later, act on nothing."""


def guard_answers(cls: C) -> C:
    """Class decorator for providers: see the module docstring."""
    for name in CLOUD_METHODS:
        fn = getattr(cls, name, None)
        if callable(fn) and not getattr(fn, "_answers_guarded", False):
            setattr(cls, name, _guarded(fn, name))
    return cls


def _guarded(fn: Callable[..., Any], method: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(self, *args, **kwargs)
        except BurstError:
            raise
        except MALFORMED as err:
            who = getattr(self, "name", type(self).__name__)
            raise MalformedAnswer(
                f"{who}: {method}: cloud answered malformed data: {type(err).__name__}: {_short(err)}"
            ) from err
        problem = check_answer(result)
        if problem:
            who = getattr(self, "name", type(self).__name__)
            raise MalformedAnswer(f"{who}: {method}: cloud answered malformed data: {problem}")
        return result

    wrapper._answers_guarded = True  # type: ignore[attr-defined]
    return wrapper


def _short(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 200 else text[:197] + "..."


def check_answer(result: object) -> str:
    """What is wrong with a provider method's result ("" when it is sane)."""
    if isinstance(result, CloudCluster):
        return _check_cluster(result)
    if isinstance(result, Quota):
        return _check_quota(result)
    if isinstance(result, str):
        return ""
    if isinstance(result, Sequence):
        return next((p for p in map(check_answer, result) if p), "")
    return ""


def _count(value: object, most: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= most


def _check_cluster(c: CloudCluster) -> str:
    if not isinstance(c.cluster_id, str) or not c.cluster_id:
        return f"cluster id {_short(repr(c.cluster_id))}"
    if not isinstance(c.status, CloudStatus):
        return f"{c.cluster_id}: status {_short(repr(c.status))}"
    for field in ("nodes", "desired_nodes"):
        value = getattr(c, field)
        if not _count(value, MAX_ANSWER_NODES):
            return f"{c.cluster_id}: {field} = {_short(repr(value))}"
    for field in ("message", "flavor", "region"):
        if not isinstance(getattr(c, field), str):
            return f"{c.cluster_id}: {field} is not text"
    if not isinstance(c.tags, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in c.tags.items()):
        return f"{c.cluster_id}: tags are not text to text"
    return ""


def _check_quota(q: Quota) -> str:
    for field in ("max_clusters", "used_clusters", "max_cores", "used_cores"):
        value = getattr(q, field)
        if value is None and field.startswith("max_"):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            return f"quota {field} = {value}"
        if not _count(value, MAX_ANSWER_COUNT):
            return f"quota {field} = {_short(repr(value))}"
    return ""
