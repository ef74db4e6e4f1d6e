"""FVD with the StyleGAN-V protocol (as used by Latte): ``compute_fvd(real, fake, ...)``.

Real clips: one seeded random clip of ``num_frames`` frames at the dataset's stride from each of
up to ``num_clips`` long-enough videos (:mod:`latte_bench.data.clips`); generated clips: the first
``num_frames`` frames of the first ``num_clips`` videos; uint8 -> [-1, 1] -> 224x224
(:mod:`latte_bench.metrics.resize`); TF-Hub I3D 400-d time-averaged logits
(:mod:`latte_bench.metrics.i3d`); float64 statistics, biased covariance, Fréchet distance
(:mod:`latte_bench.metrics.stats`). The pass, the cache and the record are the evaluation
path's (:mod:`latte_bench.metrics.evaluation`, where ``compute_fvd`` is defined).
"""

from latte_bench.metrics.evaluation import compute_fvd

__all__ = ["compute_fvd"]
