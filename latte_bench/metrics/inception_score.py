"""Inception Score from class probabilities, with the StyleGAN-V and TGAN2 protocols.

``IS = exp( mean_i KL(p(y|x_i) ‖ p(y)) )`` where ``p(y)`` is the mean prediction over the split.

* ``stylegan_v`` (``isv2048_ucf``, what Latte ships): 2048 clips, rows shuffled with
  ``np.random.RandomState(42)``, 10 splits ``P[i·N//10 : (i+1)·N//10]``, report mean and std
  (ddof=0) of the 10 per-split scores.
* ``tgan2`` (TGAN2 / TATS / DIGAN): 10,000 clips, one split (std is 0 for a single run).

Zero probabilities: StyleGAN-V takes ``log p`` with no epsilon, so an exact 0 gives ``0·(−inf) = NaN``.
Here both logarithms are taken of ``max(p, 1e-20)`` in float64. For p ≥ 1e-20 this is exact; for
smaller p the term ``p·log p`` (≤ 1e-18 in size) replaces its limit 0, so an exact zero contributes
exactly 0 — the value the formula has in the limit, and TGAN2's ``log(p + 1e-20)`` up to 1e-18.
"""

from __future__ import annotations

import numpy as np

from latte_bench.errors import UserError

EPS = 1e-20
PROTOCOLS = {
    "stylegan_v": dict(num_clips=2048, splits=10, shuffle_seed=42),
    "tgan2": dict(num_clips=10000, splits=1, shuffle_seed=None),
}


def split_bounds(n: int, splits: int) -> list[tuple[int, int]]:
    """Row ranges ``[i·n//splits, (i+1)·n//splits)`` of the splits (StyleGAN-V's formula)."""
    return [(i * n // splits, (i + 1) * n // splits) for i in range(splits)]


def inception_score(probs: np.ndarray, splits: int = 10, shuffle_seed: int | None = 42) -> dict:
    """IS of the predictions ``probs`` ``[N, K]`` (rows are probability vectors).

    Returns ``{"mean", "std", "per_split", "splits", "num_samples", "shuffle_seed"}``; ``std`` is
    numpy's population std (ddof=0). Raises :class:`UserError` when a split would hold fewer than 2 rows.
    """
    p = np.array(probs, dtype=np.float64, copy=True)
    if p.ndim != 2:
        raise UserError(f"Inception Score needs probabilities [N, K], got shape {list(p.shape)}")
    if not np.all(np.isfinite(p)) or p.min(initial=0.0) < 0:
        raise UserError("Inception Score: the classifier returned negative or non-finite probabilities")
    n = p.shape[0]
    if splits < 1 or n < 2 * splits:
        raise UserError(f"Inception Score: {n} samples are too few for {splits} splits (need at least {2 * splits}); generate more clips or pass fewer splits")
    if shuffle_seed is not None:
        np.random.RandomState(shuffle_seed).shuffle(p)  # shuffles rows, as StyleGAN-V does
    scores = []
    for lo, hi in split_bounds(n, splits):
        part = p[lo:hi]
        marginal = part.mean(axis=0, keepdims=True)
        kl = part * (np.log(np.maximum(part, EPS)) - np.log(np.maximum(marginal, EPS)))
        scores.append(float(np.exp(kl.sum(axis=1).mean())))
    return {
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores)),
        "per_split": scores,
        "splits": splits,
        "num_samples": n,
        "shuffle_seed": shuffle_seed,
    }


def clip_preprocess(clips):
    """uint8 clips ``(B, T, H, W, 3)`` → ``(B, 3, T, H, W)`` uint8, the C3D detector's layout."""
    return clips.permute(0, 4, 1, 2, 3).contiguous()


def compute_is(
    fake,
    *,
    is_protocol: str = "stylegan_v",
    num_clips: int | None = None,
    is_splits: int | None = None,
    is_shuffle_seed: int | None = None,
    c3d_weights=None,
    c3d_mean=None,
    batch_size: int = 8,
    device: str | None = "cpu",
    num_workers: int = 0,
    progress: bool = True,
) -> dict:
    """Video IS of the generated videos at ``fake``: frames 0..15 of the first ``num_clips`` videos.

    ``is_protocol`` picks the defaults (``stylegan_v``: 2048 clips, 10 splits, shuffle seed 42;
    ``tgan2``: 10,000 clips, 1 split); ``num_clips``/``is_splits``/``is_shuffle_seed`` override them.
    ``c3d_weights``/``c3d_mean``: see :func:`latte_bench.metrics.c3d.load_c3d`. Returns
    ``{"metric": "is", "value", "std", "provenance"}``.
    """
    protocol = is_protocol
    import time

    from latte_bench.data.clips import sample_fake_clips
    from latte_bench.data.video import open_videos
    from latte_bench.metrics.c3d import NUM_FRAMES, load_c3d
    from latte_bench.metrics.extract import extract_stats
    from latte_bench.device import resolve_device
    from latte_bench.provenance import environment
    from latte_bench import distributed as dist

    start = time.time()
    if protocol not in PROTOCOLS:
        raise UserError(f"--is-protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    cfg = dict(PROTOCOLS[protocol])
    num_clips = cfg["num_clips"] if num_clips is None else num_clips
    splits = cfg["splits"] if is_splits is None else is_splits
    seed = cfg["shuffle_seed"] if is_shuffle_seed is None else is_shuffle_seed
    if num_clips < 2 * splits:
        raise UserError(f"Inception Score: {num_clips} clips are too few for {splits} splits (need at least {2 * splits})")
    device = str(resolve_device(device))
    dist.init(device)
    detector, detector_info = load_c3d(c3d_weights, c3d_mean, device)
    source = open_videos(fake)
    clips, info = sample_fake_clips(source, num_clips, NUM_FRAMES, 1)
    stats, extract = extract_stats(source, clips, detector, clip_preprocess, batch_size=batch_size, device=device,
                                   keep_features=True, num_workers=num_workers, desc="C3D fake", progress=progress)
    score = inception_score(stats.features, splits=splits, shuffle_seed=seed)
    provenance = {
        "protocol": f"{protocol} video Inception Score (UCF101 C3D)",
        "fake": str(fake),
        "detector": detector_info,
        "num_clips": score["num_samples"],
        "fake_clips": score["num_samples"],
        "num_clips_requested": num_clips,
        "num_frames": NUM_FRAMES,
        "splits": splits,
        "shuffle": f"numpy.random.RandomState({seed}).shuffle of the rows" if seed is not None else "none",
        "split_bounds": "rows [i*N//splits, (i+1)*N//splits)",
        "std": "numpy std over splits, ddof=0",
        "zero_probabilities": f"log(max(p, {EPS:g})): an exact 0 contributes 0 (StyleGAN-V would give NaN)",
        "per_split": score["per_split"],
        "fake_sampling": info,
        "fake_resolution": extract.get("resolution"),
        "batch_size": batch_size,
        "world_size": dist.world_size(),
        "device": device,
        "environment": environment(),
        "wall_time_s": round(time.time() - start, 3),
    }
    return {"metric": "is", "value": score["mean"], "std": score["std"], "provenance": provenance}
