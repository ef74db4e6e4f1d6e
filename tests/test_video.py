"""Video readers and writers: layouts, ordering, grayscale, atomic writes, bad inputs."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from latte_bench.data.video import frame_order, open_videos, write_frames, write_npz, write_video
from latte_bench.errors import UserError


def _videos(n=3, t=12, h=32, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, t, h, w, 3), dtype=np.uint8)


def _smooth_video(t=10, h=48, w=64):
    """A smooth moving gradient: H.264 reproduces it closely (noise it would not)."""
    y, x = np.mgrid[0:h, 0:w]
    frames = [np.stack([(x * 3 + k * 4) % 256, (y * 4) % 256, np.full_like(x, 128)], -1) for k in range(t)]
    return np.asarray(frames, np.uint8)


def test_frame_folders_roundtrip_lossless_and_sorted(tmp_path):
    v = _videos()
    for name, video in zip(["b", "a", "c10"], v):
        write_frames(tmp_path / name, video)
    src = open_videos(tmp_path)
    assert src.kind == "frames"
    assert [e.name for e in src.entries] == ["a", "b", "c10"]
    assert [e.num_frames for e in src.entries] == [12, 12, 12]
    assert sorted(os.listdir(tmp_path / "a"))[:2] == ["000000.png", "000001.png"]
    np.testing.assert_array_equal(src[0].read([3, 0, 11]), v[1][[3, 0, 11]])
    np.testing.assert_array_equal(src[1].read(range(12)), v[0])
    assert not [f for f in os.listdir(tmp_path / "a") if f.startswith(".")]  # no temp files left


def test_frames_are_ordered_by_file_name(tmp_path):
    v = _videos(n=1, t=3)[0]
    (tmp_path / "vid").mkdir()
    for name, frame in zip(["2.png", "0.png", "1.png"], v):
        Image.fromarray(frame).save(tmp_path / "vid" / name)
    np.testing.assert_array_equal(open_videos(tmp_path)[0].read([0, 1, 2]), v[[1, 2, 0]])


def _save_frames(folder, names, frames):
    folder.mkdir(parents=True)
    for name, frame in zip(names, frames):
        Image.fromarray(frame).save(folder / name)


def test_frames_are_read_in_the_order_of_their_numbers(tmp_path):
    """frame_0 ... frame_15: frame_10 follows frame_9 (a string sort read 0, 1, 10-15, 2-9)."""
    v = _videos(n=1, t=16, h=8, w=8)[0]
    _save_frames(tmp_path / "vid", [f"frame_{t}.png" for t in range(16)], v)
    entry = open_videos(tmp_path)[0]
    assert entry.num_frames == 16
    np.testing.assert_array_equal(entry.read(range(16)), v)


@pytest.mark.parametrize(
    "names, order",
    [
        (["frame_10.png", "frame_9.png", "frame_0.png", "frame_1.png"] + [f"frame_{t}.png" for t in range(2, 9)],
         [f"frame_{t}.png" for t in range(11)]),
        (["img10.jpg", "img9.jpg", "img8.jpg"], ["img8.jpg", "img9.jpg", "img10.jpg"]),
        (["clip7_0002.png", "clip7_0000.png", "clip7_0001.png"], ["clip7_0000.png", "clip7_0001.png", "clip7_0002.png"]),
        (["9.png", "0.png", "3.png", "6.png"], ["0.png", "3.png", "6.png", "9.png"]),  # a constant step of 3
        (["b.png", "c.png", "a.png"], ["a.png", "b.png", "c.png"]),  # no numbers, one width: sorted by name
        (["000007.png"], ["000007.png"]),
    ],
)
def test_frame_order_sorts_by_the_last_number_in_the_name(names, order):
    assert frame_order(names, "vid") == order


@pytest.mark.parametrize(
    "names, match",
    [
        ([f"{t:06d}.png" for t in range(16) if t != 5], "jump from 4 to 6"),
        (["0.png", "1.png", "2.png", "4.png", "5.png"], "jump from 2 to 4"),
        (["0.png", "1.png", "01.png"], "number 1 twice"),
        (["000003.png", "000003.jpg", "000004.png"], "number 3 twice"),
        (["a.png", "bb.png"], "no number"),
        (["000000.png", "000001.png", "cover.png"], "cover.png"),
    ],
)
def test_frame_order_refuses_gaps_repeats_and_numberless_names_of_unequal_width(names, match):
    with pytest.raises(UserError, match=match) as e:
        frame_order(names, "data/vid")
    assert str(e.value).startswith("data/vid: ") and "\n" not in str(e.value)


def test_folder_with_a_missing_frame_is_named_or_skipped(tmp_path):
    v = _videos(n=2, t=16, h=8, w=8)
    write_frames(tmp_path / "good", v[0])
    write_frames(tmp_path / "gap", v[1])
    (tmp_path / "gap" / "000005.png").unlink()
    with pytest.raises(UserError, match="jump from 4 to 6") as e:
        open_videos(tmp_path)
    assert str(tmp_path / "gap") in str(e.value) and "skip_bad=True skips it" in str(e.value)
    src = open_videos(tmp_path, skip_bad=True)
    assert [e.name for e in src.entries] == ["good"] and [name for name, _ in src.skipped] == ["gap"]


def test_video_tree_recursive_mp4(tmp_path):
    clip = _smooth_video()
    write_video(tmp_path / "ClassB" / "v1.mp4", clip)
    write_video(tmp_path / "ClassA" / "v2.mp4", clip[:8])
    src = open_videos(tmp_path)
    assert src.kind == "videos"
    assert [e.name for e in src.entries] == ["ClassA/v2.mp4", "ClassB/v1.mp4"]
    assert [e.num_frames for e in src.entries] == [8, 10]
    frames = src[1].read([0, 5, 9])
    assert frames.shape == (3, 48, 64, 3) and frames.dtype == np.uint8
    # lossy H.264: close but not exact
    assert np.abs(frames.astype(int) - clip[[0, 5, 9]].astype(int)).mean() < 6


def test_arrays_npy_and_npz(tmp_path):
    v = _videos(n=4)
    np.save(tmp_path / "v.npy", v)
    write_npz(tmp_path / "v.npz", v)
    for f in ("v.npy", "v.npz"):
        src = open_videos(tmp_path / f)
        assert src.kind == "array" and len(src) == 4 and src[2].num_frames == 12
        np.testing.assert_array_equal(src[2].read([1, 7]), v[2, [1, 7]])
    assert src.fingerprint() == open_videos(tmp_path / "v.npz").fingerprint()


def test_grayscale_frames_are_repeated_to_rgb(tmp_path):
    gray = np.random.default_rng(1).integers(0, 256, (5, 8, 8), dtype=np.uint8)
    (tmp_path / "png" / "v").mkdir(parents=True)
    for t, frame in enumerate(gray):
        Image.fromarray(frame, mode="L").save(tmp_path / "png" / "v" / f"{t:03d}.png")
    out = open_videos(tmp_path / "png")[0].read([0, 4])
    np.testing.assert_array_equal(out, np.repeat(gray[[0, 4], :, :, None], 3, axis=-1))


def test_fingerprint_changes_with_content(tmp_path):
    write_frames(tmp_path / "a", _videos(n=1)[0])
    before = open_videos(tmp_path).fingerprint()
    write_frames(tmp_path / "b", _videos(n=1)[0])
    assert open_videos(tmp_path).fingerprint() != before


# ------------------------------------------------------------------------------------ bad inputs


def test_missing_path(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        open_videos(tmp_path / "nope")


def test_empty_folder(tmp_path):
    with pytest.raises(UserError, match="empty"):
        open_videos(tmp_path)


def test_images_without_video_folders(tmp_path):
    Image.fromarray(_videos(n=1, t=1)[0, 0]).save(tmp_path / "000.png")
    with pytest.raises(UserError, match="subfolder"):
        open_videos(tmp_path)


def test_folder_without_videos(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(UserError, match="no frame folders"):
        open_videos(tmp_path)


def test_empty_frame_folder_named_and_skippable(tmp_path):
    write_frames(tmp_path / "good", _videos(n=1)[0])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.txt").write_text("")
    # "empty" has no images; "good" does, so the layout is frame folders
    with pytest.raises(UserError, match="empty"):
        open_videos(tmp_path)
    src = open_videos(tmp_path, skip_bad=True)
    assert [e.name for e in src.entries] == ["good"] and [s[0] for s in src.skipped] == ["empty"]


def test_not_a_video_and_truncated_video(tmp_path):
    write_video(tmp_path / "ok.mp4", _smooth_video())
    data = (tmp_path / "ok.mp4").read_bytes()
    (tmp_path / "trunc.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.avi").write_text("not a video")
    with pytest.raises(UserError, match="text.avi") as e:
        open_videos(tmp_path)
    assert "\n" not in str(e.value) and "use skip_bad=True to skip it" in str(e.value)
    (tmp_path / "text.avi").unlink()
    with pytest.raises(UserError, match="trunc.mp4"):
        open_videos(tmp_path)
    (tmp_path / "text.avi").write_text("not a video")
    src = open_videos(tmp_path, skip_bad=True)
    assert [e.name for e in src.entries] == ["ok.mp4"]
    assert sorted(s[0] for s in src.skipped) == ["text.avi", "trunc.mp4"]


def test_corrupt_frame_named(tmp_path):
    write_frames(tmp_path / "v", _videos(n=1, t=3)[0])
    (tmp_path / "v" / "000001.png").write_bytes(b"\x89PNG broken")
    src = open_videos(tmp_path)
    with pytest.raises(UserError, match="000001.png"):
        src[0].read([0, 1])


def test_mixed_resolutions_inside_a_video(tmp_path):
    write_frames(tmp_path / "v", _videos(n=1, t=2, h=32, w=32)[0])
    Image.fromarray(_videos(n=1, t=1, h=16, w=16)[0, 0]).save(tmp_path / "v" / "000002.png")
    with pytest.raises(UserError, match="mixed resolutions"):
        open_videos(tmp_path)[0].read([0, 1, 2])


def test_alpha_channel_refused(tmp_path):
    (tmp_path / "v").mkdir()
    Image.fromarray(np.zeros((8, 8, 4), np.uint8), mode="RGBA").save(tmp_path / "v" / "0.png")
    with pytest.raises(UserError, match="RGBA"):
        open_videos(tmp_path)[0].read([0])


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((2, 4, 8, 8, 3), np.float32), "dtype is float32"),
        (np.zeros((2, 4, 8, 8, 4), np.uint8), "shape"),
        (np.zeros((4, 8, 8), np.uint8), "shape"),
        (np.zeros((0, 4, 8, 8, 3), np.uint8), "no videos"),
    ],
)
def test_bad_arrays(tmp_path, array, match):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(UserError, match=match) as e:
        open_videos(tmp_path / "bad.npy")
    assert "bad.npy" in str(e.value)


@pytest.mark.parametrize(
    "shape",
    [
        (16, 32, 32, 1),  # one grayscale video: was read as 16 videos of 32 frames at 32x1 pixels
        (2, 16, 32, 32),  # 4-D: grayscale videos without a channel axis, or one video
        (16, 32, 32, 3),  # one RGB video
        (2, 16, 32, 32, 1),  # one channel
        (2, 16, 32, 32, 4),  # RGBA
        (2, 16, 4, 32, 3),  # H below 8
        (2, 16, 32, 4, 3),  # W below 8
        (2, 0, 32, 32, 3),  # no frames
    ],
)
def test_arrays_that_fit_only_by_misreading_an_axis_are_refused(tmp_path, shape):
    """On disk (.npy, .npz: the file named) and in memory (the side named): expected and received shapes."""
    from latte_bench.metrics.sources import as_source

    arr = np.zeros(shape, np.uint8)
    np.save(tmp_path / "v.npy", arr)
    np.savez(tmp_path / "v.npz", videos=arr)
    for f in ("v.npy", "v.npz"):
        with pytest.raises(UserError) as e:
            open_videos(tmp_path / f)
        msg = str(e.value)
        assert msg.startswith(f"{tmp_path / f}: ") and "(N,T,H,W,3)" in msg and str(shape) in msg, msg
    with pytest.raises(UserError) as e:
        as_source(arr, side="fake")
    assert str(e.value).startswith("fake array: ") and "(N,T,H,W,3)" in str(e.value) and str(shape) in str(e.value)


def test_an_rgb_array_of_8x8_frames_is_read(tmp_path):
    from latte_bench.metrics.sources import as_source

    v = _videos(n=2, t=3, h=8, w=8)
    src = as_source(v, side="real")
    assert len(src.videos) == 2
    np.testing.assert_array_equal(src.videos[1].read([2, 0]), v[1, [2, 0]])
    np.save(tmp_path / "v.npy", v)
    np.testing.assert_array_equal(open_videos(tmp_path / "v.npy")[1].read(range(3)), v[1])


def test_npz_with_several_arrays(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros((1, 2, 4, 4, 3), np.uint8), b=np.zeros((1, 2, 4, 4, 3), np.uint8))
    with pytest.raises(UserError, match="two.npz"):
        open_videos(tmp_path / "two.npz")


def test_writers_reject_wrong_arrays(tmp_path):
    with pytest.raises(ValueError):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError):
        write_npz(tmp_path / "x.npz", np.zeros((2, 8, 8, 3), np.uint8))
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------ PyAV versus the old way


def _write_avi(path, frames, fps=25):
    """A UCF101-style .avi: MPEG-4 part 2 (what UCF101's xvid files hold), GOP 12, B-frames."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.codec_context.gop_size = 12
        s.codec_context.max_b_frames = 2
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))


