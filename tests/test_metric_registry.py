"""Detectors and metrics are objects: a new one registered in the registry runs through ``evaluate`` unchanged,
and the evaluation loop never compares a detector or metric name."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from latte_bench.errors import UserError
from latte_bench.metrics import evaluate, registry
from latte_bench.metrics.detector import Detector, Loaded, Metric
from latte_bench.metrics.protocol import METRIC_NAMES
from latte_bench.metrics.record import EvalRecord

EVALUATION = Path(__file__).resolve().parents[1] / "latte_bench" / "metrics" / "evaluation.py"


class MeanLevel(Detector):
    """A weightless toy detector: a clip -> its mean pixel value (one feature)."""

    name, unit, min_frames, weightless = "mean_level", "clip", 3, True
    too_short = "the mean level needs 3 frames"

    def load(self, device, run) -> Loaded:
        return Loaded(self, lambda x: x.double().mean(dim=(1, 2, 3, 4))[:, None], None)

    def preprocess(self, items, proto):
        return items.float()


@dataclass(frozen=True, eq=False)
class LevelGap(Metric):
    """|mean level of the real clips − mean level of the generated ones|."""

    def distance(self, real, fake, proto, shared):
        return abs(real.mean()[0] - fake.mean()[0]), {"note": "toy"}


@dataclass(frozen=True, eq=False)
class Brightest(Metric):
    """The generated side's largest clip level (no real side)."""

    def score(self, fake, proto):
        return float(fake.features.max()), {}


@pytest.fixture
def toy_metrics():
    det = MeanLevel()
    gap = registry.register(LevelGap("level_gap", det, "toy: gap of mean levels"))
    top = registry.register(Brightest("brightest", det, "toy: largest level", needs_real=False, needs_features=True,
                                      standard=frozenset()))
    yield gap, top
    registry.unregister("level_gap")
    registry.unregister("brightest")


def constant_videos(levels, frames: int = 8) -> np.ndarray:
    """uint8 (N, frames, 8, 8, 3) videos, video i all ``levels[i]`` (every clip of it has that mean)."""
    return np.stack([np.full((frames, 8, 8, 3), v, np.uint8) for v in levels])


def test_a_registered_metric_and_detector_run_through_evaluate(toy_metrics):
    real, fake = constant_videos([10, 20, 30, 40]), constant_videos([100, 110, 120, 131])
    r = evaluate(real, fake, metrics="level_gap,brightest", num_clips=4, num_frames=4, progress=False)
    assert r.level_gap == pytest.approx(90.25, abs=1e-12) and r.brightest == 131.0
    res = r.record["results"]["level_gap"]
    assert (res["real_count"], res["fake_count"], res["unit"]) == (4, 4, "clips")
    assert res["provenance"]["protocol"] == "toy: gap of mean levels" and res["provenance"]["note"] == "toy"
    assert res["provenance"]["detector"] is None and r.record["detectors"] == {}  # weightless: no weights to record
    assert r.record["results"]["brightest"]["real_count"] is None  # no real side
    assert r.record["counts"] == {"real_clips": 4, "fake_clips": 4}
    assert r.record["nonstandard"] == ["4 clips", "4 frames"]  # the default ``standard``: clip and frame counts
    assert set(r.stats) == {"mean_level"}
    typed = EvalRecord.from_dict(r.record)  # the record made by this evaluation writes back key for key, in order
    assert json.dumps(typed.to_dict()) == json.dumps(r.record) and typed.metrics["level_gap"]._stored is None
    with pytest.raises(UserError, match="num_frames=2: the mean level needs 3 frames"):
        evaluate(real, fake, metrics=("brightest",), num_clips=4, num_frames=2, progress=False)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(LevelGap("level_gap", MeanLevel(), "again"))


def test_a_fake_only_metric_needs_no_real_videos(toy_metrics):
    r = evaluate(None, constant_videos([5, 9, 7]), metrics=("brightest",), num_clips=3, num_frames=4, progress=False)
    assert r.brightest == 9.0 and r.record["real"] is None and r.record["nonstandard"] == []


def test_the_registry_holds_the_metrics_the_cli_offers():
    assert tuple(registry.METRICS) == METRIC_NAMES
    assert all(registry.METRICS[m].detector.name == "i3d" for m in registry.GROUPS["prdc"])


def name_comparisons(source: str, names: set[str]) -> list[int]:
    """Line numbers of comparisons (``==``, ``!=``, ``in``, ``not in``) and subscripts naming one of ``names`` in a string constant."""

    def strings(node):
        return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}

    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and strings(node) & names:
            lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and strings(node.slice) & names:
            lines.append(node.lineno)
    return sorted(lines)


DETECTOR_NAMES = {"i3d", "inception", "c3d", "flicker"}


def test_evaluation_never_asks_which_detector_or_metric_it_holds():
    names = DETECTOR_NAMES | set(registry.METRICS) | set(registry.GROUPS)
    assert name_comparisons(EVALUATION.read_text(), names) == []
    # the check finds the branches it is meant to find
    assert name_comparisons('if det == "i3d":\n    x = nets["c3d"][0]\nok = m in ("fvd", "fid")\n', names) == [1, 2, 3]
    tree = ast.parse(EVALUATION.read_text())
    constants = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not constants & DETECTOR_NAMES  # no detector is named at all
