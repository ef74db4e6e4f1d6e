"""FID on video frames with the StyleGAN-V protocol (``fid50k_full``): which frames, and how they enter the Inception.

* Real set: **every frame of every real video** (StyleGAN-V's ``ImageFolderDataset`` over the real
  frame root, recursively), optionally capped at ``max_real_frames``.
* Generated set: frames ``0..num_frames-1`` of the first ``num_clips`` generated videos (2048 × 16 =
  32,768 frames for Latte). StyleGAN-V's folder mode takes the first ``min(#frames, 50000)`` sorted
  frames of the folder, which is the same set when the generated videos have 16 frames each.
* Detector: Inception-v3 2015-12-05 pool3 (2048-d), :mod:`latte_bench.metrics.inception`, with one of
  three input pipelines (``fid_mode``): ``stylegan`` (TF1-legacy bilinear to 299, ``(x−128)/128``; the
  StyleGAN-V number), ``clean`` (clean-fid) or ``legacy_pytorch`` (pytorch-fid).

The pass, the statistics and the cache are those of every metric (:mod:`latte_bench.metrics.evaluation`);
``compute_fid`` lives there too. :data:`FID` is the metric object.
"""

from __future__ import annotations

from latte_bench.data.clips import Clip
from latte_bench.data.video import VideoSource
from latte_bench.errors import UserError
from latte_bench.metrics import inception
from latte_bench.metrics.fvd import Frechet


def real_frames(source: VideoSource, max_frames: int | None = None) -> list[Clip]:
    """One single-frame :class:`Clip` per frame of every video, in sorted order (optionally the first ``max_frames``)."""
    frames = [Clip(i, f"{e.name}#{k}", (k,)) for i, e in enumerate(source.entries) for k in range(e.num_frames)]
    if not frames:
        raise UserError(f"{source.root}: the real videos have no frames")
    return frames[:max_frames] if max_frames else frames


MODE_DETAIL = {
    "stylegan": "TF1 legacy resize_bilinear to 299 (float), then (x-128)/128 (StyleGAN/StyleGAN-V, clean-fid legacy_tensorflow)",
    "clean": "PIL bicubic (antialiased) per channel in float32 to 299, then (x-128)/128 (clean-fid clean)",
    "legacy_pytorch": "x/255, F.interpolate bilinear align_corners=False to 299, then 2x-1 (pytorch-fid)",
}


FID = Frechet("fid", inception.DETECTOR, "StyleGAN-V fid50k_full on frames: all real frames vs frames 0..num_frames-1 of "
              "the generated clips", standard=frozenset({"counts", "fid_mode"}))
