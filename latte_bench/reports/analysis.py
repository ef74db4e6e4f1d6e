"""Feature analyses of the paper's Fig. 6 (inter-frame similarity per block) and Fig. 8 (Variant 4 fusion).

Definitions (all computed in float64):

- **Frame vector.** A block's output for one video is a (F, N, D) array (frames, tokens, channels).
  ``reduce="flatten"`` (default) concatenates the N token vectors of a frame in token order into
  one N·D vector, so the spatial layout counts; ``reduce="mean"`` averages over the N tokens (a
  (D,) vector per frame, layout-free).
- **Similarity matrix.** ``S[i, j] = cos(v_i, v_j)`` for frames i, j of one video (F×F, diagonal 1),
  then averaged over the videos fed in.
- **Mean / variance per block.** Mean and population variance of the off-diagonal entries
  ``S[i, j], i != j`` of the video-averaged matrix.
- **Inverted pairs.** ``inverted_first`` = #{j >= 2 : S[0, j] > S[0, 1]}: frames that the first frame
  is *strictly* more similar to than to its neighbour (frame 1 more similar to a farther frame,
  the paper's observation). ``inverted_all`` generalises it to every anchor:
  #{(i, j) : j >= i + 2, S[i, j] > S[i, i + 1]}. Both use the video-averaged matrix.
- **Fusion distributions (Fig. 8).** For Variant 4 the spatial-head and temporal-head outputs of
  each block, reduced to frame vectors as above: ``spatial`` and ``temporal`` are the off-diagonal
  entries of each video's own F×F matrix; ``cross`` holds ``cos(spatial_i, temporal_j)`` for all
  (i, j) including i = j. Entries from every block and video are pooled.
"""

from __future__ import annotations

import numpy as np
from latte_bench.data.demo import make_demo_video
from latte_bench.data.transforms import center_crop_resize
from latte_bench.data.video import open_videos
from latte_bench.device import resolve_device
from latte_bench.diffusion import create_diffusion
from latte_bench.errors import UserError, check_int
from latte_bench.fsutil import check_writable, write_json
from latte_bench.reports import figures
from latte_bench.training.checkpoint import load_model
from latte_bench.training.latents import LatentSpace, load_vae
from latte_bench.training.presets import TrainConfig


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def frame_vectors(features, reduce: str = "flatten") -> np.ndarray:
    """(B, F, N, D) or (B, F, D) block output -> (B, F, K) frame vectors (see module docs)."""
    x = _as_numpy(features)
    if x.ndim == 3:
        return x
    if x.ndim != 4:
        raise ValueError(f"expected (B, F, N, D) or (B, F, D) features, got shape {x.shape}")
    if reduce == "flatten":
        return x.reshape(x.shape[0], x.shape[1], -1)
    if reduce == "mean":
        return x.mean(axis=2)
    raise ValueError(f"reduce must be 'flatten' or 'mean', got {reduce!r}")


