"""The closed form against mistral_common's own tokenization (the library vLLM calls)."""
from __future__ import annotations

import base64
import io
import random

import pytest
from PIL import Image

from cosmos_upsample_fix.budget import (
    ImageGrid,
    Limits,
    count_request,
    image_grid,
    image_tokens,
    model_image_size,
    model_pixels,
)
from cosmos_upsample_fix.errors import PolicySpecError
from cosmos_upsample_fix.model import EMPTY_PROMPT, load_model

PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."

PROMPTS = [
    "",
    "a",
    PROMPT,
    "  leading and trailing spaces  ",
    "Ünïcödé — 日本語のテキスト, emoji 🚗🤖, tabs\tand\nnewlines",
    " ".join(["a long prompt about a robot arm in a warehouse with shelves"] * 40),
]


@pytest.fixture(scope="module")
def model():
    return load_model()


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
    sizes = _random_sizes(220)
    limits = Limits()
    for i, size in enumerate(sizes):
        # one or two frames per request, of possibly different sizes
        frames = [size] if i % 3 == 0 else [size, sizes[(i * 7 + 3) % len(sizes)]]
        prompt = PROMPTS[i % len(PROMPTS)]
        ours = model.count(frames, prompt, limits).prompt_tokens
        assert ours == _reference_tokens(model, frames, prompt), (frames, prompt[:20])


def test_closed_form_equals_mistral_common_through_data_urls(model):
    # upstream sends PNG bytes in a data URL labelled image/jpeg; mistral_common decodes it itself
    for frames in ([(1280, 704), (1280, 704)], [(640, 480), (640, 480)], [(1, 4000)], [(1025, 3)]):
        assert model.count(frames, PROMPT, Limits()).prompt_tokens == _reference_tokens(
            model, frames, PROMPT, as_data_url=True
        )


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

    from cosmos_upsample_fix.model import UPSAMPLER_SUBDIR, bundled_tokenizer_path

    assert model.grid == ImageGrid(16, 1024, 1)
    # a model folder whose tokenizer says patch 32 / max 512 must be counted with those numbers
    data = json.loads(bundled_tokenizer_path().read_text())
    data["image"] = {"image_patch_size": 32, "max_image_size": 512}
    folder = tmp_path / "ckpt" / UPSAMPLER_SUBDIR
    folder.mkdir(parents=True)
    (folder / "tekken.json").write_text(json.dumps(data))
    other = load_model(tmp_path / "ckpt")
    assert other.grid == ImageGrid(32, 512, 1)
    assert load_model(folder) is other
    count = other.count([(1280, 704)], PROMPT, Limits())
    # 1280x704 -> capped to 512x282 -> 16 x 9 cells -> 9 * 17 tokens
    assert count.tokens_per_frame == (9 * 17,)
    assert count.prompt_tokens == _reference_tokens(other, [(1280, 704)], PROMPT)


def test_model_image_size_and_pixels():
    grid = ImageGrid(16, 1024)
    assert model_image_size((3840, 2160), grid) == (1024, 576)
    assert model_image_size((4000, 1), grid) == (1024, 1)  # clamped to at least one pixel
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
