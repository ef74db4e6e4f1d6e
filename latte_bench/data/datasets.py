"""Training datasets: 16-frame clips (plus K single frames for joint training) from the four benchmarks.

:class:`ClipDataset` turns a set of videos (read through :mod:`latte_bench.data.video`)
into training items ``{"video": float (T+K, 3, S, S) in [-1, 1], "label": int64,
"image_labels": int64 (K,), "skipped": int}``. Layouts (:func:`list_videos`, by the dataset's
``DatasetSpec.train_layout``):

- ``video_files`` (ffs): FaceForensics, video files anywhere under ROOT (recursive).
- ``frame_folders`` (sky, taichi): every folder holding frames, at any depth (``sky_train/<video>/<clip>/*.jpg``).
- ``class_folders`` (ucf101): ``ROOT/<Class>/*.avi``; labels index the sorted class folder names; optional
  official split list (``trainlist01.txt`` / ``testlist01.txt``).
- ``demo_set`` (demo): :mod:`latte_bench.data.demo` sets on disk (labels from ``labels.json``) or in memory.

Temporal sampling: ``num_frames`` frames at an exact stride of ``frame_interval`` from a
start drawn uniformly over *every* valid position ``0..n - span`` (``span = (T-1)·s + 1``).
The official code instead uses a ``linspace`` stride of about 3.13 for video files and
never draws the last valid start; both are deliberately not reproduced (docs/training.md).
Videos shorter than ``span`` are skipped at construction and counted in ``skipped``; a
video that fails to decode mid-epoch is replaced by another one (deterministically) and
counted in the item's ``skipped`` field, so an epoch never crashes on one bad file.

Randomness (start frame, flip, joint-training images) comes from a generator seeded with
``(seed, epoch, index)``: items are identical whatever the number of workers, processes
or the resume point. The sampler passes ``(index, epoch)`` keys (see :class:`StepBatchSampler`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from latte_bench.data.registry import get_dataset
from latte_bench.data.transforms import dataset_transform
from latte_bench.data.video import IMAGE_EXTS, MemoryReader, VideoEntry, check_video_array, open_videos
from latte_bench.errors import UserError
from latte_bench.fsutil import is_data_name


# ------------------------------------------------------------------------------------ listing


def _frame_folder_sources(root: Path):
    """VideoSources for every folder below ``root`` that holds frames (grouped by parent)."""

    parents: dict[str, set[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):  # symlinked folders are not entered (no loops)
        dirnames[:] = sorted(d for d in dirnames if is_data_name(d))
        if any(f.lower().endswith(IMAGE_EXTS) and is_data_name(f) for f in filenames) and Path(dirpath) != root:
            p = Path(dirpath)
            parents.setdefault(str(p.parent), set()).add(p.name)
    entries, skipped = [], []
    for parent in sorted(parents):
        source = open_videos(parent, skip_bad=True)
        prefix = Path(parent).relative_to(root).as_posix()
        for e in source.entries:
            if e.name in parents[parent]:
                e.name = e.name if prefix == "." else f"{prefix}/{e.name}"
                entries.append(e)
        skipped += source.skipped
    return entries, skipped


def _is_dir(entry: os.DirEntry) -> bool:
    """``entry.is_dir()``, False for a symlink that loops or dangles (open_videos reports those)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _read_split(split: str | os.PathLike) -> set[str]:
    path = Path(split)
    if not path.is_file():
        raise UserError(f"{path}: split list not found; pass the official trainlist0N.txt/testlist0N.txt path")
    names = set()
    for line in path.read_text().splitlines():
        if line.strip():
            names.add(line.split()[0].strip().lower())
    return names


