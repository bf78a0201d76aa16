"""Fakes at the htcondor2 bindings boundary: objects with the bindings' method signatures that
return real ``classad2.ClassAd``s and record what burst asked for.

They evaluate the constraint they are given in each ad (with the real ClassAd evaluator), honour
``projection``, ``callback``, ``limit`` and ``opts`` like the schedd does, and raise the real
``htcondor2.HTCondorException`` when told to be unreachable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import classad2
import htcondor2

from burst.condor import CondorError, is_address, locate_schedd, parse_json_ads

FIXTURES = Path(__file__).parent / "fixtures"


def load_ads(name: str) -> list[classad2.ClassAd]:
    return parse_json_ads((FIXTURES / name).read_text(), source=name)


def matches(constraint: str, ad: classad2.ClassAd) -> bool:
    return classad2.ExprTree(constraint).eval(ad) is True


def project(ad: classad2.ClassAd, projection: list[str] | None) -> classad2.ClassAd:
    if not projection:
        return ad
    out = classad2.ClassAd()
    for attr in projection:
        if attr in ad:
            out[attr] = ad.lookup(attr)
    return out


@dataclass
class Call:
    method: str
    constraint: str | None
    projection: list[str] | None
    opts: Any = None
    limit: int = -1
    callback: bool = False


@dataclass
class FakeSchedd:
    """A schedd: ``autoclusters`` answer AutoCluster queries, ``jobs`` answer plain ones."""

    name: str
    autoclusters: list[classad2.ClassAd] = field(default_factory=list)
    jobs: Iterable[classad2.ClassAd] | Callable[[], Iterable[classad2.ClassAd]] = ()
    unreachable: bool = False
    calls: list[Call] = field(default_factory=list)

    def query(
        self,
        constraint: str = "True",
        projection: list[str] = [],  # noqa: B006 - the bindings' signature
        callback: Callable[[classad2.ClassAd], Any] | None = None,
        limit: int = -1,
        opts: htcondor2.QueryOpt = htcondor2.QueryOpt.Default,
    ) -> list[classad2.ClassAd]:
        self.calls.append(Call("query", str(constraint), list(projection), opts, limit, callback is not None))
        if self.unreachable:
            raise htcondor2.HTCondorException(
                f"Failed to fetch ads from schedd, errmsg=CEDAR:6001:Failed to connect to <{self.name}:9618>"
            )
        if opts == htcondor2.QueryOpt.AutoCluster:
            source: Iterable[classad2.ClassAd] = self.autoclusters
        else:
            source = self.jobs() if callable(self.jobs) else self.jobs
        out = []
        for ad in source:
            if limit >= 0 and len(out) >= limit:
                break
            if not matches(str(constraint), ad):
                continue
            shown = project(ad, projection)
            if callback is not None:
                shown = callback(shown)
                if shown is None:
                    out.append(None)
                    continue
            out.append(shown)
        return [a for a in out if a is not None]


@dataclass
class FakeStartd:
    """A startd.  ``slots`` gives its slot ads (the connector hands it the collector's ads with
    its address): ``check_expr`` is evaluated in each, as the startd does, and a drain or cancel
    is advertised back into them (``Draining``, ``State`` Drained/Unclaimed for idle slots).
    ``before_drain`` runs first: what happened on the startd since the collector's ad was
    written (a job claimed a slot)."""

    address: str
    unreachable: bool = False
    drains: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[str | None] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    slots: Callable[[], list[classad2.ClassAd]] = list
    before_drain: Callable[[], None] | None = None

    def drainJobs(  # noqa: N802
        self,
        drain_type: htcondor2.DrainType = htcondor2.DrainType.Graceful,
        on_completion: Any = None,
        check_expr: str | None = None,
        start_expr: str | None = None,
        reason: str | None = None,
    ) -> str:
        if self.unreachable:
            raise htcondor2.HTCondorException("Startd failed to start draining jobs.")
        if self.before_drain is not None:
            self.before_drain()
        if check_expr is not None and not all(matches(check_expr, ad) for ad in self.slots()):
            self.refused.append(check_expr)
            raise htcondor2.HTCondorException("Startd failed to start draining jobs.")
        self.drains.append(
            {"drain_type": drain_type, "check_expr": check_expr, "start_expr": start_expr, "reason": reason}
        )
        for ad in self.slots():
            ad["Draining"] = True
            if ad.get("State") == "Unclaimed":
                ad["State"] = "Drained"
        return f"drain-{self.address}-{len(self.drains)}"

    def cancelDrainJobs(self, request_id: str | None = None) -> None:  # noqa: N802
        if self.unreachable:
            raise htcondor2.HTCondorException("Startd failed to cancel draining jobs.")
        self.cancels.append(request_id)
        for ad in self.slots():
            if ad.get("Draining") is True:
                ad["Draining"] = False
            if ad.get("State") == "Drained":
                ad["State"] = "Unclaimed"


@dataclass
class FakeCollector:
    address: str
    startds: list[classad2.ClassAd] = field(default_factory=list)
    schedds: dict[str, str] = field(default_factory=dict)  # name -> MyAddress
    unreachable: bool = False
    calls: list[Call] = field(default_factory=list)

    def query(
        self,
        ad_type: htcondor2.AdType = htcondor2.AdType.Any,
        constraint: str | None = None,
        projection: list[str] | None = None,
    ) -> list[classad2.ClassAd]:
        self.calls.append(Call("query", constraint, projection, ad_type))
        if self.unreachable:
            raise htcondor2.HTCondorException("Failed communication with collector.")
        assert ad_type == htcondor2.AdType.Startd, "burst only asks the collector for startd ads"
        return [project(ad, projection) for ad in self.startds if constraint is None or matches(constraint, ad)]

    def locate(self, daemon_type: htcondor2.DaemonType, name: str | None = None) -> classad2.ClassAd:
        self.calls.append(Call("locate", name, None, daemon_type))
        if self.unreachable:
            raise htcondor2.HTCondorException("Failed communication with collector.")
        if name not in self.schedds:
            raise ValueError(f"Unable to find daemon {name}")  # what htcondor2 raises for a missing name
        return classad2.ClassAd(
            {"Name": name, "MyAddress": self.schedds[name], "CondorVersion": "$CondorVersion: 25.0.3 $"}
        )


@dataclass
class FakeConnector:
    """Hands out the fakes; records which collector/schedd/startd burst opened."""

    collectors: dict[str, FakeCollector] = field(default_factory=dict)
    schedds: dict[str, FakeSchedd] = field(default_factory=dict)
    startds: dict[str, FakeStartd] = field(default_factory=dict)
    opened: list[str] = field(default_factory=list)

    def collector(self, address: str) -> FakeCollector:
        self.opened.append(f"collector {address}")
        return self.collectors.setdefault(address, FakeCollector(address))

    def schedd(self, name: str, collector: Any) -> FakeSchedd:
        """Like the real connector: a name (not an address) is located through the collector."""
        self.opened.append(f"schedd {name}")
        if not is_address(name):
            if collector is None:
                raise CondorError(f"schedd {name}", "locating", "a schedd given by name needs a collector")
            locate_schedd(collector, name)
        return self.schedds[name]

    def startd(self, ad: classad2.ClassAd) -> FakeStartd:
        address = str(ad["MyAddress"])
        self.opened.append(f"startd {address}")
        if address not in self.startds:
            self.startds[address] = FakeStartd(address, slots=lambda: self.slots_of(address))
        return self.startds[address]

    def slots_of(self, address: str) -> list[classad2.ClassAd]:
        """The slot ads of one startd, as the collectors hold them (the same objects)."""
        return [ad for c in self.collectors.values() for ad in c.startds if ad.get("MyAddress") == address]
