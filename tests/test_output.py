"""Files written for a user: created new or refused, never overwritten, never left half-written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from clips import make_clip

from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.errors import InputError, OutputExistsError
from cosmos_upsample_fix.media import output
from cosmos_upsample_fix.media.images import write_png
from cosmos_upsample_fix.media.mp4 import write_video
from cosmos_upsample_fix.planning.planner import plan_frames


def test_create_new_refuses_what_exists(tmp_path):
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"mine")
    with pytest.raises(OutputExistsError, match=r"taken.png already exists; not overwriting it$") as caught:
        output.create_new(taken)
    assert isinstance(caught.value, InputError) and isinstance(caught.value, FileExistsError)
    assert taken.read_bytes() == b"mine"
    with pytest.raises(InputError, match="cannot write"):
        output.create_new(tmp_path / "no" / "folder.png")
    with output.create_new(tmp_path / "new.png") as handle:
        handle.write(b"x")
    assert (tmp_path / "new.png").read_bytes() == b"x"


def test_free_names_and_no_partial_file(tmp_path):
    (tmp_path / "p.png").write_bytes(b"1")
    (tmp_path / "p-2.png").write_bytes(b"2")
    with output.new_file(tmp_path / "p.png", free_name=True) as (handle, written):
        handle.write(b"3")
    assert written == tmp_path / "p-3.png" and written.read_bytes() == b"3"
    with pytest.raises(RuntimeError), output.new_file(tmp_path / "half.png") as (handle, _):
        handle.write(b"half")
        raise RuntimeError("a failure mid-write")
    assert not (tmp_path / "half.png").exists()


def test_every_writer_creates_through_create_new(tmp_path, monkeypatch):
    """prepare's PNGs, hint's and the demo's mp4, and the preview open their files in one place."""
    from cosmos_upsample_fix.tools.preview import render_preview

    opened = []
    real = output.create_new

    def spy(path):
        opened.append(path)
        return real(path)

    monkeypatch.setattr(output, "create_new", spy)
    image = np.zeros((16, 16, 3), np.uint8)
    write_png(image, tmp_path / "f.png")
    write_video([image, image], tmp_path / "h.mp4")
    clip = make_clip(tmp_path / "c.mp4", 64, 48, frames=2)
    plan_frames(clip, "", Options()).write(tmp_path / "", stem="frame")
    render_preview(clip, "", Options(), tmp_path / "p.png")
    assert [Path(p).name for p in opened] == [
        "f.png", "h.mp4", "frame_1.png", "frame_2.png", "p.png"]
    again = [lambda: write_png(image, tmp_path / "f.png"), lambda: write_video([image], tmp_path / "h.mp4"),
             lambda: render_preview(clip, "", Options(), tmp_path / "p.png")]
    for write in again:
        with pytest.raises(OutputExistsError, match="already exists; not overwriting it$"):
            write()
