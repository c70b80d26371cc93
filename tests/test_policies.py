"""Policies: parsing, and the plan's guarantees (fits, no upscaling, aspect, grid, monotone)."""
from __future__ import annotations

import math
import random

import pytest

from cosmos_upsample_fix.core.budget import ImageGrid, Limits, count_request, model_pixels, presized
from cosmos_upsample_fix.core.policies import Fit, Fixed, Original, parse_policy, plan_sizes
from cosmos_upsample_fix.errors import BudgetError, PolicySpecError

GRID = ImageGrid(16, 1024)
TEXT = 19  # BOS, [INST], the one-line prompt, [/INST]
LIMITS = Limits()


def within_one_patch(target, original, unit) -> bool:
    """Some common scale t puts both sides of the original within one cell of the target grid."""
    (tw, th), (w, h) = target, original
    c, r = math.ceil(tw / unit), math.ceil(th / unit)
    # feasible t for each side: |c - t*w/unit| <= 1  <=>  t in [(c-1)*unit/w, (c+1)*unit/w]
    lo = max((c - 1) * unit / w, (r - 1) * unit / h, 0)
    hi = min((c + 1) * unit / w, (r + 1) * unit / h)
    return lo <= hi + 1e-12


@pytest.mark.parametrize(
    "text, expected",
    [
        ("fit", Fit()),
        (" FIT ", Fit()),
        (None, Fit()),
        ("none", Original()),
        ("max-side:640", Fit(max_side=640)),
        ("max-pixels:300000", Fit(max_pixels=300000)),
        ("scale:0.5", Fit(scale=0.5)),
        ("scale:1", Fit(scale=1.0)),
        ("fixed:640x352", Fixed(640, 352)),
        ("fixed:640X352", Fixed(640, 352)),
    ],
)
def test_parse_policy(text, expected):
    parsed = parse_policy(text)
    assert parsed == expected
    assert parse_policy(parsed.spec) == parsed


@pytest.mark.parametrize(
    "text",
    ["", "fits", "fit:3", "max-side", "max-side:", "max-side:0", "max-side:-4", "max-side:6.5", "max-pixels:abc",
     "scale:0", "scale:1.5", "scale:-1", "scale:nan", "scale:x", "fixed:640", "fixed:0x10", "fixed:axb", "none:1"],
)
def test_bad_policy_strings_raise_one_line_errors(text):
    with pytest.raises(PolicySpecError) as info:
        parse_policy(text)
    assert "\n" not in str(info.value) and str(info.value)


def test_fitting_frames_pass_through_unchanged():
    for size in [(640, 480), (320, 180), (928, 510), (655, 487), (1024, 3), (1, 1024)]:
        assert plan_sizes([size, size], TEXT, GRID, LIMITS) == [size, size]


def test_fitting_frames_over_the_cap_are_sent_at_the_model_size():
    for size, expected in [((1, 4000), (1, 1024)), ((4000, 2), (1024, 2)), ((2560, 1080), (1024, 432))]:
        planned = plan_sizes([size], TEXT, GRID, LIMITS)
        assert planned == [expected]
        before = count_request([size], TEXT, GRID, LIMITS).prompt_tokens
        assert count_request(planned, TEXT, GRID, LIMITS).prompt_tokens == before
    # under "none" the original goes as is
    assert plan_sizes([(2560, 1080)], TEXT, GRID, LIMITS, "none") == [(2560, 1080)]


def test_sizes_an_old_tokenizer_rejects_are_resized_or_refused():
    old = ImageGrid(16, 1024, clamps_to_one_pixel=False)
    for size in [(1, 4000), (4000, 1), (3000, 1)]:
        planned = plan_sizes([size, (64, 64)], TEXT, old, LIMITS)
        count = count_request(planned, TEXT, old, LIMITS)
        assert count.fits and not count.rejected and max(planned[0]) <= 1024
        assert planned[1] == (64, 64)
        for spec in ("none", f"fixed:{size[0]}x{size[1]}"):
            with pytest.raises(BudgetError, match=r"rejects a .* image.*use --upsampler_policy fit"):
                plan_sizes([size], TEXT, old, LIMITS, spec, flag="--upsampler_policy")


