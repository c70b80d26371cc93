"""Property tests (hypothesis) of the budget planner, against mistral_common's own count.

For random frame sizes (1 to 8000 pixels a side), 1 to 4 frames, prompts of 0 to 3000
tokens and limits from 512 to 32768 tokens:

* the ``fit`` plan fits, and its count agrees exactly with mistral_common's
  ``encode_chat_completion`` (checked end to end on a sample);
* ``fit`` succeeds exactly when some size could fit: the cheapest image is one token cell
  plus its end token (2 tokens), so iff ``text + 2·n ≤ max_model_len − reserved`` and
  ``n ≤ max_images``; otherwise it raises :class:`BudgetError`;
* it never upscales, and keeps every frame's aspect ratio within one patch;
* a larger budget never gives fewer tokens;
* ``none`` and ``fixed:WxH`` fail exactly when their own request would not fit;
* ``max-side``/``max-pixels``/``scale`` stay within their bound and keep fit's guarantees;
* through :func:`plan_frames` on 1 to 4 image files of random sizes, the PNG files written
  count exactly what the plan says.

The CI run uses a few hundred examples per property; ``pytest -m slow tests/test_properties.py
--hypothesis-show-statistics`` runs the same properties with tens of thousands (see the
``EXAMPLES`` table).
"""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from cosmos_upsample_fix.core.budget import ImageGrid, Limits, count_request, image_grid, min_image_tokens, presized
from cosmos_upsample_fix.core.policies import parse_policy, plan_sizes
from cosmos_upsample_fix.errors import BudgetError
from cosmos_upsample_fix.planning.tokenizer import clamps_to_one_pixel

# Pixtral-12B (tekken_240911.json), with the installed mistral_common's rounding rule
GRID = ImageGrid(patch_size=16, max_image_size=1024, clamps_to_one_pixel=clamps_to_one_pixel())
CHAT_OVERHEAD = 3  # BOS, [INST], [/INST]
WORD = " cat"  # one token per repetition with Pixtral's tokenizer (checked below)

# examples per property: (CI run, slow run)
EXAMPLES = {"pure": (1000, 50000), "e2e": (60, 1000), "e2e_small": (150, 3000)}


def ci_and_slow(kind: str, *strategies, examples=()):
    """A CI variant and a ``@pytest.mark.slow`` variant of one property (two separate hypothesis tests)."""

    def decorate(body):
        ci, slow = EXAMPLES[kind]
        common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        variants = []
        for count in (ci, slow):
            test = given(*strategies)(body)
            for args in examples:
                test = example(*args)(test)
            variants.append(settings(max_examples=count, **common)(test))
        return variants[0], pytest.mark.slow(variants[1])

    return decorate


# --------------------------------------------------------------------------- strategies

# sides 1..8000, with extra weight on the edges: below one patch, around max_image_size
sides = st.one_of(
    st.integers(1, 8000),
    st.integers(1, 40),
    st.integers(1000, 1100),
    st.sampled_from([1, 2, 15, 16, 17, 1023, 1024, 1025, 2048, 4000, 7999, 8000]),
)
sizes = st.tuples(sides, sides)
# 1 to 4 frames: a video's frames (all one size) or an image list (sizes may differ)
frame_lists = st.one_of(
    st.builds(lambda s, n: [s] * n, sizes, st.integers(1, 4)),
    st.lists(sizes, min_size=1, max_size=4),
)
prompt_tokens = st.one_of(st.integers(0, 3000), st.sampled_from([0, 1, 3000]))


@st.composite
def limit_sets(draw) -> Limits:
    max_model_len = draw(st.one_of(st.integers(512, 32768), st.sampled_from([512, 4096, 32768])))
    reserved = draw(st.one_of(st.just(300), st.integers(0, 511)))
    return Limits(max_model_len, reserved, draw(st.integers(1, 4)))


def possible(n: int, text: int, limits: Limits) -> bool:
    """Whether any request of ``n`` images and this text could fit (n images of one cell each)."""
    return n <= limits.max_images and text + n * min_image_tokens() <= limits.prompt_budget


def within_one_patch(target, original, grid: ImageGrid = GRID) -> bool:
    """Some real scale t puts the original's sides within one cell of the target's token grid."""
    cols, rows = image_grid(target, grid)  # the grid mistral_common gives the target
    w, h = original
    unit = grid.unit
    lo = max((cols - 1) * unit / w, (rows - 1) * unit / h, 0.0)
    hi = min((cols + 1) * unit / w, (rows + 1) * unit / h)
    return lo <= hi + 1e-12


def check_fit_plan(frames, text: int, limits: Limits, planned) -> int:
    """The guarantees of one successful fit plan; returns its prompt tokens."""
    assert len(planned) == len(frames)
    count = count_request(planned, text, GRID, limits)
    assert count.fits, (frames, text, limits, planned, count.prompt_tokens)
    original = count_request(frames, text, GRID, limits)
    if original.fits:
        # a request that fits passes through unchanged (frames over the cap at the model's own size)
        assert planned == [presized(f, GRID) for f in frames]
    for (tw, th), (w, h) in zip(planned, frames):
        assert 1 <= tw <= w and 1 <= th <= h, ("never upscales", (w, h), (tw, th))
        assert within_one_patch((tw, th), (w, h)), ("aspect", (w, h), (tw, th))
    return count.prompt_tokens


