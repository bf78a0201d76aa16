"""The one thin adapter between burst and the HTCondor daemons (``htcondor2`` bindings).

Every call that talks to a schedd, a collector or a startd lives here, and nothing else in burst
imports ``htcondor2``.  Why so thin: no HTCondor daemon can run in burst's tests, so the code that
*interprets* ClassAds (buckets, capacity, drain counts) sits above this module and is tested with
real ``classad2.ClassAd`` objects; only the few lines that touch a socket stay here.

The daemon handles are passed in, never built inside the query functions: :class:`Connector`
opens them (the real one with ``htcondor2``; tests hand in objects that return real ClassAds and
record the constraint, projection and options they were given).  ``htcondor2.HTCondorException``
is converted into :class:`CondorError` here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import classad2
import htcondor2

from burst.errors import BurstError

log = logging.getLogger(__name__)

#: Job attributes that decide a job's shape (what an autocluster groups by, for burst's purpose).
SHAPE_ATTRS = ("RequestCpus", "RequestMemory", "RequestGPUs")
#: Idle jobs, per autocluster: the shape, the count, and what a per-group view filters on.
AUTOCLUSTER_PROJECTION = [*SHAPE_ATTRS, "JobCount", "AutoClusterId", "QDate", "AcctGroup", "AccountingGroup"]
#: Plain job query for the oldest queue date of each autocluster: two small attributes per job.
QDATE_PROJECTION = ["AutoClusterId", "QDate"]
#: What the capacity and drain logic reads from startd (slot) ads.
STARTD_PROJECTION = [
    "Name",
    "Machine",
    "MyAddress",
    "CondorVersion",
    "SlotType",
    "PartitionableSlot",
    "DynamicSlot",
    "Cpus",
    "TotalSlotCpus",
    "TotalCpus",
    "Memory",
    "GPUs",
    "State",
    "Activity",
    "Draining",
    "BurstCluster",
    "BurstCampaign",
    "BurstNode",
]

IDLE = 1
RUNNING = 2


class CondorError(BurstError):
    """An HTCondor daemon could not be reached or refused a request; ``daemon`` names it."""

    def __init__(self, daemon: str, action: str, detail: str) -> None:
        self.daemon = daemon
        self.action = action
        super().__init__(f"{action} {daemon}: {detail}")


class MalformedAdError(BurstError):
    """A ClassAd does not have the shape burst needs (wrong type, error value, unparsable)."""


# --- the daemon handles, as burst uses them ----------------------------------------------------


class ScheddLike(Protocol):
    """What burst calls on an ``htcondor2.Schedd``."""

    def query(
        self,
        constraint: str = "True",
        projection: list[str] = ...,
        callback: Callable[[classad2.ClassAd], Any] | None = None,
        limit: int = -1,
        opts: htcondor2.QueryOpt = ...,
    ) -> list[classad2.ClassAd]: ...


class CollectorLike(Protocol):
    """What burst calls on an ``htcondor2.Collector``."""

    def query(
        self,
        ad_type: htcondor2.AdType = ...,
        constraint: str | None = None,
        projection: list[str] | None = None,
    ) -> list[classad2.ClassAd]: ...

    def locate(self, daemon_type: htcondor2.DaemonType, name: str | None = None) -> classad2.ClassAd: ...


class StartdLike(Protocol):
    """What burst calls on an ``htcondor2.Startd``."""

    def drainJobs(  # noqa: N802 - the bindings' name
        self,
        drain_type: htcondor2.DrainType = ...,
        on_completion: Any = ...,
        check_expr: str | None = None,
        start_expr: str | None = None,
        reason: str | None = None,
    ) -> str: ...

    def cancelDrainJobs(self, request_id: str | None = None) -> None: ...  # noqa: N802


class Connector(Protocol):
    """Opens daemon handles.  The real one uses ``htcondor2``; tests pass their own."""

    def collector(self, address: str) -> CollectorLike: ...

    def schedd(self, name: str, collector: CollectorLike | None) -> ScheddLike: ...

    def startd(self, ad: classad2.ClassAd) -> StartdLike: ...


_ADDRESS = re.compile(r"^<?[A-Za-z0-9_.\-\[\]:]+:\d+(\?.*)?>?$")


def sinful(address: str) -> str:
    """``host:port`` or ``<host:port?…>`` as the sinful string the bindings expect."""
    return address if address.startswith("<") else f"<{address}>"


def is_address(name: str) -> bool:
    """True for ``host:port`` / ``<host:port?…>``; a bare name is located through the collector."""
    return bool(_ADDRESS.match(name))


class HTCondorConnector:
    """The production connector: ``htcondor2`` handles to real daemons.

    Constructing a handle does not talk to a daemon (except locating a schedd by name), so the
    failures surface in the query functions below, where they are converted.
    """

    def collector(self, address: str) -> CollectorLike:
        try:
            return htcondor2.Collector(address)  # type: ignore[no-any-return]
        except (htcondor2.HTCondorException, ValueError, TypeError) as err:
            raise CondorError(f"collector {address}", "opening", str(err)) from err

    def schedd(self, name: str, collector: CollectorLike | None) -> ScheddLike:
        if is_address(name):
            ad = classad2.ClassAd({"MyAddress": sinful(name), "CondorVersion": "", "Name": name})
        else:
            if collector is None:
                raise CondorError(f"schedd {name}", "locating", "a schedd given by name needs a collector")
            ad = locate_schedd(collector, name)
        try:
            return htcondor2.Schedd(ad)  # type: ignore[no-any-return]
        except (htcondor2.HTCondorException, KeyError, TypeError) as err:
            raise CondorError(f"schedd {name}", "opening", str(err)) from err

    def startd(self, ad: classad2.ClassAd) -> StartdLike:
        try:
            return htcondor2.Startd(ad)  # type: ignore[no-any-return]
        except (htcondor2.HTCondorException, KeyError, TypeError) as err:
            raise CondorError(f"startd {_ad_name(ad)}", "opening", str(err)) from err


# --- queries ------------------------------------------------------------------------------------


def and_constraint(*parts: str | None) -> str:
    """Conjunction of ClassAd expressions, each parenthesised; empty parts are left out."""
    kept = [p.strip() for p in parts if p and p.strip()]
    if not kept:
        return "true"
    return " && ".join(f"({p})" for p in kept)


def check_expression(expr: str) -> str:
    """``expr`` if it parses as a ClassAd expression, else MalformedAdError (a config error upstream)."""
    try:
        classad2.ExprTree(expr)
    except (classad2.ClassAdException, ValueError) as err:
        raise MalformedAdError(f"not a ClassAd expression: {expr!r}") from err
    return expr


def locate_schedd(collector: CollectorLike, name: str) -> classad2.ClassAd:
    """The schedd's location ad, found by name through the collector."""
    try:
        return collector.locate(htcondor2.DaemonType.Schedd, name)
    except (htcondor2.HTCondorException, ValueError) as err:
        raise CondorError(f"schedd {name}", "locating", str(err)) from err


