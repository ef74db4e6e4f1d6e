"""The feature-extraction loop shared by every metric (FVD, FID, IS, KVD).

``extract_stats(source, clips, detector, preprocess)`` reads each clip (uint8 (T,H,W,3)),
batches them, runs ``preprocess`` then ``detector`` under ``torch.inference_mode`` in fp32
(TF32 off on CUDA) and accumulates :class:`FeatureStats`.

Reproducibility across batch sizes and process counts: the clip list is cut into fixed
blocks of ``block_size`` clips, independent of the batch size and of the world size. Under
torchrun, block ``b`` is computed by rank ``b % world``; after each round of ``world``
blocks the per-block float64 statistics are all-gathered and every rank adds them in block
order. The single-process run adds the very same per-block sums in the very same order, so
the totals are bitwise identical whenever the detector returns the same feature for a clip
whatever batch it sits in (the I3D on CPU does, for batches of 2 or more at a fixed thread
count, so a batch of one clip is run doubled). Memory stays flat: one block of features per
rank at a time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from latte_bench.data.clips import Clip
from latte_bench.data.video import VideoSource
from latte_bench.device import exact_fp32
from latte_bench.errors import UserError
from latte_bench.fsutil import write_json
from latte_bench.metrics.stats import FeatureStats
from latte_bench import distributed as dist

Detector = Callable[[torch.Tensor], torch.Tensor]
Preprocess = Callable[[torch.Tensor], torch.Tensor]


class _ClipDataset(torch.utils.data.Dataset):
    """Reads clips; a failure comes back as a message string (worker tracebacks stay out of it)."""

    def __init__(self, source: VideoSource, clips: Sequence[Clip]):
        self.source, self.clips = source, list(clips)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        clip = self.clips[i]
        try:
            return i, self.source.entries[clip.video].read(clip.indices)
        except UserError as e:
            return i, str(e)


def _collate(batch):
    return batch


def extract_stats(
    source: VideoSource,
    clips: Sequence[Clip],
    detector: Detector,
    preprocess: Preprocess,
    *,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    block_size: int = 256,
    keep_features: bool = False,
    skip_bad: bool = False,
    num_workers: int = 0,
    desc: str = "features",
    progress: bool = True,
) -> tuple[FeatureStats, dict]:
    """Statistics of ``detector(preprocess(clips))`` over all ranks; returns (stats, info).

    ``preprocess`` maps uint8 (B,T,H,W,3) on ``device`` to the detector input; ``detector``
    returns (B, D) features. ``info`` has ``clips`` (rows accumulated), ``skipped`` (names of
    unreadable clips, only with ``skip_bad``) and ``resolution`` (H, W).
    """
    world, rank = dist.world_size(), dist.rank()
    blocks = [list(range(s, min(s + block_size, len(clips)))) for s in range(0, len(clips), block_size)]
    mine = blocks[rank::world]
    my_positions = [p for b in mine for p in b]
    loader = torch.utils.data.DataLoader(
        _ClipDataset(source, [clips[p] for p in my_positions]),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_collate,
        persistent_workers=False,
    )
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=len(my_positions), desc=desc + (f" (rank 0 of {world})" if world > 1 else ""), unit="clip")
    stream = _feature_stream(loader, detector, preprocess, device, [clips[p] for p in my_positions], skip_bad, bar)
    total = FeatureStats(keep_features=keep_features)
    skipped: list[str] = []
    resolution = None
    n_rounds = (len(blocks) + world - 1) // world
    try:
        for r in range(n_rounds):
            payload = None
            if r < len(mine):
                try:
                    payload = _block_stats(stream, len(mine[r]), keep_features)
                except UserError as e:
                    payload = {"error": str(e)}
            parts = dist.all_gather_object(payload)
            for part in parts:  # rank order == block order within a round
                if part is None:
                    continue
                if "error" in part:
                    raise UserError(part["error"])
                if part["resolution"] is not None:
                    if resolution is None:
                        resolution = part["resolution"]
                    elif part["resolution"] != resolution:
                        raise UserError(
                            f"{source.root}: mixed resolutions, {part['example']} is {part['resolution'][1]}x{part['resolution'][0]} "
                            f"but other videos are {resolution[1]}x{resolution[0]}; resize them to one size"
                        )
                total.merge(part["stats"])
                skipped.extend(part["skipped"])
    finally:
        if bar is not None:
            bar.close()
    return total, {"clips": total.n, "skipped": skipped, "resolution": resolution}


def _block_stats(stream, count: int, keep_features: bool) -> dict:
    """Pull ``count`` clip results from ``stream`` and sum them as one block."""
    rows, skipped, resolution, example = [], [], None, None
    for _ in range(count):
        name, feature, res = next(stream)
        if feature is None:
            skipped.append(name)
            continue
        if resolution is None:
            resolution, example = res, name
        elif res != resolution:
            raise UserError(f"{name}: mixed resolutions, {res[1]}x{res[0]} versus {resolution[1]}x{resolution[0]} in {example}; resize them to one size")
        rows.append(feature)
    stats = FeatureStats(keep_features=keep_features)
    if rows:
        stats.append(np.stack(rows))
    return {"stats": stats, "skipped": skipped, "resolution": resolution, "example": example}


def _feature_stream(loader, detector, preprocess, device, clips, skip_bad, bar):
    """Yield (clip name, float32 feature or None if skipped, (H, W)) in clip order."""
    with exact_fp32(), torch.inference_mode():
        for batch in loader:
            good, results = [], {}
            for pos, item in batch:
                if isinstance(item, str):
                    if not skip_bad:
                        raise UserError(item)
                    results[pos] = (clips[pos].name, None, None)
                else:
                    good.append((pos, item))
            if good:
                shapes = {item.shape for _, item in good}
                if len(shapes) > 1:
                    (p0, a0), (p1, a1) = good[0], next((p, a) for p, a in good if a.shape != good[0][1].shape)
                    raise UserError(
                        f"{clips[p1].name}: mixed resolutions, {a1.shape[2]}x{a1.shape[1]} versus {a0.shape[2]}x{a0.shape[1]} "
                        f"in {clips[p0].name}; resize them to one size"
                    )
                x = torch.from_numpy(np.stack([item for _, item in good])).to(device)
                # A batch of one goes through different CPU kernels (oneDNN) than larger
                # batches and gives features that differ in the last bits; doubling it keeps
                # every clip's feature independent of the batch size and of the sharding.
                feats = detector(preprocess(x if len(good) > 1 else x.repeat(2, 1, 1, 1, 1)))
                feats = feats[: len(good)].float().cpu().numpy()
                if feats.ndim != 2 or feats.shape[0] != len(good):
                    raise RuntimeError(f"detector returned shape {feats.shape}; expected ({len(good)}, D)")
                for (pos, item), f in zip(good, feats):
                    results[pos] = (clips[pos].name, f, tuple(item.shape[1:3]))
            for pos, _ in batch:
                yield results[pos]
            if bar is not None:
                bar.update(len(batch))


# ------------------------------------------------------------------ cache of real statistics


def stats_cache_root(metric: str, cache_dir=None) -> Path:
    """Folder of cached real statistics: ``cache_dir``, else ``$LATTE_BENCH_CACHE/<metric>_stats``."""
    if cache_dir is not None:
        return Path(cache_dir)
    from latte_bench.metrics.weights import cache_dir as weights_cache_dir

    return weights_cache_dir() / f"{metric}_stats"


def real_stats_key(settings: dict) -> str:
    """sha256 of the canonical JSON of everything that determines the real statistics."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _load_cached(path: Path):
    meta = path.with_suffix(".json")
    if not (path.is_file() and meta.is_file()):
        return None
    try:
        info = json.loads(meta.read_text())["extract"]
        return FeatureStats.load(path), info
    except (UserError, ValueError, KeyError):
        return None  # unreadable cache entry: recompute and overwrite it


def cached_real_stats(metric: str, settings: dict, compute: Callable[[], tuple], *, cache: bool = True, cache_dir=None):
    """``(stats, extract_info, cache_hit, key)`` for the real set described by ``settings``.

    With ``cache`` the statistics are read from ``stats_cache_root(metric, cache_dir)/<key>.npz``
    (+ ``.json``), where ``key`` hashes ``settings``; otherwise, or on a miss, ``compute()``
    returns ``(stats, extract_info)`` and rank 0 stores them atomically. Under torchrun rank 0 reads the file and broadcasts it.
    """
    key = real_stats_key(settings)
    cache_file = stats_cache_root(metric, cache_dir) / f"{key}.npz"
    if cache:
        loaded = dist.broadcast_object(_load_cached(cache_file) if dist.is_main() else None)
        if loaded is not None:
            return (*loaded, True, key)
    stats, info = compute()
    if cache and dist.is_main():
        stats.save(cache_file)
        write_json(cache_file.with_suffix(".json"), {"settings": settings, "extract": info})
    return stats, info, False, key
