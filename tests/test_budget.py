"""The closed form against mistral_common's own tokenization (the library vLLM calls)."""
from __future__ import annotations

import base64
import io
import random

import pytest
from PIL import Image

from cosmos_upsample_fix.core.budget import (
    UPSTREAM_LIMITS,
    ImageGrid,
    Limits,
    accepts,
    count_request,
    image_grid,
    image_tokens,
    model_image_size,
    model_pixels,
    presized,
)
from cosmos_upsample_fix.errors import BudgetError, PolicySpecError
from cosmos_upsample_fix.planning.tokenizer import EMPTY_PROMPT, clamps_to_one_pixel, load_model

PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."

PROMPTS = [
    "",
    "a",
    PROMPT,
    "  leading and trailing spaces  ",
    "Ünïcödé — 日本語のテキスト, emoji 🚗🤖, tabs\tand\nnewlines",
    " ".join(["a long prompt about a robot arm in a warehouse with shelves"] * 40),
]


def _random_sizes(n: int, seed: int = 1234) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    fixed = [(1, 4000), (4000, 1), (1, 1), (2, 4000), (4000, 2), (1023, 1025), (1024, 1024), (1025, 1024),
             (1024, 1025), (1025, 1025), (15, 17), (16, 16), (17, 15), (1280, 704), (1920, 1080), (882, 1568),
             (3, 2049), (2049, 3), (1000, 1048), (4000, 3999)]
    sizes = list(fixed)
    while len(sizes) < n:
        mode = rng.random()
        if mode < 0.3:  # near the maximum image size, on both sides of it
            w, h = rng.randint(1000, 1050), rng.randint(1, 1100)
        elif mode < 0.5:  # odd and small
            w, h = rng.randrange(1, 200, 2), rng.randrange(1, 200, 2)
        else:
            w, h = rng.randint(1, 4000), rng.randint(1, 4000)
        sizes.append((w, h) if rng.random() < 0.5 else (h, w))
    return sizes


def _reference_tokens(model, sizes, prompt, as_data_url=False) -> int:
    images = []
    for w, h in sizes:
        img = Image.new("RGB", (w, h), (120, 60, 30))
        if as_data_url:
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            img = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
        images.append(img)
    return len(model.encode(prompt, images))


def test_closed_form_equals_mistral_common_for_random_sizes(model):
    sizes = _random_sizes(120)
    for i, size in enumerate(sizes):
        # one or two frames per request, of possibly different sizes
        frames = [size] if i % 3 == 0 else [size, sizes[(i * 7 + 3) % len(sizes)]]
        prompt = PROMPTS[i % len(PROMPTS)]
        _check_against_reference(model, frames, prompt)


def _check_against_reference(model, frames, prompt, as_data_url=False):
    """Our count equals the installed mistral_common's, and we reject exactly what it rejects."""
    count = model.count(frames, prompt, Limits())
    if count.rejected:
        with pytest.raises(AssertionError):
            _reference_tokens(model, frames, prompt, as_data_url)
        assert not count.fits
    else:
        assert count.prompt_tokens == _reference_tokens(model, frames, prompt, as_data_url), (frames, prompt[:20])


def test_closed_form_equals_mistral_common_through_data_urls(model):
    # upstream sends PNG bytes in a data URL labelled image/jpeg; mistral_common decodes it itself
    for frames in ([(1280, 704), (1280, 704)], [(640, 480), (640, 480)], [(1, 4000)], [(1025, 3)], [(2049, 1)]):
        _check_against_reference(model, frames, PROMPT, as_data_url=True)


def test_the_installed_versions_rounding_rule_is_used(model):
    # (1, 4000): the 1-pixel side rounds to 0 at the 1024 cap; only mistral_common >= 1.12 clamps it to 1
    assert model.grid.clamps_to_one_pixel == clamps_to_one_pixel()
    assert accepts((1, 4000), model.grid) == model.grid.clamps_to_one_pixel
    assert accepts((2, 4000), model.grid)


