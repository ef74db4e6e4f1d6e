"""The typed evaluation record: every record loads and writes back byte for byte, values held once."""

import json
from pathlib import Path

import pytest

from latte_bench.metrics.record import SCHEMA, EvalRecord, MetricResult

DEMO = sorted((Path(__file__).resolve().parents[1] / "reports" / "demo" / "results").glob("*.json"))


def _text(d: dict) -> str:
    return json.dumps(d, indent=2, sort_keys=False) + "\n"


@pytest.mark.parametrize("path", DEMO, ids=[p.name for p in DEMO])
def test_committed_records_write_back_byte_for_byte(path):
    d = json.loads(path.read_text(encoding="utf-8"))
    rec = EvalRecord.from_dict(d)
    assert _text(rec.to_dict()) == _text(d)
    assert all(m._stored is None for m in rec.metrics.values())  # parsed, not kept verbatim
    assert rec.metrics["fvd"].number == d["metrics"]["fvd"] == d["results"]["fvd"]["value"]


def test_the_value_is_held_once_and_both_json_places_follow_it():
    d = json.loads(DEMO[0].read_text(encoding="utf-8"))
    rec = EvalRecord.from_dict(d)
    rec.metrics["fvd"].value = 1.5
    out = rec.to_dict()
    assert out["metrics"]["fvd"] == 1.5 and out["results"]["fvd"]["value"] == 1.5


def test_a_num_runs_record_keeps_its_runs_and_its_mean_once():
    m = MetricResult("fvd", 2.0, 1.0, [1.0, 3.0], [0, 1], detail={"real_count": 4, "fake_count": 4, "unit": "clips",
                                                                   "provenance": {}})
    out = EvalRecord(metrics={"fvd": m}, keys=["schema", "metrics", "results"]).to_dict()
    assert out == {"schema": SCHEMA, "metrics": {"fvd": {"value": 2.0, "std": 1.0, "runs": [1.0, 3.0], "seeds": [0, 1]}},
                   "results": {"fvd": {"metric": "fvd", "value": 2.0, "real_count": 4, "fake_count": 4, "unit": "clips",
                                       "provenance": {}}}}
    back = EvalRecord.from_dict(out)
    assert back.metrics["fvd"].runs == [1.0, 3.0] and back.metrics["fvd"]._stored is None and back.to_dict() == out


@pytest.mark.parametrize("d", [
    {"method": "A", "dataset": "UCF101", "metrics": {"fvd": 3, "fid": {"value": 2.5}}, "my_note": [1, 2]},
    {"metrics": {"fvd": {"fvd": 4.0}}, "results": {"fvd": {"value": 9.0, "metric": "fvd"}, "other": 1}},
    {"metrics": "broken", "schema": "old"},
    {"floor": {"fvd": 1.0}, "metrics": {"is": None}, "nonstandard": ["3 clips"]},
])
def test_hand_made_records_and_unknown_keys_survive_a_round_trip(d):
    rec = EvalRecord.from_dict(d)
    assert _text(rec.to_dict()) == _text(d)


def test_hand_made_metric_forms_give_their_number():
    rec = EvalRecord.from_dict({"metrics": {"fvd": {"fvd": 4.0}, "fid": {"value": 2.5}, "is": "n/a", "kvd": True}})
    assert [rec.metrics[n].number for n in ("fvd", "fid", "is", "kvd")] == [4.0, 2.5, None, None]
