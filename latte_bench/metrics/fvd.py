"""FVD with the StyleGAN-V protocol (as used by Latte): the :data:`FVD` metric and ``compute_fvd(real, fake, ...)``.

Real clips: one seeded random clip of ``num_frames`` frames at the dataset's stride from each of
up to ``num_clips`` long-enough videos (:mod:`latte_bench.data.clips`); generated clips: the first
``num_frames`` frames of the first ``num_clips`` videos; uint8 -> [-1, 1] -> 224x224
(:mod:`latte_bench.metrics.resize`); TF-Hub I3D 400-d time-averaged logits
(:mod:`latte_bench.metrics.i3d`); float64 statistics, biased covariance, Fréchet distance
(:mod:`latte_bench.metrics.stats`), with its standard error and N -> inf estimate when both sides kept
their features (:mod:`latte_bench.metrics.uncertainty`). The pass, the cache and the record are the
evaluation path's (:mod:`latte_bench.metrics.evaluation`, where ``compute_fvd`` is defined).
"""

from __future__ import annotations

from dataclasses import dataclass

from latte_bench.lazy import lazy_getattr
from latte_bench.metrics import i3d
from latte_bench.metrics.detector import Metric
from latte_bench.metrics.stats import frechet_distance
from latte_bench.metrics.uncertainty import frechet_from_features


@dataclass(frozen=True, eq=False)
class Frechet(Metric):
    """The Fréchet distance of the two sides' Gaussians (FVD, FID); ``detail["uncertainty"]``: its se and
    N -> inf estimate when both sides kept per-row features, else None."""

    def distance(self, real, fake, proto, shared):
        if real.keep_features and fake.keep_features:
            est = frechet_from_features(real, fake, metric=self.name, covariance=proto.covariance, seed=proto.seed)
            return est.value, {"uncertainty": est.to_dict()}
        unbiased = proto.covariance == "unbiased"
        return frechet_distance(real.mean(), real.cov(unbiased), fake.mean(), fake.cov(unbiased)), {"uncertainty": None}


FVD = Frechet("fvd", i3d.DETECTOR, "StyleGAN-V fvd2048_16f (Latte): Fréchet distance of TF-Hub I3D 400-d logits, float64",
              standard=frozenset({"counts", "fake_clips", "stride", "resize"}))

__all__ = ["FVD", "Frechet", "compute_fvd"]

__getattr__ = lazy_getattr("latte_bench.metrics", {"compute_fvd": "evaluation"})  # evaluation imports this module