@pytest.mark.parametrize("width", [16, 48, 64, 100])
def test_mp4_every_even_width_roundtrips(tmp_path, width):
    """16 and 48 px are widths decord 0.6 cannot open; the demo samples 16 px videos."""
    clip = _smooth_video(t=9, h=32, w=width)
    write_video(tmp_path / "v.mp4", clip)
    entry = open_videos(tmp_path / "v.mp4")[0]
    assert entry.num_frames == 9
    frames = entry.read(range(9))
    assert frames.shape == clip.shape
    assert np.abs(frames.astype(int) - clip.astype(int)).mean() < 3  # CRF 5: a few levels of error
    np.testing.assert_array_equal(entry.read([8, 2]), frames[[8, 2]])  # any order, any subset


def test_pyav_frames_equal_decord_frames(tmp_path):
    """On every file decord reads (mp4 at several widths, UCF101-style avi), the frames are bit-identical.

    Read from frame 0 on: decord's own seeking returns wrong frames for the avi (see
    test_random_clips_equal_a_full_decode)."""
    decord = pytest.importorskip("decord")
    files = []
    for w in (32, 64, 100):
        write_video(tmp_path / f"w{w}.mp4", _smooth_video(t=10, h=32, w=w))
        files.append(tmp_path / f"w{w}.mp4")
    _write_avi(tmp_path / "v_ApplyEyeMakeup_g01_c01.avi", _smooth_video(t=40, h=240, w=320))
    files.append(tmp_path / "v_ApplyEyeMakeup_g01_c01.avi")
    for f in files:
        entry = open_videos(f)[0]
        vr = decord.VideoReader(str(f), ctx=decord.cpu(0), num_threads=1)
        assert entry.num_frames == len(vr), f.name
        idx = list(range(0, entry.num_frames, 3))
        np.testing.assert_array_equal(entry.read(idx), vr.get_batch(idx).asnumpy(), err_msg=f.name)


