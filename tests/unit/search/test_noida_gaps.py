"""noida-db's known gaps (tests/support/noida_gaps.py): each reproduction fails on noida and
passes on the double, which follows Elasticsearch there.  A noida release that fixes a gap turns
its strict xfail red: then remove the gap, its workaround and the marks that name it."""

from __future__ import annotations

import pytest

from tests.support.noida_gaps import GAPS, Gap


@pytest.mark.elasticsearch
@pytest.mark.parametrize(
    "gap", [pytest.param(g, marks=pytest.mark.xfail(strict=True, reason=g.reason), id=g.name) for g in GAPS]
)
def test_the_gap_is_still_in_noida(gap: Gap, noida) -> None:
    gap.reproduce(noida.direct_url)


@pytest.mark.parametrize("gap", GAPS, ids=lambda g: g.name)
def test_the_reproduction_passes_where_elasticsearch_is_followed(gap: Gap, es_double) -> None:
    gap.reproduce(es_double.url)


def test_the_shim_is_still_needed(noida, es_double) -> None:
    """Writes through an alias reach noida only because the shim drops require_alias."""
    from tests.support.noida_gaps import REQUIRE_ALIAS

    before = noida.shim.rewritten
    REQUIRE_ALIAS.reproduce(noida.url)
    assert noida.shim.rewritten == before + 1
