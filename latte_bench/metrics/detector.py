"""The two interfaces of the evaluation path: a :class:`Detector` turns clips into features, a :class:`Metric`
turns the features of one or two sides into a number.

One file per detector (``i3d.py``, ``inception.py``, ``c3d.py``, ``flicker.py``) and one per metric family
(``fvd.py``, ``fid.py``, ``kernel.py``, ``inception_score.py``, ``prdc.py``, ``flicker.py``) define the objects;
:mod:`latte_bench.metrics.registry` lists them, and :func:`latte_bench.metrics.evaluation.evaluate` runs
whatever it is given through these interfaces alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

    from latte_bench.metrics.stats import FeatureStats


@dataclass(frozen=True)
class Loaded:
    """A detector ready to run: ``features`` maps the preprocessed batch to float (B, D) features.

    ``sha256``: of the weight file (None for a weightless detector, whose real statistics are never cached);
    ``info``: more provenance the record gives under the detector's name (the C3D's file and format), or None.
    """

    detector: "Detector"
    features: Callable[[torch.Tensor], torch.Tensor]
    sha256: str | None
    info: dict | None = None


class Detector:
    """A feature extractor run once per side of an evaluation.

    ``unit``: what one feature row stands for, ``"clip"`` (a whole clip) or ``"frame"`` (each frame of a clip:
    real frames are every frame of the real videos, clip counts are rows / ``num_frames``). ``min_frames``:
    clips shorter than this are refused with ``--num-frames N: <too_short>``. ``weightless``: no network
    (the record lists no detector for its metrics). ``keep_features``: per-row features always kept (else
    only for a metric that needs them or ``--save-features``). ``takes_real_features``: ``--real-features``
    (a file of ``--save-features``) may stand in for its real pass.
    """

    name: str = ""
    unit: str = "clip"
    min_frames: int = 1
    too_short: str = ""
    weightless: bool = False
    keep_features: bool = False
    takes_real_features: bool = False

    def load(self, device: torch.device, run) -> Loaded:
        """The network on ``device``; ``run``: the :class:`~latte_bench.metrics.protocol.RunOptions` (weight files)."""
        raise NotImplementedError

    def items(self, clips: torch.Tensor) -> torch.Tensor:
        """uint8 clips (B, T, H, W, 3) -> the uint8 items the network reads (B·k, ...); the clip itself by default."""
        return clips

    def preprocess(self, items: torch.Tensor, proto) -> torch.Tensor:
        """A batch of items on the device -> the network input under ``proto`` (its resize or FID mode)."""
        return items

    def preprocess_setting(self, proto):
        """The protocol setting :meth:`preprocess` follows (part of the real-statistics cache key), or None."""
        return None

    def __repr__(self) -> str:
        return f"<detector {self.name}>"


@dataclass(frozen=True, eq=False)
class Metric:
    """A number computed from a detector's statistics.

    ``detector``: the :class:`Detector` whose pass it reads. ``protocol``: the published protocol it follows, in
    words (the record's ``provenance.protocol``). ``needs_real``: False for a score of the generated side alone.
    ``needs_features``: per-row features must be kept (kernel, k-NN and split-based metrics). ``standard``: the
    parts of the protocol whose departures tag its record nonstandard, among ``counts`` (clip and frame counts),
    ``fake_clips`` (fewer generated clips than asked), ``stride`` (the real stride), ``resize`` and ``fid_mode``.
    """

    name: str
    detector: Detector
    protocol: str
    needs_real: bool = True
    needs_features: bool = False
    standard: frozenset = frozenset({"counts", "fake_clips"})

    def num_clips(self, proto) -> int:
        """Generated clips it scores."""
        return proto.num_clips

    def distance(self, real: FeatureStats, fake: FeatureStats, proto, shared: dict) -> tuple[float, dict]:
        """``(value, detail)`` of the two sides (a metric with ``needs_real``).

        ``shared``: a scratch dict common to the metrics of one run (metrics computed together store it there).
        ``detail`` goes to the record's provenance; its ``uncertainty`` entry, when present, to the result itself.
        """
        raise NotImplementedError

    def score(self, fake: FeatureStats, proto) -> tuple[float, dict]:
        """``(value, detail)`` of the generated side alone (a metric without ``needs_real``)."""
        raise NotImplementedError

    def provenance(self, proto) -> dict:
        """Extra fields of the record's ``provenance`` (the settings it ran with)."""
        return {}

    def protocol_fields(self, proto) -> dict:
        """Extra fields of the record's ``protocol``."""
        return {}
