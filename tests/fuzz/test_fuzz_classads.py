"""ClassAds, fuzzed: ``condor_q -json`` / ``condor_status -json`` text with wrong types, NaN,
huge numbers, error values, self-referencing expressions and deep nesting either becomes
buckets and capacity within bounds or raises MalformedAdError; never a traceback, never a hang."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from burst import condor
from burst.backlog.htcondor import aggregate, capacity, running_cores
from burst.errors import BurstError
from burst.units import MAX_CORES

from .support import FUZZ, HOSTILE_NUMBERS, HOSTILE_TEXT, watchdog

ATTRS = st.sampled_from(
    ["RequestCpus", "RequestMemory", "RequestGPUs", "JobCount", "AutoClusterId", "QDate", "Cpus", "TotalSlotCpus",
     "TotalCpus", "Memory", "State", "SlotType", "PartitionableSlot", "DynamicSlot", "Draining", "Name", "Machine"]
)  # fmt: skip
EXPRESSIONS = st.sampled_from(
    ["/Expr(RequestCpus)/", "/Expr(RequestCpus * 2)/", "/Expr(1/0)/", "/Expr(error)/", "/Expr(undefined)/",
     "/Expr(JobCount + RequestCpus)/", "/Expr(9223372036854775807 * 2)/", "/Expr(real(\"inf\"))/", "/Expr(\"x\")/",
     "/Expr(Cpus)/", "/Expr(" + "(" * 300 + "1" + ")" * 300 + ")/", "/Expr(/)/", "Partitionable", "Unclaimed"]
)  # fmt: skip
SCALAR = st.one_of(HOSTILE_NUMBERS, HOSTILE_TEXT, EXPRESSIONS, st.booleans(), st.none(), st.integers(0, 64))
VALUE = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3), max_leaves=6
)
AD = st.dictionaries(st.one_of(ATTRS, ATTRS, HOSTILE_TEXT), VALUE, max_size=8)


def _dumps(items: Any) -> str:
    return json.dumps(items, allow_nan=True)


TEXT = st.one_of(
    st.lists(AD, max_size=4).map(_dumps),
    st.text(max_size=200),
    st.sampled_from(["[" * 100_000 + "]" * 100_000, "{}", "null", "[1]", '[{"":1}]', "[{}]"]),
)


@FUZZ
@given(TEXT)
def test_json_ads_become_buckets_and_capacity_or_a_malformed_ad_error(text: str) -> None:
    with watchdog():
        try:
            ads = condor.parse_json_ads(text, source="condor_q")
            pairs = [("schedd-a", ad) for ad in ads]
            buckets = aggregate(pairs, {}, 1_800_000_000.0)
            running = running_cores(pairs)
            cap = capacity(ads)
        except BurstError as err:
            assert isinstance(err, condor.MalformedAdError) and "\n" not in str(err), str(err)
            return
    assert all(0 < b.shape.cpus <= MAX_CORES and b.count >= 0 and math.isfinite(b.oldest_wait_s) for b in buckets)
    assert running >= 0 and cap.free_cores >= 0 and cap.cores >= 0