@pytest.mark.parametrize(
    "size, expected",
    [((1280, 704), (928, 512)), ((1920, 1080), (912, 512)), ((3840, 2160), (912, 512)), ((960, 704), (800, 592)),
     ((1280, 800), (864, 544)), ((882, 1568), (512, 912)), ((1024, 1024), (672, 672))],
)
def test_fit_for_the_sample_sizes(size, expected):
    planned = plan_sizes([size, size], TEXT, GRID, LIMITS)
    assert planned == [expected, expected]
    count = count_request(planned, TEXT, GRID, LIMITS)
    assert count.fits and count.prompt_tokens >= 0.95 * LIMITS.prompt_budget


def _check_fit(sizes, text, grid, limits, planned):
    count = count_request(planned, text, grid, limits)
    assert count.fits, (sizes, planned, count)
    original = count_request(sizes, text, grid, limits)
    if original.fits:
        assert planned == [presized(s, grid) for s in sizes]
        return
    for (tw, th), (w, h) in zip(planned, sizes):
        assert tw <= w and th <= h, "never upscales"
        assert max(tw, th) <= grid.max_image_size
        assert model_pixels((tw, th), grid) == (tw, th) or tw < grid.unit or th < grid.unit, "on the patch grid"
        assert within_one_patch((tw, th), (w, h), grid.unit)


def test_fit_guarantees_over_a_sweep_of_sizes():
    rng = random.Random(7)
    for _ in range(600):
        w, h = rng.randint(1, 5000), rng.randint(1, 5000)
        n = rng.choice([1, 2])
        text = rng.choice([3, 19, 400, 2000])
        limits = Limits(max_model_len=rng.choice([1024, 2048, 4096, 8192]), reserved_output_tokens=300)
        if text + 2 * n > limits.prompt_budget:
            continue
        planned = plan_sizes([(w, h)] * n, text, GRID, limits)
        _check_fit([(w, h)] * n, text, GRID, limits, planned)


def test_fit_with_frames_of_different_sizes():
    sizes = [(1920, 1080), (640, 1136)]
    planned = plan_sizes(sizes, TEXT, GRID, LIMITS)
    _check_fit(sizes, TEXT, GRID, LIMITS, planned)
    assert count_request(planned, TEXT, GRID, LIMITS).prompt_tokens >= 0.9 * LIMITS.prompt_budget


def test_larger_budget_never_gives_fewer_tokens():
    for size in [(1280, 704), (1080, 1920), (5000, 300), (777, 777)]:
        previous = 0
        for max_len in range(400, 9000, 37):
            limits = Limits(max_model_len=max_len, reserved_output_tokens=300)
            planned = plan_sizes([size, size], TEXT, GRID, limits)
            tokens = count_request(planned, TEXT, GRID, limits).prompt_tokens
            assert tokens >= previous
            previous = tokens


def test_fit_uses_the_budget_tightly():
    # the next size on the chain (one more cell on the long side, closest short side) must not fit
    from cosmos_upsample_fix.core.policies import _Frame

    for size in [(1280, 704), (1920, 1080), (1280, 800), (882, 1568), (5000, 3000)]:
        (tw, th), _ = plan_sizes([size, size], TEXT, GRID, LIMITS)
        frame = _Frame(size, GRID)
        k = max(tw, th) // 16
        bigger, _tokens = frame.at(k + 1)
        assert not count_request([bigger, bigger], TEXT, GRID, LIMITS).fits


def test_bounds_apply_on_top_of_fit():
    size = (1280, 704)
    assert plan_sizes([size] * 2, TEXT, GRID, LIMITS, "max-side:640") == [(640, 352)] * 2
    assert plan_sizes([size] * 2, TEXT, GRID, LIMITS, "max-side:2000") == [(928, 512)] * 2
    (w, h), _ = plan_sizes([size] * 2, TEXT, GRID, LIMITS, "max-pixels:200000")
    assert w * h <= 200000 and w % 16 == 0 and h % 16 == 0
    assert plan_sizes([size] * 2, TEXT, GRID, LIMITS, "scale:0.5") == [(640, 352)] * 2
    # a bound on a clip that already fits still shrinks it
    assert plan_sizes([(640, 480)] * 2, TEXT, GRID, LIMITS, "max-side:320") == [(320, 240)] * 2
    assert plan_sizes([(640, 480)] * 2, TEXT, GRID, LIMITS, "scale:1") == [(640, 480)] * 2


def test_bound_below_one_patch_is_an_error():
    with pytest.raises(BudgetError, match="patch grid"):
        plan_sizes([(1280, 704)], TEXT, GRID, LIMITS, "max-side:8")


