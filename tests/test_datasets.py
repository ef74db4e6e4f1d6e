"""Datasets: official per-dataset transforms, exact-stride clips, layouts, bad videos, batch order."""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pytest
import torch

from latte_bench.data import transforms as T
from latte_bench.data.datasets import ClipDataset, StepBatchSampler, collate, list_videos
from latte_bench.data.video import write_frames, write_video
from latte_bench.errors import UserError


def _index_video(num_frames: int, size: int = 8) -> np.ndarray:
    """uint8 (T, H, W, 3) whose frame f is the constant f (so a clip reveals its frame indices)."""
    return np.broadcast_to(np.arange(num_frames, dtype=np.uint8)[:, None, None, None], (num_frames, size, size, 3)).copy()


def _frames_of(video: torch.Tensor) -> list[int]:
    return [int(round(float(v))) for v in ((video[:, 0, 0, 0] * 0.5 + 0.5) * 255)]


# ------------------------------------------------------------------------------------ transforms


def test_short_side_resize_center_crop_matches_hand_computation():
    clip = torch.zeros(2, 3, 4, 8)
    clip[..., 3:5] = 1.0  # a vertical bar in the middle columns
    out = T.resize_short_side_center_crop(clip, 2)  # 4x8 -> 2x4 -> centre 2x2 (columns 1..2)
    assert out.shape == (2, 3, 2, 2)
    resized = torch.nn.functional.interpolate(clip, size=(2, 4), mode="bilinear", align_corners=False)
    assert torch.equal(out, resized[..., :, 1:3])
    # a 240x320 frame gives exactly 256 on the short side (a scale factor would floor to 255)
    assert T.resize_short_side_center_crop(torch.rand(1, 3, 240, 320), 256).shape == (1, 3, 256, 256)


def test_sky_crops_to_short_side_before_resizing():
    clip = torch.zeros(1, 3, 4, 8)
    clip[..., :2] = 1.0  # left border columns: cut away by the centre crop to 4x4
    out = T.center_crop_resize(clip, 2)
    assert out.shape == (1, 3, 2, 2) and float(out.max()) == 0.0


def test_dataset_transform_range_flip_and_taichi_size_check():
    clip = torch.arange(16, dtype=torch.uint8).repeat(1, 3, 4, 1)  # (1,3,4,16): ramp along width
    clip = torch.cat([clip, clip])[:, :, :, :4] * 17  # values 0..51 along width, (2,3,4,4)
    taichi = T.dataset_transform("taichi", 4)
    plain, flipped = taichi(clip, False), taichi(clip, True)
    assert torch.allclose(plain, clip.float() / 127.5 - 1)
    assert torch.equal(flipped, plain.flip(-1))
    sky = T.dataset_transform("sky", 4)
    assert torch.equal(sky(clip, True), sky(clip, False))  # the official Sky chain never flips
    with pytest.raises(UserError, match="taichi frames are 4x4"):
        T.dataset_transform("taichi", 8)(clip, False)
    full = T.dataset_transform("ffs", 4)(torch.tensor([0, 255], dtype=torch.uint8).repeat_interleave(8).reshape(1, 1, 4, 4).expand(1, 3, 4, 4), False)
    assert float(full.min()) == -1.0 and float(full.max()) == 1.0


# ------------------------------------------------------------------------------------ clips


def test_exact_stride_and_every_start_position_is_drawn():
    videos = _index_video(20)[None]
    ds = ClipDataset.from_arrays(videos, [0], num_frames=4, frame_interval=3, image_size=8)
    starts = set()
    for epoch in range(200):
        frames = _frames_of(ds[(0, epoch)]["video"])
        assert np.diff(frames).tolist() == [3, 3, 3]
        starts.add(frames[0])
    assert starts == set(range(0, 20 - 10 + 1))  # span 10: starts 0..10, including the last one


