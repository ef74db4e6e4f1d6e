"""The feature pass shared by every metric: clips in, float64 statistics out, one read per source.

:func:`run_pass` reads each clip of a source once and feeds it to every :class:`Head` (a
detector with its preprocessing and its share of the clips: the I3D takes the whole clip,
the Inception each of its frames, the C3D its first 16 frames), accumulating one
:class:`FeatureStats` per head. Detectors run under ``torch.inference_mode`` with TF32 off
(:func:`latte_bench.device.exact_fp32`, restored afterwards).

Reproducibility across batch sizes, process counts and resumes: the clip list is cut into
fixed blocks of ``block_size`` clips. Under torchrun block ``b`` is computed by rank
``b % world``; after each round of ``world`` blocks the per-block float64 sums are gathered
and every rank adds them in block order. A single process adds the same per-block sums in
the same order, and a resumed run reads finished blocks back from ``work_dir`` instead of
recomputing them, so the totals are bitwise identical whenever the detector gives a clip the
same feature whatever batch it sits in (the I3D on CPU does for batches of 2 or more at a
fixed thread count, so a batch of one is run doubled). Memory stays flat: one block of
features per rank at a time (plus the kept rows where KVD/KID/IS need them).

Real statistics are cached (:func:`cached_real_stats`) under a key that hashes every setting,
with a sha256 of the stored arrays checked on every read; every cache entry and every block also
stores the key it belongs to (and a block its index), checked on read, so a file copied under
another name is never used.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from latte_bench import distributed as dist
from latte_bench.data.clips import Clip
from latte_bench.device import exact_fp32
from latte_bench.errors import NAME_ONLY, UserError
from latte_bench.fsutil import atomic_path, write_errors, write_json
from latte_bench.metrics.protocol import settings_key
from latte_bench.metrics.stats import FeatureStats
from latte_bench.metrics.weights import cache_dir as weights_cache_dir


@dataclass
class Head:
    """One detector fed by a pass.

    ``items(clips)`` maps uint8 clips (B, T, H, W, 3) to the detector's uint8 items (B·k, ...);
    ``preprocess`` maps a batch of items on the device to the detector input; ``detector``
    returns (rows, D) features. Only clips at positions ``< count`` are fed to this head. The evaluation
    builds one from a :class:`~latte_bench.metrics.detector.Detector` and its loaded network.
    """

    name: str
    detector: Callable[[torch.Tensor], torch.Tensor]
    preprocess: Callable[[torch.Tensor], torch.Tensor]
    items: Callable[[torch.Tensor], torch.Tensor]
    count: int
    keep_features: bool = False
    unit: str = "clip"


@dataclass
class PassResult:
    """Per-head statistics and what the pass saw."""

    stats: dict[str, FeatureStats]
    clips: int  # clips read (not skipped)
    skipped: list[str]
    resolution: tuple[int, int] | None
    resumed_blocks: int = 0


def run_pass(source, clips: Sequence[Clip], heads: Sequence[Head], *, batch_size: int = 8, device="cpu",
             block_size: int = 256, skip_bad: bool = False, num_workers: int = 0, desc: str = "features",
             unit: str = "clip", progress: bool = True, work_dir: str | Path | None = None, work_key: str | None = None,
             read_options: dict | None = None) -> PassResult:
    """Statistics of every head over ``clips`` of ``source`` (a :mod:`latte_bench.metrics.sources` source), all ranks.

    ``work_dir``: finished blocks are stored there and read back on a rerun (resume); each block holds
    ``work_key`` (the key of the evaluation it belongs to) and its index, and is used only when both match.
    ``read_options``: extra keywords for ``source.iter_clips`` (e.g. the dataset for a checkpoint).
    """
    world, rank = dist.world_size(), dist.rank()
    if source.stream and world > 1:
        raise UserError("a stream of videos (iterable/callable) cannot be sharded under torchrun; pass an array or a folder")
    blocks = [list(range(s, min(s + block_size, len(clips)))) for s in range(0, len(clips), block_size)]
    mine = list(range(len(blocks)))[rank::world]
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(clips), desc=desc + (f" ({world} ranks)" if world > 1 else ""), unit=unit, dynamic_ncols=True)
        kept = sum(_block_path(work_dir, b).exists() for b in range(len(blocks))) if work_dir is not None else 0
        if kept:
            bar.write(f"{desc}: resuming: {kept} of {len(blocks)} blocks done (in {work_dir})", file=sys.stderr)
    total = {h.name: FeatureStats(keep_features=h.keep_features) for h in heads}
    skipped: list[str] = []
    resolution, seen, resumed = None, 0, 0
    stream_iter = None
    if source.stream:  # read once, in order, across all blocks
        stream_iter = source.iter_clips(list(clips), batch_size=batch_size, **(read_options or {}))
    try:
        for r in range((len(blocks) + world - 1) // world):
            payload, ticked = None, 0
            if r < len(mine):
                b = mine[r]
                block_clips = [clips[p] for p in blocks[b]]
                saved = _load_block(work_dir, b, heads, work_key) if work_dir is not None else None
                if saved is not None:
                    payload, resumed = saved, resumed + 1
                else:
                    try:
                        it = stream_iter if stream_iter is not None else source.iter_clips(
                            block_clips, batch_size=batch_size, num_workers=num_workers, **(read_options or {}))
                        def tick(n: int) -> None:  # per batch on this rank; other ranks' blocks count when gathered
                            nonlocal ticked
                            ticked += n
                            bar.update(n)

                        payload = _block(it, block_clips, blocks[b][0], heads, batch_size, device, skip_bad,
                                         stream_iter is not None, tick if bar is not None else None)
                    except UserError as e:
                        payload = {"error": e}
                    else:
                        if work_dir is not None:
                            _save_block(work_dir, b, payload, work_key)
            for who, part in enumerate(dist.all_gather_object(payload)):  # rank order == block order within a round
                if part is None:
                    continue
                if "error" in part:
                    raise part["error"]
                if part["resolution"] is not None:
                    res = tuple(part["resolution"])
                    if resolution is None:
                        resolution = res
                    elif res != resolution:
                        raise UserError(f"{part['example']}: mixed resolutions, {res[1]}x{res[0]} frames but other videos are "
                                        f"{resolution[1]}x{resolution[0]}; resize them to one size")
                for h in heads:
                    total[h.name].merge(part["stats"][h.name])
                skipped.extend(part["skipped"])
                seen += part["clips"]
                if bar is not None:
                    bar.update(part["clips"] + len(part["skipped"]) - (ticked if who == 0 else 0))
    finally:
        if bar is not None:
            bar.close()
    return PassResult(total, seen, skipped, resolution, resumed)


def _block(it, block_clips: list[Clip], first_pos: int, heads, batch_size, device, skip_bad, stream: bool,
           tick=None) -> dict:
    """Read ``block_clips`` from ``it`` and sum each head's features over the block.

    ``tick(n)``, if given, is called after each detector batch with the clips (scored or skipped) it settled."""
    rows = {h.name: [] for h in heads}
    pending: list[tuple[int, np.ndarray]] = []
    skipped, resolution, example, count = [], None, None, 0
    settled = 0  # clips and skipped files reported through tick

    def flush():
        nonlocal settled
        if not pending:
            return
        x = torch.from_numpy(np.stack([a for _, a in pending]))
        for h in heads:
            take = [i for i, (pos, _) in enumerate(pending) if pos < h.count]
            if take:
                rows[h.name].append(_features(h, x[take], device, batch_size))
        pending.clear()
        if tick is not None:
            tick(count + len(skipped) - settled)
            settled = count + len(skipped)

    for k, clip in enumerate(block_clips):
        got = next(it, None)
        if got is None:
            if stream:
                break  # the stream ended: fewer clips than asked (counted by the caller)
            raise RuntimeError("source yielded fewer clips than requested")
        got_clip, item = got
        if isinstance(item, (str, UserError)):  # an unreadable clip: its message, or the error itself
            if not skip_bad:
                raise item if isinstance(item, UserError) else UserError(item)
            skipped.append(got_clip.name)
            continue
        res = tuple(item.shape[1:3])
        if resolution is None:
            resolution, example = res, got_clip.name
        elif res != resolution:
            raise UserError(f"{got_clip.name}: mixed resolutions, {res[1]}x{res[0]} frames but {example} is {resolution[1]}x{resolution[0]}; "
                            "resize all videos to one size")
        pending.append((first_pos + k, item))
        count += 1
        if len(pending) >= batch_size:
            flush()
    flush()
    stats = {}
    for h in heads:
        s = FeatureStats(keep_features=h.keep_features)
        if rows[h.name]:
            s.append(np.concatenate(rows[h.name]))  # one sum per block: rounding independent of the batch size
        stats[h.name] = s
    return {"stats": stats, "skipped": skipped, "resolution": resolution, "example": example, "clips": count}


def _features(head: Head, clips: torch.Tensor, device, batch_size: int) -> np.ndarray:
    """float32 (rows, D) features of ``clips`` (uint8, CPU) through ``head``, in detector batches."""
    items = head.items(clips)
    out = []
    step = max(batch_size, 2) * max(1, len(items) // max(len(clips), 1))
    with exact_fp32(), torch.inference_mode():
        for i in range(0, len(items), step):
            x = items[i : i + step].to(device)
            # A batch of one goes through other CPU kernels (oneDNN) than larger batches and its
            # feature differs in the last bits; doubling it keeps features batch-size independent.
            f = head.detector(head.preprocess(x if len(x) > 1 else x.repeat(2, *([1] * (x.ndim - 1)))))
            f = f[: len(x)].float().cpu().numpy()
            if f.ndim != 2 or f.shape[0] != len(x):
                raise RuntimeError(f"{head.name} returned shape {f.shape}; expected ({len(x)}, D)")
            out.append(f)
    return np.concatenate(out)


# ------------------------------------------------------------------------- resumable blocks


def _block_path(work_dir, b: int) -> Path:
    return Path(work_dir) / f"block_{b:05d}.npz"


def _save_block(work_dir, b: int, payload: dict, key: str | None) -> None:
    """Store block ``b`` (a write failure is a :class:`UserError` naming the file)."""
    arrays = {"clips": np.int64(payload["clips"]), "resolution": np.asarray(payload["resolution"] or (0, 0), np.int64)}
    for name, s in payload["stats"].items():
        arrays.update(_stats_arrays(s, prefix=f"{name}."))
    meta = {"key": key, "block": b, "skipped": payload["skipped"], "example": payload["example"],
            "sha256": _arrays_sha256(arrays)}
    path = _block_path(work_dir, b)
    way_out = "free some space (the finished blocks are kept: rerun to resume) or use another {work_dir}"
    with write_errors(path, way_out, work_dir=NAME_ONLY):
        _write_npz(path, arrays)
    with write_errors(path.with_suffix(".json"), way_out, work_dir=NAME_ONLY):
        write_json(path.with_suffix(".json"), meta)  # written last: a block counts as done only with it


def _read_checked(path: Path, belongs: dict) -> tuple[dict, dict] | None:
    """``(arrays, meta)`` of ``path`` (.npz) and its ``.json``, or None when either is missing.

    Raises ValueError/OSError/KeyError when the arrays do not match the sha256 stored in the json, or
    when the json's entries do not equal ``belongs`` (the key it was stored under: a file copied from elsewhere).
    """
    meta_path = path.with_suffix(".json")
    if not (path.is_file() and meta_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text())
    if any(meta.get(k) != v for k, v in belongs.items()):
        raise ValueError("it was stored for another evaluation (its key differs)")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if _arrays_sha256(arrays) != meta["sha256"]:
        raise ValueError("its checksum does not match the stored arrays")
    return arrays, meta


def _load_block(work_dir, b: int, heads, key: str | None) -> dict | None:
    path = _block_path(work_dir, b)
    try:
        found = _read_checked(path, {"key": key, "block": b})
        if found is None:
            return None
        arrays, meta = found
        stats = {h.name: _stats_from_arrays(arrays, f"{h.name}.", h.keep_features) for h in heads}
    except (OSError, ValueError, KeyError, TypeError) as e:
        warnings.warn(f"{path}: unreadable or altered block ({e}); computing it again", stacklevel=2)
        return None
    res = tuple(int(v) for v in arrays["resolution"])
    return {"stats": stats, "skipped": meta["skipped"], "resolution": None if res == (0, 0) else res,
            "example": meta["example"], "clips": int(arrays["clips"])}


def _stats_arrays(s: FeatureStats, prefix: str) -> dict:
    out = {prefix + "n": np.int64(s.n)}
    if s.n:
        out[prefix + "s1"], out[prefix + "s2"] = s.s1, s.s2
        if s.keep_features:
            out[prefix + "features"] = s.features
    return out


def _stats_from_arrays(arrays: dict, prefix: str, keep: bool) -> FeatureStats:
    s = FeatureStats(keep_features=keep)
    if int(arrays[prefix + "n"]) == 0:
        return s
    s._init(int(arrays[prefix + "s1"].shape[0]))
    s.n = int(arrays[prefix + "n"])
    s.s1, s.s2 = arrays[prefix + "s1"].astype(np.float64), arrays[prefix + "s2"].astype(np.float64)
    if keep:
        if prefix + "features" not in arrays:
            raise KeyError(prefix + "features")
        s._features = [arrays[prefix + "features"].astype(np.float32)]
    return s


def _arrays_sha256(arrays: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}:{a.dtype.str}:{a.shape}\n".encode())
        h.update(a.data)
    return h.hexdigest()


def _write_npz(path: Path, arrays: dict) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


# ------------------------------------------------------------------ cache of real statistics


def stats_cache_root(metric: str, cache_dir=None) -> Path:
    """Folder of cached real statistics: ``cache_dir``, else ``$LATTE_BENCH_CACHE/<metric>_stats``."""
    if cache_dir is not None:
        return Path(cache_dir)

    return weights_cache_dir() / f"{metric}_stats"


def _load_cached(path: Path, keep_features: bool, key: str):
    try:
        found = _read_checked(path, {"key": key})
        if found is None:
            return None
        arrays, meta = found
        return _stats_from_arrays(arrays, "", keep_features), meta["extract"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        warnings.warn(f"{path}: cached real statistics unusable ({e}); recomputing them", stacklevel=2)
        return None


def cached_real_stats(metric: str, settings: dict, compute: Callable[[], tuple[FeatureStats, dict]], *,
                      keep_features: bool = False, cache: bool = True, cache_dir=None):
    """``(stats, extract_info, cache_hit, key)`` for the real set described by ``settings``.

    With ``cache`` the statistics come from ``stats_cache_root(metric, cache_dir)/<key>.npz``
    (+ ``.json`` holding the settings, the extraction info and the arrays' sha256); a missing,
    unreadable or altered entry is recomputed by ``compute()`` and stored atomically by rank 0.
    """
    key = settings_key({**settings, "keep_features": keep_features})
    cache_file = stats_cache_root(metric, cache_dir) / f"{key}.npz"
    if cache:
        loaded = dist.broadcast_object(_load_cached(cache_file, keep_features, key) if dist.is_main() else None)
        if loaded is not None:
            return (*loaded, True, key)
    stats, info = compute()
    if cache and dist.is_main():
        arrays = _stats_arrays(stats, "")
        try:
            _write_npz(cache_file, arrays)
            write_json(cache_file.with_suffix(".json"), {"key": key, "settings": settings, "extract": info,
                                                         "sha256": _arrays_sha256(arrays), "written": time.time()})
        except OSError as e:
            warnings.warn(f"{cache_file}: cannot store the real statistics ({e}); continuing without the cache", stacklevel=2)
    return stats, info, False, key
