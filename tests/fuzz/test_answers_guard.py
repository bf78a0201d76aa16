"""``guard_answers``, the one net under every provider: what it lets through is sane, what it
stops is a MalformedAnswer (a retryable ProviderError), and errors raised on purpose pass."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from burst.answers import MalformedAnswer, check_answer, guard_answers
from burst.errors import NotFound, ProviderError
from burst.model import CloudCluster, CloudStatus, Quota

from .support import FUZZ, HOSTILE_NUMBERS, HOSTILE_TEXT

ANY = st.one_of(HOSTILE_NUMBERS, HOSTILE_TEXT, st.none(), st.booleans(), st.sampled_from(list(CloudStatus)))


@guard_answers
class Answering:
    """A provider whose answer is whatever the test hands it."""

    name = "fuzz"

    def __init__(self, answer: Any = None, raises: BaseException | None = None) -> None:
        self.answer, self.raises = answer, raises

    def get_cluster(self, cluster_id: str) -> Any:
        if self.raises is not None:
            raise self.raises
        return self.answer

    def list_clusters(self, owner: str) -> Any:
        return [self.answer]

    def quota(self) -> Any:
        return self.answer


@FUZZ
@given(ANY, ANY, ANY, ANY, st.dictionaries(ANY, ANY, max_size=2))
def test_a_cluster_answer_is_sane_or_malformed(cid: Any, status: Any, nodes: Any, desired: Any, tags: Any) -> None:
    answer = CloudCluster(cid, status, nodes, desired, tags)
    for call in (lambda p: p.get_cluster("c"), lambda p: p.list_clusters("o")):
        try:
            result = call(Answering(answer))
        except MalformedAnswer as err:
            assert "cloud answered malformed data" in str(err) and err.retryable
            continue
        assert check_answer(result) == ""
        (got,) = result if isinstance(result, list) else [result]
        assert isinstance(got.status, CloudStatus) and 0 <= got.nodes <= 10**7 and isinstance(got.nodes, int)


@FUZZ
@given(ANY, ANY, ANY, ANY)
def test_a_quota_answer_is_sane_or_malformed(a: Any, b: Any, c: Any, d: Any) -> None:
    try:
        q = Answering(Quota(a, b, c, d)).quota()
    except MalformedAnswer:
        return
    assert all(v is None or (isinstance(v, int) and 0 <= v <= 10**12) for v in (a, b, c, d))
    assert isinstance(q, Quota)


@pytest.mark.parametrize(
    "exc", [KeyError("status"), TypeError("x"), ValueError("y"), RecursionError(), OverflowError()]
)
def test_reading_errors_become_malformed_answers(exc: BaseException) -> None:
    with pytest.raises(MalformedAnswer) as caught:
        Answering(raises=exc).get_cluster("c")
    assert caught.value.__cause__ is exc and isinstance(caught.value, ProviderError)


def test_typed_errors_pass_untouched() -> None:
    err = NotFound("gone")
    with pytest.raises(NotFound) as caught:
        Answering(raises=err).get_cluster("c")
    assert caught.value is err
