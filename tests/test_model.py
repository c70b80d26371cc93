"""The tokenizer adapter: version rules, image settings from the model's files, caching."""
from __future__ import annotations

import json
import logging
import threading

import pytest
from packaging.version import Version

from cosmos_upsample_fix.core.budget import ImageGrid
from cosmos_upsample_fix.errors import ModelConfigError
from cosmos_upsample_fix.planning import tokenizer as model_module
from cosmos_upsample_fix.planning.tokenizer import (
    CLAMP_SINCE,
    EMPTY_PROMPT,
    UPSAMPLER_SUBDIR,
    bundled_tokenizer_path,
    clamps_to_one_pixel,
    effective_prompt,
    load_model,
    mistral_common_version,
    read_image_grid,
    resolve_model_dir,
)


def test_version_rules():
    assert CLAMP_SINCE == Version("1.12.0")
    for text, clamps in [("1.5.4", False), ("1.6.2", False), ("1.8.5", False), ("1.11.7", False), ("1.12.0", True),
                         ("1.13.1", True), ("2.0", True)]:
        assert clamps_to_one_pixel(Version(text)) is clamps, text
    import mistral_common

    installed = mistral_common_version()
    assert installed == Version(getattr(mistral_common, "__version__", str(installed)))
    assert clamps_to_one_pixel() is (installed >= CLAMP_SINCE)


def test_the_bundled_tokenizer_is_pixtral_12b():
    path = bundled_tokenizer_path()
    assert path.name == "tekken_240911.json" and path.is_file()
    grid = load_model().grid
    assert (grid.patch_size, grid.max_image_size, grid.spatial_merge_size) == (16, 1024, 1)


def test_effective_prompt():
    assert effective_prompt("") == effective_prompt(None) == EMPTY_PROMPT == "describe the following images"
    assert effective_prompt("x") == "x"


def test_chunk_classes_fall_back_to_messages_before_1_8_5(monkeypatch):
    import importlib

    real_import_module = importlib.import_module

    def import_module(name, package=None):
        if name == "mistral_common.protocol.instruct.chunk":
            raise ImportError("no chunk module in this version")
        return real_import_module(name, package)

    monkeypatch.setattr(model_module.importlib, "import_module", import_module)
    image_chunk, url_chunk, text_chunk = model_module.chunk_classes()
    assert image_chunk.__name__ == "ImageChunk" and url_chunk.__name__ == "ImageURLChunk"
    assert text_chunk.__name__ == "TextChunk"
    # and the count through them is the same as through the newer module
    model = load_model()
    assert len(model.encode("a cat", [])) == model.text_tokens("a cat")


def _write(folder, name, data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data) if not isinstance(data, str) else data)
    return folder / name


def _tekken_without_images():
    data = json.loads(bundled_tokenizer_path().read_text())
    data.pop("image", None)
    data.pop("multimodal", None)
    return data


def test_image_settings_from_params_json_when_the_tokenizer_has_none(tmp_path):
    tekken = _write(tmp_path, "tekken.json", {"config": {}})
    params = _write(tmp_path, "params.json", {"vision_encoder": {"patch_size": 14, "image_size": 1540,
                                                                  "spatial_merge_size": 2}})
    grid = read_image_grid(tekken, params)
    assert (grid.patch_size, grid.max_image_size, grid.spatial_merge_size) == (14, 1540, 2)
    assert grid.clamps_to_one_pixel is clamps_to_one_pixel()
    with pytest.raises(ModelConfigError, match="no image settings"):
        read_image_grid(tekken, tmp_path / "missing.json")
    with pytest.raises(ModelConfigError, match="no image settings"):
        read_image_grid(tekken, None)


def test_tokenizer_settings_win_over_params_with_a_warning(tmp_path, caplog):
    tekken = _write(tmp_path, "tekken.json", {"multimodal": {"image_patch_size": 16, "max_image_size": 1024}})
    params = _write(tmp_path, "params.json", {"vision_encoder": {"patch_size": 14, "image_size": 1540}})
    with caplog.at_level(logging.WARNING, logger="cosmos_upsample_fix"):
        grid = read_image_grid(tekken, params)
    assert grid == ImageGrid(16, 1024, 1, clamps_to_one_pixel())
    assert any("disagree" in r.getMessage() for r in caplog.records)
    caplog.clear()
    agreeing = _write(tmp_path, "agree.json", {"vision_encoder": {"patch_size": 16, "image_size": 1024}})
    with caplog.at_level(logging.WARNING, logger="cosmos_upsample_fix"):
        read_image_grid(tekken, agreeing)
    assert not caplog.records


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_unreadable_files_are_model_config_errors(tmp_path, content):
    tekken = _write(tmp_path, "tekken.json", content)
    with pytest.raises(ModelConfigError) as info:
        read_image_grid(tekken)
    assert str(tekken) in str(info.value) and "\n" not in str(info.value)


def test_resolve_model_dir_takes_either_folder(tmp_path):
    inner = tmp_path / UPSAMPLER_SUBDIR
    _write(inner, "tekken.json", {})
    assert resolve_model_dir(tmp_path) == inner.resolve()
    assert resolve_model_dir(inner) == inner.resolve()
    with pytest.raises(ModelConfigError, match="no upsampler tokenizer") as info:
        resolve_model_dir(tmp_path / "nothing")
    assert UPSAMPLER_SUBDIR in str(info.value)


def test_a_tokenizer_that_cannot_load_is_a_model_config_error(tmp_path):
    data = {"multimodal": {"image_patch_size": 16, "max_image_size": 1024}, "config": {}}
    _write(tmp_path, "tekken.json", data)
    broken = load_model(tmp_path)
    assert broken.grid.patch_size == 16  # the settings are read without loading the tokenizer
    with pytest.raises(ModelConfigError, match="cannot load tokenizer"):
        broken.text_tokens("hello")


def test_one_model_per_tokenizer_file_even_across_threads(tmp_path):
    data = _tekken_without_images()
    data["multimodal"] = {"image_patch_size": 16, "max_image_size": 1024}
    _write(tmp_path, "tekken.json", data)
    results = []
    barrier = threading.Barrier(4)

    def load():
        barrier.wait()
        results.append(load_model(tmp_path))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(m) for m in results}) == 1
    assert load_model(str(tmp_path)) is results[0]
    assert load_model() is load_model(None) is not results[0]


def test_text_counts_are_cached_per_model():
    model = load_model()
    calls = []
    real = model.encode

    def counting(prompt, images):
        calls.append(prompt)
        return real(prompt, images)

    model.encode = counting  # type: ignore[method-assign]
    try:
        text = "a prompt counted once " + str(id(calls))
        first = model.text_tokens(text)
        assert model.text_tokens(text) == first and calls == [text]
        assert model.text_tokens("") == model.text_tokens(EMPTY_PROMPT)
    finally:
        del model.encode
