"""``latte-bench eval`` (score videos or a checkpoint), ``latte-bench data check`` and ``latte-bench weights``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from latte_bench.commands.flags import cli_name
from latte_bench.errors import UserError
from latte_bench.options import HelpFormatter, add_options, options_of
from latte_bench.lazy import lazy_module

# Loaded on first use, so that `latte-bench --help` (which builds this module's parsers) does not import torch.
_distributed = lazy_module("latte_bench.distributed")
_fsutil = lazy_module("latte_bench.fsutil")
_metrics = lazy_module("latte_bench.metrics")
_protocol = lazy_module("latte_bench.metrics.protocol")
_registry = lazy_module("latte_bench.data.registry")
_sources = lazy_module("latte_bench.metrics.sources")
_t2v = lazy_module("latte_bench.training.t2v")
_uncertainty = lazy_module("latte_bench.metrics.uncertainty")
_weights = lazy_module("latte_bench.metrics.weights")



def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", formatter_class=HelpFormatter,
        help="score generated videos or a checkpoint against real videos (FVD, FID, IS, KVD, KID; temporal flickering)",
        description="Score generated videos against real ones with the StyleGAN-V/Latte protocol. Either "
        "--real PATH --fake PATH (frame folders ROOT/<video>/<frame>.png|jpg, a video tree, a .npy/.npz uint8 "
        "array (N,T,H,W,3), or a `latte-bench sample` folder), or --dataset NAME --ckpt CKPT: the checkpoint is "
        "sampled in memory with the paper's protocol for that dataset and its videos go straight into the "
        "detectors. Works under torchrun (clips are sharded across ranks; the number does not change).",
    )
    src = p.add_argument_group("what to score")
    src.add_argument("--real", metavar="PATH", default=None, help="real videos (default with --dataset: the dataset's real split)")
    src.add_argument("--fake", metavar="PATH", default=None, help="generated videos")
    src.add_argument("--ckpt", metavar="CKPT", default=None,
                     help="a checkpoint file or run folder (its latest checkpoint) to sample and score instead of --fake")
    src.add_argument("--metrics", default=None,
                     help="comma-separated: fvd, kvd, fid, kid, is, prdc (precision, recall, density, coverage on the I3D features; or any of the four), flicker (VBench temporal flickering of the generated videos alone; docs/t2v.md) (default: the paper's metrics for --dataset with --ckpt, else fvd)")
    groups = {"source": src, "protocol": p.add_argument_group("protocol (every setting is recorded)"),
              "sampling": p.add_argument_group("sampling (with --ckpt)"),
              "run": p.add_argument_group("run options (do not change the numbers)")}
    add_eval_options(groups)
    groups["run"].add_argument("--json", metavar="OUT", default=None, help="write the JSON record with full provenance here")
    p.set_defaults(func=run_eval)

    d = subparsers.add_parser("data", help="check a local copy of an evaluation dataset",
                              description="Check a local copy of a dataset: the layout found, the video count, unreadable files.")
    dsub = d.add_subparsers(dest="data_action", metavar="ACTION")
    c = dsub.add_parser("check", formatter_class=HelpFormatter, help="count videos, find unreadable ones, print the layout detected")
    c.add_argument("name", help="demo, ffs, sky, ucf101 or taichi")
    c.add_argument("--data", metavar="ROOT", default=None, help="data root (default: $LATTE_BENCH_DATA/<name>)")
    c.add_argument("--num-frames", type=int, default=16, help="clip length the protocol needs (with the dataset's stride)")
    c.set_defaults(func=run_data_check)
    d.set_defaults(func=lambda args: d.print_help() or 2)


def eval_options(exclude: tuple[str, ...] = ()) -> list:
    """The options an evaluation takes from the command line, shared by `eval` and `bench`, each with the
    argparse group it goes to (``option.group``: source, protocol, sampling or run)."""

    groups = ((_protocol.Protocol, "protocol"), (_protocol.SamplingSettings, "sampling"), (_protocol.Settings, "source"), (_protocol.RunOptions, "run"))
    out = []
    for cls, group in groups:
        for opt in options_of(cls):
            if cls is _protocol.SamplingSettings and opt.name not in sampling_keys():
                continue  # the protocol's seed and the run's batch size serve the sampling too
            if opt.name not in exclude and opt.flag != "":
                out.append(dataclasses.replace(opt, group=opt.group or group))
    return out


def sampling_keys() -> tuple[str, ...]:
    """The flags of `eval` that go to its CheckpointSource: the sampling settings besides the seed and batch size."""

    return tuple(f.name for f in dataclasses.fields(_protocol.SamplingSettings) if f.name not in ("seed", "batch_size"))


def add_eval_options(groups: dict, *, defaults: bool = True, exclude: tuple[str, ...] = ()) -> None:
    """Add :func:`eval_options` to argparse ``groups`` (``{"source"|"protocol"|"sampling"|"run": group}``, or one
    group under every name). ``defaults=False`` gives every flag the default None, so that a caller can tell
    which flags were set (``bench`` lays them over a plan); the help still names the default."""
    add_options(lambda opt: groups[opt.group], eval_options(exclude), defaults=defaults, overrides=EVAL_OVERRIDES)


# eval resolves these from --dataset when they are not given (the registry's sampling settings)
EVAL_OVERRIDES = {"sampler": {"default": None, "help": "diffusion sampler (default: the paper's ddpm; --dataset demo: the "
                                                     "demo's ddim; a Latte-1 --ckpt: ddim)"},
                  "steps": {"default": None, "help": "sampling steps (default: 250; --dataset demo: 25; a Latte-1 --ckpt: 50)"}}


def eval_settings(args: argparse.Namespace) -> dict:
    """The keyword settings of :func:`latte_bench.metrics.evaluate` that the flags in ``args`` give."""
    return {o.name: getattr(args, o.name) for o in eval_options() if o.name not in sampling_keys()}


def run_eval(args: argparse.Namespace) -> int:
    if args.ckpt is not None and args.fake is not None:
        raise UserError("pass either --fake PATH (videos) or --ckpt CKPT (a model to sample), not both")
    if args.ckpt is None and args.fake is None:
        raise UserError("nothing to score: pass --fake PATH, or --dataset NAME --ckpt CKPT")
    if args.ckpt is None and (args.save_samples or args.num_runs != 1):
        raise UserError("--save-samples and --num-runs need --ckpt")
    if args.dataset is not None:
        spec = _registry.get_dataset(args.dataset)
    metrics = args.metrics or (",".join(spec.metrics) if args.ckpt and args.dataset else "fvd")
    needs_real = set(metrics.replace(" ", "").split(",")) - {"is", "flicker", *(("fvd", "kvd") if args.real_features else ())}
    if args.real is None and args.dataset is None and needs_real:
        raise UserError("no real videos: pass --real PATH or --dataset NAME")
    check_outputs(args.json, _cache_root() if args.cache else None)
    if args.ckpt is not None:
        sampling = {key: getattr(args, key) for key in sampling_keys()}  # --cfg-scale None: resolved once the model is loaded
        defaults = _registry.sampling_defaults(args.dataset, 0)

        if _t2v.is_t2v_folder(args.ckpt):  # LattePipeline's settings, not the class-conditional protocol's
            sampling["sampler"] = sampling["sampler"] or _t2v.T2V_DEFAULTS["sampler"]
            sampling["steps"] = sampling["steps"] or _t2v.T2V_DEFAULTS["steps"]
        if sampling["sampler"] is None:
            sampling["sampler"] = defaults.sampler
        if sampling["steps"] is None:
            sampling["steps"] = defaults.steps
        fake = _metrics.CheckpointSource(args.ckpt, seed=args.seed, **sampling)
    else:
        fake = args.fake
    def finish(record: dict) -> None:  # before the default work folder goes: a failed write keeps the resume
        if _distributed.is_main():
            record["command"] = ["latte-bench", *sys.argv[1:]] if sys.argv[0].endswith("latte-bench") else None
            print(format_table(record))  # before any file is written: a late failure loses nothing
            if args.json:
                with _fsutil.write_errors(args.json, "free some space or choose another --json, then rerun (finished work is kept)"):
                    _fsutil.write_json(args.json, record)
                print(f"record: {args.json}", file=sys.stderr)

    try:
        _metrics.evaluate(args.real, fake, metrics=metrics, on_record=finish, **eval_settings(args))
    finally:
        if _distributed.active():
            import torch.distributed

            torch.distributed.destroy_process_group()
    return 0


def _cache_root() -> Path:
    return _weights.cache_dir()


def check_outputs(json_path, cache_root) -> None:
    """Refuse now (one line) what would fail after the work: a --json that is a folder, an unwritable --json
    folder or cache folder."""

    if json_path:
        if Path(json_path).is_dir():
            raise UserError(f"{json_path}: is a folder; --json names the record file to write, "
                            f"e.g. --json {Path(json_path) / 'record.json'}")
        _fsutil.check_writable(Path(json_path).parent, "--json")
    if cache_root is not None:
        _fsutil.check_writable(cache_root, "$LATTE_BENCH_CACHE (or pass --no-cache)")


def format_table(record: dict) -> str:
    """Plain-text results table: metric, value, real and generated sample counts (with their unit)."""
    rows = [("metric", "value", "real", "generated")]
    for name, result in record["results"].items():
        value = record["metrics"][name]
        if isinstance(value, dict):
            shown = f"{value['value']:.4f} ± {value['std']:.4f} ({len(value['runs'])} runs)"
        else:
            shown = f"{value:.4f}"
        if result.get("se") is not None:
            low, high = result[f"{name}_inf_ci"]
            shown += f" ± {result['se']:.4f} ({name.upper()}∞ {result[f'{name}_inf']:.4f} [{low:.4f}, {high:.4f}])"
        unit = result.get("unit", "clips")
        real = "-" if result.get("real_count") is None else f"{result['real_count']} {unit}"
        rows.append((name, shown, real, f"{result['fake_count']} {unit}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if record.get("floor"):

        lines.append(_uncertainty.floor_text(record["floor"]))
    head = f"{record.get('method')}" + (f" on {record['dataset']}" if record.get("dataset") else "")
    tags = record.get("nonstandard") or []
    if tags:
        head += f"  [nonstandard: {', '.join(tags)}]"
    return head + "\n" + "\n".join(lines)


def run_data_check(args: argparse.Namespace) -> int:
    spec = _registry.get_dataset(args.name)
    real = _registry.real_videos(args.name, args.data, num_videos=16)
    src = _sources.as_source(real, side="real", skip_bad=True)
    videos = src.videos
    stride = spec.stride
    span = args.num_frames * stride
    long_enough = sum(e.num_frames >= span for e in videos.entries)
    unreadable = 0
    from tqdm.auto import tqdm

    for e in tqdm(videos.entries, desc="decoding", unit="video"):
        try:
            e.read([0, e.num_frames - 1])
        except UserError as err:
            unreadable += 1
            print(f"unreadable: {err.render(cli_name)}")
    print(f"dataset      {spec.name} ({spec.title})")
    print(f"folder       {real if not hasattr(real, 'shape') else 'generated in memory'}")
    print(f"layout       {videos.kind} (expected: {spec.layout})")
    print(f"videos       {len(videos)} readable listed, {len(videos.skipped)} could not be opened, {unreadable} failed to decode")
    print(f"expected     {spec.expected_videos}")
    print(f"long enough  {long_enough} videos have >= {span} frames ({args.num_frames} at stride {stride}); the protocol uses up to 2048")
    for name, reason in videos.skipped[:10]:
        print(f"skipped: {name}: {reason}")
    return 0 if not (videos.skipped or unreadable) else 1
