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
