"""The procedural demo set: deterministic, class-dependent, readable from every on-disk format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latte_bench.data.datasets import ClipDataset
from latte_bench.data.demo import SHAPES, make_demo_videos, write_demo_dataset
from latte_bench.data.video import open_videos


def test_same_seed_same_videos_and_prefix_stable():
    a, la = make_demo_videos(6, num_frames=5, size=16, seed=3, classes=3)
    b, lb = make_demo_videos(4, num_frames=5, size=16, seed=3, classes=3)
    assert a.dtype == np.uint8 and a.shape == (6, 5, 16, 16, 3)
    assert np.array_equal(a[:4], b) and la.tolist() == [0, 1, 2, 0, 1, 2]
    c, _ = make_demo_videos(4, num_frames=5, size=16, seed=4, classes=3)
    assert not np.array_equal(b, c)


def test_shapes_move_and_classes_differ():
    videos, labels = make_demo_videos(12, num_frames=8, size=32, seed=0, classes=4)
    motion = np.abs(np.diff(videos.astype(np.int16), axis=1)).mean()
    assert motion > 1.0  # frames change over time
    # the brightest (shape) pixels cover different areas per class: a square covers more than a cross
    cover = [(videos[labels == k].max(axis=-1) > 150).mean() for k in range(4)]
    assert len({round(c, 3) for c in cover}) == 4
    with pytest.raises(ValueError):
        make_demo_videos(1, classes=len(SHAPES) + 1)


def test_one_large_bright_shape_on_a_plain_dark_background():
    videos, _ = make_demo_videos(16, num_frames=4, size=16, seed=0, classes=4)
    v = videos.astype(np.int16)
    for video in v:
        corner_colours = {tuple(video[0, y, x]) for y, x in ((0, 0), (0, 15), (15, 0), (15, 15))}
        background = max(corner_colours, key=lambda c: (video[0] == c).all(-1).sum())  # the commonest corner colour
        plain = (np.abs(video - np.array(background)).max(-1) <= 1).mean()
        shape = (np.abs(video - np.array(background)).max(-1) > 100).mean()
        assert max(background) <= 64  # dark
        assert 0.4 < plain and 0.1 < shape < 0.5  # plain background, a shape covering 10-50% of the frame


@pytest.mark.parametrize("fmt", ["frames", "npz", "mp4"])
def test_written_set_reads_back_with_labels(tmp_path, fmt):
    root = write_demo_dataset(tmp_path / fmt, n=5, num_frames=6, size=32, seed=1, classes=2, format=fmt)
    meta = json.loads((root / "labels.json").read_text())
    assert meta["classes"] == ["square", "disc"] and len(meta["labels"]) == 5
    source = open_videos(root / "videos.npz" if fmt == "npz" else root)
    assert len(source) == 5
    videos, _ = make_demo_videos(5, num_frames=6, size=32, seed=1, classes=2)
    got = source[3].read(range(6))
    if fmt == "mp4":
        assert np.abs(got.astype(int) - videos[3]).mean() < 8  # lossy
    else:
        assert np.array_equal(got, videos[3])
    ds = ClipDataset.from_folder("demo", root, num_frames=3, frame_interval=2, image_size=32)
    assert ds.labels == [0, 1, 0, 1, 0] and ds.class_names == ["square", "disc"]


def test_the_class_fixes_the_colour_and_the_background_is_shared():
    from latte_bench.data.demo import BACKGROUND, PALETTE

    videos, labels = make_demo_videos(12, num_frames=3, size=16, seed=0, classes=4)
    pixels = videos.reshape(len(videos), -1, 3).astype(int)
    for video, label in zip(pixels, labels):
        colours = {tuple(c) for c in video}
        assert tuple(np.floor(PALETTE[label] * 255 + 0.5).astype(int)) in colours  # the shape's interior
        assert tuple(np.floor(BACKGROUND * 255 + 0.5).astype(int)) in colours  # the plain background