def test_items_are_deterministic_and_joint_images_carry_labels():
    videos = np.stack([_index_video(12) + 20 * i for i in range(3)])
    ds = ClipDataset.from_arrays(videos, [0, 1, 2], num_frames=3, frame_interval=2, image_size=8, num_images=5, seed=7)
    a, b = ds[(1, 4)], ds[(1, 4)]
    assert torch.equal(a["video"], b["video"]) and torch.equal(a["image_labels"], b["image_labels"])
    assert a["video"].shape == (8, 3, 8, 8) and a["label"].item() == 1
    for img, lab in zip(a["video"][3:], a["image_labels"].tolist()):  # each image belongs to its labelled video
        value = _frames_of(img[None])[0]
        assert lab * 20 <= value < lab * 20 + 12
    assert not torch.equal(ds[(1, 5)]["video"], a["video"])  # another epoch, another draw


def test_too_short_videos_are_skipped_and_counted(tmp_path):
    write_frames(tmp_path / "long", _index_video(10))
    write_frames(tmp_path / "short", _index_video(5))
    ds = ClipDataset.from_folder("taichi", tmp_path, num_frames=4, frame_interval=2, image_size=8)
    assert len(ds) == 1 and [name for name, _ in ds.skipped] == ["short"]
    with pytest.raises(UserError, match="no usable video"):
        ClipDataset.from_folder("taichi", tmp_path, num_frames=8, frame_interval=3, image_size=8)