def autoclusters(schedd: ScheddLike, constraint: str, *, where: str) -> list[classad2.ClassAd]:
    """One ad per autocluster of the jobs matching ``constraint`` (``JobCount`` = its job count).

    This is ``condor_q -autocluster``: the schedd groups jobs by their significant attributes, so
    a million idle jobs come back as a few hundred ads.
    """
    try:
        return list(schedd.query(constraint, list(AUTOCLUSTER_PROJECTION), opts=htcondor2.QueryOpt.AutoCluster))
    except htcondor2.HTCondorException as err:
        raise CondorError(where, "querying autoclusters of", str(err)) from err


def oldest_qdates(schedd: ScheddLike, constraint: str, *, where: str, limit: int = -1) -> dict[int, int]:
    """The smallest ``QDate`` per ``AutoClusterId`` over the jobs matching ``constraint``.

    A plain job query projected to two attributes; the callback folds each ad into the result and
    returns ``None``, so the bindings keep no list of a million ads in memory.  ``limit`` bounds
    the scan (the schedd returns jobs in its own order, so a bounded scan is a sample).
    """
    oldest: dict[int, int] = {}

    def fold(ad: classad2.ClassAd) -> None:
        try:
            acid, qdate = ad.eval("AutoClusterId"), ad.eval("QDate")
        except KeyError:
            return None
        if isinstance(acid, int) and isinstance(qdate, int | float) and not isinstance(qdate, bool):
            q = int(qdate)
            if acid not in oldest or q < oldest[acid]:
                oldest[acid] = q
        return None

    try:
        schedd.query(constraint, list(QDATE_PROJECTION), callback=fold, limit=limit)
    except htcondor2.HTCondorException as err:
        raise CondorError(where, "querying jobs of", str(err)) from err
    return oldest


def startd_ads(collector: CollectorLike, constraint: str, *, where: str) -> list[classad2.ClassAd]:
    """Startd (slot) ads matching ``constraint`` from the collector."""
    try:
        return list(collector.query(htcondor2.AdType.Startd, constraint, list(STARTD_PROJECTION)))
    except htcondor2.HTCondorException as err:
        raise CondorError(where, "querying startds of", str(err)) from err


