"""``latte-bench compare A.json B.json [...]``: are two evaluations comparable, and is their difference real?

Exit status: 0 comparable, 1 not comparable, 2 bad input.
"""

from __future__ import annotations

import json
from pathlib import Path

from latte_bench.errors import UserError
from latte_bench.lazy import lazy_module
from latte_bench.options import HelpFormatter

# Loaded on first use, so that `latte-bench --help` (which builds this module's parsers) does not import torch.
_compare = lazy_module("latte_bench.metrics.compare")
_fsutil = lazy_module("latte_bench.fsutil")
_protocol = lazy_module("latte_bench.metrics.protocol")
_store = lazy_module("latte_bench.reports.store")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", formatter_class=HelpFormatter,
        help="compare evaluation records: which settings differ, whether the numbers are comparable, "
        "and whether their difference is significant",
        description="Compare evaluation records (latte-bench eval --json). Every setting in which each record "
        "differs from the first is listed, grouped by what it does (changes what the number means / another "
        "random draw / moves the last digits / no effect / the generated side), with a verdict. Where both "
        "records saved their features against the same real features, the difference of their FVD (and FID) "
        "is tested with a paired bootstrap. With --paper DATASET, one record is compared with the paper's "
        "protocol for that dataset. Exit status: 0 comparable, 1 not comparable, 2 bad input.",
    )
    p.add_argument("records", nargs="+", metavar="RECORD.json", help="evaluation records; each is compared with the first")
    p.add_argument("--paper", default=None, metavar="DATASET",
                   help="compare one record with the paper's protocol for DATASET (ffs, sky, ucf101, taichi)")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence of the interval of the difference")
    p.add_argument("--resamples", type=int, default=300, metavar="B", help="bootstrap resamples of the paired test")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    p.add_argument("--json", default=None, metavar="OUT", help="write the comparison as JSON")
    p.set_defaults(func=run_compare)


def _load(path: str):
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such record file; pass the JSON written by latte-bench eval --json")
    return _store.load_record(p)


def _show(value) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        text = value[:12]
    return text if len(text) <= 40 else text[:37] + "..."


def _significance(rec_a, rec_b, args) -> dict:
    """``{metric: FeatureComparison dict}``, or ``{metric: {"skipped": why}}``, for FVD and FID."""
    import numpy as np


    out = {}
    for metric in ("fvd", "fid"):
        if metric not in rec_a.metrics or metric not in rec_b.metrics:
            continue
        try:
            fa, fb = _store.record_features(rec_a, metric), _store.record_features(rec_b, metric)
        except UserError as e:  # a missing or unreadable features file: the settings are still compared
            out[metric] = {"skipped": str(e)}
            continue
        if fa is None or fb is None:
            out[metric] = {"skipped": "the records hold no saved features (evaluate with --save-features DIR)"}
            continue
        # the same real features: a paired test; other real clips of the same data (another seed): unpaired
        same_real = fa[0].shape == fb[0].shape and np.array_equal(fa[0], fb[0])
        cov = (rec_a.raw.get("protocol") or {}).get("covariance", "biased")
        out[metric] = _compare.compare_features(fa[0], fa[1], fb[1], confidence=args.confidence, seed=args.seed,
                                       n_resamples=args.resamples, covariance=cov,
                                       real_b=None if same_real else fb[0]).to_dict()
    return out


def _print_pair(name_a: str, name_b: str, cmp, sig: dict) -> None:
    print(f"A: {name_a}\nB: {name_b}")
    print(f"verdict: {cmp.verdict}")
    for effect, title in _protocol.EFFECTS.items():
        diffs = cmp.group(effect)
        if not diffs:
            continue
        print(f"  {title} ({len(diffs)}):")
        width = max(len(d.key) for d in diffs)
        for d in diffs:
            print(f"    {d.key:<{width}}  A: {_show(d.a):<40}  B: {_show(d.b)}")
    if not cmp.differences:
        print("  no setting differs")
    for metric, s in sig.items():
        name = metric.upper()
        if "skipped" in s:
            print(f"  {name}: no significance test: {s['skipped']}")
            continue
        lo, hi = s["ci"]
        word = "significant" if s["significant"] else "not significant"
        print(f"  {name}: A {s['value_a']:.2f}, B {s['value_b']:.2f}; B - A = {s['delta']:+.2f} "
              f"(bias-corrected {s['delta_corrected']:+.2f} ± {s['se']:.2f}), {s['confidence']:.0%} interval "
              f"[{lo:+.2f}, {hi:+.2f}], p = {s['p_value']:.3g}: {word} "
              f"({'paired' if s['paired'] else 'unpaired: other real clips'} bootstrap, {s['n_resamples']} resamples)")


def _print_paper(name: str, dataset: str, departures) -> None:
    print(f"{name} against the paper's protocol for {dataset}:")
    if not departures:
        print("  follows the paper's protocol in every recorded setting")
    for d in departures:
        have = "not recorded" if d.record is None else _show(d.record)
        line = f"  {d.key}: paper {_show(d.paper)}, record {have}"
        print(line + (f" — {d.effect}" if d.effect else ""))


def run_compare(args) -> int:
    if args.json:

        _fsutil.check_writable(Path(args.json).parent or Path("."), "--json")
    records = [_load(p) for p in args.records]
    if args.paper:
        if len(records) != 1:
            raise UserError("--paper compares one record; pass a single RECORD.json")
        departures = _compare.paper_departures(records[0].raw, args.paper)
        _print_paper(args.records[0], args.paper, departures)
        # the paper's number is of its whole protocol, sampling settings included: any departure counts
        result = {"record": args.records[0], "paper": args.paper, "comparable": not departures,
                  "departures": [d.__dict__ for d in departures]}
        code = 0 if not departures else 1
    else:
        if len(records) < 2:
            raise UserError("compare needs two records (or one with --paper DATASET)")
        pairs, code = [], 0
        for path, rec in zip(args.records[1:], records[1:]):
            cmp = _compare.compare_records(records[0].raw, rec.raw)
            sig = _significance(records[0], rec, args) if cmp.comparable else {}
            _print_pair(args.records[0], path, cmp, sig)
            pairs.append({"a": args.records[0], "b": path, **cmp.to_dict(), "significance": sig})
            code = code or (0 if cmp.comparable else 1)
        result = {"comparisons": pairs}
    if args.json:
        try:
            _fsutil.write_json(args.json, result)
        except OSError as e:
            raise UserError(f"{args.json}: cannot write the comparison ({e.strerror or e}); pass another --json") from e
    return code
