"""Property tests of the budget-preserving parametrization."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.arch import Arch, ArchError
from models.parametrize import SearchSpace, budget_bounds, build_arch, enumerate_archs

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _in_band(arch: Arch, target: float, band: float) -> bool:
    lo, hi = budget_bounds(target, band)
    return lo <= arch.non_embedding_params <= hi


@PROPS
@given(
    target=st.floats(5e6, 3e9),
    dsn=st.floats(0.03, 0.15),
    r=st.floats(0.5, 5.0),
    gqa=st.sampled_from([1, 2, 4, 8]),
    head_dim=st.sampled_from([64, 128]),
    band=st.floats(0.02, 0.1),
)
def test_build_arch_valid_and_in_band(target, dsn, r, gqa, head_dim, band) -> None:
    try:
        arch = build_arch(
            target,
            d_over_sqrt_n=dsn,
            r=r,
            gqa_group=gqa,
            head_dim=head_dim,
            band=band,
            vocab_size=32000,
        )
    except ArchError as exc:
        assert "no shape" in str(exc)
        return
    assert isinstance(arch, Arch)  # __post_init__ validated it
    assert _in_band(arch, target, band)
    assert arch.head_dim == head_dim and arch.gqa_group == gqa
    assert arch.n_heads * arch.head_dim == arch.d_model
    assert arch.d_model % 128 == 0 and arch.ffn_dim % 256 == 0


@PROPS
@given(
    target=st.floats(5e6, 1.5e9),
    band=st.floats(0.01, 0.1),
    r_lo=st.floats(0.5, 2.0),
    r_span=st.floats(0.5, 4.0),
    layers=st.tuples(st.integers(1, 40), st.integers(0, 60)),
    ffn_per_shape=st.sampled_from(["nearest", "all"]),
)
def test_enumerate_archs_in_band_and_ranges(
    target, band, r_lo, r_span, layers, ffn_per_shape
) -> None:
    space = SearchSpace(
        r_range=(r_lo, r_lo + r_span),
        n_layers_range=(layers[0], layers[0] + layers[1]),
        ffn_per_shape=ffn_per_shape,
    )
    archs = enumerate_archs(target, band, space=space, vocab_size=50304, tie_embeddings=False)
    for a in archs:
        assert _in_band(a, target, band)
        assert space.r_range[0] <= a.mlp_attn_ratio <= space.r_range[1]
        assert space.d_over_sqrt_n_range[0] <= a.d_over_sqrt_n <= space.d_over_sqrt_n_range[1]
        assert space.aspect_range[0] <= a.aspect_ratio <= space.aspect_range[1]
        assert space.n_layers_range[0] <= a.n_layers <= space.n_layers_range[1]
        assert space.d_model_range[0] <= a.d_model <= space.d_model_range[1]
        assert a.d_model % space.d_model_multiple == 0 and a.ffn_dim % space.ffn_multiple == 0
        assert a.head_dim in space.head_dims and a.gqa_group in space.gqa_groups
        assert (a.vocab_size, a.tie_embeddings) == (50304, False)
    assert len(set(archs)) == len(archs)
    keys = [(a.d_model, a.head_dim, a.n_kv_heads, a.n_layers, a.ffn_dim) for a in archs]
    assert keys == sorted(keys)


def test_enumerate_covers_deep_narrow_to_wide_shallow() -> None:
    archs = enumerate_archs(1e9)
    assert len(archs) > 1000
    aspects = [a.aspect_ratio for a in archs]
    assert min(aspects) < 32 and max(aspects) > 256


def test_nearest_is_subset_of_all() -> None:
    nearest = set(enumerate_archs(2e8, space=SearchSpace(ffn_per_shape="nearest")))
    every = set(enumerate_archs(2e8, space=SearchSpace(ffn_per_shape="all")))
    assert nearest and nearest <= every and len(every) > len(nearest)


@pytest.mark.parametrize(
    "target,band", [(0, 0.05), (-1, 0.05), (math.nan, 0.05), (1e9, 1.0), (1e9, -0.1)]
)
def test_budget_bounds_rejects(target, band) -> None:
    with pytest.raises(ArchError):
        budget_bounds(target, band)


def test_build_arch_needs_a_knob_and_rejects_bad_values() -> None:
    with pytest.raises(ArchError, match="d_over_sqrt_n"):
        build_arch(1e9)
    with pytest.raises(ArchError, match="r must"):
        build_arch(1e9, d_over_sqrt_n=0.08, r=-1)


def test_build_arch_pins_layers() -> None:
    arch = build_arch(1e9, n_layers=16, r=4.0, gqa_group=4, head_dim=64)
    assert arch.n_layers == 16 and _in_band(arch, 1e9, 0.05)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(d_model_multiple=0),
        dict(head_dims=()),
        dict(r_range=(2.0, 1.0)),
        dict(ffn_per_shape="some"),
    ],
)
def test_search_space_validation(kwargs) -> None:
    with pytest.raises(ArchError):
        SearchSpace(**kwargs)
