"""The uncertainty of a Fréchet distance (FVD, FID) from per-item features: ``se``, the N → ∞ estimate and its interval.

FD_N, the Fréchet distance of N real and M generated features, is biased upward: its expectation
falls towards the population distance as N and M grow (to first order as ``a/N + b/M``). From the
features this module gives, at the cost of a few dozen eigendecompositions:

* ``value`` — FD_N itself, by :func:`latte_bench.metrics.stats.frechet_distance` on the sums of
  :class:`~latte_bench.metrics.stats.FeatureStats`, the code path of ``eval``;
* ``se`` — its standard error (spread over independent draws of both sets at these sizes);
* ``inf`` (``fvd_inf`` / ``fid_inf``) — a bias-corrected estimate of the population distance;
* ``inf_ci`` — a ``confidence`` interval for the population distance, ``inf ± z·se`` cut at 0.

Method: a **grouped (delete-a-group) jackknife over items, on each side separately**. Each side's
items are split into ``groups`` seeded random groups; FD is recomputed with one group left out of
one side (the other side whole), from the full sums minus the group's sums, so no features are
copied. With ``θ`` the full value and ``θ̄_X``, ``θ̄_Y`` the means of the replicates that leave out a
real or a generated group::

    inf = θ − (G−1)(θ̄_X − θ) − (G−1)(θ̄_Y − θ)              (removes the a/N + b/M bias)
    se² = (G−1)/G Σ_g (θ_X,g − θ̄_X)² + the same over the generated groups

No Gaussian assumption is made (heavy tails are fine), and the bias of both the trace and the
matrix-square-root terms is removed without a closed form. It needs N well above the features'
effective rank: below it (the demo's 64 clips of 400-d I3D logits) FD_N is not ``a/N`` away from its
limit and ``inf`` is still biased upward. Measurements and the choice against the delta method,
subset extrapolation and the percentile bootstrap: docs/uncertainty.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from latte_bench.errors import NAME_ONLY, UserError, literal
from latte_bench.metrics.stats import FeatureStats, _psd_eigvals, _sqrt_psd, frechet_distance
from latte_bench.data.clips import Clip
from latte_bench.fsutil import write_json

DEFAULT_GROUPS = 20
METHOD = "grouped jackknife over items, each side"


@dataclass(frozen=True)
class FrechetEstimate:
    """A Fréchet distance with its uncertainty (all floats; ``nan`` where too few items, fewer than 4 a side).

    ``value``: FD of the two sets (>= 0); ``se``: its standard error; ``inf``: bias-corrected estimate of
    the population distance (may be slightly negative when the truth is ~0); ``inf_ci``: (low, high), a
    ``confidence`` interval for the population distance, both >= 0. ``fvd_inf``/``fvd_inf_ci`` (metric
    "fvd") or ``fid_inf``/``fid_inf_ci`` (metric "fid") name ``inf``/``inf_ci``.
    """

    metric: str
    value: float
    se: float
    inf: float
    inf_ci: tuple[float, float]
    confidence: float
    n_real: int
    n_fake: int
    dim: int
    groups: int
    seed: int
    covariance: str

    def __getattr__(self, name: str):
        if name == f"{self.metric}_inf":
            return self.inf
        if name == f"{self.metric}_inf_ci":
            return self.inf_ci
        raise AttributeError(name)

    def to_dict(self) -> dict:
        """JSON-ready: ``value``, ``se``, ``<metric>_inf``, ``<metric>_inf_ci`` ([low, high]), ``confidence``,
        ``n_real``, ``n_fake``, ``dim``, ``method``, ``groups``, ``seed``, ``covariance`` (nan -> None)."""

        def num(x):
            return None if x is None or not math.isfinite(x) else float(x)

        m = self.metric
        return {"value": num(self.value), "se": num(self.se), f"{m}_inf": num(self.inf),
                f"{m}_inf_ci": [num(self.inf_ci[0]), num(self.inf_ci[1])], "confidence": self.confidence,
                "n_real": self.n_real, "n_fake": self.n_fake, "dim": self.dim, "method": METHOD,
                "groups": self.groups, "seed": self.seed, "covariance": self.covariance}


def _as_stats(x, side: str) -> FeatureStats:
    if isinstance(x, FeatureStats):
        if not x.keep_features:
            raise UserError(f"{literal(side)} statistics hold no per-item features; keep them (keep_features=True, "
                            "{save_features})", save_features=NAME_ONLY)
        return x
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise UserError(f"{side} features must be a non-empty (N, d) array, got shape {arr.shape}")
    stats = FeatureStats(keep_features=True)
    stats.append(arr)
    return stats


def _group_sums(x: np.ndarray, groups: int, rng) -> list[tuple[int, np.ndarray, np.ndarray]]:
    parts = np.array_split(rng.permutation(len(x)), groups)
    out = []
    for g in parts:
        xg = x[np.sort(g)].astype(np.float64)
        out.append((len(g), xg.sum(axis=0), xg.T @ xg))
    return out


def _moments(n, s1, s2, unbiased: bool):
    mu = s1 / n
    sigma = s2 / n - np.outer(mu, mu)
    if unbiased:
        sigma *= n / (n - 1)
    return mu, sigma


def _replicates(fixed: FeatureStats, varied: FeatureStats, groups, unbiased: bool) -> np.ndarray:
    """FD with each group left out of ``varied`` (``fixed`` whole); FD is symmetric in its two sides.

    ``Tr sqrtm(S_v S_f) = Tr sqrt(eig(R_f S_v R_f))`` with ``R_f = S_f^1/2`` computed once; values are not
    clipped at 0 (clipping would bias the jackknife).
    """
    mu_f, sig_f = _moments(fixed.n, fixed.s1, fixed.s2, unbiased)
    root_f = _sqrt_psd(sig_f)
    tr_f = float(np.trace(sig_f))
    out = np.empty(len(groups))
    for k, (ng, s1g, s2g) in enumerate(groups):
        mu, sig = _moments(varied.n - ng, varied.s1 - s1g, varied.s2 - s2g, unbiased)
        m = root_f @ sig @ root_f
        w = np.linalg.eigvalsh((m + m.T) / 2)
        diff = mu - mu_f
        out[k] = diff @ diff + tr_f + np.trace(sig) - 2.0 * np.sqrt(_psd_eigvals(w)).sum()
    return out


def frechet_from_features(real, fake, *, metric: str = "fvd", covariance: str = "biased", confidence: float = 0.95,
                          seed: int = 0, groups: int = DEFAULT_GROUPS) -> FrechetEstimate:
    """Fréchet distance of ``real`` vs ``fake`` with its se, N → ∞ estimate and interval.

    ``real``, ``fake``: (N, d) and (M, d) float arrays, or :class:`FeatureStats` with kept features (their
    sums are used for ``value``, so an evaluation's statistics give its number bit for bit).
    ``covariance``: "biased" (StyleGAN-V) or "unbiased"; ``confidence`` in (0, 1); ``seed``: the grouping;
    ``groups``: jackknife groups per side (at most the item count).
    """
    if covariance not in ("biased", "unbiased"):
        raise UserError(f"covariance must be 'biased' or 'unbiased', got {covariance!r}")
    if not 0 < confidence < 1:
        raise UserError(f"confidence must be in (0, 1), got {confidence}")
    r, f = _as_stats(real, "real"), _as_stats(fake, "fake")
    if r.dim != f.dim:
        raise UserError(f"real features are {r.dim}-d but generated ones {f.dim}-d; they come from different detectors")
    unbiased = covariance == "unbiased"
    value = frechet_distance(r.mean(), r.cov(unbiased), f.mean(), f.cov(unbiased))
    g = int(min(groups, r.n, f.n))
    se = inf = low = high = math.nan
    if g >= 4 and min(r.n, f.n) - math.ceil(max(r.n, f.n) / g) >= 2:
        rng = np.random.default_rng(seed)
        gx, gy = _group_sums(r.features, g, rng), _group_sums(f.features, g, rng)
        tx, ty = _replicates(f, r, gx, unbiased), _replicates(r, f, gy, unbiased)
        inf = value - (g - 1) * (tx.mean() - value) - (g - 1) * (ty.mean() - value)
        se = math.sqrt((g - 1) / g * (((tx - tx.mean()) ** 2).sum() + ((ty - ty.mean()) ** 2).sum()))
        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        low, high = max(inf - z * se, 0.0), max(inf + z * se, 0.0)
    return FrechetEstimate(metric, float(value), float(se), float(inf), (float(low), float(high)), float(confidence),
                           int(r.n), int(f.n), int(r.dim), g, int(seed), covariance)


def fvd_from_features(real, fake, *, covariance: str = "biased", confidence: float = 0.95, seed: int = 0) -> FrechetEstimate:
    """FVD of (N, 400) real and (M, 400) generated I3D features: ``.value``, ``.se``, ``.fvd_inf``, ``.fvd_inf_ci``."""
    return frechet_from_features(real, fake, metric="fvd", covariance=covariance, confidence=confidence, seed=seed)


def fid_from_features(real, fake, *, covariance: str = "biased", confidence: float = 0.95, seed: int = 0) -> FrechetEstimate:
    """FID of (N, 2048) real and (M, 2048) generated Inception features: ``.value``, ``.se``, ``.fid_inf``, ``.fid_inf_ci``."""
    return frechet_from_features(real, fake, metric="fid", covariance=covariance, confidence=confidence, seed=seed)


# ----------------------------------------------------------------------- records and saved features


def record_fields(metric: str, estimate: dict | None) -> dict:
    """The fields an evaluation record's ``results.<metric>`` gets beside ``value``.

    ``se``, ``<metric>_inf``, ``<metric>_inf_ci`` ([low, high]) and ``uncertainty`` (how: method, groups,
    seed, confidence, covariance, counts), or all None with ``uncertainty.missing`` when the per-item
    features were not kept (FID without KID or --save-features: every real frame would be held in memory).
    """
    if estimate is None:
        return {"se": None, f"{metric}_inf": None, f"{metric}_inf_ci": None,
                "uncertainty": {"missing": "per-item features not kept (pass --save-features or add kid)"}}
    how = {k: v for k, v in estimate.items() if k not in ("value", "se", f"{metric}_inf", f"{metric}_inf_ci")}
    return {"se": estimate["se"], f"{metric}_inf": estimate[f"{metric}_inf"],
            f"{metric}_inf_ci": estimate[f"{metric}_inf_ci"], "uncertainty": how}


FEATURES_SCHEMA = "latte-bench/features/1"
FEATURES_INDEX = "features.json"
_METRICS_OF = {"i3d": ("fvd", "kvd"), "inception": ("fid", "kid")}


def save_features(folder, metrics, real_results: dict, fake_stats: dict, record: dict) -> dict:
    """Write the kept per-item features of both sides to ``folder``; returns the record's ``features`` entry.

    Files: ``<detector>_real.npz`` and ``<detector>_fake.npz`` (:meth:`FeatureStats.save`: ``n``, ``s1`` (d,),
    ``s2`` (d, d) float64 sums and ``features`` (n, d) float32, in pass order) for each detector with kept
    features, and ``features.json``: ``schema``, ``protocol``, ``detectors`` (sha256), ``counts`` and, per
    detector, ``real``/``fake`` file names, ``real_settings`` (what --real-features checks) and ``real_sampling``.
    The returned entry maps each metric of those detectors to ``{"real": path, "fake": path}`` (absolute),
    the format of :func:`latte_bench.reports.store.record_features`.
    """
    from pathlib import Path


    folder = Path(folder).resolve()
    index = {"schema": FEATURES_SCHEMA, "protocol": record["protocol"], "detectors": record["detectors"],
             "counts": record["counts"], "files": {}}
    entry = {}
    for det, rr in real_results.items():
        real, fake = rr["stats"], fake_stats.get(det)
        if fake is None or not (real.keep_features and fake.keep_features):
            continue
        real.save(folder / f"{det}_real.npz")
        fake.save(folder / f"{det}_fake.npz")
        index["files"][det] = {"real": f"{det}_real.npz", "fake": f"{det}_fake.npz",
                               "real_settings": rr.get("settings"), "real_sampling": rr.get("sampling")}
        for m in _METRICS_OF.get(det, ()):
            if m in metrics:
                entry[m] = {"real": str(folder / f"{det}_real.npz"), "fake": str(folder / f"{det}_fake.npz")}
    write_json(folder / FEATURES_INDEX, index)
    return entry


# settings that may differ between the run that saved real features and the run that reuses them
_REUSE_FREE = ("real_fingerprint", "block_size", "device", "torch_threads")


def load_real_features(path, settings: dict, sampling: dict) -> dict:
    """Real I3D statistics from a ``--save-features`` file, refused unless their protocol matches ``settings``.

    ``path``: ``<folder>/i3d_real.npz`` with ``<folder>/features.json`` beside it. Detector, weights' sha256,
    clip plan (count, frames, stride, seed), resize and skip_bad must be equal; the real videos' fingerprint
    too when both are known. Returns the entry of an evaluation's real pass.
    """
    import json
    from pathlib import Path

    path = Path(path)
    index_path = path.parent / FEATURES_INDEX
    if not path.is_file():
        raise UserError(f"{{real_features}} {literal(path)}: no such file; pass the {{{{folder}}}}/i3d_real.npz that "
                        "{save_features} wrote", real_features=NAME_ONLY, save_features=NAME_ONLY)
    try:
        index = json.loads(index_path.read_text())
        entry = next(e for e in index["files"].values() if e["real"] == path.name)
        saved = entry["real_settings"]
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        raise UserError(f"{{real_features}} {literal(path)}: {literal(index_path)} does not describe it; pass a file "
                        "written by {save_features}, with its features.json", real_features=NAME_ONLY,
                        save_features=NAME_ONLY) from None
    if saved.get("detector") != settings["detector"]:
        raise UserError(f"{{real_features}} {literal(path)}: features of the {literal(saved.get('detector'))} detector; "
                        "FVD needs i3d_real.npz", real_features=NAME_ONLY)
    differ = [k for k in settings if k not in _REUSE_FREE and saved.get(k) != settings[k]]
    if saved.get("real_fingerprint") and settings.get("real_fingerprint") and saved["real_fingerprint"] != settings["real_fingerprint"]:
        differ.append("real_fingerprint (other real videos)")
    if differ:
        diffs = ", ".join(f"{k} ({saved.get(k)!r} there, {settings.get(k)!r} now)" if k in settings else k for k in differ)
        raise UserError(f"{{real_features}} {literal(path)}: saved with another protocol ({literal(diffs)}); "
                        "pass matching settings or recompute the real features without {real_features}",
                        real_features=NAME_ONLY)
    stats = FeatureStats.load(path)
    if not stats.keep_features:
        raise UserError(f"{{real_features}} {literal(path)}: holds statistics only, no per-clip features; save them "
                        "again with {save_features}", real_features=NAME_ONLY, save_features=NAME_ONLY)
    return {"stats": stats, "info": {"skipped": [], "resolution": None, "from": str(path.resolve())},
            "sampling": entry.get("real_sampling") or sampling, "settings": saved,
            "cache": {"key": None, "hit": False, "enabled": False, "real_features": str(path.resolve())}}


# ----------------------------------------------------------------------------------- real-vs-real floor


def floor_clips(videos, used, num_clips: int, num_frames: int, stride: int, seed: int) -> list:
    """Up to ``num_clips`` real clips from long-enough videos of ``videos`` that no clip of ``used`` comes from.

    One clip per video, a seeded random subset and offset (the floor's own stream, ``[seed, 1]``), as the
    protocol's real clips are chosen. Empty when fewer than 4 such videos remain.
    """

    span = num_frames * stride
    taken = {c.video for c in used}
    rest = [i for i, e in enumerate(videos.entries) if e.num_frames >= span and i not in taken]
    rng = np.random.default_rng([seed, 1])
    if len(rest) > num_clips:
        rest = sorted(rng.choice(rest, size=num_clips, replace=False).tolist())
    if len(rest) < 4:
        return []
    clips = []
    for i in rest:
        e = videos.entries[i]
        offset = int(rng.integers(0, e.num_frames - span + stride))
        clips.append(Clip(i, e.name, tuple(offset + stride * k for k in range(num_frames))))
    return clips


def floor_entry(real: FeatureStats, other: FeatureStats | None, num_clips: int, covariance: str, seed: int) -> dict:
    """The record's ``floor``: ``fvd`` (value), ``se``, ``fvd_inf``, ``fvd_inf_ci``, ``uncertainty``, ``real_count``,
    ``floor_count``, ``sets`` and ``tag``.

    ``other``: a real set disjoint from ``real``; None when the split had no videos left, and then the floor is
    two seeded disjoint halves of ``real``. ``tag`` names the sizes when either set is below ``num_clips``
    (``"floor 1400 vs 600 clips"``), else None.
    """
    if other is not None:
        a, b, sets = real, other, "protocol real clips vs clips of other real videos"
    else:
        x = real.features
        p = np.random.default_rng([seed, 2]).permutation(len(x))
        half = len(x) // 2
        a, b, sets = x[np.sort(p[:half])], x[np.sort(p[half:2 * half])], "two disjoint halves of the protocol real clips"
    est = frechet_from_features(a, b, metric="fvd", covariance=covariance, seed=seed).to_dict()
    na, nb = est["n_real"], est["n_fake"]
    return {"fvd": est["value"], **record_fields("fvd", est), "real_count": na, "floor_count": nb, "sets": sets,
            "tag": None if min(na, nb) >= num_clips else f"floor {na} vs {nb} clips"}


def floor_text(floor: dict, digits: int = 4) -> str:
    """``floor (real vs real, 64 vs 64 clips): 41.2 ± 3.1 (FVD∞ 2.0 [0.0, 8.1])`` for a record's ``floor``
    (the ``±`` part left out when ``se`` is None: fewer than 4 clips a side)."""
    f = f"{{:.{digits}f}}".format
    text = f"floor (real vs real, {floor['real_count']} vs {floor['floor_count']} clips): {f(floor['fvd'])}"
    if floor.get("se") is not None:
        low, high = floor["fvd_inf_ci"]
        text += f" ± {f(floor['se'])} (FVD∞ {f(floor['fvd_inf'])} [{f(low)}, {f(high)}])"
    return text
