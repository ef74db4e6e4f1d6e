"""Two evaluations side by side: are they comparable, and is their difference real?

* :func:`compare_records` lists every setting in which two evaluation records differ, grouped by what
  such a difference does (:data:`latte_bench.metrics.protocol.EFFECTS`, one rule for the whole
  package): "changes what the number means" makes the two numbers incomparable.
* :func:`compare_features` tests ``FD(real, B) - FD(real, A)`` on the detector features of the two
  evaluations with a paired bootstrap: the shared real clips are resampled jointly for both, each
  generated set on its own.
* :func:`paper_departures` lists where one record departs from the paper's protocol for a dataset,
  with the measured or documented size of each departure's effect where there is one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from latte_bench.data.registry import DATASETS, PAPER_SAMPLER, PAPER_STEPS, get_dataset
from latte_bench.errors import UserError
from latte_bench.metrics.protocol import EFFECTS, STANDARD_CLIPS, STANDARD_FRAMES, effect_of
from latte_bench.metrics.record import EvalRecord
from latte_bench.metrics.stats import FeatureStats, _psd_eigvals, _sqrt_psd, frechet_distance

DEFAULT_RESAMPLES = 300


# ---------------------------------------------------------------- features: the paired bootstrap


@dataclass(frozen=True)
class FeatureComparison:
    """``delta = value_b - value_a`` (Fréchet distances to the shared real set) and its uncertainty.

    ``delta_corrected`` subtracts the bootstrap's estimate of the bias of ``delta`` (FD is biased upward
    at finite clip counts, by an amount that depends on each set's covariance, so the raw difference of
    two FDs is biased unless both sets have the same spread); ``se`` is the bootstrap standard error;
    ``ci`` the normal interval ``delta_corrected ± z se`` at ``confidence`` and ``p_value`` the two-sided
    p-value of "no difference" from the same z, so ``p < 1 - confidence`` exactly when ``ci`` excludes 0.
    """

    value_a: float
    value_b: float
    delta: float
    delta_corrected: float
    se: float
    ci: tuple[float, float]
    p_value: float
    confidence: float
    n_real: int
    n_a: int
    n_b: int
    n_resamples: int
    seed: int
    covariance: str
    paired: bool = True  # False: each evaluation had its own real clips (``real_b``)

    @property
    def significant(self) -> bool:
        return self.p_value < 1 - self.confidence

    def to_dict(self) -> dict:
        return {**self.__dict__, "ci": list(self.ci), "significant": self.significant}


def _features(x, name: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float32)
    if arr.ndim != 2 or len(arr) < 2:
        raise UserError(f"{name} features must be an (N, d) array with N >= 2, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise UserError(f"{name} features contain NaN/inf")
    return arr


def _fd(real: np.ndarray, fake: np.ndarray, unbiased: bool) -> float:
    """The Fréchet distance exactly as an evaluation computes it from the same features."""
    r, f = FeatureStats(), FeatureStats()
    r.append(real)
    f.append(fake)
    return frechet_distance(r.mean(), r.cov(unbiased), f.mean(), f.cov(unbiased))


def _moments(x: np.ndarray, unbiased: bool) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(axis=0)
    xc = x - mu
    return mu, xc.T @ xc / (len(x) - 1 if unbiased else len(x))


def _fd_to(mu: np.ndarray, sigma: np.ndarray, mu_r: np.ndarray, root_r: np.ndarray, trace_r: float) -> float:
    """FD of N(mu, sigma) to a real set given as its mean, covariance square root and trace."""
    m = root_r @ sigma @ root_r
    w = np.linalg.eigvalsh((m + m.T) / 2)
    d = mu - mu_r
    return float(d @ d + np.trace(sigma) + trace_r - 2.0 * np.sqrt(_psd_eigvals(w)).sum())


def compare_features(real, fake_a, fake_b, *, confidence: float = 0.95, seed: int = 0,
                     n_resamples: int = DEFAULT_RESAMPLES, covariance: str = "biased",
                     real_b=None) -> FeatureComparison:
    """Paired bootstrap test of ``FD(real, fake_b) - FD(real, fake_a)``.

    ``real``, ``fake_a``, ``fake_b``: (N, d) detector features (I3D logits for FVD, Inception pool3 for
    FID), the real ones shared by both evaluations. Each of ``n_resamples`` draws
    (``numpy.random.default_rng(seed)``) takes one resample of the real rows, used for both distances,
    and one of each generated set, all with replacement. ``value_a``/``value_b`` equal what the
    evaluations report on the same features, bit for bit. Cost: about 0.08 s per resample at
    d = 400 and N = 2,048 on one CPU thread (three covariances, one eigendecomposition, two eigenvalue
    problems).

    ``real_b``: the real features of B's evaluation when it drew other real clips (another seed):
    then ``value_b = FD(real_b, fake_b)`` and each real set is resampled with its own generated set
    (an unpaired test, wider: the real draws' noise no longer cancels).
    """
    if not 0 < confidence < 1:
        raise UserError(f"confidence must be in (0, 1), got {confidence}")
    if int(n_resamples) < 20:
        raise UserError(f"n_resamples must be at least 20, got {n_resamples}")
    if covariance not in ("biased", "unbiased"):
        raise UserError(f"covariance must be biased or unbiased, got {covariance!r}")
    real, a, b = _features(real, "real"), _features(fake_a, "fake_a"), _features(fake_b, "fake_b")
    paired = real_b is None
    real_b = real if paired else _features(real_b, "real_b")
    if not real.shape[1] == a.shape[1] == b.shape[1] == real_b.shape[1]:
        raise UserError(f"feature dimensions differ: real {real.shape[1]}, fake_a {a.shape[1]}, fake_b {b.shape[1]}, "
                        f"real_b {real_b.shape[1]}")
    unbiased = covariance == "unbiased"
    value_a, value_b = _fd(real, a, unbiased), _fd(real_b, b, unbiased)
    delta = value_b - value_a

    rng = np.random.default_rng(seed)
    r64, a64, b64, rb64 = (x.astype(np.float64) for x in (real, a, b, real_b))

    def resampled_real(x: np.ndarray):
        mu, sigma = _moments(x[rng.integers(0, len(x), len(x))], unbiased)
        return mu, _sqrt_psd(sigma), float(np.trace(sigma))

    draws = np.empty(int(n_resamples), np.float64)
    for i in range(len(draws)):
        ra = resampled_real(r64)
        rb = ra if paired else resampled_real(rb64)
        fa = _fd_to(*_moments(a64[rng.integers(0, len(a64), len(a64))], unbiased), *ra)
        fb = _fd_to(*_moments(b64[rng.integers(0, len(b64), len(b64))], unbiased), *rb)
        draws[i] = fb - fa
    se = float(draws.std(ddof=1))
    corrected = 2.0 * delta - float(draws.mean())
    z = _normal_quantile(0.5 + confidence / 2)
    p = math.erfc(abs(corrected) / se / math.sqrt(2.0)) if se > 0 else float(corrected == 0.0)
    return FeatureComparison(value_a=value_a, value_b=value_b, delta=delta, delta_corrected=corrected, se=se,
                             ci=(corrected - z * se, corrected + z * se), p_value=p, confidence=float(confidence),
                             n_real=len(real), n_a=len(a), n_b=len(b), n_resamples=len(draws), seed=int(seed),
                             covariance=covariance, paired=paired)


def _normal_quantile(q: float) -> float:
    """The standard normal quantile (bisection on erfc; exact to 1e-12, no scipy needed)."""
    lo, hi = -10.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# ---------------------------------------------------------------- records: which settings differ


@dataclass(frozen=True)
class Difference:
    key: str  # dotted record key, e.g. protocol.resize
    a: object
    b: object
    effect: str  # a key of protocol.EFFECTS


@dataclass
class RecordComparison:
    """The settings in which two records differ, by group, and the verdict."""

    differences: list[Difference] = field(default_factory=list)

    def group(self, effect: str) -> list[Difference]:
        return [d for d in self.differences if d.effect == effect]

    @property
    def comparable(self) -> bool:
        return not self.group("meaning")

    @property
    def verdict(self) -> str:
        if self.comparable:
            return "comparable: no setting that changes what the number means differs"
        keys = ", ".join(d.key for d in self.group("meaning"))
        return f"not comparable: {keys} differ"

    def to_dict(self) -> dict:
        return {"comparable": self.comparable, "verdict": self.verdict,
                "groups": {e: [{"key": d.key, "a": d.a, "b": d.b} for d in self.group(e)] for e in EFFECTS}}


def _flatten(obj, prefix: str = "") -> dict:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def generated_lossless(raw: dict) -> bool | None:
    """Whether the generated videos reached the detector without lossy compression (None: unknown).

    In-memory samples and uint8 arrays are lossless; video files (mp4, avi, ...) are lossy; frame
    folders are lossless as png, lossy as jpg, and the record does not say which.
    """
    fake = EvalRecord.from_dict(raw).fake if isinstance(raw, dict) else raw.fake
    fake = fake if isinstance(fake, dict) else {}
    kind, layout = fake.get("kind"), fake.get("layout")
    if kind in ("checkpoint", "array") or layout in ("array", "npz"):
        return True
    if layout == "videos":
        return False
    return None


def record_settings(raw: dict) -> dict:
    """The settings of a record as ``{dotted key: value}``: every key :func:`effect_of` classifies."""
    rec = EvalRecord.from_dict(raw)
    flat = {k: v for k, v in _flatten(rec.to_dict()).items() if effect_of(k) is not None}
    flat["fake.lossless"] = generated_lossless(rec)
    return flat


def compare_records(a: dict, b: dict) -> RecordComparison:
    """Every setting in which the evaluation records ``a`` and ``b`` (JSON objects) differ, grouped.

    Results (metric values, standard errors, timings, feature files) are not settings and are not
    listed. A key present in one record only is a difference (the other side is None).
    """
    sa, sb = record_settings(a), record_settings(b)
    out = RecordComparison()
    for key in sorted(set(sa) | set(sb)):
        va, vb = sa.get(key), sb.get(key)
        if json.dumps(va, sort_keys=True, default=str) != json.dumps(vb, sort_keys=True, default=str):
            out.differences.append(Difference(key, va, vb, effect_of(key) or "meaning"))
    return out


# ---------------------------------------------------------------- one record against the paper


# The documented size of a departure's effect (measured in docs/why-fvd-differs.md unless noted).
EFFECT_SIZES = {
    "num_clips": "fewer clips raise FVD (its small-sample bias): demo set, 64 vs 256 clips (docs/why-fvd-differs.md)",
    "real_stride": "the real-clip stride changes the real motion statistics; Taichi-HD at stride 1 instead of 6 "
                   "is a known cause of ~170 vs 97 (docs/why-fvd-differs.md)",
    "resize": "tf vs pytorch bilinear resize to 224 (docs/why-fvd-differs.md)",
    "covariance": "unbiased vs biased covariance: a small shift that grows as the clip count falls (docs/why-fvd-differs.md)",
    "fake.lossless": "an mp4 round trip of the generated videos roughly doubles FVD on 16² samples "
                     "(docs/evaluation.md; docs/why-fvd-differs.md)",
    "fake.sampler": "DDIM-50 instead of DDPM-250 (docs/why-fvd-differs.md)",
    "fake.steps": "fewer sampling steps (docs/why-fvd-differs.md)",
    "fake.cfg_scale": "classifier-free guidance changes class fidelity and diversity; the paper uses 7.0 on UCF101",
    "fake.checkpoint.weights": "raw weights instead of the EMA are usually worse early in training",
    "real.split": "a held-out real split instead of the training split (docs/why-fvd-differs.md)",
}


@dataclass(frozen=True)
class Departure:
    key: str
    paper: object
    record: object
    effect: str  # what is known of its size, or ""


def paper_protocol(dataset: str) -> dict:
    """The paper's evaluation protocol for ``dataset`` (paper Sec. 4, StyleGAN-V's FVD protocol), by record key."""
    spec = get_dataset(dataset)
    return {
        "protocol.dataset": spec.name, "protocol.num_clips": STANDARD_CLIPS, "protocol.num_frames": STANDARD_FRAMES,
        "protocol.real_stride": spec.stride, "protocol.fake_stride": 1, "protocol.resize": "pytorch",
        "protocol.covariance": "biased", "real.split": spec.real_split, "fake.sampler": PAPER_SAMPLER, "fake.steps": PAPER_STEPS,
        "fake.cfg_scale": spec.guidance, "fake.checkpoint.weights": "ema",
        "fake.lossless": True,
    }


def paper_departures(raw: dict, dataset: str) -> list[Departure]:
    """Where the record ``raw`` departs from :func:`paper_protocol` (``dataset``), with known effect sizes.

    A setting the record does not hold (e.g. the sampler of a folder of videos) is a departure with
    ``record=None``: nothing shows that it followed the paper.
    """
    if dataset not in DATASETS:
        raise UserError(f"--paper {dataset}: unknown dataset; choose one of {', '.join(DATASETS)}")
    settings = record_settings(raw)
    tags = EvalRecord.from_dict(raw).nonstandard
    out = []
    for key, want in paper_protocol(dataset).items():
        have = settings.get(key)
        if have != want:
            out.append(Departure(key, want, have, EFFECT_SIZES.get(key.split(".", 1)[1] if key.startswith("protocol.")
                                                                    else key, "")))
    for tag in tags or []:
        out.append(Departure("nonstandard", None, tag, "tagged by the evaluation itself"))
    return out