# --------------------------------------------------------------------------- pure properties


def _fit_agrees_with_possibility(frames, k, limits):
    text = k + CHAT_OVERHEAD
    if not possible(len(frames), text, limits):
        with pytest.raises(BudgetError):
            plan_sizes(frames, text, GRID, limits, "fit")
        return
    planned = plan_sizes(frames, text, GRID, limits, "fit")
    check_fit_plan(frames, text, limits, planned)


FIT_EXAMPLES = (
    ([(1280, 704)] * 2, 16, Limits()),  # the README's example: 928x512
    ([(1, 8000)] * 4, 0, Limits(512, 512 - 3 - 8, 4)),  # exactly room for 4 one-cell images
    ([(8000, 1)], 3000, Limits(3005, 0, 1)),  # 3003 + 2 = 3005: one cell fits exactly
    ([(8000, 8000)], 3000, Limits(3004, 0, 1)),  # one token short
    ([(7, 5)] * 3, 0, Limits(512, 0, 2)),  # more frames than images allowed
)
test_fit_fits_iff_possible_never_upscales_keeps_aspect, test_fit_fits_iff_possible_full = ci_and_slow(
    "pure", frame_lists, prompt_tokens, limit_sets(), examples=FIT_EXAMPLES
)(_fit_agrees_with_possibility)


def _larger_budget_never_fewer_tokens(frames, k, limits, more_len, less_reserved):
    text = k + CHAT_OVERHEAD
    bigger = Limits(
        limits.max_model_len + more_len,
        max(0, limits.reserved_output_tokens - less_reserved),
        limits.max_images,
    )
    assert bigger.prompt_budget >= limits.prompt_budget
    try:
        small = plan_sizes(frames, text, GRID, limits, "fit")
    except BudgetError:
        return  # nothing to compare (the larger budget may or may not fit)
    large = plan_sizes(frames, text, GRID, bigger, "fit")  # must not raise: the smaller one fitted
    small_tokens = count_request(small, text, GRID, limits).prompt_tokens
    large_tokens = count_request(large, text, GRID, bigger).prompt_tokens
    assert large_tokens >= small_tokens, (frames, text, limits, bigger, small, large)


test_larger_budget_never_gives_fewer_tokens, test_larger_budget_full = ci_and_slow(
    "pure", frame_lists, prompt_tokens, limit_sets(), st.integers(0, 20000), st.integers(0, 300)
)(_larger_budget_never_fewer_tokens)


def _none_and_fixed_fail_exactly_when_over(frames, k, limits, fixed):
    text = k + CHAT_OVERHEAD
    for spec, targets in (("none", list(frames)), (f"fixed:{fixed[0]}x{fixed[1]}", [fixed] * len(frames))):
        fits = count_request(targets, text, GRID, limits).fits
        try:
            planned = plan_sizes(frames, text, GRID, limits, spec)
        except BudgetError as exc:
            assert not fits, (spec, frames, text, limits)
            assert "\n" not in str(exc)
        else:
            assert fits, (spec, frames, text, limits)
            assert planned == targets


test_none_and_fixed_fail_exactly_when_over, test_none_and_fixed_full = ci_and_slow(
    "pure", frame_lists, prompt_tokens, limit_sets(), sizes
)(_none_and_fixed_fail_exactly_when_over)


bounds = st.one_of(
    st.builds(lambda n: f"max-side:{n}", st.integers(1, 9000)),
    st.builds(lambda n: f"max-pixels:{n}", st.integers(1, 70_000_000)),
    st.builds(lambda f: f"scale:{f}", st.floats(0.001, 1.0)),
)


def _bounded_policies(frames, k, limits, spec):
    """max-side/max-pixels/scale: the plan is within the bound and has fit's guarantees, or a one-line error."""
    text = k + CHAT_OVERHEAD
    policy = parse_policy(spec)
    try:
        planned = plan_sizes(frames, text, GRID, limits, policy)
    except BudgetError as exc:
        assert "\n" not in str(exc)
        if possible(len(frames), text, limits):
            # the only other refusal: the bound leaves no size on the patch grid for some frame
            assert "patch grid" in str(exc), str(exc)
        return
    assert possible(len(frames), text, limits)
    assert count_request(planned, text, GRID, limits).fits
    for (tw, th), (w, h) in zip(planned, frames):
        assert tw <= w and th <= h
        if policy.max_side is not None:
            assert max(tw, th) <= policy.max_side
        elif policy.max_pixels is not None:
            assert tw * th <= policy.max_pixels
        else:
            assert tw <= policy.scale * w + 1e-9 and th <= policy.scale * h + 1e-9
        assert within_one_patch((tw, th), (w, h))


