"""``latte-bench report`` (leaderboards, training curves), ``analyze`` (Fig. 6 / Fig. 8) and ``demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from latte_bench.options import AtLeast, HelpFormatter, THREADS, add_options
from latte_bench.lazy import lazy_module

# Loaded on first use, so that `latte-bench --help` (which builds this module's parsers) does not import torch.
_analysis = lazy_module("latte_bench.reports.analysis")
_demo = lazy_module("latte_bench.reports.demo")
_errors = lazy_module("latte_bench.errors")
_figures = lazy_module("latte_bench.reports.figures")
_fsutil = lazy_module("latte_bench.fsutil")
_leaderboard = lazy_module("latte_bench.reports.leaderboard")
_store = lazy_module("latte_bench.reports.store")


def register(subparsers) -> None:
    # ------------------------------------------------------------ report
    rep = subparsers.add_parser("report", help="leaderboards (paper Tables 3, 4 and 5, joint training) and training curves",
                                description="Gather evaluation records into the paper's tables, or plot training curves.")
    rsub = rep.add_subparsers(dest="report_command", metavar="WHAT")
    for name, help_ in (("table3", "FVD of methods x datasets (paper Table 3)"),
                        ("table4", "text-to-video models x VBench dimensions, in percent (paper Table 4), with measured "
                         "temporal flickering (eval --metrics flicker) beside them; the other dimensions are not "
                         "measured here (docs/t2v.md)"),
                        ("table5", "IS on UCF101 and FID on FaceForensics (paper Table 5)"),
                        ("joint", "image-video joint training strategies, zero-shot FVD and FID on UCF101 (paper text)")):
        p = rsub.add_parser(name, help=help_, formatter_class=HelpFormatter,
                            description=help_ + ": the paper's reported rows beside measured rows (mean ± std over "
                            "seeds) from the results store; a measured row that departs from its column's protocol "
                            "is tagged, e.g. [3 clips]. Writes OUT/" + name + ".md and OUT/" + name + ".csv.")
        p.add_argument("--results", default="results", metavar="DIR", help="results folder of JSON evaluation records"
                       + ("; absent or without records: the paper's rows alone" if name == "table4" else ""))
        p.add_argument("--out", default="reports", metavar="DIR", help="where to write the Markdown and CSV")
        p.add_argument("--strict", action="store_true",
                       help="refuse records that depart from their column's protocol or disagree with each other, "
                       "instead of showing them as tagged rows")
        p.add_argument("--no-reported", action="store_true", help="leave out the paper's published rows")
        if name == "table3":
            p.add_argument("--against", default=None, metavar="METHOD",
                           help="mark with ≈ each measured FVD not significantly different (5%%, paired bootstrap "
                           "on stored features) from METHOD's row in the same column; docs/why-fvd-differs.md "
                           "(default: no marks)")
            p.add_argument("--uncertainty", action="store_true",
                           help="show single-record FVDs as value ± se with an FVD∞ column (the N -> inf estimate and "
                           "its 95%% interval; from the record, else from its stored features; docs/uncertainty.md)")
        p.set_defaults(func=run_table, table=name)
    p = rsub.add_parser("curves", help="FVD (and loss) vs iteration from training logs (paper Fig. 5/7)",
                        description="Plot FVD (and the loss) against the training step from the JSONL logs of "
                        "`latte-bench train` runs; writes OUT/NAME.png and OUT/NAME.pdf.",
                        formatter_class=HelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (or metrics.jsonl files) of latte-bench train")
    p.add_argument("--out", default="reports", metavar="DIR", help="output folder")
    p.add_argument("--name", default="training_curves", help="file stem of the figure")
    p.add_argument("--labels", default=None, help="comma-separated run labels (default: the folder names)")
    p.set_defaults(func=run_curves)
    rep.set_defaults(func=lambda args: rep.print_help() or 2)

    # ------------------------------------------------------------ analyze
    ana = subparsers.add_parser("analyze", help="feature analyses: inter-frame similarity (Fig. 6), Variant 4 fusion (Fig. 8)",
                                description="Run a checkpoint on noised clips and analyse its block features.")
    asub = ana.add_subparsers(dest="analyze_command", metavar="WHAT")
    for name, help_ in (("similarity", "inter-frame cosine-similarity matrices after each block (paper Fig. 6)"),
                        ("fusion", "spatial vs temporal head outputs of a Variant 4 model (paper Fig. 8)")):
        p = asub.add_parser(name, help=help_, description=help_ + ". See docs/reports.md for the exact definitions.",
                            formatter_class=HelpFormatter)
        p.add_argument("--ckpt", required=True, metavar="CKPT",
                       help="training checkpoint or run folder (latte-bench train), or an official {'ema': ...} file")
        p.add_argument("--weights", choices=("ema", "model"), default="ema", help="which weights of a checkpoint to analyse")
        p.add_argument("--preset", default=None, metavar="NAME",
                       help="the model of an official checkpoint (ffs, sky, taichi, ucf101, ...; official files carry no "
                       "config; default: none); ignored for latte-bench checkpoints")
        p.add_argument("--model", default=None,
                       help="model size for an official checkpoint, e.g. Latte-XL/2 (default: the preset's)")
        p.add_argument("--variant", type=int, choices=(1, 2, 3, 4), default=None,
                       help="expected model variant; a checkpoint of another variant is refused (default: any)")
        p.add_argument("--data", default=None, metavar="PATH", help="videos to feed (default: the procedural demo set)")
        p.add_argument("--num-videos", type=int, action=AtLeast, default=8, help="videos averaged over")
        p.add_argument("--timestep", type=int, default=None, help="diffusion step (0..999) the clips are noised to (default: 250)")
        p.add_argument("--reduce", choices=("flatten", "mean"), default="flatten",
                       help="frame vector: the frame's tokens concatenated (flatten) or averaged (mean)")
        if name == "similarity":
            p.add_argument("--features", choices=("out", "attn"), default="out",
                           help="block outputs (residual stream) or the attention outputs")
        p.add_argument("--seed", type=int, default=0, help="seed of the noise and the demo videos")
        p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (CUDA when available)")
        p.add_argument("--out", default="reports/analysis", metavar="DIR", help="output folder")
        p.set_defaults(func=run_analyze, analysis=name)
    ana.set_defaults(func=lambda args: ana.print_help() or 2)

    # ------------------------------------------------------------ demo
    p = subparsers.add_parser("demo", help="end-to-end demo on CPU, no dataset to download: data, training, sampling, FVD vs the real-vs-real floor, reports",
                              description="Generate the procedural moving-shapes set, train a small Latte (Variant 1, and Variant 2 "
                              "for the Fig. 6 comparison) on the CPU, sample it, score it through the evaluation path with the "
                              "real I3D beside the real-vs-real floor, and write leaderboards and figures. Numbers on a few dozen "
                              "16x16 clips are NOT comparable with published ones.")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder, created (default ./latte-demo); a non-empty folder the demo did not make is refused")
    p.add_argument("--quick", action="store_true", help="a smoke run of every stage on a tiny model, whose numbers mean nothing (about 0.5 min on 2 idle "
                   "cores, 2 min at a load average of 8)")
    p.add_argument("--steps", type=int, action=AtLeast, default=None,
                   help="training steps of the Variant 1 model (default: the demo preset's)")
    p.add_argument("--clips", type=int, action=AtLeast, minimum=2, default=None,
                   help="clips per set for FVD/KVD and the floor (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the training runs, the sampling and the evaluation's clip choice (default 0; the real sets are fixed)")
    add_options(p, [THREADS])
    p.add_argument("--no-compare", action="store_true", help="skip the second (Variant 2) model of the Fig. 6 comparison")
    p.set_defaults(func=run_demo)


def run_table(args: argparse.Namespace) -> int:
    if args.table == "table4" and not args.no_reported and not _has_records(args.results):
        records = []  # the paper's rows stand alone: nothing of VBench's may have been measured
        print(f"note: no evaluation records in {args.results}; showing the paper's rows alone", file=sys.stderr)
    else:
        records = _store.load_records(args.results)
        if not records:
            raise _errors.UserError(f"{args.results}: no evaluation records (JSON with 'metrics') in this folder; "
                            f"write some with `latte-bench eval --json {args.results}/NAME.json`")
    _fsutil.check_writable(args.out, "--out")
    df = _leaderboard.build_table(args.table, records, strict=args.strict, with_reported=not args.no_reported,
                     uncertainty=getattr(args, "uncertainty", False), against=getattr(args, "against", None))
    footer = (f"- `≈`: not significantly different from {args.against} in the same column (p ≥ 0.05, bootstrap "
              "on the records' stored features; docs/why-fvd-differs.md)." if getattr(args, "against", None) else "")
    md_path, csv_path, md = _leaderboard.write_table(df, args.table, args.out, footer=footer)
    print(md)
    print(f"wrote {md_path} and {csv_path} ({len(records)} records from {args.results})")
    return 0


def _has_records(results) -> bool:
    """Whether ``results`` is a folder holding at least one evaluation record (``*.json`` with ``metrics``)."""

    return Path(results).is_dir() and bool(_store.load_records(results))


def run_curves(args: argparse.Namespace) -> int:
    labels = args.labels.split(",") if args.labels else [Path(r).name if Path(r).is_dir() else Path(r).parent.name for r in args.runs]
    if len(labels) != len(args.runs):
        raise _errors.UserError(f"--labels has {len(labels)} names for {len(args.runs)} runs")
    _fsutil.check_writable(args.out, "--out")
    runs = {label: _store.read_training_log(r) for label, r in zip(labels, args.runs)}
    if not any(r["fvd"][0] for r in runs.values()):
        print("note: no FVD entries in these logs (train with --fvd-every N); plotting the loss only")
    paths = _figures.training_curves_figure(runs, Path(args.out) / args.name)
    for label, r in runs.items():
        steps, values = r["fvd"]
        shown = ", ".join(f"{s}: {v:.1f}" for s, v in zip(steps, values)) or "-"
        print(f"{label}: FVD by step {shown}")
    print("wrote " + " and ".join(str(p) for p in paths))
    return 0


def run_analyze(args: argparse.Namespace) -> int:
    summary = _analysis.run_analysis(
        args.analysis, args.ckpt, out=args.out, variant=args.variant, weights=args.weights, preset=args.preset,
        model_name=args.model, data=args.data, num_videos=args.num_videos, timestep=args.timestep, reduce=args.reduce,
        features=getattr(args, "features", "out"), seed=args.seed, device=args.device,
    )
    print(summary["text"])
    print("wrote " + ", ".join(str(p) for p in summary["files"]))
    return 0


def run_demo(args: argparse.Namespace) -> int:
    _demo.run_demo(out=args.out, quick=args.quick, steps=args.steps, clips=args.clips, seed=args.seed, threads=args.threads,
         compare=not args.no_compare)
    return 0