@pytest.mark.parametrize(
    "size, per_frame, total",
    [
        ((320, 180), 252, 523),
        ((400, 225), 390, 799),
        ((640, 480), 1230, 2479),
        ((928, 510), 1888, 3795),
        ((960, 540), 2074, 4167),
        ((960, 704), 2684, 5387),
        ((1280, 704), 2340, 4699),
        ((1280, 720), 2340, 4699),
        ((1920, 1080), 2340, 4699),
        ((3840, 2160), 2340, 4699),
        ((1280, 800), 2600, 5219),
        ((1024, 1024), 4160, 8339),
        ((882, 1568), 2368, 4755),
    ],
)
def test_documented_figures(model, size, per_frame, total):
    count = model.count([size, size], PROMPT, Limits())
    assert count.tokens_per_frame == (per_frame, per_frame)
    assert count.prompt_tokens == total
    assert count.fits == (total + 300 <= 4096)


def test_empty_prompt_is_counted_as_upstream_sends_it(model):
    assert model.text_tokens("") == model.text_tokens(None) == model.text_tokens(EMPTY_PROMPT)
    assert model.text_tokens("") == len(model.encode(EMPTY_PROMPT, []))


def test_grid_is_read_from_the_tokenizer_file(model, tmp_path):
    import json

    from cosmos_upsample_fix.planning.tokenizer import UPSAMPLER_SUBDIR, bundled_tokenizer_path

    assert model.grid == ImageGrid(16, 1024, 1, clamps_to_one_pixel())
    # a model folder whose tokenizer says patch 32 / max 512 must be counted with those numbers
    data = json.loads(bundled_tokenizer_path().read_text())
    # the section every mistral_common version reads first ("image" is read from 1.8 only)
    data.pop("image", None)
    data["multimodal"] = {"image_patch_size": 32, "max_image_size": 512}
    folder = tmp_path / "ckpt" / UPSAMPLER_SUBDIR
    folder.mkdir(parents=True)
    (folder / "tekken.json").write_text(json.dumps(data))
    other = load_model(tmp_path / "ckpt")
    assert other.grid == ImageGrid(32, 512, 1, clamps_to_one_pixel())
    assert load_model(folder) is other
    count = other.count([(1280, 704)], PROMPT, Limits())
    # 1280x704 -> capped to 512x282 -> 16 x 9 cells -> 9 * 17 tokens
    assert count.tokens_per_frame == (9 * 17,)
    assert count.prompt_tokens == _reference_tokens(other, [(1280, 704)], PROMPT)


def test_model_image_size_and_pixels():
    grid = ImageGrid(16, 1024)
    assert model_image_size((3840, 2160), grid) == (1024, 576)
    assert model_image_size((4000, 1), grid) == (1024, 1)  # clamped to at least one pixel
    assert model_image_size((1024, 3), grid) == (1024, 3)  # at the cap: untouched
    assert model_image_size((1025, 2), grid) == (1024, 2)
    assert image_grid((1280, 704), grid) == (64, 36)
    assert model_pixels((1000, 17), grid) == (1008, 32)
    assert image_tokens((16, 16), grid) == 2


def test_count_request_reports_overflow_and_image_limit():
    grid = ImageGrid(16, 1024)
    count = count_request([(1280, 704)] * 2, 19, grid, Limits())
    assert (count.prompt_tokens, count.fits, count.over_by) == (4699, False, 4699 - 3796)
    three = count_request([(16, 16)] * 3, 19, grid, Limits())
    assert three.prompt_tokens == 25 and not three.fits  # only 2 images allowed per prompt
    assert count_request([(16, 16)] * 3, 19, grid, Limits(max_images=3)).fits


@pytest.mark.parametrize(
    "kwargs", [dict(max_model_len=300), dict(max_model_len=100), dict(reserved_output_tokens=-1), dict(max_images=0)]
)
def test_limits_are_validated(kwargs):
    with pytest.raises(PolicySpecError):
        Limits(**kwargs)


OLD = ImageGrid(16, 1024, clamps_to_one_pixel=False)  # mistral_common before 1.12


@pytest.mark.parametrize(
    "size, accepted",
    [((1, 4000), False), ((4000, 1), False), ((2048, 1), False), ((2047, 1), True), ((2049, 1), False),
     ((1, 2048), False), ((4000, 2), True), ((1024, 1), True), ((1025, 1), True), ((6143, 3), True),
     ((6144, 3), False), ((6150, 3), False), ((10239, 5), True), ((10240, 5), False), ((10241, 2), False)],
)
def test_rejected_sizes_under_the_old_rule(size, accepted):
    # the short side s becomes round(s * 1024 / long); Python rounds 0.5 to 0
    assert accepts(size, OLD) is accepted
    assert accepts(size, ImageGrid(16, 1024))
    if accepted:
        assert image_grid(size, OLD) == image_grid(size, ImageGrid(16, 1024))
    else:
        with pytest.raises(BudgetError, match="rejected by the installed mistral_common"):
            image_grid(size, OLD)
        count = count_request([size, (16, 16)], 19, OLD, Limits())
        assert count.rejected == (size,) and not count.fits and count.tokens_per_frame == (0, 2)
        assert count.prompt_tokens == 21 and count.over_by == 0