def test_random_clips_equal_a_full_decode(tmp_path):
    """Reads seek to a keyframe; the frames must still be those of a decode from the first frame,
    for B-frames in an avi (UCF101-style) and an open-GOP H.264 mp4. (decord 0.6 fails this for
    the avi: a clip at frames 20, 23, ... came back as frames 10, 1, 4, 7, 10, 1, ...)"""
    import av

    from latte_bench.data.video import _VideoFileReader

    clip = _smooth_video(t=60, h=32, w=48)
    _write_avi(tmp_path / "b.avi", clip)
    with av.open(str(tmp_path / "g.mp4"), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        s.codec_context.max_b_frames = 2
        s.options = {"x264-params": "open-gop=1:keyint=10:min-keyint=10"}
        for f in clip:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))
    rng = np.random.default_rng(0)
    for name in ("b.avi", "g.mp4"):
        entry = open_videos(tmp_path / name)[0]
        whole = _VideoFileReader(str(tmp_path / name))
        whole._index = False  # no seeking: decode from the first frame
        full = whole(range(entry.num_frames))
        for start in rng.integers(1, entry.num_frames - 31, 6):
            idx = [int(start) + 2 * k for k in range(16)]
            np.testing.assert_array_equal(entry.read(idx), full[idx], err_msg=f"{name} {idx}")


