"""Matplotlib figures for the analyses and training curves, written as PNG and PDF atomically.

Every ``*_figure`` function takes the numbers (from :mod:`latte_bench.reports.analysis` or parsed
training logs) and an output stem ``OUT/name``; it writes ``OUT/name.png`` (150 dpi) and
``OUT/name.pdf`` and returns both paths. The Agg backend is used, so no display is needed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from latte_bench.fsutil import atomic_path

STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "figure.titlesize": 13,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "savefig.bbox": "tight",
}
_COLORS = {"spatial": "#1f77b4", "temporal": "#d62728", "cross": "#2ca02c"}


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, stem: str | Path, dpi: int = 150) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` atomically and close ``fig``."""

    stem = Path(stem)
    paths = []
    try:
        for ext in (".png", ".pdf"):
            path = stem.with_name(stem.name + ext)
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=dpi, format=ext[1:])
            paths.append(path)
    finally:
        pyplot().close(fig)
    return paths


def _pretty(name: str) -> str:
    return name.replace("_", " ")


def similarity_matrices_figure(report: dict, stem: str | Path, title: str = "Inter-frame cosine similarity after each block") -> list[Path]:
    """Grid of F×F heatmaps, one per block, with one shared colourbar (paper Fig. 6)."""
    plt = pyplot()
    mats = report["matrices"]
    names = list(mats)
    n = len(names)
    nrows = math.ceil(n / 8)
    ncols = math.ceil(n / nrows)
    # colour range: from the smallest similarity shown (rounded down to 0.05) to 1, so that
    # the structure is visible when all frames are alike; a negative minimum keeps its sign
    lo = min(float(np.min(m)) for m in mats.values())
    vmin, vmax = math.floor(min(lo, 0.95) * 20) / 20, 1.0
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols + 1.2, 2.35 * nrows + 0.9), squeeze=False)
        im = None
        for k, ax in enumerate(axes.flat):
            if k >= n:
                ax.axis("off")
                continue
            m = mats[names[k]]
            f = m.shape[0]
            im = ax.imshow(m, vmin=vmin, vmax=vmax, cmap="viridis", interpolation="nearest")
            s = report["summary"][names[k]]
            ax.set_title(f"{_pretty(names[k])}\nμ={s['mean']:.3f}  inv={s['inverted_first']}", fontsize=9)
            ticks = list(range(0, f, max(1, f // 4)))
            ax.set_xticks(ticks, [str(t + 1) for t in ticks], fontsize=7)
            ax.set_yticks(ticks, [str(t + 1) for t in ticks], fontsize=7)
            if k % ncols == 0:
                ax.set_ylabel("frame")
            if k // ncols == nrows - 1:
                ax.set_xlabel("frame")
        cbar = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.85, pad=0.02)
        cbar.set_label("cosine similarity")
        fig.suptitle(f"{title}\n(frame vectors: {report.get('reduce', 'flatten')} over tokens; μ = off-diagonal mean, inv = inverted first-frame pairs)", fontsize=11)
        return save_figure(fig, stem)


NO_INVERTED = "no inverted pairs in any block:\neach frame is closer to the next frame than to any later one"


def similarity_summary_figure(report: dict, stem: str | Path, title: str = "Inter-frame similarity per block") -> list[Path]:
    """Mean ± std of the off-diagonal similarities per block, and inverted-pair counts (bars)."""
    plt = pyplot()
    names = list(report["summary"])
    s = [report["summary"][k] for k in names]
    x = np.arange(len(names))
    mean = np.array([v["mean"] for v in s])
    std = np.sqrt([v["var"] for v in s])
    with plt.rc_context(STYLE):
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(6.0, 0.55 * len(names) + 2), 6.0), sharex=True)
        ax1.plot(x, mean, "o-", color="#1f77b4", label="mean (off-diagonal)")
        ax1.fill_between(x, mean - std, mean + std, color="#1f77b4", alpha=0.2, label="± std")
        ax1.set_ylabel("cosine similarity")
        ax1.set_title(title)
        ax1.legend(loc="best")
        ax1.grid(axis="y", alpha=0.3)
        w = 0.4
        ax2.set_ylabel("inverted pairs")
        ax2.set_xticks(x, [_pretty(n) for n in names], rotation=45, ha="right")
        ax2.set_xlabel("block")
        if not any(v["inverted_first"] or v["inverted_all"] for v in s):
            ax2.set_ylim(0, 1)
            ax2.set_yticks([])
            ax2.text(0.5, 0.5, NO_INVERTED, transform=ax2.transAxes, ha="center", va="center", color="#555555")
            return save_figure(fig, stem)
        ax2.bar(x - w / 2, [v["inverted_first"] for v in s], w, color="#ff7f0e", label="first frame (j ≥ 3 beats frame 2)")
        ax2.bar(x + w / 2, [v["inverted_all"] for v in s], w, color="#9467bd", label="all anchors (j ≥ i+2 beats i+1)")
        top = max([v["inverted_all"] for v in s] + [1])
        ax2.set_ylim(0, top * 1.35)  # room for the legend above the bars
        ax2.legend(loc="upper left", ncol=2, frameon=False)
        ax2.grid(axis="y", alpha=0.3)
        return save_figure(fig, stem)