def test_presized_is_the_model_size_over_the_cap_and_unchanged_at_it():
    grid = ImageGrid(16, 1024)
    for size, expected in [((2560, 1080), (1024, 432)), ((3440, 1440), (1024, 432)), ((3840, 2160), (1024, 576)),
                           ((1280, 704), (1024, 576)), ((1, 4000), (1, 1024)), ((4000, 1), (1024, 1)),
                           ((1024, 1024), (1024, 1024)), ((1000, 17), (1000, 17)), ((1025, 1025), (1024, 1024))]:
        target = presized(size, grid)
        assert target == expected, size
        assert image_grid(target, grid) == image_grid(size, grid)
        assert target[0] <= size[0] and target[1] <= size[1]
    assert presized((1, 4000), OLD) == (1, 4000)  # rejected: left to the policy, which resizes it
    # a cap that is not a multiple of the unit: the model's size would be over the cap, so leave it
    odd = ImageGrid(16, 1000)
    assert presized((2000, 1000), odd) == (2000, 1000)
    assert presized((992, 2000), odd) == (992, 2000)


def test_upstream_limits_and_image_count_check():
    assert (UPSTREAM_LIMITS.max_model_len, UPSTREAM_LIMITS.reserved_output_tokens, UPSTREAM_LIMITS.max_images) == (
        4096, 300, 2
    )
    assert UPSTREAM_LIMITS.prompt_budget == 3796
    UPSTREAM_LIMITS.check_images(2)
    with pytest.raises(BudgetError, match="3 frames asked but the engine allows 2 images"):
        UPSTREAM_LIMITS.check_images(3)


@pytest.mark.parametrize("kwargs", [dict(patch_size=0), dict(max_image_size=-1), dict(spatial_merge_size=True),
                                    dict(patch_size=16.0)])
def test_image_grid_is_validated(kwargs):
    values = dict(patch_size=16, max_image_size=1024) | kwargs
    with pytest.raises(PolicySpecError, match="positive integer"):
        ImageGrid(**values)


def test_budget_use_and_unit():
    grid = ImageGrid(14, 1540, 2)
    assert grid.unit == 28
    count = count_request([(28, 28)], 1898, grid, Limits())
    assert count.prompt_tokens == 1900 and count.budget_use == 1900 / 3796 and count.fits


def test_image_section_is_read_as_the_installed_version_reads_it(tmp_path):
    import json

    from cosmos_upsample_fix.errors import ModelConfigError
    from cosmos_upsample_fix.planning.tokenizer import (
        IMAGE_SECTION_SINCE,
        bundled_tokenizer_path,
        mistral_common_version,
    )

    data = json.loads(bundled_tokenizer_path().read_text())
    data.pop("multimodal", None)
    data["image"] = {"image_patch_size": 32, "max_image_size": 512}
    both = dict(data, multimodal={"image_patch_size": 16, "max_image_size": 1024})
    for name, content in (("image", data), ("both", both)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "tekken.json").write_text(json.dumps(content))
    # "multimodal" wins when both are present, as in every version
    model = load_model(tmp_path / "both")
    assert (model.grid.patch_size, model.grid.max_image_size) == (16, 1024)
    assert model.count([(1280, 704)], PROMPT, Limits()).prompt_tokens == _reference_tokens(model, [(1280, 704)], PROMPT)
    if mistral_common_version() >= IMAGE_SECTION_SINCE:
        other = load_model(tmp_path / "image")
        assert other.grid.patch_size == 32
        assert other.count([(640, 480)], PROMPT, Limits()).prompt_tokens == _reference_tokens(
            other, [(640, 480)], PROMPT
        )
    else:
        with pytest.raises(ModelConfigError, match="multimodal"):
            load_model(tmp_path / "image")
