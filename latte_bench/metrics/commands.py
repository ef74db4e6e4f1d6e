"""``latte-bench eval`` (FVD and friends) and ``latte-bench weights`` (detector weights)."""

from __future__ import annotations

import argparse
import sys

from latte_bench.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="score generated videos against real ones (FVD, StyleGAN-V protocol)",
        description="Score generated videos against real ones with the StyleGAN-V/Latte protocol. "
        "PATH: a folder of frame folders (ROOT/<video>/<frame>.png|jpg), a folder tree of video files, "
        "or a .npy/.npz uint8 array (N,T,H,W,3). Works under torchrun (clips are sharded across ranks).",
    )
    p.add_argument("--real", required=True, metavar="PATH", help="real videos")
    p.add_argument("--fake", required=True, metavar="PATH", help="generated videos")
    p.add_argument("--dataset", choices=("ffs", "sky", "ucf101", "taichi"), default=None,
                   help="preset for the real-clip stride (ffs/sky/ucf101: 3, taichi: 6; default 1)")
    p.add_argument("--metrics", default="fvd", help="comma-separated metric names (default: fvd)")
    p.add_argument("--num-clips", type=int, default=2048, help="clips per set (default 2048)")
    p.add_argument("--num-frames", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--real-stride", type=int, default=None, help="frame stride of real clips (overrides --dataset)")
    p.add_argument("--seed", type=int, default=0, help="seed of the real-clip sampling (default 0)")
    p.add_argument("--batch-size", type=int, default=8, help="clips per detector batch (does not change results)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes for decoding (default 0)")
    p.add_argument("--resize", choices=("pytorch", "tf"), default="pytorch",
                   help="resize to 224: pytorch bilinear half-pixel (default) or TF1 legacy resize_bilinear")
    p.add_argument("--covariance", choices=("biased", "unbiased"), default="biased",
                   help="covariance normalisation: 1/n as StyleGAN-V (default) or 1/(n-1)")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable real videos (counted in the record)")
    p.add_argument("--no-cache", action="store_true", help="recompute the real statistics instead of using the cache")
    p.add_argument("--json", metavar="OUT", default=None, help="write the JSON record with full provenance here")
    p.add_argument("--ckpt", metavar="CKPT", default=None, help="checkpoint that produced --fake (path + sha256 recorded)")
    p.set_defaults(func=run_eval)
    try:
        from latte_bench.metrics.weights import register_weights
    except ImportError as e:
        msg = f"the weights commands are unavailable ({e})"

        def _missing(args):
            raise UserError(msg)

        w = subparsers.add_parser("weights", help="detector weights (unavailable in this install)")
        w.set_defaults(func=_missing)
    else:
        register_weights(subparsers)


def run_eval(args: argparse.Namespace) -> int:
    from latte_bench.fsutil import sha256_file, write_json
    from latte_bench.metrics.evaluate import evaluate
    from latte_bench import distributed as dist

    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    if not metrics:
        raise UserError("--metrics is empty; e.g. --metrics fvd")
    for flag, value in (("--num-clips", args.num_clips), ("--batch-size", args.batch_size), ("--workers", args.workers + 1)):
        if value < 1:
            raise UserError(f"{flag} must be positive")
    ckpt = None
    if args.ckpt is not None:
        from pathlib import Path

        if not Path(args.ckpt).is_file():
            raise UserError(f"{args.ckpt}: checkpoint not found")
        ckpt = {"path": str(Path(args.ckpt).resolve()), "sha256": sha256_file(args.ckpt)}
    try:
        record = evaluate(
            args.real, args.fake, metrics=metrics,
            dataset=args.dataset, num_clips=args.num_clips, num_frames=args.num_frames, real_stride=args.real_stride,
            seed=args.seed, batch_size=args.batch_size, device=args.device, resize=args.resize,
            covariance=args.covariance, skip_bad=args.skip_bad, cache=not args.no_cache, num_workers=args.workers,
        )
        if dist.is_main():
            record["ckpt"] = ckpt
            record["command"] = ["latte-bench", *sys.argv[1:]]
            if args.json:
                write_json(args.json, record)
            print(format_table(record))
    finally:
        if dist.active():
            import torch.distributed

            torch.distributed.destroy_process_group()
    return 0


def format_table(record: dict) -> str:
    """Plain-text table: metric, value, real clips, fake clips."""
    rows = [("metric", "value", "real clips", "fake clips")]
    for name, result in record["results"].items():
        value = result["value"]
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        prov = result.get("provenance", {})
        rows.append((name, shown, str(prov.get("real_clips", "-")), str(prov.get("fake_clips", "-"))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