def _unit(v: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


def cosine_similarity_matrix(vectors) -> np.ndarray:
    """(..., F, K) -> (..., F, F) cosine similarities between the F vectors (values in [-1, 1])."""
    u = _unit(_as_numpy(vectors))
    return np.clip(u @ np.swapaxes(u, -1, -2), -1.0, 1.0)


def cross_similarity_matrix(a, b) -> np.ndarray:
    """(..., F, K) x (..., F, K) -> (..., F, F) with entry [i, j] = cos(a_i, b_j)."""
    ua, ub = _unit(_as_numpy(a)), _unit(_as_numpy(b))
    if ua.shape != ub.shape:
        raise ValueError(f"cross similarity needs equal shapes, got {ua.shape} and {ub.shape}")
    return np.clip(ua @ np.swapaxes(ub, -1, -2), -1.0, 1.0)


def block_similarity(features, reduce: str = "flatten") -> np.ndarray:
    """Video-averaged (F, F) similarity matrix of one block's (B, F, N, D) output."""
    return cosine_similarity_matrix(frame_vectors(features, reduce)).mean(axis=0)


def off_diagonal(matrix: np.ndarray) -> np.ndarray:
    """Entries ``M[..., i, j]`` with i != j, flattened over the last two axes."""
    m = np.asarray(matrix)
    f = m.shape[-1]
    mask = ~np.eye(f, dtype=bool)
    return m[..., mask]


def count_inverted_first(sim: np.ndarray) -> int:
    """#{j >= 2 : S[0, j] > S[0, 1]} for an (F, F) similarity matrix."""
    s = np.asarray(sim)
    if s.shape[0] < 3:
        return 0
    return int((s[0, 2:] > s[0, 1]).sum())


def count_inverted_all(sim: np.ndarray) -> int:
    """#{(i, j) : j >= i + 2, S[i, j] > S[i, i + 1]} for an (F, F) similarity matrix."""
    s = np.asarray(sim)
    f = s.shape[0]
    return int(sum((s[i, i + 2 :] > s[i, i + 1]).sum() for i in range(f - 2)))


def similarity_summary(sim: np.ndarray) -> dict:
    """Mean, variance of the off-diagonal entries and both inverted-pair counts of one (F, F) matrix."""
    off = off_diagonal(sim)
    return dict(
        mean=float(off.mean()),
        var=float(off.var()),
        inverted_first=count_inverted_first(sim),
        inverted_all=count_inverted_all(sim),
    )


def similarity_report(block_features: dict, reduce: str = "flatten") -> dict:
    """{block name: (B, F, N, D)} -> {"matrices": {name: (F, F)}, "summary": {name: summary dict}}.

    Block order is kept (dicts keep insertion order), so the figure reads from input to output.
    """
    matrices = {name: block_similarity(feat, reduce) for name, feat in block_features.items()}
    return dict(
        matrices=matrices,
        summary={name: similarity_summary(m) for name, m in matrices.items()},
        reduce=reduce,
    )


def fusion_distributions(pairs: dict, reduce: str = "flatten") -> dict:
    """{block: (spatial (B,F,N,D), temporal (B,F,N,D))} -> pooled ``spatial``/``temporal``/``cross`` arrays.

    Also returns ``per_block``: {block: {"spatial", "temporal", "cross": mean similarity}}.
    """
    pooled = {"spatial": [], "temporal": [], "cross": []}
    per_block = {}
    for name, (spatial, temporal) in pairs.items():
        vs, vt = frame_vectors(spatial, reduce), frame_vectors(temporal, reduce)
        if vs.shape != vt.shape:
            raise ValueError(f"{name}: spatial {vs.shape} and temporal {vt.shape} frame vectors differ in shape")
        parts = {
            "spatial": off_diagonal(cosine_similarity_matrix(vs)).ravel(),
            "temporal": off_diagonal(cosine_similarity_matrix(vt)).ravel(),
            "cross": cross_similarity_matrix(vs, vt).ravel(),
        }
        for k, v in parts.items():
            pooled[k].append(v)
        per_block[name] = {k: float(v.mean()) for k, v in parts.items()}
    out = {k: np.concatenate(v) if v else np.zeros(0) for k, v in pooled.items()}
    out["per_block"] = per_block
    out["reduce"] = reduce
    return out


# ---------------------------------------------------------------- running a model

ANALYSIS_TIMESTEP = 250  # diffusion step at which the clean videos are noised before the forward pass


def load_analysis_model(ckpt: str, variant: int | None = None, weights: str = "ema", preset: str | None = None,
                        model_name: str | None = None, device: str = "cpu"):
    """The model to analyse and its run config, via :func:`latte_bench.training.checkpoint.load_model`.

    ``ckpt``: a ``latte-bench train`` checkpoint or run folder (its config gives variant, size and
    data settings) or an official ``{"ema": state_dict}`` file, built as ``preset`` (and
    ``model_name``); ``weights``: ``ema`` (default) or ``model``. A ``variant`` that the checkpoint
    does not have is refused. Returns ``(LoadedModel, config)`` where ``config`` is a
    :class:`latte_bench.training.presets.TrainConfig`; the model is in eval mode on ``device``.
    """

    loaded = load_model(ckpt, weights, preset=preset, model_name=model_name, device=device)
    cfg = TrainConfig.from_dict(loaded.info)
    if variant is not None and variant != cfg.variant:
        raise UserError(f"{ckpt}: this checkpoint is Variant {cfg.variant}, not --variant {variant}; drop --variant or pass another checkpoint")
    return loaded, cfg


def analysis_videos(cfg, data: str | None = None, num_videos: int = 8, seed: int = 0):
    """Clean clips (B, F, 3, H, W) in [-1, 1] and labels (B,) to feed the model.

    From ``data`` (any layout :func:`latte_bench.data.video.open_videos` reads: the first
    ``num_frames`` frames at the run's frame interval of the first ``num_videos`` videos, centre
    crop + resize to the run's image size; labels 0) or, without ``data``, from the procedural
    demo set with the run's size and seed (videos ``10000 + i``, outside a demo training set).
    """
    import torch


    span = (cfg.num_frames - 1) * cfg.frame_interval + 1
    if data is None:

        classes = max(cfg.num_classes, 1)
        labels = [i % classes for i in range(num_videos)]
        clips = [make_demo_video(10_000 + i, labels[i], num_frames=span, size=cfg.image_size, seed=seed) for i in range(num_videos)]
    else:

        source = open_videos(data)
        usable = [e for e in source.entries if e.num_frames >= span][:num_videos]
        if not usable:
            raise UserError(f"{data}: no video has the {span} frames a clip needs; pass longer videos")
        clips = [e.read(range(0, span)) for e in usable]
        labels = [0] * len(clips)
    video = torch.from_numpy(np.stack(clips)[:, :: cfg.frame_interval]).permute(0, 1, 4, 2, 3).float() / 127.5 - 1
    video = torch.stack([center_crop_resize(v, cfg.image_size) for v in video])
    return video, torch.tensor(labels, dtype=torch.long)


def model_features(model, cfg, video, labels, timestep: int = ANALYSIS_TIMESTEP, seed: int = 0, device: str = "cpu") -> dict:
    """Noise the clips to ``timestep`` (fixed seed), run the model once, return its feature dict.

    ``video``: (B, F, 3, H, W) in [-1, 1]; ``labels``: (B,). Returns ``{"blocks.{i}.out": (B, F, N, D), ...}``
    as ``model(..., return_features=True)`` gives it.

    The clips are encoded with the run's latent space first (the identity in pixel space).
    """
    import torch


    vae = None if cfg.pixel_space else load_vae(cfg.vae, device)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x0 = LatentSpace(vae, cfg.vae_scale, cfg.vae_batch_frames).encode(video.to(device), generator=g)
        t = torch.full((x0.shape[0],), int(timestep), dtype=torch.long)
        noise = torch.randn(x0.shape, generator=g)
        xt = create_diffusion("", noise_schedule=cfg.diffusion_options["noise_schedule"]).q_sample(x0, t, noise=noise.to(x0.device))
        kwargs = {"y": labels.to(device)} if cfg.num_classes else {}
        _, features = model(xt, t.to(device), return_features=True, **kwargs)
    return features


def block_outputs(model, features: dict, which: str = "out") -> dict:
    """Ordered {label: (B, F, N, D)} per block: ``which="out"`` the residual stream after each
    block, ``"attn"`` the attention outputs (``spatial_attn`` / ``temporal_attn``)."""
    kinds = [getattr(b, "kind", "") for b in model.blocks]
    short = {"spatial": "spatial", "temporal": "temporal", "factorised_attention": "fact. attn", "factorised_heads": "fact. heads"}
    out = {}
    for i, kind in enumerate(kinds):
        if which == "out":
            out[f"{i + 1} {short.get(kind, kind)}"] = features[f"blocks.{i}.out"]
        else:
            for part in ("spatial_attn", "temporal_attn"):
                key = f"blocks.{i}.{part}"
                if key in features:
                    out[f"{i + 1} {part.split('_')[0]} attn"] = features[key]
    return out


def head_pairs(model, features: dict) -> dict:
    """{block label: (spatial-head output, temporal-head output)} of a Variant 4 model."""

    pairs = {}
    for i, block in enumerate(model.blocks):
        if getattr(block, "kind", "") != "factorised_heads":
            raise UserError(f"block {i} is {getattr(block, 'kind', '?')}, not factorised heads: the fusion analysis needs a Variant 4 checkpoint")
        pairs[f"block {i + 1}"] = (features[f"blocks.{i}.spatial_attn"], features[f"blocks.{i}.temporal_attn"])
    return pairs


def run_analysis(kind: str, ckpt: str, out: str = "reports/analysis", variant: int | None = None,
                 weights: str = "ema", preset: str | None = None, model_name: str | None = None,
                 data: str | None = None, num_videos: int = 8, timestep: int | None = None, reduce: str = "flatten",
                 features: str = "out", seed: int = 0, device: str | None = "cpu", prefix: str = "") -> dict:
    """``kind`` "similarity" (Fig. 6) or "fusion" (Fig. 8) on checkpoint ``ckpt``: figures + JSON in ``out``.

    ``ckpt``/``variant``/``weights``/``preset``/``model_name``: see :func:`load_analysis_model`;
    ``device``: ``cpu``, ``cuda[:N]`` or ``auto``/None (CUDA when available, :mod:`latte_bench.device`).

    Returns ``{"text": printable summary, "files": [paths], "numbers": the JSON written}``.
    """
    from pathlib import Path


    if kind not in ("similarity", "fusion"):
        raise ValueError(f"unknown analysis {kind!r}")
    check_int("num_videos", num_videos, 1, flag="--num-videos")
    if kind == "fusion" and variant not in (None, 4):
        raise UserError(f"--variant {variant}: the fusion analysis (Fig. 8) is defined for Variant 4 (factorised heads)")
    timestep = ANALYSIS_TIMESTEP if timestep is None else int(timestep)
    if not 0 <= timestep < 1000:
        raise UserError(f"--timestep {timestep}: must be in 0..999")
    check_writable(out, "--out")  # before the model is loaded

    device = str(resolve_device(device))
    loaded, cfg = load_analysis_model(ckpt, variant=variant, weights=weights, preset=preset, model_name=model_name, device=device)
    model = loaded.model
    video, labels = analysis_videos(cfg, data=data, num_videos=num_videos, seed=seed)
    feats = model_features(model, cfg, video, labels, timestep=timestep, seed=seed, device=device)
    out = Path(out)
    setting = {
        "checkpoint": loaded.checkpoint["path"], "checkpoint_sha256": loaded.checkpoint["sha256"],
        "checkpoint_step": loaded.checkpoint.get("step"), "weights": weights, "model": cfg.model, "variant": cfg.variant,
        "videos": data or "procedural demo set", "num_videos": int(video.shape[0]), "num_frames": int(video.shape[1]),
        "frame_interval": cfg.frame_interval, "image_size": cfg.image_size, "timestep": timestep, "seed": seed, "reduce": reduce,
    }
    name = f"{prefix}{kind}"
    if kind == "similarity":
        report = similarity_report(block_outputs(model, feats, features), reduce=reduce)
        what = "block outputs" if features == "out" else "attention outputs"
        files = figures.similarity_matrices_figure(report, out / f"{name}_matrices",
                                                   title=f"Inter-frame cosine similarity of the {what} (Variant {cfg.variant}, t={timestep})")
        files += figures.similarity_summary_figure(report, out / f"{name}_per_block",
                                                   title=f"Inter-frame similarity per block ({what}, Variant {cfg.variant})")
        numbers = {**setting, "features": features, "summary": report["summary"],
                   "matrices": {k: np.round(v, 6).tolist() for k, v in report["matrices"].items()}}
        lines = [f"{'block':<14} {'mean':>7} {'var':>9} {'inv(1st)':>8} {'inv(all)':>8}"]
        for k, s in report["summary"].items():
            lines.append(f"{k:<14} {s['mean']:7.4f} {s['var']:9.2e} {s['inverted_first']:8d} {s['inverted_all']:8d}")
    else:
        if cfg.variant != 4:
            raise UserError(f"{ckpt}: Variant {cfg.variant} checkpoint; the fusion analysis needs a Variant 4 model")
        dists = fusion_distributions(head_pairs(model, feats), reduce=reduce)
        files = figures.fusion_figure(dists, out / name, title=f"Variant 4 heads: inter-frame similarity (t={timestep})")
        stats = {k: {"mean": float(dists[k].mean()), "std": float(dists[k].std()), "n": int(dists[k].size),
                     "quantiles_5_50_95": np.quantile(dists[k], [0.05, 0.5, 0.95]).round(6).tolist()}
                 for k in ("spatial", "temporal", "cross")}
        numbers = {**setting, "distributions": stats, "per_block_means": dists["per_block"]}
        lines = [f"{k:<9} mean {v['mean']:.4f}  std {v['std']:.4f}  n {v['n']}" for k, v in stats.items()]
    json_path = out / f"{name}.json"
    write_json(json_path, numbers)
    return {"text": "\n".join(lines), "files": [*files, json_path], "numbers": numbers}
