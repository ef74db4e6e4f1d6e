"""``latte-bench demo``: the whole pipeline offline on a CPU, in minutes, with the real detectors.

1. data: the procedural moving-shapes set (:mod:`latte_bench.data.demo`); training videos come
   from seed ``s``, the held-out real set for the metrics from seed ``s + 1000``;
2. training: the trainer (:func:`latte_bench.training.trainer.train`) on the ``demo`` preset with
   the sizes below, checkpoints at ``curve_points`` evenly spaced steps;
3. for every checkpoint: EMA samples (DDIM, :func:`latte_bench.training.sampling.sample_videos`,
   lossless npz) and FVD with the TF-Hub I3D (:func:`latte_bench.metrics.fvd.compute_fvd`) -> the
   training curve; the last checkpoint also gets KVD (same I3D features,
   :func:`latte_bench.metrics.kernel.kvd`), FID with the Inception
   (:func:`latte_bench.metrics.fid.compute_fid`) and a bootstrap interval for FVD;
4. outputs in ``OUT`` (default ``reports/demo``): ``results/`` (the JSON record and its kept
   features), ``table3.md/.csv``, ``table5.md/.csv``, ``training_curves.png/.pdf``, the
   similarity figures of the final model (paper Fig. 6), and ``README.md`` with the settings and
   timings. Scratch (data, run, samples, stats cache) goes to ``OUT/work`` (deleted unless ``keep``).

Numbers from a few dozen 16x16 clips are **not comparable** with published FVDs (2,048 clips of
256x256 videos); the README says so.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

DATASET = "MovingShapes (demo)"


@dataclass(frozen=True)
class DemoSettings:
    """What the demo changes in the ``demo`` training preset, and the sizes of its evaluation.

    The model (Latte-S/2, 4 blocks of width 64), learning rate and EMA are the preset's; the demo
    trains on 16-frame clips (the I3D needs at least 9 frames) for fewer steps than the preset.
    ``model_options`` None keeps the preset's sizes.
    """

    train_videos: int = 256
    frames: int = 16
    size: int = 16
    model_options: dict | None = None
    classes: int = 4
    steps: int = 2400
    batch_size: int = 8
    curve_points: int = 3
    clips: int = 16  # clips per set for FVD / KVD, and videos per set for FID
    fid_frames: int = 4  # first frames of each video scored by FID (the Inception is the slowest stage on CPU)
    sample_steps: int = 25  # DDIM steps
    bootstrap: int = 200
    analysis_videos: int = 8


FULL = DemoSettings()
QUICK = DemoSettings(train_videos=4, frames=9, steps=2, batch_size=2, curve_points=1, clips=2, fid_frames=1,
                     sample_steps=2, model_options={"hidden_size": 32, "depth": 2, "num_heads": 2}, bootstrap=5,
                     analysis_videos=1)


def _accepted(fn, options: dict) -> dict:
    """The options ``fn`` takes (the metric functions name their clip count differently)."""
    import inspect

    params = inspect.signature(fn).parameters
    return {k: v for k, v in options.items() if k in params}


def _say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _settings(quick: bool, steps: int | None, clips: int | None) -> DemoSettings:
    s = QUICK if quick else FULL
    if steps is not None:
        s = dataclasses.replace(s, steps=steps)
    if clips is not None:
        s = dataclasses.replace(s, clips=clips)
    from latte_bench.errors import UserError

    if s.clips < 2 or s.steps < 1 or s.curve_points < 1:
        raise UserError("--clips must be >= 2 and --steps >= 1")
    return s


def _train_config(s: DemoSettings, run_dir: Path, seed: int):
    from latte_bench.training.presets import preset

    cfg = preset("demo")
    cfg.num_frames, cfg.image_size, cfg.frame_interval = s.frames, s.size, 1
    cfg.demo_videos, cfg.num_classes = s.train_videos, s.classes
    if s.model_options is not None:
        cfg.model_options = dict(s.model_options)
    cfg.steps, cfg.batch_size, cfg.seed = s.steps, s.batch_size, seed
    cfg.ckpt_every = max(1, s.steps // s.curve_points)
    cfg.log_every = max(1, min(20, s.steps // 10))
    cfg.fvd_every = cfg.sample_every = 0  # the curve is computed below, with kept features
    cfg.device, cfg.out, cfg.num_workers = "cpu", str(run_dir), 0
    return cfg


def _model_description(cfg) -> str:
    o = cfg.model_options
    return f"{cfg.model} ({o.get('depth', '?')} blocks, width {o.get('hidden_size', '?')}, {o.get('num_heads', '?')} heads)"


def run_demo(out: str | Path = "reports/demo", work: str | Path | None = None, quick: bool = False,
             steps: int | None = None, clips: int | None = None, seed: int = 0, keep: bool = False) -> dict:
    """Run the demo; returns ``{"record": path, "wall_s": seconds, "fvd": ..., "files": [...]}``."""
    import numpy as np

    from latte_bench.data.demo import make_demo_videos
    from latte_bench.data.video import write_npz
    from latte_bench.fsutil import sha256_file, write_bytes, write_json
    from latte_bench.metrics.fid import compute_fid
    from latte_bench.metrics.fvd import compute_fvd
    from latte_bench.metrics.kernel import kvd
    from latte_bench.provenance import environment
    from latte_bench.reports import analysis, figures, leaderboard
    from latte_bench.reports.store import load_records, read_training_log
    from latte_bench.training.checkpoint import latest_checkpoint
    from latte_bench.training.latents import LatentSpace
    from latte_bench.training.sampling import sample_videos
    from latte_bench.training.trainer import train

    start = time.time()
    s = _settings(quick, steps, clips)
    out = Path(out)
    work = Path(work) if work is not None else out / "work"
    run_dir, cache = work / "run", work / "stats_cache"
    timings: dict[str, float] = {}
    files: list[Path] = []

    # 1. data --------------------------------------------------------------------------
    t = time.time()
    real_path = work / "real.npz"
    if not real_path.is_file():
        real, _ = make_demo_videos(s.clips, num_frames=s.frames, size=s.size, seed=seed + 1000, classes=s.classes)
        write_npz(real_path, real)
    timings["data"] = time.time() - t
    _say(f"real set: {s.clips} held-out videos of {s.frames}x{s.size}x{s.size} -> {real_path}")

    # 2. training ------------------------------------------------------------------------
    t = time.time()
    cfg = _train_config(s, run_dir, seed)
    _say(f"training {_model_description(cfg)} for {s.steps} steps, batch {s.batch_size}, lr {cfg.lr}, on CPU")
    train(cfg, resume=latest_checkpoint(run_dir) is not None, progress=True)
    timings["train"] = time.time() - t

    # 3. curve: sample + FVD at every checkpoint -------------------------------------------
    ckpts = sorted((run_dir / "checkpoints").glob("*.pt"))
    curve_log = run_dir / "fvd_curve.jsonl"
    curve_log.unlink(missing_ok=True)
    timings["sample"] = timings["fvd"] = 0.0
    result = fake_path = None
    fake_paths: dict[int, Path] = {}  # step -> its samples, for the samples figure
    fvd_opts = dict(num_clips=s.clips, num_frames=s.frames, real_stride=1, seed=seed, keep_features=True,
                    cache_dir=cache, device="cpu", batch_size=4)
    for ckpt in ckpts:
        step = int(ckpt.stem)
        model, _ = analysis.load_model(str(ckpt))
        t = time.time()
        fake_dir = work / "samples" / f"{step:07d}"
        sample_videos(model, LatentSpace(None), fake_dir, s.clips, (s.frames, 3, s.size, s.size), fmt="npz",
                      batch_size=8, seed=seed, num_classes=s.classes, sampler="ddim", steps=s.sample_steps,
                      learn_sigma=cfg.learn_sigma, device="cpu")
        timings["sample"] += time.time() - t
        t = time.time()
        fake_path = fake_paths[step] = fake_dir / "videos.npz"
        result = compute_fvd(real_path, fake_path, **fvd_opts)
        timings["fvd"] += time.time() - t
        with open(curve_log, "a") as f:
            f.write(json.dumps({"step": step, "fvd": result.fvd, "clips": s.clips}) + "\n")
        _say(f"step {step}: FVD {result.fvd:.1f} on {s.clips} clips")
    final_ckpt = ckpts[-1]

    # 4. final metrics ---------------------------------------------------------------------
    real_feats, fake_feats = result.real_stats.features, result.fake_stats.features
    t = time.time()
    kvd_value = float(kvd(real_feats, fake_feats))
    boot = leaderboard.bootstrap_fvd(real_feats, fake_feats, n_resamples=s.bootstrap, seed=seed)
    timings["kvd+bootstrap"] = time.time() - t
    t = time.time()
    fid = compute_fid(real_path, fake_path, **_accepted(compute_fid, dict(
        num_clips=s.clips, num_videos=s.clips, num_frames=s.fid_frames, max_real_frames=s.clips * s.fid_frames,
        cache_dir=cache, device="cpu")))
    timings["fid"] = time.time() - t
    _say(f"final: FVD {result.fvd:.1f} [bootstrap 95% {boot['low']:.1f}-{boot['high']:.1f}], KVD {kvd_value:.3f}, FID {fid.fid:.1f}")

    results_dir = out / "results"
    feat_dir = results_dir / "features"
    for side, feats in (("real", result.real_stats), ("fake", result.fake_stats)):
        feats.save(feat_dir / f"demo_seed{seed}_fvd_{side}.npz")
    fvd_prov = {k: v for k, v in result.provenance.items() if k not in ("real_sampling", "fake_sampling")}
    kvd_prov = {"detector_sha256": fvd_prov.get("detector_sha256"), "num_clips": s.clips, "num_frames": s.frames,
                "real_stride": 1, "features": "I3D logits of the FVD run", "estimator": "unbiased polynomial MMD² (TATS)"}
    record = {
        "method": f"{cfg.model} V1 (demo, {s.steps} steps)",
        "dataset": DATASET,
        "seed": seed,
        "real": str(real_path),
        "fake": str(fake_path),
        "metrics": {"fvd": result.fvd, "kvd": kvd_value, "fid": fid.fid},
        "results": {
            "fvd": {"metric": "fvd", "value": result.fvd, "provenance": fvd_prov},
            "kvd": {"metric": "kvd", "value": kvd_value, "provenance": kvd_prov},
            "fid": {"metric": "fid", "value": fid.fid, "provenance": fid.provenance},
        },
        "bootstrap": {"fvd": boot},
        "features": {"fvd": {"real": f"features/demo_seed{seed}_fvd_real.npz", "fake": f"features/demo_seed{seed}_fvd_fake.npz"}},
        "model": {"name": cfg.model, "variant": 1, "checkpoint": str(final_ckpt), "checkpoint_sha256": sha256_file(final_ckpt),
                  "train_config": cfg.to_dict()},
        "demo_settings": dataclasses.asdict(s),
        "environment": environment(),
    }
    record_path = results_dir / f"demo_seed{seed}.json"
    write_json(record_path, record)
    files.append(record_path)

    # 5. analysis (Fig. 6) and curves ------------------------------------------------------------
    t = time.time()
    ana = analysis.run_analysis("similarity", str(final_ckpt), out=out, num_videos=s.analysis_videos, seed=seed)
    files += ana["files"]
    timings["analysis"] = time.time() - t
    runs = {f"{cfg.model} V1 ({s.clips} clips/point)": read_training_log(run_dir)}
    files += figures.training_curves_figure(runs, out / "training_curves", title=f"Demo FVD during training ({s.clips} clips per point)")
    panels = {"real (held out)": np.load(real_path)["videos"]}
    panels.update({f"step {step}": np.load(path)["videos"] for step, path in fake_paths.items()})
    files += figures.samples_figure(panels, out / "samples",
                                    title=f"Held-out real clips and EMA samples (DDIM {s.sample_steps}) at each checkpoint")

    # 6. leaderboards + README ---------------------------------------------------------------------
    records = load_records(results_dir)
    footer = (f"The `{DATASET}` column is this demo: {s.clips} clips of {s.frames} frames at {s.size}x{s.size} pixels, "
              "NOT comparable with the paper's 2,048-clip 256x256 numbers.")
    tables = {}
    for name in ("table3", "table5"):
        df = leaderboard.build_table(name, records)
        md_path, csv_path, md = leaderboard.write_table(df, name, out, footer=footer)
        files += [md_path, csv_path]
        tables[name] = md
    wall = time.time() - start
    readme = _readme(s, cfg, seed, record, boot, kvd_value, fid.fid, timings, wall, ana["text"], tables, quick)
    write_bytes(out / "README.md", readme.encode("utf-8"))
    files.append(out / "README.md")
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    print(tables["table3"])
    _say(f"done in {wall / 60:.1f} min; wrote {out}/README.md")
    return {"record": record_path, "wall_s": wall, "fvd": result.fvd, "kvd": kvd_value, "fid": fid.fid, "files": files}


def _readme(s: DemoSettings, cfg, seed: int, record: dict, boot: dict, kvd_value: float, fid_value: float, timings: dict,
            wall: float, analysis_text: str, tables: dict, quick: bool) -> str:
    import os

    import torch

    fvd_prov = record["results"]["fvd"]["provenance"]
    lines = [
        "# latte-bench demo" + (" (quick settings)" if quick else ""),
        "",
        "Produced by `latte-bench demo" + (" --quick" if quick else "") + f"` (seed {seed}) on "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; wall time **{wall / 60:.1f} min**.",
        "",
        "> **Not comparable with published numbers.** FVD/KVD here use "
        f"{s.clips} clips of {s.frames} frames at {s.size}x{s.size} pixels (upsampled to 224 for the I3D), and FID "
        f"{s.clips * s.fid_frames} frames per set; the paper uses 2,048 clips of 256x256 videos. FVD is strongly biased "
        "upward at small clip counts, and the data set is procedural. The demo shows that every stage runs and "
        "writes its provenance; its numbers only compare with other runs of this demo.",
        "",
        "## Settings",
        "",
        "| setting | value |",
        "|---|---|",
        f"| data | procedural moving shapes, {s.classes} classes; {s.train_videos} training videos (seed {seed}), {s.clips} held-out real videos (seed {seed + 1000}) |",
        f"| model | {_model_description(cfg)}, Variant 1, pixel space (no VAE), class-conditional |",
        f"| training | {s.steps} steps, batch {s.batch_size}, AdamW lr {cfg.lr}, EMA {cfg.ema_decay} (checkpoints every {cfg.ckpt_every} steps) |",
        f"| sampling | DDIM {s.sample_steps} steps, EMA weights, lossless npz, seed {seed} |",
        f"| FVD | TF-Hub I3D (sha256 `{str(fvd_prov.get('detector_sha256'))[:12]}…`), {fvd_prov.get('real_clips')} real / {fvd_prov.get('fake_clips')} generated clips, "
        f"{s.frames} frames, stride 1, resize `{fvd_prov.get('resize')}`, covariance `{fvd_prov.get('covariance')}` |",
        "| KVD | unbiased polynomial-kernel MMD² on the same I3D logits |",
        f"| FID | Inception on frames: generated = the first {s.fid_frames} frames of {s.clips} videos; real = the first {s.clips * s.fid_frames} frames of the real set (in video order) |",
        "",
        "## Results",
        "",
        "| metric | value |",
        "|---|---|",
        f"| FVD | {record['metrics']['fvd']:.2f} (bootstrap 95% interval {boot['low']:.2f}–{boot['high']:.2f}, {boot['n_resamples']} resamples) |",
        f"| KVD | {kvd_value:.4f} |",
        f"| FID | {fid_value:.2f} |",
        "",
        "Full record with provenance: [`results/demo_seed%d.json`](results/demo_seed%d.json)." % (seed, seed),
        "",
        tables["table3"],
        tables["table5"],
        "## Figures",
        "",
        "- Held-out real clips and samples at each checkpoint (rows: videos, columns: frames): "
        "![samples](samples.png)",
        "- Training curve (FVD at each checkpoint with the same clips, and the loss): "
        "![training curves](training_curves.png)",
        "- Inter-frame cosine similarity of the block outputs of the final model (paper Fig. 6): "
        "![similarity matrices](similarity_matrices.png) ![per block](similarity_per_block.png)",
        "",
        "```",
        analysis_text,
        "```",
        "",
        "The Variant 4 fusion analysis (paper Fig. 8) needs a Variant 4 checkpoint: "
        "`latte-bench analyze fusion --ckpt RUN/checkpoints/NNNNNNN.pt --variant 4`.",
        "",
        "## Time per stage (seconds)",
        "",
        "| stage | s |",
        "|---|---:|",
        *[f"| {k} | {v:.0f} |" for k, v in timings.items()],
        f"| **total** | **{wall:.0f}** |",
        "",
    ]
    return "\n".join(lines)
