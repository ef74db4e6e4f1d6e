"""``latte-bench eval`` (score videos or a checkpoint), ``latte-bench data check`` and ``latte-bench weights``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from latte_bench.cli import HelpFormatter
from latte_bench.errors import UserError



def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", formatter_class=HelpFormatter,
        help="score generated videos or a checkpoint against real videos (FVD, FID, IS, KVD, KID)",
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
                     help="comma-separated: fvd, kvd, fid, kid, is (default: the paper's metrics for --dataset with --ckpt, else fvd)")
    src.add_argument("--method", default=None, help="row name in the leaderboards (default: model and step for --ckpt, else the --fake folder name)")

    pr = p.add_argument_group("protocol (every setting is recorded)")
    pr.add_argument("--num-clips", type=int, default=2048, help="clips per set")
    pr.add_argument("--num-frames", type=int, default=16, help="frames per clip")
    pr.add_argument("--real-stride", type=int, default=None, help="frame stride of real clips (default: the dataset's, else 1)")
    pr.add_argument("--seed", type=int, default=0, help="seed of the real-clip sampling and, with --ckpt, of the generated videos")
    pr.add_argument("--resize", choices=("pytorch", "tf"), default="pytorch",
                    help="I3D resize to 224: pytorch bilinear half-pixel or TF1 legacy resize_bilinear")
    pr.add_argument("--covariance", choices=("biased", "unbiased"), default="biased", help="1/n as StyleGAN-V, or 1/(n-1)")
    pr.add_argument("--fid-mode", choices=("stylegan", "clean", "legacy_pytorch"), default="stylegan",
                    help="FID input pipeline: StyleGAN-V's TF1 resize, clean-fid, or pytorch-fid")
    pr.add_argument("--max-real-frames", type=int, default=None, help="FID: use only the first N real frames (default: all)")
    pr.add_argument("--is-protocol", choices=("stylegan_v", "tgan2"), default="stylegan_v",
                    help="IS: StyleGAN-V (num-clips clips, 10 splits) or TGAN2 (10,000 clips, 1 split)")
    pr.add_argument("--is-splits", type=int, default=None, help="IS: number of splits (default: the IS protocol's)")
    pr.add_argument("--is-shuffle-seed", type=int, default=None, help="IS: row shuffle seed (default: the IS protocol's)")
    pr.add_argument("--kid-subsets", type=int, default=100, help="KID: number of subsets")
    pr.add_argument("--kid-subset-size", type=int, default=1000, help="KID: rows per subset (at most)")
    pr.add_argument("--block-size", type=int, default=256,
                    help="clips per summation block, the unit of sharding and resume (moves float64 rounding only)")
    pr.add_argument("--allow-fewer", action="store_true",
                    help="score fewer usable clips than --num-clips instead of refusing (the record is tagged nonstandard)")
    pr.add_argument("--skip-bad", action="store_true", help="skip unreadable real videos (listed in the record)")
    pr.add_argument("--threads", type=int, default=None,
                    help="CPU threads of the detectors (default: torch's current count; recorded: CPU features are "
                         "bitwise reproducible at equal thread counts)")

    ck = p.add_argument_group("sampling (with --ckpt)")
    ck.add_argument("--sampler", choices=("ddpm", "ddim", "dpm++"), default="ddpm", help="sampler (the paper: DDPM)")
    ck.add_argument("--steps", type=int, default=250, help="sampling steps")
    ck.add_argument("--cfg-scale", type=float, default=None, help="classifier-free guidance (default: 7.0 for ucf101, else 1.0)")
    ck.add_argument("--labels", choices=("random", "balanced"), default="random",
                    help="class labels: uniform per video from the seed (official sample_ddp.py) or balanced over classes")
    ck.add_argument("--weights", choices=("ema", "model"), default="ema", help="which weights of the checkpoint")
    ck.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32", help="sampling precision")
    ck.add_argument("--preset", default=None, help="official checkpoints (no config inside): the preset describing the model")
    ck.add_argument("--model", default=None, help="official checkpoints: model name if not the preset's")
    ck.add_argument("--vae", default=None, help="override the checkpoint's VAE (hub id, folder or none)")
    ck.add_argument("--num-runs", type=int, default=1, help="K sampling seeds (seed, seed+1, ...), reported as mean ± std")
    ck.add_argument("--save-samples", metavar="DIR", default=None,
                    help="also write the sampled videos as lossless PNG frame folders (rescore with --fake DIR)")
    ck.add_argument("--work-dir", metavar="DIR", default=None,
                    help="keep per-block features here; a killed evaluation rerun with the same command resumes "
                         "(default for --ckpt: under $LATTE_BENCH_CACHE/eval_work, removed when done)")

    run = p.add_argument_group("run options (do not change the numbers)")
    run.add_argument("--batch-size", type=int, default=8, help="clips per detector and sampling batch")
    run.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    run.add_argument("--workers", type=int, default=0, help="DataLoader worker processes for decoding")
    run.add_argument("--no-cache", action="store_true", help="recompute the real statistics instead of using the cache")
    run.add_argument("--json", metavar="OUT", default=None, help="write the JSON record with full provenance here")
    run.add_argument("--i3d-weights", default=None, help="I3D weight file (default: the registry's, $LATTE_BENCH_I3D)")
    run.add_argument("--inception-weights", default=None, help="Inception TorchScript file (default: $LATTE_BENCH_INCEPTION or the cache)")
    run.add_argument("--c3d-weights", default=None, help="UCF101 C3D weights for IS (see `latte-bench weights list`)")
    run.add_argument("--c3d-mean", default=None, help="TGAN2 C3D mean file (default: mean2.npz beside --c3d-weights)")
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


def eval_settings(args: argparse.Namespace) -> dict:
    """The keyword settings of :func:`latte_bench.metrics.evaluate` that the flags in ``args`` give."""
    return dict(
        dataset=args.dataset, num_clips=args.num_clips, num_frames=args.num_frames, real_stride=args.real_stride,
        seed=args.seed, resize=args.resize, covariance=args.covariance, fid_mode=args.fid_mode,
        max_real_frames=args.max_real_frames, is_protocol=args.is_protocol, is_splits=args.is_splits,
        is_shuffle_seed=args.is_shuffle_seed, kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
        block_size=args.block_size, allow_fewer=args.allow_fewer,
        skip_bad=args.skip_bad, torch_threads=args.threads, batch_size=args.batch_size, device=args.device,
        num_workers=args.workers, cache=not args.no_cache, progress=not args.no_progress,
        i3d_weights=args.i3d_weights, inception_weights=args.inception_weights, c3d_weights=args.c3d_weights,
        c3d_mean=args.c3d_mean, method=args.method, work_dir=args.work_dir, num_runs=args.num_runs,
        data_root=args.data, save_samples=args.save_samples,
    )


def run_eval(args: argparse.Namespace) -> int:
    from latte_bench import distributed as dist
    from latte_bench.fsutil import write_json
    from latte_bench.metrics import CheckpointSource, evaluate

    if args.ckpt is not None and args.fake is not None:
        raise UserError("pass either --fake PATH (videos) or --ckpt CKPT (a model to sample), not both")
    if args.ckpt is None and args.fake is None:
        raise UserError("nothing to score: pass --fake PATH, or --dataset NAME --ckpt CKPT")
    if args.ckpt is None and (args.save_samples or args.num_runs != 1):
        raise UserError("--save-samples and --num-runs need --ckpt")
    if args.dataset is not None:
        from latte_bench.data.registry import get_dataset

        spec = get_dataset(args.dataset)
    metrics = args.metrics or (",".join(spec.metrics) if args.ckpt and args.dataset else "fvd")
    if args.real is None and args.dataset is None and set(metrics.replace(" ", "").split(",")) != {"is"}:
        raise UserError("no real videos: pass --real PATH or --dataset NAME")
    check_outputs(args.json, None if args.no_cache else _cache_root())
    if args.ckpt is not None:
        fake = CheckpointSource(args.ckpt, sampler=args.sampler, steps=args.steps, cfg_scale=args.cfg_scale, seed=args.seed,
                                weights=args.weights, labels=args.labels, precision=args.precision, preset=args.preset,
                                model_name=args.model, vae=args.vae)
    else:
        fake = args.fake
    try:
        result = evaluate(args.real, fake, metrics=metrics, **eval_settings(args))
        if dist.is_main():
            record = result.record
            record["command"] = ["latte-bench", *sys.argv[1:]] if sys.argv[0].endswith("latte-bench") else None
            print(format_table(record))  # before any file is written: a late failure loses nothing
            if args.json:
                write_json(args.json, record)
                print(f"record: {args.json}", file=sys.stderr)
    finally:
        if dist.active():
            import torch.distributed

            torch.distributed.destroy_process_group()
    return 0


def _cache_root() -> Path:
    from latte_bench.metrics.weights import cache_dir

    return cache_dir()


def check_outputs(json_path, cache_root) -> None:
    """Refuse now (one line) what would fail after the work: an unwritable --json folder or cache folder."""
    from latte_bench.fsutil import check_writable

    if json_path:
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
        unit = result.get("unit", "clips")
        real = "-" if result.get("real_count") is None else f"{result['real_count']} {unit}"
        rows.append((name, shown, real, f"{result['fake_count']} {unit}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    head = f"{record.get('method')}" + (f" on {record['dataset']}" if record.get("dataset") else "")
    tags = record.get("nonstandard") or []
    if tags:
        head += f"  [nonstandard: {', '.join(tags)}]"
    return head + "\n" + "\n".join(lines)


def run_data_check(args: argparse.Namespace) -> int:
    from latte_bench.data.clips import real_stride
    from latte_bench.data.registry import get_dataset, real_videos
    from latte_bench.metrics.sources import as_source

    spec = get_dataset(args.name)
    real = real_videos(args.name, args.data, num_videos=16)
    src = as_source(real, side="real", skip_bad=True)
    videos = src.videos
    stride = real_stride(None, spec.stride)
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
