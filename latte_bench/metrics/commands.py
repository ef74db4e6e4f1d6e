"""``latte-bench eval`` (score videos or a checkpoint), ``latte-bench data check`` and ``latte-bench weights``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from latte_bench.cli import AtLeast, HelpFormatter
from latte_bench.errors import UserError



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
    src.add_argument("--dataset", default=None, help="protocol preset and real data: demo, ffs, sky, ucf101 or taichi")
    src.add_argument("--data", metavar="ROOT", default=None, help="data root of --dataset (default: $LATTE_BENCH_DATA/<dataset>)")
    src.add_argument("--metrics", default=None,
                     help="comma-separated: fvd, kvd, fid, kid, is, prdc (precision, recall, density, coverage on the I3D features; or any of the four), flicker (VBench temporal flickering of the generated videos alone; docs/t2v.md) (default: the paper's metrics for --dataset with --ckpt, else fvd)")
    src.add_argument("--method", default=None, help="row name in the leaderboards (default: model and step for --ckpt, else the --fake folder name)")
    src.add_argument("--save-features", metavar="DIR", default=None,
                     help="write the per-clip detector features of both sides and their protocol to DIR (docs/uncertainty.md)")
    src.add_argument("--real-features", metavar="FILE", default=None,
                     help="FVD: reuse DIR/i3d_real.npz of an earlier --save-features (its protocol must match) instead of "
                          "the real pass; --real is then optional")
    src.add_argument("--floor", action="store_true",
                     help="also score the real-vs-real floor: FVD between the real clips and as many clips of other real "
                          "videos, with its se and FVD∞ (record: floor; one more real pass)")

    groups = {"protocol": p.add_argument_group("protocol (every setting is recorded)"),
              "sampling": p.add_argument_group("sampling (with --ckpt)"),
              "run": p.add_argument_group("run options (do not change the numbers)")}
    add_eval_flags(groups)
    run = groups["run"]
    run.add_argument("--no-cache", action="store_true", help="recompute the real statistics instead of using the cache")
    run.add_argument("--json", metavar="OUT", default=None, help="write the JSON record with full provenance here")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
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

    from latte_bench.metrics.weights import register_weights

    register_weights(subparsers)


# The settings an evaluation takes from the command line, shared by `eval` and `bench`:
# (group, flag, settings key, default, add_argument keywords). "sampling" keys go to CheckpointSource.
EVAL_FLAGS = (
    ("protocol", "--num-clips", "num_clips", 2048, dict(type=int, help="clips per set")),
    ("protocol", "--num-frames", "num_frames", 16, dict(type=int, help="frames per clip")),
    ("protocol", "--real-stride", "real_stride", None,
     dict(type=int, help="frame stride of real clips (default: the dataset's, else 1)")),
    ("protocol", "--seed", "seed", 0,
     dict(type=int, help="seed of the real-clip sampling and, with --ckpt, of the generated videos")),
    ("protocol", "--resize", "resize", "pytorch", dict(choices=("pytorch", "tf"),
     help="I3D resize to 224: pytorch bilinear half-pixel or TF1 legacy resize_bilinear")),
    ("protocol", "--covariance", "covariance", "biased", dict(choices=("biased", "unbiased"),
     help="1/n as StyleGAN-V, or 1/(n-1)")),
    ("protocol", "--fid-mode", "fid_mode", "stylegan", dict(choices=("stylegan", "clean", "legacy_pytorch"),
     help="FID input pipeline: StyleGAN-V's TF1 resize, clean-fid, or pytorch-fid")),
    ("protocol", "--max-real-frames", "max_real_frames", None,
     dict(type=int, help="FID: use only the first N real frames (default: all)")),
    ("protocol", "--is-protocol", "is_protocol", "stylegan_v", dict(choices=("stylegan_v", "tgan2"),
     help="IS: StyleGAN-V (num-clips clips, 10 splits) or TGAN2 (10,000 clips, 1 split)")),
    ("protocol", "--is-splits", "is_splits", None, dict(type=int, help="IS: number of splits (default: the IS protocol's)")),
    ("protocol", "--is-shuffle-seed", "is_shuffle_seed", None,
     dict(type=int, help="IS: row shuffle seed (default: the IS protocol's)")),
    ("protocol", "--kid-subsets", "kid_subsets", 100, dict(type=int, help="KID: number of subsets")),
    ("protocol", "--kid-subset-size", "kid_subset_size", 1000, dict(type=int, help="KID: rows per subset (at most)")),
    ("protocol", "--block-size", "block_size", 256, dict(type=int,
     help="clips per summation block, the unit of sharding and resume (moves float64 rounding only)")),
    ("protocol", "--allow-fewer", "allow_fewer", False, dict(action="store_true",
     help="score fewer usable clips than --num-clips instead of refusing (the record is tagged nonstandard)")),
    ("protocol", "--skip-bad", "skip_bad", False, dict(action="store_true",
     help="skip unreadable real videos (listed in the record)")),
    ("protocol", "--threads", "torch_threads", None, dict(type=int,
     help="CPU threads of the detectors (default: torch's current count; recorded: CPU features are "
          "bitwise reproducible at equal thread counts)")),
    ("sampling", "--sampler", "sampler", None, dict(choices=("ddpm", "ddim", "dpm++"),
     help="sampler (default: the paper's ddpm; --dataset demo: the demo's ddim; a Latte-1 --ckpt: ddim)")),
    ("sampling", "--steps", "steps", None, dict(type=int, action=AtLeast, minimum=1,
     help="sampling steps (default: 250; --dataset demo: 25; a Latte-1 --ckpt: 50)")),
    ("sampling", "--cfg-scale", "cfg_scale", None,
     dict(type=float, help="classifier-free guidance (default: 7.0 for ucf101, else 1.0; a Latte-1 --ckpt: 7.5)")),
    ("sampling", "--labels", "labels", "random", dict(choices=("random", "balanced"),
     help="class labels: uniform per video from the seed (official sample_ddp.py) or balanced over classes")),
    ("sampling", "--t2v-prompts", "t2v_prompts", None, dict(choices=("classnames",),
     help="a Latte-1 --ckpt (text-to-video): classnames = one prompt per class of --dataset, 'a video of <class words>', "
          "balanced over videos (docs/t2v.md); its sampler defaults are LattePipeline's, ddim 50 and guidance 7.5")),
    ("sampling", "--weights", "weights", "ema", dict(choices=("ema", "model"), help="which weights of the checkpoint")),
    ("sampling", "--precision", "precision", "fp32", dict(choices=("fp32", "bf16", "fp16"), help="sampling precision")),
    ("sampling", "--preset", "preset", None,
     dict(help="official checkpoints (no config inside): the preset describing the model")),
    ("sampling", "--model", "model_name", None, dict(help="official checkpoints: model name if not the preset's")),
    ("sampling", "--vae", "vae", None, dict(help="override the checkpoint's VAE (hub id, folder or none)")),
    ("sampling", "--num-runs", "num_runs", 1,
     dict(type=int, action=AtLeast, minimum=1, help="K sampling seeds (seed, seed+1, ...), reported as mean ± std")),
    ("sampling", "--save-samples", "save_samples", None, dict(metavar="DIR",
     help="also write the sampled videos as lossless PNG frame folders (rescore with --fake DIR)")),
    ("sampling", "--work-dir", "work_dir", None, dict(metavar="DIR",
     help="keep per-block features here; a killed evaluation rerun with the same command resumes "
          "(default for --ckpt: under $LATTE_BENCH_CACHE/eval_work_stats, removed when done)")),
    ("run", "--batch-size", "batch_size", 8, dict(type=int, help="clips per detector and sampling batch")),
    ("run", "--device", "device", None, dict(help="cpu, cuda or cuda:N (default: cuda when available)")),
    ("run", "--workers", "num_workers", 0, dict(type=int, help="DataLoader worker processes for decoding")),
    ("run", "--i3d-weights", "i3d_weights", None, dict(help="I3D weight file (default: the registry's, $LATTE_BENCH_I3D)")),
    ("run", "--inception-weights", "inception_weights", None,
     dict(help="Inception TorchScript file (default: $LATTE_BENCH_INCEPTION or the cache)")),
    ("run", "--c3d-weights", "c3d_weights", None, dict(help="UCF101 C3D weights for IS (see `latte-bench weights list`)")),
    ("run", "--c3d-mean", "c3d_mean", None, dict(help="TGAN2 C3D mean file (default: mean2.npz beside --c3d-weights)")),
)
SAMPLING_KEYS = tuple(key for group, _, key, _, _ in EVAL_FLAGS if group == "sampling"
                      and key not in ("num_runs", "save_samples", "work_dir"))


def add_eval_flags(groups: dict, *, with_defaults: bool = True, exclude: tuple[str, ...] = ()) -> None:
    """Add the :data:`EVAL_FLAGS` to argparse ``groups`` (``{"protocol"|"sampling"|"run": group}``, or one
    group under every name). ``with_defaults=False`` gives every flag the default None, so that a caller
    can tell which flags were set (``bench`` lays them over a plan); the help still names the default."""
    for group, flag, key, default, kwargs in EVAL_FLAGS:
        if key in exclude:
            continue
        kwargs = dict(kwargs)
        if not with_defaults:
            if default is not None and default is not False:
                kwargs["help"] = f"{kwargs['help']} (default: {default})"
            default = None
        groups[group].add_argument(flag, dest=key, default=default, **kwargs)


def eval_settings(args: argparse.Namespace) -> dict:
    """The keyword settings of :func:`latte_bench.metrics.evaluate` that the flags in ``args`` give."""
    settings = {key: getattr(args, key) for group, _, key, _, _ in EVAL_FLAGS if key not in SAMPLING_KEYS}
    return {**settings, "dataset": args.dataset, "cache": not args.no_cache, "progress": not args.no_progress,
            "method": args.method, "data_root": args.data}


def run_eval(args: argparse.Namespace) -> int:
    from latte_bench import distributed as dist
    from latte_bench.data.registry import get_dataset, sampling_defaults
    from latte_bench.fsutil import write_errors, write_json
    from latte_bench.metrics import CheckpointSource, evaluate

    if args.ckpt is not None and args.fake is not None:
        raise UserError("pass either --fake PATH (videos) or --ckpt CKPT (a model to sample), not both")
    if args.ckpt is None and args.fake is None:
        raise UserError("nothing to score: pass --fake PATH, or --dataset NAME --ckpt CKPT")
    if args.ckpt is None and (args.save_samples or args.num_runs != 1):
        raise UserError("--save-samples and --num-runs need --ckpt")
    if args.dataset is not None:
        spec = get_dataset(args.dataset)
    metrics = args.metrics or (",".join(spec.metrics) if args.ckpt and args.dataset else "fvd")
    needs_real = set(metrics.replace(" ", "").split(",")) - {"is", "flicker", *(("fvd", "kvd") if args.real_features else ())}
    if args.real is None and args.dataset is None and needs_real:
        raise UserError("no real videos: pass --real PATH or --dataset NAME")
    check_outputs(args.json, None if args.no_cache else _cache_root())
    if args.ckpt is not None:
        sampling = {key: getattr(args, key) for key in SAMPLING_KEYS}  # --cfg-scale None: resolved once the model is loaded
        defaults = sampling_defaults(args.dataset, 0)
        from latte_bench.training.t2v import T2V_DEFAULTS, is_t2v_folder

        if is_t2v_folder(args.ckpt):  # LattePipeline's settings, not the class-conditional protocol's
            sampling["sampler"] = sampling["sampler"] or T2V_DEFAULTS["sampler"]
            sampling["steps"] = sampling["steps"] or T2V_DEFAULTS["steps"]
        if sampling["sampler"] is None:
            sampling["sampler"] = defaults.sampler
        if sampling["steps"] is None:
            sampling["steps"] = defaults.steps
        fake = CheckpointSource(args.ckpt, seed=args.seed, **sampling)
    else:
        fake = args.fake
    def finish(record: dict) -> None:  # before the default work folder goes: a failed write keeps the resume
        if dist.is_main():
            record["command"] = ["latte-bench", *sys.argv[1:]] if sys.argv[0].endswith("latte-bench") else None
            print(format_table(record))  # before any file is written: a late failure loses nothing
            if args.json:
                with write_errors(args.json, "free some space or choose another --json, then rerun (finished work is kept)"):
                    write_json(args.json, record)
                print(f"record: {args.json}", file=sys.stderr)

    try:
        evaluate(args.real, fake, metrics=metrics, on_record=finish, save_features=args.save_features,
                 real_features=args.real_features, floor=args.floor, **eval_settings(args))
    finally:
        if dist.active():
            import torch.distributed

            torch.distributed.destroy_process_group()
    return 0


def _cache_root() -> Path:
    from latte_bench.metrics.weights import cache_dir

    return cache_dir()


def check_outputs(json_path, cache_root) -> None:
    """Refuse now (one line) what would fail after the work: a --json that is a folder, an unwritable --json
    folder or cache folder."""
    from latte_bench.fsutil import check_writable

    if json_path:
        if Path(json_path).is_dir():
            raise UserError(f"{json_path}: is a folder; --json names the record file to write, "
                            f"e.g. --json {Path(json_path) / 'record.json'}")
        check_writable(Path(json_path).parent, "--json")
    if cache_root is not None:
        check_writable(cache_root, "$LATTE_BENCH_CACHE (or pass --no-cache)")


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
        from latte_bench.metrics.uncertainty import floor_text

        lines.append(floor_text(record["floor"]))
    head = f"{record.get('method')}" + (f" on {record['dataset']}" if record.get("dataset") else "")
    tags = record.get("nonstandard") or []
    if tags:
        head += f"  [nonstandard: {', '.join(tags)}]"
    return head + "\n" + "\n".join(lines)


def run_data_check(args: argparse.Namespace) -> int:
    from latte_bench.data.registry import get_dataset, real_videos
    from latte_bench.metrics.sources import as_source

    spec = get_dataset(args.name)
    real = real_videos(args.name, args.data, num_videos=16)
    src = as_source(real, side="real", skip_bad=True)
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
            print(f"unreadable: {err}")
    print(f"dataset      {spec.name} ({spec.title})")
    print(f"folder       {real if not hasattr(real, 'shape') else 'generated in memory'}")
    print(f"layout       {videos.kind} (expected: {spec.layout})")
    print(f"videos       {len(videos)} readable listed, {len(videos.skipped)} could not be opened, {unreadable} failed to decode")
    print(f"expected     {spec.expected_videos}")
    print(f"long enough  {long_enough} videos have >= {span} frames ({args.num_frames} at stride {stride}); the protocol uses up to 2048")
    for name, reason in videos.skipped[:10]:
        print(f"skipped: {name}: {reason}")
    return 0 if not (videos.skipped or unreadable) else 1