def list_videos(kind: str, root: str | os.PathLike, split: str | os.PathLike | None = None):
    """The videos of a benchmark at ``root``: ``(entries, labels, class_names, skipped)``.

    ``kind`` is a dataset name; its ``DatasetSpec.train_layout`` says how the videos are listed.

    ``entries`` are :class:`latte_bench.data.video.VideoEntry` objects, ``labels`` their class
    indices (0 for unconditional sets), ``skipped`` a list of ``(name, reason)``.
    """

    layout = get_dataset(kind).train_layout
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: data folder not found; pass --data pointing at the {kind} videos")
    if not any(os.scandir(root)):
        raise UserError(f"{root}: data folder is empty; download/extract the {kind} videos there")
    class_names: list[str] = []
    if layout == "frame_folders":
        entries, skipped = _frame_folder_sources(root)
        if not entries:
            raise UserError(f"{root}: no frame folders found (expected <video>/<frame>.png|jpg below it)")
        labels = [0] * len(entries)
    elif layout == "demo_set":
        array = root / "videos.npz"
        source = open_videos(array if array.is_file() else root, skip_bad=True)
        entries, skipped = list(source.entries), list(source.skipped)
        meta_path = root / "labels.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            class_names = list(meta.get("classes", []))
            table = meta.get("labels", {})
            labels = [int(table.get(e.name, 0)) for e in entries]
        else:
            labels = [0] * len(entries)
    else:
        source = open_videos(root, skip_bad=True)
        if source.kind != "videos":
            raise UserError(f"{root}: {kind} expects video files (mp4/avi) below the folder, found {source.kind}")
        entries, skipped = list(source.entries), list(source.skipped)
        labels = [0] * len(entries)
        if layout == "class_folders":
            class_names = sorted(d.name for d in os.scandir(root) if is_data_name(d.name) and _is_dir(d))
            index = {c: i for i, c in enumerate(class_names)}
            keep = []
            for e in entries:
                parts = e.name.split("/")
                if len(parts) != 2:
                    raise UserError(f"{root / e.name}: UCF101 expects ROOT/<Class>/<video>.avi; move the file into its class folder")
                keep.append(index[parts[0]])
            labels = keep
            if split is not None:
                wanted = _read_split(split)
                chosen = [i for i, e in enumerate(entries) if e.name.lower() in wanted]
                if not chosen:
                    raise UserError(f"{split}: no listed video was found under {root}; check that --data is the UCF-101 folder")
                missing = len(wanted) - len(chosen)
                if missing:
                    skipped.append((str(split), f"{missing} listed videos not found under {root}"))
                entries = [entries[i] for i in chosen]
                labels = [labels[i] for i in chosen]
    return entries, labels, class_names, skipped


# ------------------------------------------------------------------------------------ datasets


class ClipDataset(torch.utils.data.Dataset):
    """Clips of ``num_frames`` frames at stride ``frame_interval``, plus ``num_images`` single frames.

    Item keys are ints or ``(index, epoch)`` tuples. Items: ``video`` float32
    (num_frames + num_images, 3, image_size, image_size) in [-1, 1] (clip frames first),
    ``label`` int64 (the clip's class), ``image_labels`` int64 (num_images,) (the images'
    classes: they come from other, randomly drawn videos), ``skipped`` (videos replaced
    because they failed to decode).
    """

    def __init__(
        self,
        kind: str,
        entries: list,
        labels: Sequence[int],
        *,
        num_frames: int = 16,
        frame_interval: int = 3,
        image_size: int = 256,
        num_images: int = 0,
        seed: int = 0,
        class_names: Sequence[str] = (),
        skipped: Sequence[tuple[str, str]] = (),
        root: str | None = None,
    ):
        self.kind, self.root = kind, root
        self.num_frames, self.frame_interval, self.num_images = num_frames, frame_interval, num_images
        self.image_size, self.seed = image_size, seed
        self.class_names = list(class_names)
        self.transform = dataset_transform(kind, image_size)
        self.span = (num_frames - 1) * frame_interval + 1
        self.skipped = list(skipped)
        self.entries, self.labels = [], []
        for e, lab in zip(entries, labels):
            if e.num_frames < self.span:
                self.skipped.append((e.name, f"{e.num_frames} frames, fewer than the {self.span} a clip spans"))
            else:
                self.entries.append(e)
                self.labels.append(int(lab))
        if not self.entries:
            where = root or "the dataset"
            raise UserError(
                f"{where}: no usable video ({len(self.skipped)} skipped: too short for {num_frames} frames at interval "
                f"{frame_interval}, or unreadable); check --data or lower --frame-interval"
            )
        self.num_classes = max(len(self.class_names), max(self.labels) + 1)

    @classmethod
    def from_folder(cls, kind: str, root: str | os.PathLike, split=None, **options) -> "ClipDataset":
        entries, labels, class_names, skipped = list_videos(kind, root, split)
        return cls(kind, entries, labels, class_names=class_names, skipped=skipped, root=str(root), **options)

    @classmethod
    def from_arrays(cls, videos: np.ndarray, labels: Sequence[int], kind: str = "demo", class_names=(), **options) -> "ClipDataset":
        """Clips from in-memory uint8 videos (N, T, H, W, 3) (e.g. :func:`make_demo_videos`); other shapes are refused."""

        videos = check_video_array(videos, "training videos")
        entries = [VideoEntry(f"{i:06d}", videos.shape[1], MemoryReader(videos, i)) for i in range(len(videos))]
        return cls(kind, entries, labels, class_names=class_names, root="<memory>", **options)

    def __len__(self) -> int:
        return len(self.entries)

    def _clip(self, i: int, rng: np.random.Generator) -> torch.Tensor:
        entry = self.entries[i]
        start = int(rng.integers(0, entry.num_frames - self.span + 1))
        frames = entry.read(range(start, start + self.span, self.frame_interval))
        clip = torch.from_numpy(frames).permute(0, 3, 1, 2)  # (T, 3, H, W) uint8
        return self.transform(clip, bool(rng.random() < 0.5))

    def _image(self, rng: np.random.Generator) -> tuple[torch.Tensor, int]:
        j = int(rng.integers(0, len(self.entries)))
        entry = self.entries[j]
        frame = entry.read([int(rng.integers(0, entry.num_frames))])
        image = self.transform(torch.from_numpy(frame).permute(0, 3, 1, 2), bool(rng.random() < 0.5))
        return image, self.labels[j]

    def __getitem__(self, key) -> dict:
        index, epoch = (key if isinstance(key, tuple) else (key, 0))
        index = int(index)
        skipped = 0
        for attempt in range(len(self.entries)):
            i = (index + attempt * 7919) % len(self.entries)  # deterministic replacement walk
            rng = np.random.default_rng([self.seed, int(epoch), i, attempt])
            try:
                clip = self._clip(i, rng)
                images, image_labels = [], []
                for _ in range(self.num_images):
                    img, lab = self._image(rng)
                    images.append(img)
                    image_labels.append(lab)
                break
            except UserError as e:
                skipped += 1
                print(f"latte-bench: warning: skipping {self.entries[i].name}: {e}", file=sys.stderr)
                if skipped >= min(20, len(self.entries)):
                    raise UserError(f"{self.root}: {skipped} videos in a row failed to decode; check the data files") from e
        video = torch.cat([clip, *images]) if images else clip
        return {
            "video": video,
            "label": torch.tensor(self.labels[i], dtype=torch.int64),
            "image_labels": torch.tensor(image_labels, dtype=torch.int64),
            "skipped": skipped,
        }