def drain(startd: StartdLike, *, reason: str, where: str, check: str | None = None) -> str:
    """``condor_drain -graceful``: no new jobs start; running jobs finish within their retirement
    time.  With ``check`` (``condor_drain -check``) the startd refuses to drain unless the
    expression is true in every slot — checked by the startd itself, so nothing can slip in
    between.  Returns the drain request id."""
    try:
        return startd.drainJobs(drain_type=htcondor2.DrainType.Graceful, check_expr=check, reason=reason)
    except htcondor2.HTCondorException as err:
        raise CondorError(where, "draining", str(err)) from err


def cancel_drain(startd: StartdLike, *, where: str, request_id: str | None = None) -> None:
    """``condor_drain -cancel``; ``None`` cancels every drain request of the startd."""
    try:
        startd.cancelDrainJobs(request_id)
    except htcondor2.HTCondorException as err:
        raise CondorError(where, "cancelling the drain of", str(err)) from err


# --- condor_q -json / condor_status -json text --------------------------------------------------


def parse_json_ads(text: str, *, source: str = "<json>") -> list[classad2.ClassAd]:
    """Ads from ``condor_q -json`` / ``condor_status -json`` output (a JSON array of objects).

    ``classad2.parseAds`` rejects the array, so each element is parsed with ``parseOne``.  The
    element is re-serialised with ``json.dumps``, which turns the escaped ``"\\/Expr(…)\\/"``
    expression marker into ``"/Expr(…)/"`` (a plain string to ClassAds): the escape is restored
    first.  A bad element raises MalformedAdError naming ``source`` and its index, because
    ``parseOne`` silently returns an empty ad for some broken input.
    """
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise MalformedAdError(f"{source}: not JSON: {err}") from err
    except RecursionError:
        raise MalformedAdError(f"{source}: not JSON a ClassAd can be: nested too deeply") from None
    if not isinstance(items, list):
        raise MalformedAdError(f"{source}: expected a JSON array of ClassAds")
    return [json_ad(item, where=f"{source}[{i}]") for i, item in enumerate(items)]


#: What HTCondor writes as an attribute name in JSON output.
_ATTR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,255}")


def json_ad(item: object, *, where: str) -> classad2.ClassAd:
    """One ClassAd from one decoded JSON object (see :func:`parse_json_ads`)."""
    if not isinstance(item, dict) or not item:
        raise MalformedAdError(f"{where}: a ClassAd must be a non-empty JSON object")
    bad = next((k for k in item if not isinstance(k, str) or not _ATTR_NAME.fullmatch(k)), None)
    if bad is not None:  # condor_q never writes one; classad2 mis-parses some (KeyError, SystemError)
        raise MalformedAdError(f"{where}: {str(bad)[:40]!r} is not a ClassAd attribute name")
    try:
        json.dumps(item, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (``"\\udcff"``): the ClassAd parser fails inside C on it
        raise MalformedAdError(f"{where}: not valid Unicode (a lone surrogate)") from None
    text = json.dumps(item).replace('"/Expr(', '"\\/Expr(').replace(')/"', ')\\/"')
    try:
        ad = classad2.parseOne(text, classad2.ParserType.JSON)
    except (ValueError, classad2.ClassAdException) as err:
        raise MalformedAdError(f"{where}: not a ClassAd: {' '.join(str(err).split())}") from err
    missing = [k for k in item if k not in ad]
    if missing:
        raise MalformedAdError(
            f"{where}: the ClassAd parser rejected it (attributes lost: {', '.join(sorted(missing))})"
        )
    return ad


def ads_from_dicts(items: Iterable[Mapping[str, object]]) -> list[classad2.ClassAd]:
    """Plain ClassAds from dicts of Python values (no expressions)."""
    return [classad2.ClassAd(dict(i)) for i in items]


def _ad_name(ad: classad2.ClassAd) -> str:
    for key in ("Name", "Machine", "MyAddress"):
        if key in ad:
            return str(ad[key])
    return "(unnamed)"


def ad_name(ad: classad2.ClassAd) -> str:
    """A human name for an ad in a log line or error."""
    return _ad_name(ad)


def unique_by(ads: Sequence[classad2.ClassAd], key: str) -> list[classad2.ClassAd]:
    """The first ad of each distinct ``key`` value (e.g. one per startd by ``MyAddress``)."""
    seen: set[str] = set()
    out = []
    for ad in ads:
        k = str(ad.get(key, ""))
        if k and k not in seen:
            seen.add(k)
            out.append(ad)
    return out