def test_fixed_and_none():
    assert plan_sizes([(1280, 704)] * 2, TEXT, GRID, LIMITS, "fixed:640x352") == [(640, 352)] * 2
    assert plan_sizes([(640, 480)] * 2, TEXT, GRID, LIMITS, "none") == [(640, 480)] * 2
    with pytest.raises(BudgetError) as info:
        plan_sizes([(1280, 704)] * 2, TEXT, GRID, LIMITS, "none")
    message = str(info.value)
    assert "4699" in message and "3796" in message and "fit" in message and "\n" not in message
    with pytest.raises(BudgetError, match="4167"):
        plan_sizes([(640, 480)] * 2, TEXT, GRID, LIMITS, "fixed:960x540")


def test_prompt_too_long_for_any_image_names_the_text_tokens():
    with pytest.raises(BudgetError) as info:
        plan_sizes([(1280, 704)] * 2, 3795, GRID, LIMITS)
    assert "3795" in str(info.value)
    # exactly enough room for two smallest images
    assert count_request(plan_sizes([(1280, 704)] * 2, 3792, GRID, LIMITS), 3792, GRID, LIMITS).fits


def test_more_frames_than_the_engine_allows():
    with pytest.raises(BudgetError, match="allows 2 images"):
        plan_sizes([(64, 64)] * 3, TEXT, GRID, LIMITS)
    assert plan_sizes([(64, 64)] * 3, TEXT, GRID, Limits(max_images=3)) == [(64, 64)] * 3


def test_other_grids_are_honoured():
    grid = ImageGrid(14, 1540, 2)  # a model with 14-pixel patches merged 2x2
    limits = Limits(max_model_len=2048)
    assert not count_request([(3840, 2160)] * 2, TEXT, grid, limits).fits
    planned = plan_sizes([(3840, 2160)] * 2, TEXT, grid, limits)
    _check_fit([(3840, 2160)] * 2, TEXT, grid, limits, planned)
    assert all(w % 28 == 0 and h % 28 == 0 for w, h in planned)


def test_refusal_messages_carry_the_figures():
    with pytest.raises(BudgetError) as info:
        plan_sizes([(1280, 704)] * 2, TEXT, GRID, LIMITS, "none")
    message = str(info.value)
    for part in ("policy none", "4699 tokens", "2 frame(s) at 1280x704", "max_model_len 4096 − 300 reserved",
                 "by 903", "use --policy fit"):
        assert part in message, (part, message)
    with pytest.raises(BudgetError, match="no frames to send"):
        plan_sizes([], TEXT, GRID, LIMITS)
    with pytest.raises(BudgetError, match="allows no size on the 16-pixel patch grid for 1280x704 frames"):
        plan_sizes([(1280, 704)], TEXT, GRID, LIMITS, "max-side:8")
    with pytest.raises(BudgetError, match="the prompt text alone takes 3795 tokens.*needs 3799.*budget of 3796"):
        plan_sizes([(1280, 704)] * 2, 3795, GRID, LIMITS)


def test_fixed_and_none_at_exactly_the_budget_are_accepted():
    # 64x64 is 4 x 5 = 20 tokens; with 3776 text tokens the request is exactly 3796
    assert plan_sizes([(64, 64)], 3776, GRID, LIMITS, "fixed:64x64") == [(64, 64)]
    assert plan_sizes([(64, 64)], 3776, GRID, LIMITS, "none") == [(64, 64)]
    assert plan_sizes([(64, 64)], 3776, GRID, LIMITS) == [(64, 64)]
    with pytest.raises(BudgetError, match="by 1"):
        plan_sizes([(64, 64)], 3777, GRID, LIMITS, "none")


def test_frames_thinner_than_a_patch_keep_one_cell_on_the_short_side():
    # a short side under one patch cannot give two cells; the plan must still use the budget tightly
    limits = Limits(max_model_len=400, reserved_output_tokens=300)  # 100 - 19 text = 81 image tokens
    # landscape: 1 row of k cells costs k + 1 (k at most 64, the 1024-px cap); portrait: k rows of 1 cell cost 2k
    for size, expected in [((5000, 8), (1024, 8)), ((8, 5000), (8, 640)), ((3000, 15), (1024, 15))]:
        assert plan_sizes([size], TEXT, GRID, limits) == [expected]