# ------------------------------------------------------------------------------------ sampling order


class StepBatchSampler(torch.utils.data.Sampler):
    """Batches of ``(index, epoch)`` keys for one rank, from optimizer step ``start_step`` on (endless).

    Each epoch is a permutation of the dataset seeded by ``(seed, epoch)``, cut into global
    batches of ``micro_batch · world · accum`` keys (the remainder is dropped, like the
    official ``drop_last``). Optimizer step ``s`` uses global batch ``s mod steps_per_epoch``
    of epoch ``s // steps_per_epoch``; within it, micro-step ``m`` of rank ``r`` takes keys
    ``[(m·world + r)·micro_batch, +micro_batch)``. The data position is therefore a pure
    function of the step: resuming at step ``k`` continues exactly, and the global batch is
    the same for any split into processes and micro-steps.
    """

    def __init__(self, dataset_len: int, micro_batch: int, *, world: int = 1, rank: int = 0, accum: int = 1,
                 seed: int = 0, start_step: int = 0):
        self.n, self.micro, self.world, self.rank, self.accum = dataset_len, micro_batch, world, rank, accum
        self.seed, self.start_step = seed, start_step
        self.global_batch = micro_batch * world * accum
        self.steps_per_epoch = dataset_len // self.global_batch
        if self.steps_per_epoch == 0:
            raise UserError(
                f"the dataset has {dataset_len} clips, fewer than one global batch of {self.global_batch}; "
                "lower --batch-size or add data"
            )

    def _perm(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def batches_for_step(self, step: int, perm: list[int] | None = None) -> list[list[tuple[int, int]]]:
        epoch, pos = divmod(step, self.steps_per_epoch)
        perm = self._perm(epoch) if perm is None else perm
        base = pos * self.global_batch
        out = []
        for m in range(self.accum):
            lo = base + (m * self.world + self.rank) * self.micro
            out.append([(perm[k], epoch) for k in range(lo, lo + self.micro)])
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step, cached = self.start_step, (None, None)
        while True:
            epoch = step // self.steps_per_epoch
            if cached[0] != epoch:
                cached = (epoch, self._perm(epoch))
            yield from self.batches_for_step(step, cached[1])
            step += 1

    def __len__(self) -> int:  # endless; DataLoader only needs this for len(), which we never call
        return sys.maxsize


def collate(items: list[dict]) -> dict:
    """Stack items into a batch; ``skipped`` becomes the batch total."""
    out = {k: torch.stack([it[k] for it in items]) for k in items[0] if k != "skipped"}
    out["skipped"] = sum(it["skipped"] for it in items)
    return out