def test_missing_or_empty_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        ClipDataset.from_folder("sky", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty"):
        ClipDataset.from_folder("ffs", tmp_path / "empty")


def test_video_failing_mid_epoch_is_replaced_and_counted(tmp_path):
    for name in ("a", "b", "c"):
        write_frames(tmp_path / name, _index_video(6))
    ds = ClipDataset.from_folder("taichi", tmp_path, num_frames=3, frame_interval=1, image_size=8)
    (tmp_path / "b" / "000003.png").write_bytes(b"not a png")  # corrupt after listing
    for f in range(6):
        if f != 3:
            shutil.copy(tmp_path / "a" / "000000.png", tmp_path / "b" / f"{f:06d}.png")
    item = ds[(1, 0)]
    # either the clip avoided frame 3 or the video was replaced; either way no crash
    assert item["skipped"] in (0, 1) and item["video"].shape == (3, 3, 8, 8)
    skips = sum(ds[(1, e)]["skipped"] for e in range(20))
    assert skips > 0  # every start 0..3 touches frame 3 or not: over 20 epochs some hit it


def test_sky_nested_frame_folders(tmp_path):
    write_frames(tmp_path / "sky_train" / "v1" / "c1", _index_video(6))
    write_frames(tmp_path / "sky_train" / "v1" / "c2", _index_video(6))
    write_frames(tmp_path / "sky_train" / "v2" / "c1", _index_video(6))
    entries, labels, _, _ = list_videos("sky", tmp_path / "sky_train")
    assert [e.name for e in entries] == ["v1/c1", "v1/c2", "v2/c1"] and labels == [0, 0, 0]


def test_frames_play_in_the_order_of_their_numbers_and_a_gap_is_skipped(tmp_path):
    """Training reads frame_0 ... frame_15 in numeric order (not 0, 1, 10-15, 2-9); a folder missing a frame is
    skipped, with the reason, like an unreadable video."""
    from PIL import Image

    (tmp_path / "named").mkdir()
    for t, frame in enumerate(_index_video(16)):
        Image.fromarray(frame).save(tmp_path / "named" / f"frame_{t}.png")
    write_frames(tmp_path / "gap", _index_video(16))
    (tmp_path / "gap" / "000005.png").unlink()
    ds = ClipDataset.from_folder("taichi", tmp_path, num_frames=16, frame_interval=1, image_size=8)
    assert [e.name for e in ds.entries] == ["named"] and [name for name, _ in ds.skipped] == ["gap"]
    assert "jump from 4 to 6" in ds.skipped[0][1]
    assert _frames_of(ds[(0, 0)]["video"]) == list(range(16))


def test_arrays_of_another_shape_are_refused_for_training():
    with pytest.raises(UserError, match=r"training videos: array shape \(16, 8, 8, 1\)"):
        ClipDataset.from_arrays(np.zeros((16, 8, 8, 1), np.uint8), [0], num_frames=4, frame_interval=1, image_size=8)


def test_ucf101_labels_follow_sorted_classes_and_split_list(tmp_path):
    root = tmp_path / "UCF-101"
    for cls in ("Zumba", "ApplyEyeMakeup", "Biking"):
        for g in (1, 2):
            write_video(root / cls / f"v_{cls}_g0{g}_c01.avi", _index_video(8, 32))
    entries, labels, classes, _ = list_videos("ucf101", root)
    assert classes == ["ApplyEyeMakeup", "Biking", "Zumba"]
    assert {e.name: lab for e, lab in zip(entries, labels)}["Zumba/v_Zumba_g02_c01.avi"] == 2
    split = tmp_path / "trainlist01.txt"
    split.write_text("Biking/v_Biking_g01_c01.avi 2\nzumba/v_Zumba_g01_c01.avi 101\n")
    entries, labels, _, _ = list_videos("ucf101", root, split)
    assert [e.name for e in entries] == ["Biking/v_Biking_g01_c01.avi", "Zumba/v_Zumba_g01_c01.avi"] and labels == [1, 2]
    (root / "Biking" / "v_Biking_g09_c01.avi").write_bytes(b"\x00" * 100)  # corrupt file: skipped at listing
    ds = ClipDataset.from_folder("ucf101", root, num_frames=4, frame_interval=2, image_size=16)
    assert len(ds) == 6 and any("g09" in name for name, _ in ds.skipped)
    assert ds[(0, 0)]["video"].shape == (4, 3, 16, 16)


def test_listing_skips_crash_leftovers_and_reports_symlink_loops(tmp_path):
    """Temporary files of an interrupted copy/write are not frames or videos; a looping symlink is skipped, named."""
    import os

    sky = tmp_path / "sky"
    write_frames(sky / "v1", _index_video(6))
    shutil.copy(sky / "v1" / "000002.png", sky / "v1" / ".000006.png.a1b2c3d4.tmp.png")
    (sky / ".hidden").mkdir()
    write_frames(sky / ".hidden" / "v9", _index_video(6))
    entries, _, _, _ = list_videos("sky", sky)
    assert [(e.name, e.num_frames) for e in entries] == [("v1", 6)]
    root = tmp_path / "UCF-101"
    write_video(root / "Biking" / "v_Biking_g01_c01.avi", _index_video(8, 32))
    write_video(root / "Zumba" / "v_Zumba_g01_c01.avi", _index_video(8, 32))
    os.symlink("loop", root / "loop")  # a class "folder" that points at itself
    os.symlink("v_x.avi", root / "Biking" / "v_x.avi")
    (root / "Zumba" / ".v_Zumba_g02_c01.avi.q1w2e3r4.tmp.avi").write_bytes(b"half a video")
    entries, labels, classes, skipped = list_videos("ucf101", root)
    assert classes == ["Biking", "Zumba"] and labels == [0, 1] and len(entries) == 2
    assert sorted(os.path.basename(name) for name, _ in skipped) == ["loop", "v_x.avi"]


# ------------------------------------------------------------------------------------ batch order


def test_global_batch_is_the_same_for_any_split_into_ranks_and_micro_steps():
    single = StepBatchSampler(50, 8, seed=3)
    split = [StepBatchSampler(50, 2, world=2, rank=r, accum=2, seed=3) for r in range(2)]
    iters = [iter(s) for s in split]
    for step in range(12):  # crosses the epoch boundary (6 steps per epoch)
        whole = next(iter(StepBatchSampler(50, 8, seed=3, start_step=step)))
        parts = [b for it in iters for b in itertools.islice(it, 2)]
        assert sorted(sum(parts, [])) == sorted(whole)
        assert len(set(whole)) == 8 and all(k[1] == step // 6 for k in whole)
    assert single.steps_per_epoch == 6
    with pytest.raises(UserError, match="fewer than one global batch"):
        StepBatchSampler(3, 2, world=2)


def test_dataloader_workers_give_the_same_batches(tmp_path):
    videos = np.stack([_index_video(9) + 10 * i for i in range(4)])
    ds = ClipDataset.from_arrays(videos, [0, 1, 0, 1], num_frames=3, frame_interval=2, image_size=8)
    def batches(workers):
        dl = torch.utils.data.DataLoader(ds, batch_sampler=StepBatchSampler(4, 2, seed=1), collate_fn=collate, num_workers=workers)
        return [b["video"] for b in itertools.islice(dl, 3)]
    assert all(torch.equal(a, b) for a, b in zip(batches(0), batches(2)))