def fusion_figure(dists: dict, stem: str | Path, title: str = "Variant 4: spatial vs temporal head outputs") -> list[Path]:
    """Violins and overlaid histograms of the spatial, temporal and cross similarities (paper Fig. 8)."""
    plt = pyplot()
    keys = [k for k in ("spatial", "temporal", "cross") if len(dists.get(k, [])) > 0]
    labels = {"spatial": "spatial–spatial", "temporal": "temporal–temporal", "cross": "spatial–temporal"}
    with plt.rc_context(STYLE):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        parts = ax1.violinplot([dists[k] for k in keys], showmedians=True, showextrema=False)
        for body, k in zip(parts["bodies"], keys):
            body.set_facecolor(_COLORS[k])
            body.set_alpha(0.5)
        ax1.set_xticks(range(1, len(keys) + 1), [labels[k] for k in keys])
        ax1.set_ylabel("inter-frame cosine similarity")
        ax1.set_title("distributions (median marked)")
        ax1.grid(axis="y", alpha=0.3)
        bins = np.linspace(min(float(np.min(dists[k])) for k in keys), 1.0, 41)
        for k in keys:
            ax2.hist(dists[k], bins=bins, alpha=0.5, density=True, color=_COLORS[k], label=f"{labels[k]} (μ={np.mean(dists[k]):.3f})")
        ax2.set_xlabel("inter-frame cosine similarity")
        ax2.set_ylabel("density")
        ax2.set_title("histograms")
        ax2.legend(loc="best")
        fig.suptitle(f"{title} (frame vectors: {dists.get('reduce', 'flatten')} over tokens)")
        return save_figure(fig, stem)