test_bounded_policies_stay_in_bounds_and_fit, test_bounded_policies_full = ci_and_slow(
    "pure", frame_lists, prompt_tokens, limit_sets(), bounds
)(_bounded_policies)


# --------------------------------------------------------------------------- end to end through mistral_common


def prompt_of(k: int) -> str:
    """A prompt of exactly ``k`` tokens (0: the empty prompt, which upstream replaces)."""
    return WORD * k


def mistral_count(model, prompt: str, sizes) -> int:
    """Length of the request as mistral_common's encode_chat_completion makes it (PIL images of ``sizes``)."""
    images = [Image.new("RGB", size, (90, 140, 200)) for size in sizes]
    return len(model.encode(prompt, images))


def test_prompt_builder_gives_exact_token_counts(model):
    for k in (1, 2, 7, 100, 1234, 3000):
        assert model.text_tokens(prompt_of(k)) == k + CHAT_OVERHEAD
    assert model.text_tokens(prompt_of(0)) == model.text_tokens("describe the following images")


def _e2e(model, frames, k, limits):
    prompt = prompt_of(k)
    text = model.text_tokens(prompt)
    if not possible(len(frames), text, limits):
        with pytest.raises(BudgetError):
            plan_sizes(frames, text, model.grid, limits, "fit")
        return
    planned = plan_sizes(frames, text, model.grid, limits, "fit")
    tokens = check_fit_plan(frames, text, limits, planned)
    assert model.count(planned, prompt, limits).prompt_tokens == tokens
    assert mistral_count(model, prompt, planned) == tokens, (frames, planned, k, limits)


def _fit_matches_mistral_common(model, frames, k, limits):
    assert model.grid == GRID
    _e2e(model, frames, k, limits)


test_fit_count_matches_mistral_common, test_fit_count_matches_mistral_common_full = ci_and_slow(
    "e2e", frame_lists, prompt_tokens, limit_sets()  # few examples: huge images are resized by OpenCV
)(_fit_matches_mistral_common)

small_sides = st.one_of(st.integers(1, 1400), st.integers(1, 40), st.integers(1000, 1100))


def _originals_match_mistral_common(model, frames, k, limits):
    """Smaller originals, so both the original request and the plan are encoded."""
    prompt = prompt_of(k)
    original = model.count(frames, prompt, limits)
    assert mistral_count(model, prompt, frames) == original.prompt_tokens
    _e2e(model, frames, k, limits)


test_original_and_fit_counts_match_mistral_common, test_original_and_fit_full = ci_and_slow(
    "e2e_small", st.lists(st.tuples(small_sides, small_sides), min_size=1, max_size=4), prompt_tokens, limit_sets()
)(_originals_match_mistral_common)


def test_ci_examples_are_not_trivial():
    """The pure strategies reach both sides of the 'possible' boundary (guards a silently narrow run)."""
    seen = {True: 0, False: 0}

    @settings(max_examples=300, deadline=None)
    @given(frame_lists, prompt_tokens, limit_sets())
    def probe(frames, k, limits):
        seen[possible(len(frames), k + CHAT_OVERHEAD, limits)] += 1

    probe()
    assert seen[True] > 50 and seen[False] > 5, seen


def test_math_of_the_smallest_image():
    """The 'possible' rule's constant: a one-cell image costs 2 tokens under mistral_common."""
    assert min_image_tokens() == 2
    assert count_request([(1, 1)], 0, GRID, Limits()).prompt_tokens == 2
    assert math.prod(image_grid((1, 1), GRID)) == 1


# --------------------------------------------------------------------------- through the planner, on files

EXAMPLES["files"] = (20, 2000)
file_sides = st.one_of(st.integers(1, 1500), st.integers(1, 40))


def _planned_files_match(model, tmp_path_factory, frames, k, limits):
    """1 to 4 image files of random sizes (an image list): plan_frames writes PNGs that count exactly."""
    from cosmos_upsample_fix.planning.planner import plan_frames

    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, size in enumerate(frames):
        path = folder / f"image {i}.png"
        Image.new("RGB", size, (20 * i, 100, 200)).save(path)
        paths.append(str(path))
    prompt = prompt_of(k)
    if not possible(len(frames), model.text_tokens(prompt), limits):
        with pytest.raises(BudgetError):
            plan_frames(paths, prompt, limits=limits, model=model)
        return
    planned = plan_frames(paths, prompt, limits=limits, model=model)
    check_fit_plan(frames, model.text_tokens(prompt), limits, list(planned.plan.planned.frame_sizes))
    out = folder / "out"
    out.mkdir()
    files = planned.write(out)
    assert [Image.open(f).size for f in files] == list(planned.plan.planned.frame_sizes)
    import base64

    urls = ["data:image/jpeg;base64," + base64.b64encode(f.read_bytes()).decode() for f in files]
    assert len(model.encode(prompt, urls)) == planned.plan.planned.prompt_tokens


test_planned_image_files_count_exactly, test_planned_image_files_full = ci_and_slow(
    "files", st.lists(st.tuples(file_sides, file_sides), min_size=1, max_size=4), prompt_tokens, limit_sets()
)(_planned_files_match)