def test_pyav_writer_equals_latte_imageio_writer(tmp_path):
    """write_video decodes to the same frames as Latte's imageio.mimwrite(quality=9) at 16..256 px."""
    imageio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    for w, h in ((16, 16), (48, 32), (256, 64)):
        clip = _smooth_video(t=8, h=h, w=w)
        write_video(tmp_path / f"ours{w}.mp4", clip)
        imageio.mimwrite(tmp_path / f"latte{w}.mp4", list(clip), fps=8, quality=9, codec="libx264", macro_block_size=1,
                         ffmpeg_log_level="error", format="FFMPEG")
        ours, latte = open_videos(tmp_path / f"ours{w}.mp4")[0], open_videos(tmp_path / f"latte{w}.mp4")[0]
        np.testing.assert_array_equal(ours.read(range(8)), latte.read(range(8)), err_msg=f"{w}x{h}")


def test_mp4_writer_is_deterministic_and_refuses_odd_sizes(tmp_path):
    clip = _smooth_video(t=6, h=16, w=16)
    write_video(tmp_path / "a.mp4", clip)
    write_video(tmp_path / "b.mp4", clip)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "c.mp4", _smooth_video(t=2, h=16, w=15))
    assert not (tmp_path / "c.mp4").exists()


def test_decoder_noise_stays_off_the_terminal(tmp_path, capfd):
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 500)
    write_video(tmp_path / "ok.mp4", _smooth_video(t=4, h=16, w=16))
    data = (tmp_path / "ok.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    src = open_videos(tmp_path, skip_bad=True)
    assert [e.name for e in src.entries] == ["ok.mp4"] and len(src.skipped) == 2
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_hidden_and_temporary_files_are_never_read(tmp_path):
    """A crashed writer's temporary files (and macOS ._ files) are neither frames nor videos."""
    v = _videos(n=1, t=3)[0]
    write_frames(tmp_path / "frames" / "a", v)
    Image.fromarray(v[0]).save(tmp_path / "frames" / "a" / ".000001.png.k2j4_x9q.tmp.png")
    (tmp_path / "frames" / "a" / "._000002.png").write_bytes(b"\x00\x05\x16\x07")
    src = open_videos(tmp_path / "frames")
    assert src[0].num_frames == 3
    np.testing.assert_array_equal(src[0].read(range(3)), v)
    write_video(tmp_path / "vids" / "000000.mp4", _smooth_video(t=4, h=16, w=16))
    (tmp_path / "vids" / ".000001.mp4.ab12cd34.tmp.mp4").write_bytes(b"half a video")
    (tmp_path / "vids" / ".parts").mkdir()
    write_video(tmp_path / "vids" / ".parts" / "000002.mp4", _smooth_video(t=4, h=16, w=16))
    assert [e.name for e in open_videos(tmp_path / "vids").entries] == ["000000.mp4"]


def test_symlink_loops_are_named_or_skipped(tmp_path):
    write_video(tmp_path / "ok.mp4", _smooth_video(t=4, h=16, w=16))
    os.symlink("loop.mp4", tmp_path / "loop.mp4")
    os.symlink("selfdir", tmp_path / "selfdir")
    with pytest.raises(UserError, match="loop") as e:
        open_videos(tmp_path)
    assert "\n" not in str(e.value)
    src = open_videos(tmp_path, skip_bad=True)
    assert [e.name for e in src.entries] == ["ok.mp4"] and len(src.skipped) == 2


def test_a_video_file_swapped_for_one_of_equal_size_changes_the_fingerprint(tmp_path):
    """Issue 20 item 4: a video tree's key samples the bytes of each file's start and end, not only size and mtime."""
    from synthetic import waves

    a, b = (write_video(tmp_path / name, video) for name, video in zip(("a.mp4", "b.mp4"), waves(2, 8, seed=0, size=16)))
    size = max(a.stat().st_size, b.stat().st_size)
    padded = {p: p.read_bytes().ljust(size, b"\0") for p in (a, b)}  # trailing zeros: both stay readable
    (tmp_path / "tree").mkdir()
    target = tmp_path / "tree" / "v.mp4"
    target.write_bytes(padded[a])
    before = open_videos(tmp_path / "tree").fingerprint()
    st = target.stat()
    target.write_bytes(padded[b])
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == st.st_size and open_videos(tmp_path / "tree").fingerprint() != before