def plot_loss(ax, steps, values, label: str, points: int = 20) -> None:
    """A loss curve on ``ax``: the logged values faint, their moving average over len/``points`` records bold."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=float)
    line, = ax.plot(steps, values, alpha=0.25, lw=0.8)
    k = max(1, len(values) // points)
    if k > 1:
        smooth = np.convolve(values, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, color=line.get_color(), lw=1.8, label=f"{label} (moving avg {k})")
    else:
        line.set_alpha(1.0)
        line.set_label(label)


def training_curves_figure(runs: dict, stem: str | Path, title: str = "FVD during training") -> list[Path]:
    """FVD vs iteration, one line per run (paper Fig. 5/7); a loss panel when logs have losses.

    ``runs`` maps a run label to ``{"fvd": (steps, values), "loss": (steps, values)}`` (either may be empty).
    """
    plt = pyplot()
    has_loss = any(len(r.get("loss", ([], []))[0]) for r in runs.values())
    with plt.rc_context(STYLE):
        ncols = 2 if has_loss else 1
        fig, axes = plt.subplots(1, ncols, figsize=(5.6 * ncols, 4.0), squeeze=False)
        ax = axes[0, 0]
        for label, r in runs.items():
            steps, vals = r.get("fvd", ([], []))
            if len(steps):
                ax.plot(steps, vals, "o-", ms=4, label=label)
        ax.set_xlabel("training iteration")
        ax.set_ylabel("FVD (lower is better)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if runs:
            ax.legend(loc="best")
        if has_loss:
            ax = axes[0, 1]
            for label, r in runs.items():
                steps, vals = r.get("loss", ([], []))
                if len(steps):
                    plot_loss(ax, steps, vals, label)
            ax.set_xlabel("training iteration")
            ax.set_ylabel("training loss")
            ax.set_yscale("log")
            ax.set_title("training loss")
            ax.grid(alpha=0.3)
            ax.legend(loc="best")
        return save_figure(fig, stem)


def video_grid(videos: np.ndarray, max_videos: int = 4, max_frames: int = 8) -> np.ndarray:
    """Tile uint8 videos (N, T, H, W, 3) into one image: a row per video, a column per frame.

    Frames are taken evenly over T; rows and columns are separated by a 1-pixel white line.
    Returns uint8 (rows·(H+1)−1, cols·(W+1)−1, 3).
    """
    videos = np.asarray(videos)[:max_videos]
    n, t, h, w, _ = videos.shape
    frames = np.linspace(0, t - 1, min(t, max_frames)).round().astype(int)
    grid = np.full((n * (h + 1) - 1, len(frames) * (w + 1) - 1, 3), 255, dtype=np.uint8)
    for i in range(n):
        for j, f in enumerate(frames):
            grid[i * (h + 1) : i * (h + 1) + h, j * (w + 1) : j * (w + 1) + w] = videos[i, f]
    return grid


def samples_figure(sets: dict, stem: str | Path, title: str = "Samples", max_videos: int = 4, max_frames: int = 8) -> list[Path]:
    """Side-by-side video grids, one panel per set (e.g. real clips, then samples at each checkpoint).

    ``sets`` maps a panel label to uint8 videos (N, T, H, W, 3); each panel shows up to
    ``max_videos`` videos (rows) at up to ``max_frames`` evenly spaced frames (columns).
    """
    plt = pyplot()
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(sets), figsize=(2.6 * len(sets), 2.6), squeeze=False)
        for ax, (label, videos) in zip(axes[0], sets.items()):
            ax.imshow(video_grid(videos, max_videos, max_frames), interpolation="nearest")
            ax.set_title(label)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("frames →")
        fig.suptitle(title)
        return save_figure(fig, stem)


def draw_fvd_uncertainty(ax, rows: list[dict]) -> dict:
    """On ``ax``, one row per entry, top to bottom: the FVD as a bar with a ± se error bar, and below it the FVD∞
    estimate as a diamond on a thin line spanning its interval.

    ``rows``: dicts with ``label``, ``value`` (FVD, >= 0), ``se``, ``fvd_inf`` and ``fvd_inf_ci`` ([low, high], both
    >= 0: the interval is cut at 0), the last three None where there were too few clips for an se (then the bar
    alone); ``floor: True`` draws the row grey. A low end cut at 0 is drawn at 0 and marked with a bar there; an
    FVD∞ below 0 (a truth near 0) keeps its place left of the 0 line, so the axis extends below 0.
    Returns the artists: ``{"bars", "errors": {row: ErrorbarContainer}, "inf": {row: diamond}, "ci": {row: line}}``.
    """
    n = len(rows)
    y = np.arange(n)[::-1].astype(float)  # the first row on top
    colors = ["0.6" if r.get("floor") else f"C{i}" for i, r in enumerate(rows)]
    bars = ax.barh(y + 0.15, [r["value"] for r in rows], height=0.45, color=colors)
    errors, infs, cis = {}, {}, {}
    right = max(r["value"] + (r["se"] or 0.0) for r in rows)
    left = 0.0
    for i, (r, yi) in enumerate(zip(rows, y)):
        text = f"{r['value']:.1f}"
        if r.get("se") is not None:
            errors[i] = ax.errorbar(r["value"], yi + 0.15, xerr=r["se"], fmt="none", ecolor="k", capsize=3, lw=1)
            text += f" ± {r['se']:.1f}"
        ax.text(r["value"] + (r.get("se") or 0.0), yi + 0.15, "  " + text, va="center", fontsize=8)
        if r.get("fvd_inf") is None:
            continue
        low, high = r["fvd_inf_ci"]
        cis[i], = ax.plot([low, high], [yi - 0.3, yi - 0.3], color=colors[i], lw=1.2, solid_capstyle="butt")
        if low == 0.0:
            ax.plot([0.0], [yi - 0.3], marker="|", ms=9, mew=2, color=colors[i], zorder=3)  # the low end, cut at 0
        infs[i], = ax.plot([r["fvd_inf"]], [yi - 0.3], marker="D", ms=6, color=colors[i], mec="k", mew=0.6, ls="none")
        ax.text(max(high, r["fvd_inf"]), yi - 0.3, f"  FVD∞ {r['fvd_inf']:.1f} [{low:.1f}, {high:.1f}]", va="center", fontsize=8)
        right, left = max(right, high, r["fvd_inf"]), min(left, r["fvd_inf"])
    span = right - left or 1.0
    ax.set_xlim(left - 0.03 * span, right + 0.4 * span)  # room for the labels; a line that starts at 0 stays visible
    ax.axvline(0.0, color="0.35", lw=0.7, zorder=0)
    ax.set_yticks(y, [r["label"] for r in rows])
    ax.set_ylim(-0.7, n - 0.4)
    ax.grid(alpha=0.3, axis="x")
    return {"bars": bars, "errors": errors, "inf": infs, "ci": cis}


def fvd_uncertainty_figure(rows: list[dict], stem: str | Path, clips: int | None = None,
                           title: str = "FVD ± se, and FVD∞ with its 95% interval") -> list[Path]:
    """The FVDs of ``rows`` (see :func:`draw_fvd_uncertainty`) in one panel; ``clips``: the clip count, on the axis."""
    plt = pyplot()
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(8.5, 0.8 * len(rows) + 1.4))
        draw_fvd_uncertainty(ax, rows)
        ax.set_xlabel(f"FVD{f' on {clips} clips' if clips else ''} (lower is better); ◆ FVD∞ and its 95% interval")
        ax.set_title(title)
        fig.tight_layout()
        return save_figure(fig, stem)
