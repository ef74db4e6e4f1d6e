"""``latte-bench demo``: the whole pipeline on a CPU, in minutes, with the real detectors.

Nothing to download but the I3D weights (51 MB, fetched once into the cache: docs/weights.md); offline after that.

1. data: the procedural moving-shapes set (:mod:`latte_bench.data.demo`) at the ``demo`` preset's
   size; a held-out real set (seed ``preset seed + 1000``) for the real-vs-real floor;
2. training: the trainer (:func:`latte_bench.training.trainer.train`) on the ``demo`` preset
   (Variant 1), checkpoints at ``curve_points`` evenly spaced steps. Meanwhile a second process
   scores the real-vs-real floor (held-out real clips in place of generated ones, the same
   protocol), then trains the Fig. 6 comparison model (the same preset as Variant 2: spatial
   blocks first, then temporal blocks) for ``compare_steps`` steps, scores it and runs its
   similarity analysis;
3. scoring through the evaluation path (:func:`latte_bench.metrics.evaluate` on the ``demo``
   dataset, the checkpoint as a :class:`latte_bench.metrics.CheckpointSource`): FVD + KVD of the
   final models and the floor, each with its se and FVD∞ (docs/uncertainty.md); samples (not
   scored: the I3D costs a second per clip) of the earlier checkpoints, to show the model learning;
4. outputs in ``OUT`` (default ``./latte-demo``; a folder the demo did not make is refused unless
   empty): ``results/`` (the evaluation records), ``table3.md/.csv``, ``training_curves.png``,
   ``fvd_uncertainty.png`` (FVD ± se and FVD∞ [95%] of each model and the floor, drawn from the records:
   :func:`refresh_report` redraws it and the README's Results and Table 3 from them alone), ``samples.png``, the similarity figures of both variants (paper Fig. 6), ``README.md``;
   ``run/`` (checkpoints, kept) and ``samples/`` (PNG frames) are listed in ``OUT/.gitignore``.

Numbers from 64 clips of 16x16 frames are **not comparable** with published FVDs (2,048 clips of
256x256 videos); the README says so.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from latte_bench.options import resolve_threads
from latte_bench.data.registry import get_dataset
from latte_bench.data.demo import make_demo_videos
from latte_bench.data.video import open_videos
from latte_bench.device import torch_threads
from latte_bench.errors import UserError, check_int
from latte_bench.fsutil import check_writable, write_bytes, write_json
from latte_bench.metrics import CheckpointSource, evaluate
from latte_bench.reports import analysis, leaderboard
from latte_bench.reports.figures import STYLE, fvd_uncertainty_figure, plot_loss, pyplot, save_figure, video_grid
from latte_bench.reports.store import load_records, read_training_log
from latte_bench.training.checkpoint import config_differences, latest_checkpoint, load_checkpoint
from latte_bench.training.presets import preset
from latte_bench.training.trainer import resolve_precision, train

DEFAULT_OUT = "latte-demo"
MARKER = ".latte-bench-demo"  # written into every folder the demo makes; its presence allows re-use
FVD_FIGURE = "fvd_uncertainty"  # OUT/<this>.png/.pdf: FVD ± se and FVD∞ of the final models and the floor


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs besides the ``demo`` preset (model, data, optimiser: the preset's).

    ``steps`` None: the preset's. ``model_options`` None: the preset's sizes (``--quick`` shrinks them).
    """

    steps: int | None = None
    compare_variant: int = 2  # 0: no comparison model
    compare_steps: int = 2000
    compare_model_options: dict | None = None  # None: the Variant 1 sizes
    curve_points: int = 4  # checkpoints of Variant 1 whose samples are shown (the last one is scored)
    clips: int = 64  # clips per set for FVD / KVD (and the floor)
    sampler: str = get_dataset("demo").sampler  # eval --ckpt / sample's defaults on the demo (DDIM)
    sample_steps: int = get_dataset("demo").sample_steps  # (25)
    analysis_videos: int = 8
    train_videos: int | None = None  # None: the preset's demo_videos
    batch_size: int | None = None  # None: the preset's
    model_options: dict | None = None


FULL = DemoSettings()
QUICK = DemoSettings(steps=1500, compare_steps=1000, curve_points=1, clips=2, sample_steps=10, analysis_videos=1,
                     train_videos=4, batch_size=2, model_options={"hidden_size": 32, "depth": 2, "num_heads": 2})

QUICK_NOTE = ("--quick checks that every stage runs: its tiny model, short training and 2-clip FVDs make numbers that "
              "mean nothing (run `latte-bench demo` for the real demo)")

# Seconds per unit on one thread of the 2-core machine at low load (reports/demo/README.md, "Time per
# stage"; the analysis from the full and a --quick run): the stage estimates of the ETA, on idle cores.
UNIT_S = {"train_step": 0.066, "sample_step_video": 0.008, "i3d_clip": 1.09, "analysis": 2.0, "analysis_video": 1.5}
SMALL_MODEL = 0.2  # time per step of --quick's small model relative to the demo preset's
CALIBRATE_S = 10.0  # estimated seconds of finished stages before their measured speed replaces the load's guess
MIN_SLOWDOWN = 1.5  # the high end of the first ETA is at least this many times the idle estimate
LOAD_MARGIN = 1.25  # the load grows while the demo runs (other work starting): the high end allows for 25 % more


def stage_plan(s: "DemoSettings", train_steps: int) -> list[tuple[str, float]]:
    """The demo's stages in order, each with its estimated seconds on idle cores (``UNIT_S``).

    Stages that wait for the second process (the floor, the comparison model) count 1 s: it runs
    during Variant 1's training, which takes longer.
    """
    scale = 1.0 if s.model_options is None else SMALL_MODEL
    sampled = s.clips + (s.curve_points - 1) * min(8, s.clips)
    plan = [("held-out real set", 1.0), ("training Variant 1", train_steps * UNIT_S["train_step"] * scale),
            ("real-vs-real floor", 1.0),
            ("scoring", s.clips * UNIT_S["i3d_clip"] + sampled * s.sample_steps * UNIT_S["sample_step_video"] * scale)]
    if s.compare_variant:
        plan += [(f"Variant {s.compare_variant}", 1.0)]
    return plan + [("figures, analysis, tables", UNIT_S["analysis"] + UNIT_S["analysis_video"] * s.analysis_videos)]


def load_average() -> float:
    """The 1-minute load average (runnable threads, all users); NaN where the OS does not say (Windows)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def load_slowdown(busy_threads: int, load: float, cores: int | None = None) -> float:
    """How many times slower than on idle cores the demo may run at ``load`` (>= ``MIN_SLOWDOWN``).

    ``busy_threads``: the demo's own compute threads (both processes); ``load``: the load average
    before the demo starts (NaN: unknown, ``MIN_SLOWDOWN``); ``cores``: ``os.cpu_count()`` when None.
    With ``load`` runnable threads of other work, each of the demo's gets about
    ``cores / (load + busy_threads)`` of a core instead of a whole one.
    """
    if load != load:  # NaN
        return MIN_SLOWDOWN
    cores = cores or os.cpu_count() or 1
    return max(MIN_SLOWDOWN, LOAD_MARGIN * (load + busy_threads) / cores)


def _say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class _Stages:
    """``stage i/n: what (elapsed, ETA)`` lines.

    ``plan``: :func:`stage_plan`. Until stages estimated at ``CALIBRATE_S`` seconds or more have
    finished, the machine's speed is unknown and the ETA is a range: from the idle estimate to
    ``slowdown`` (:func:`load_slowdown`) times it. Afterwards it is one number: the remaining
    estimates times the measured speed (wall seconds / estimated seconds of the finished stages).
    ``clock`` and ``say``: the time source and where the lines go (a test replays recorded timings).
    """

    def __init__(self, plan: list[tuple[str, float]], slowdown: float, clock=time.time, say=_say):
        self.plan, self.slowdown, self.clock, self.say = plan, slowdown, clock, say
        self.i, self.t0 = 0, clock()
        self.done_est = self.done_real = 0.0
        self.t_stage = None

    def next(self, what: str) -> str:
        """Start the next stage; returns the line it printed."""
        now = self.clock()
        if self.t_stage is not None:
            self.done_real += now - self.t_stage
            self.done_est += self.plan[self.i - 1][1]
        self.t_stage = now
        self.i += 1
        left = sum(est for _, est in self.plan[self.i - 1:])
        if self.done_est >= CALIBRATE_S:
            eta = f"about {left * self.done_real / self.done_est / 60:.1f} min left"
        else:
            eta = f"{left / 60:.1f}-{left * self.slowdown / 60:.1f} min left depending on the load, refined after training"
        line = f"stage {self.i}/{len(self.plan)}: {what} (elapsed {(now - self.t0) / 60:.1f} min, {eta})"
        self.say(line)
        return line

    def finish(self) -> float:
        return self.clock() - self.t0


def _settings(quick: bool, steps: int | None, clips: int | None, compare: bool) -> DemoSettings:
    s = QUICK if quick else FULL
    if steps is not None:
        s = dataclasses.replace(s, steps=check_int("steps", steps, 1, flag="--steps"), compare_steps=min(s.compare_steps, steps))
    if clips is not None:  # two clips per set at least, for a covariance
        s = dataclasses.replace(s, clips=check_int("clips", clips, 2, flag="--clips"))
    if not compare:
        s = dataclasses.replace(s, compare_variant=0)
    return s


def prepare_out(out: str | os.PathLike | None) -> Path:
    """The output folder: made (with the marker and a .gitignore) or re-used if the demo made it.

    A folder that exists, is not empty and has no marker is refused: the demo never writes over
    files it did not make.
    """

    out = Path(out if out is not None else DEFAULT_OUT)
    if out.exists():
        if not out.is_dir():
            raise UserError(f"--out {out}: exists and is not a folder; pass a new folder name")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise UserError(f"--out {out}: the folder is not empty and was not made by `latte-bench demo`; "
                            "pass a new folder (it will be created)")
    check_writable(out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MARKER).is_file():
        write_json(out / MARKER, {"made_by": "latte-bench demo"})
    if not (out / ".gitignore").is_file():
        write_bytes(out / ".gitignore", b"# bulky outputs of latte-bench demo (checkpoints, sampled frames)\nrun/\nsamples/\n")
    return out


def _train_config(s: DemoSettings, run_dir: Path, seed: int, variant: int, steps: int):
    cfg = preset("demo")
    if s.model_options is not None:
        cfg.model_options = dict(s.model_options)
    if s.train_videos is not None:
        cfg.demo_videos = s.train_videos
    if s.batch_size is not None:
        cfg.batch_size = s.batch_size
    cfg.variant, cfg.steps, cfg.seed = variant, steps, seed
    cfg.ckpt_every = max(1, steps // s.curve_points)
    cfg.log_every = max(1, min(50, steps // 10))
    cfg.fvd_every = cfg.sample_every = 0  # the curve is scored below, through the evaluation path
    cfg.device, cfg.out, cfg.num_workers = "cpu", str(run_dir), 0
    return cfg


def _model_description(cfg) -> str:
    o = cfg.model_options
    return f"{cfg.model} ({o.get('depth', '?')} blocks, width {o.get('hidden_size', '?')}, {o.get('num_heads', '?')} heads)"


def _method(cfg) -> str:
    return f"{cfg.model} V{cfg.variant} width {cfg.model_options.get('hidden_size', '?')} (demo, {cfg.steps} steps)"


def _loss_name(cfg) -> str:
    """What the logged training loss is, e.g. ``training loss (Min-SNR-5 weighted x_0 MSE)``."""
    target = "x_0" if cfg.prediction == "x0" else "ε"
    weighting = f"Min-SNR-{cfg.snr_gamma:g} weighted " if cfg.snr_gamma else ""
    return f"training loss ({weighting}{target} MSE{' + VB' if cfg.learn_sigma else ''})"


def _read_videos(folder: Path, n: int):
    """The first ``n`` videos of a saved-samples folder, uint8 (n, T, H, W, 3)."""
    import numpy as np


    source = open_videos(folder)
    return np.stack([e.read(range(e.num_frames)) for e in source.entries[:n]])


def run_demo(out: str | Path | None = None, quick: bool = False, steps: int | None = None, clips: int | None = None,
             seed: int = 0, threads: int | None = None, compare: bool = True) -> dict:
    """Run the demo; returns ``{"out", "record", "fvd", "fvd_real_floor", "wall_s", "checkpoint", "files"}``."""

    threads = resolve_threads(threads)  # the --threads rule of every command
    s = _settings(quick, steps, clips, compare)
    out = prepare_out(out)
    with torch_threads(threads), _background() as pool:
        return _run(out, s, quick, seed, threads, pool)


def _run(out: Path, s: DemoSettings, quick: bool, seed: int, threads: int, pool) -> dict:
    base = preset("demo")
    steps = s.steps or base.steps
    frames, size, classes = base.num_frames, base.image_size, max(base.num_classes, 1)
    runs = {1: _train_config(s, out / "run" / "v1", seed, 1, steps)}
    if s.compare_variant:
        small = dataclasses.replace(s, curve_points=1, model_options=s.compare_model_options or s.model_options)
        runs[s.compare_variant] = _train_config(small, out / "run" / f"v{s.compare_variant}", seed, s.compare_variant,
                                                s.compare_steps)
    for v, cfg in runs.items():
        _refuse_other_settings(out, v, cfg)
    load_start = load_average()
    stages = _Stages(stage_plan(s, runs[1].steps), load_slowdown(2 * threads, load_start))
    files: list[Path] = []
    timings: dict[str, float] = {}

    cpu = {"t": time.process_time()}

    def timed(name: str, t0: float) -> None:
        wall_s, cpu_s = timings.get(name, (0.0, 0.0))
        now_cpu = time.process_time()
        timings[name] = (wall_s + time.time() - t0, cpu_s + now_cpu - cpu["t"])
        cpu["t"] = now_cpu

    # 1. data -------------------------------------------------------------------------------------
    stages.next(f"held-out real set ({s.clips} videos of {frames}x{size}x{size})")
    t0 = time.time()
    held_out, _ = make_demo_videos(s.clips, num_frames=frames, size=size, seed=base.seed + 1000, classes=classes)
    timed("data", t0)
    protocol = dict(dataset="demo", num_clips=s.clips, num_frames=frames, seed=seed, device="cpu", batch_size=8,
                    progress=False, torch_threads=threads)
    # The floor and the comparison model need nothing from Variant 1: a second process scores the floor,
    # then trains, scores and analyses the comparison model, while the first process trains Variant 1.
    # The floor also stores the training-set clips' I3D statistics in the cache, where the later scorings find them.
    floor_job = pool.apply_async(_score_floor, (held_out, protocol))
    compare_job = pool.apply_async(_compare_model, (runs[s.compare_variant], protocol, s, out, seed)) if s.compare_variant else None

    # 2. training -----------------------------------------------------------------------------------
    cfg = runs[1]
    stages.next(f"training Variant 1: {_model_description(cfg)}, {cfg.steps} steps, batch {cfg.batch_size}, "
                f"lr {cfg.lr}, {threads} thread(s)"
                + (f" (Variant {s.compare_variant} trains in a second process)" if s.compare_variant else ""))
    t0 = time.time()
    _train(cfg, progress=True)
    timed("train Variant 1", t0)

    # 3. scoring through the evaluation path --------------------------------------------------------
    stages.next(f"real-vs-real floor: FVD between {s.clips} training-set clips and {s.clips} held-out clips "
                "(scored by a second process during training)")
    t0 = time.time()
    floor, floor_cpu_s = floor_job.get()
    unc_floor = _uncertainty(floor)
    timed("floor (wait)", t0)
    timings["floor (second process, during training)"] = (floor.record["wall_time_s"], floor_cpu_s)
    _say(f"real-vs-real floor: FVD {floor.fvd:.1f}{_pm(unc_floor)}")

    stages.next(f"sampling ({s.sampler.upper()} {s.sample_steps} steps) and scoring the final Variant 1 model on {s.clips} clips")
    t0 = time.time()
    panels = {"real (held out)": held_out}
    ckpts = sorted((Path(cfg.out) / "checkpoints").glob("*.pt"))
    for ckpt in ckpts[:-1]:  # earlier checkpoints: the same first videos, not scored
        source = CheckpointSource(ckpt, sampler=s.sampler, steps=s.sample_steps, seed=seed).load("cpu")
        panels[f"V1 step {int(ckpt.stem)}"] = source.generate(range(min(8, s.clips)), "demo")
    ckpt, result, saved = _score_final(cfg, protocol, s, out, seed)
    panels[f"V1 step {int(ckpt.stem)} (final)"] = _read_videos(saved, 8)
    _say(f"Variant 1, step {int(ckpt.stem)}: FVD {result.fvd:.1f} on {s.clips} clips (floor {floor.fvd:.1f})")
    finals = {1: (ckpt, result)}
    timed("sample+score Variant 1", t0)
    sims = {}
    if compare_job is not None:
        v = s.compare_variant
        stages.next(f"Variant {v} (trained, scored and analysed by the second process)")
        t0 = time.time()
        ckpt, result, saved, sims[v], wall_s, cpu_s = compare_job.get()
        timed(f"Variant {v} (wait)", t0)
        timings[f"Variant {v}: train, score, analyse (second process, during training)"] = (wall_s, cpu_s)
        panels[f"V{v} step {int(ckpt.stem)} (Variant {v} model)"] = _read_videos(saved, 8)
        _say(f"Variant {v}, step {int(ckpt.stem)}: FVD {result.fvd:.1f} on {s.clips} clips (floor {floor.fvd:.1f})")
        finals[v] = (ckpt, result)

    # 4. records -----------------------------------------------------------------------------------
    stages.next("records, figures, similarity analysis (Fig. 6), tables")
    t0 = time.time()
    results_dir = out / "results"
    floor_entry = {"value": floor.fvd, "kvd": floor.kvd, "uncertainty": unc_floor, "real_count": floor.record["counts"].get("real_clips"),
                   "held_out": {"seed": base.seed + 1000, "videos": s.clips, "what": "procedural demo videos outside the training set"},
                   "record": floor.record}
    record_paths = {}
    for v, (ckpt, result) in finals.items():
        record = dict(result.record)
        stem = f"demo_v{v}_seed{seed}"
        for side, stats in zip(("real", "fake"), result.stats["i3d"]):
            stats.save(results_dir / "features" / f"{stem}_fvd_{side}.npz")
        record.update({
            "fvd_real_floor": floor_entry,
            "features": {"fvd": {"real": f"features/{stem}_fvd_real.npz", "fake": f"features/{stem}_fvd_fake.npz"}},
            "model": {"name": runs[v].model, "variant": v, "checkpoint": str(ckpt), "train_config": runs[v].to_dict()},
            "demo": {"settings": dataclasses.asdict(s), "threads": threads, "quick": quick,
                     "fvd": result.fvd, "fvd_real_floor": floor.fvd, "ratio_to_floor": result.fvd / floor.fvd},
        })
        record_paths[v] = results_dir / f"{stem}.json"
        write_json(record_paths[v], record)
        files.append(record_paths[v])
    main_ckpt, main = finals[1]
    unc_main = _uncertainty(main)

    # figures: samples, curve, similarity of each variant
    files += samples_figure(panels, out / "samples",
                            title=f"Held-out real clips, then EMA samples ({s.sampler.upper()} {s.sample_steps} steps) at each checkpoint")
    losses = {f"Variant {v}": read_training_log(out / "run" / f"v{v}")["loss"] for v in runs}
    scores = {"real vs real (floor)": floor.fvd, **{f"Variant {v}, step {int(ck.stem)}": r.fvd for v, (ck, r) in finals.items()}}
    files += results_figure(losses, scores, out / "training_curves", clips=s.clips, loss_label=_loss_name(runs[1]))
    rows = fvd_rows(results_dir, seed)
    files += fvd_figure(rows, out)
    sims = {1: analysis.run_analysis("similarity", str(main_ckpt), out=out, num_videos=s.analysis_videos, seed=seed), **sims}
    for ana in sims.values():
        files += ana["files"]
    timed("figures+analysis", t0)

    # tables + README
    md_path, csv_path, table3 = write_table3(out)
    files += [md_path, csv_path]
    wall = stages.finish()
    readme = _readme(s, runs, seed, threads, quick, finals, rows, sims, table3, timings, wall, load_start)
    write_bytes(out / "README.md", readme.encode("utf-8"))
    files.append(out / "README.md")

    print(table3)
    ratio = main.fvd / floor.fvd
    _say(f"done in {wall / 60:.1f} min: FVD {main.fvd:.1f}{_pm(unc_main)} vs real-vs-real floor {floor.fvd:.1f}{_pm(unc_floor)} "
         f"({ratio:.2f}x); wrote {out}/README.md")
    if quick:
        _say(QUICK_NOTE)
    print("\nNext, on the kept checkpoint:")
    for line in next_commands(out, main_ckpt, s, seed):
        print(f"  {line}")
    return {"out": out, "record": record_paths[1], "fvd": main.fvd, "fvd_real_floor": floor.fvd, "wall_s": wall,
            "checkpoint": main_ckpt, "files": files}


def next_commands(out: Path, ckpt: Path, s: DemoSettings, seed: int) -> list[str]:
    """The commands the demo suggests at its end (they take the final Variant 1 checkpoint)."""
    return [
        f"latte-bench eval --dataset demo --ckpt {ckpt} --num-clips {s.clips} --sampler {s.sampler} --steps {s.sample_steps} "
        f"--seed {seed} --threads 1 --json {out}/eval.json     # reproduces the demo's FVD",
        f"latte-bench analyze similarity --ckpt {ckpt} --out {out}/analysis",
        f"latte-bench report table3 --results {out}/results --out {out} --uncertainty",
    ]


def samples_figure(panels: dict, stem: Path, title: str, videos: int = 6, frames: int = 16) -> list[Path]:
    """One panel per set stacked top to bottom (rows: videos, columns: frames), pixels shown as blocks."""

    plt = pyplot()
    grids = {k: video_grid(v, max_videos=videos, max_frames=frames) for k, v in panels.items()}
    h, w = next(iter(grids.values())).shape[:2]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(grids), 1, figsize=(w / 28, len(grids) * (h / 28 + 0.35) + 0.4), squeeze=False)
        for ax, (label, grid) in zip(axes[:, 0], grids.items()):
            ax.imshow(grid, interpolation="nearest")
            ax.set_title(label, fontsize=9, loc="left")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        return save_figure(fig, stem)


def results_figure(losses: dict, scores: dict, stem: Path, clips: int, loss_label: str = "training loss") -> list[Path]:
    """Left: the training loss of each run; right: the FVD of each model beside the real-vs-real floor.

    ``losses``: label -> (steps, values); ``scores``: label -> FVD, the floor first; ``loss_label``: the loss axis.
    """

    plt = pyplot()
    with plt.rc_context(STYLE):
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1.3, 1]})
        for label, (steps, values) in losses.items():
            plot_loss(ax, steps, values, label)
        ax.set(xlabel="training step", ylabel=loss_label, yscale="log", title="Training loss")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
        labels, values = list(scores), list(scores.values())
        colors = ["0.6"] + [f"C{i}" for i in range(len(values) - 1)]
        bars = bx.barh(labels[::-1], values[::-1], color=colors[::-1])
        bx.bar_label(bars, fmt="%.0f", padding=3, fontsize=9)
        floor = values[0]
        bx.axvline(2 * floor, color="k", ls="--", lw=1, label=f"2x the floor ({2 * floor:.0f})")
        bx.legend(loc="lower right", fontsize=8)
        bx.set(xlabel=f"FVD on {clips} clips (lower is better)", title="Final models against the real-vs-real floor")
        bx.set_xlim(0, max(values) * 1.2)
        bx.grid(alpha=0.3, axis="x")
        fig.tight_layout()
        return save_figure(fig, stem)


def block_kind_means(summary: dict) -> dict:
    """Mean inter-frame similarity per block kind (``spatial``, ``temporal``, ...) from a similarity summary."""
    import numpy as np

    kinds: dict = {}
    for label, stats in summary.items():
        kinds.setdefault(label.split(" ", 1)[1], []).append(stats["mean"])
    return {k: float(np.mean(v)) for k, v in kinds.items()}


def fig6_summary(sims: dict, compare_note: str = "") -> str:
    """One paragraph on the paper's Fig. 6 claims, read from the similarity summaries ``sims`` (variant -> analysis).

    The paper: in Variant 2, each further spatial block lowers the mean inter-frame similarity and raises its
    variance; and Variant 2's spatial blocks keep the frames less similar than Variant 1's interleaved ones.
    ``compare_note``: what differs between the two models besides the variant, if anything.
    """
    means = {v: block_kind_means(ana["numbers"]["summary"]) for v, ana in sims.items()}
    parts = [f"Variant {v}: " + ", ".join(f"{k} blocks {m:.3f}" for k, m in kinds.items()) for v, kinds in means.items()]
    text = "Mean inter-frame cosine similarity of the block outputs (clips noised to t = 250): " + "; ".join(parts) + "."
    if 2 in sims:
        stack = [(label, st) for label, st in sims[2]["numbers"]["summary"].items() if label.split(" ", 1)[1] == "spatial"]
        if len(stack) >= 2:
            falls = all(b["mean"] < a["mean"] for (_, a), (_, b) in zip(stack, stack[1:]))
            rises = all(b["var"] > a["var"] for (_, a), (_, b) in zip(stack, stack[1:]))
            walk = " -> ".join(f"{st['mean']:.3f} (var {st['var']:.1e})" for _, st in stack)
            text += (f" Paper's Fig. 6: through Variant 2's spatial blocks the mean falls and its variance rises; here "
                     f"{walk}: the mean {'falls' if falls else 'does not fall'} and the variance "
                     f"{'rises' if rises else 'does not rise'} at every block.")
    if 1 in means and 2 in means and "spatial" in means[1] and "spatial" in means[2]:
        lower = means[2]["spatial"] < means[1]["spatial"]
        text += (f" Variant 2's spatial blocks (all before its temporal blocks) {'keep' if lower else 'do not keep'} the "
                 f"frames less similar than Variant 1's interleaved spatial blocks"
                 + (f" ({compare_note}, so this is an illustration, not a controlled test)" if compare_note else "") + ".")
    return text


def _differences(runs: dict) -> str:
    """What differs between Variant 1's run and the comparison run besides the variant ("" if nothing)."""
    first, *others = runs.values()
    diffs = []
    for c in others:
        if c.steps != first.steps:
            diffs.append(f"training steps ({first.steps:,} vs {c.steps:,})")
        if c.model_options != first.model_options:
            diffs.append(f"sizes ({_model_description(first)} vs {_model_description(c)})")
    return "the two models also differ in " + " and ".join(diffs) if diffs else ""


def _score_floor(held_out, protocol: dict):
    """The real-vs-real floor (the training-set clips against ``held_out``) and the CPU seconds it took."""

    cpu = time.process_time()
    result = evaluate(None, held_out, metrics=("fvd", "kvd"), method="real (held-out clips)", **protocol)
    return result, time.process_time() - cpu


def _refuse_other_settings(out: Path, variant: int, cfg) -> None:
    """Refuse, before any work, a kept run in ``out`` trained with other settings than ``cfg`` (it could not resume)."""
    import torch


    last = latest_checkpoint(Path(cfg.out))
    if last is None:
        return
    current = {**dataclasses.replace(cfg, precision=resolve_precision(cfg.precision, torch.device("cpu"))).to_dict(),
               "world_size": 1}
    try:
        stored = load_checkpoint(last).get("config", {})
    except UserError as e:
        raise UserError(f"{e}; delete {cfg.out} to train it again, or pass a new --out") from None
    diff = config_differences(stored, current)
    if diff:
        raise UserError(f"--out {out}: holds a Variant {variant} run trained with other settings ({', '.join(diff)}); "
                        f"pass a new folder, or delete {cfg.out} to train it again")


def _train(cfg, progress: bool) -> None:
    """Train run ``cfg`` to its last step (resuming its latest checkpoint, if any)."""

    last = latest_checkpoint(Path(cfg.out))
    if last is None or int(last.stem) < cfg.steps:
        train(cfg, resume=last is not None, progress=progress)


def _score_final(cfg, protocol: dict, s: DemoSettings, out: Path, seed: int):
    """FVD + KVD of the run's last checkpoint through the evaluation path; its samples are kept under ``out/samples``.

    Returns ``(checkpoint, EvalResult, samples folder)``.
    """

    ckpt = sorted((Path(cfg.out) / "checkpoints").glob("*.pt"))[-1]
    saved = out / "samples" / f"v{cfg.variant}" / f"{int(ckpt.stem):07d}"
    source = CheckpointSource(ckpt, sampler=s.sampler, steps=s.sample_steps, seed=seed)
    result = evaluate(None, source, metrics=("fvd", "kvd"), method=_method(cfg),
                      save_samples=None if (saved / "000000").is_dir() else str(saved), **protocol)
    return ckpt, result, saved


def _compare_model(cfg, protocol: dict, s: DemoSettings, out: Path, seed: int):
    """In the second process: train the comparison model, score it, run its similarity analysis (Fig. 6).

    Returns ``(checkpoint, EvalResult, samples folder, analysis, wall seconds, CPU seconds)``.
    """
    import torch


    wall, cpu = time.time(), time.process_time()
    torch.set_num_threads(protocol["torch_threads"])  # a spawned process starts with torch's default (all cores)
    _train(cfg, progress=False)  # the first process's bar is the one on screen
    ckpt, result, saved = _score_final(cfg, protocol, s, out, seed)
    ana = analysis.run_analysis("similarity", str(ckpt), out=out, num_videos=s.analysis_videos, seed=seed,
                                prefix=f"v{cfg.variant}_")
    return ckpt, result, saved, ana, time.time() - wall, time.process_time() - cpu


@contextmanager
def _background():
    """A one-worker process pool (spawned: a fresh interpreter, no state shared with the training process).

    Its tasks run one after the other. If the demo fails or is interrupted, the worker is terminated at
    once, so the error is not held back until the second process's work is done; if the demo is killed
    (``kill -9``, which runs no clean-up), the worker ends with it (:func:`die_with_parent`).
    """
    import multiprocessing

    pool = multiprocessing.get_context("spawn").Pool(1, initializer=die_with_parent, initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        pool.terminate()
        raise
    else:
        pool.close()
    finally:
        pool.join()


def die_with_parent(parent: int, parent_death_signal: bool = True, poll: bool = True) -> None:
    """In a worker process: end it when process ``parent`` ends, however it ends, so that no worker of a
    killed demo goes on writing into the output folder while a rerun starts.

    Linux (``parent_death_signal``): the kernel sends SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``).
    Everywhere, should the call be refused (``poll``): a daemon thread that checks ``getppid()`` every 0.2 s.
    """
    import signal
    import threading

    if parent_death_signal and platform.system() == "Linux":
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if poll:
        threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _uncertainty(result) -> dict:
    """``{se, fvd_inf, fvd_inf_ci}`` of an evaluation's FVD (its record; None each below 4 clips)."""
    fvd = result.record["results"]["fvd"]
    return {k: fvd[k] for k in ("se", "fvd_inf", "fvd_inf_ci")}


def _se(u: dict) -> str:
    return "" if u["se"] is None else f" ± {u['se']:.1f}"


def _inf(u: dict) -> str:
    return "–" if u["se"] is None else f"{u['fvd_inf']:.1f} [{u['fvd_inf_ci'][0]:.1f}–{u['fvd_inf_ci'][1]:.1f}]"


def _pm(u: dict) -> str:
    """`` ± se (FVD∞ x [lo–hi])`` or "" when there were too few clips for an se."""
    return "" if u["se"] is None else f"{_se(u)} (FVD∞ {_inf(u)})"


def fvd_rows(results_dir: str | Path, seed: int = 0) -> list[dict]:
    """The demo's FVDs as its records ``results_dir/demo_v<V>_seed<seed>.json`` hold them: the real-vs-real floor
    first, then each variant in order.

    Each row: ``label`` (short), ``method`` (the record's), ``value`` (FVD), ``se``, ``fvd_inf``, ``fvd_inf_ci``
    ([low, high]; None each below 4 clips), ``kvd``, ``floor`` (True for the floor) and ``clips``.
    """
    import json


    paths = sorted(Path(results_dir).glob(f"demo_v*_seed{seed}.json"), key=lambda p: int(p.stem.split("_")[1][1:]))
    if not paths:
        raise UserError(f"{results_dir}: no demo records (demo_v<V>_seed{seed}.json); run `latte-bench demo` first")
    records = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    floor = records[0]["fvd_real_floor"]
    rows = [{"label": "real vs real (floor)", "method": "real vs real (floor: training-set clips vs held-out clips)",
             "value": floor["value"], **{k: floor["uncertainty"][k] for k in ("se", "fvd_inf", "fvd_inf_ci")},
             "kvd": floor["kvd"], "floor": True, "clips": floor["real_count"]}]
    for r in records:
        fvd = r["results"]["fvd"]
        rows.append({"label": f"Variant {r['model']['variant']}, step {int(Path(r['model']['checkpoint']).stem)}",
                     "method": r["method"], "value": r["metrics"]["fvd"],
                     **{k: fvd.get(k) for k in ("se", "fvd_inf", "fvd_inf_ci")}, "kvd": r["metrics"].get("kvd"),
                     "floor": False, "clips": fvd["fake_count"]})
    return rows


def fvd_figure(rows: list[dict], out: Path) -> list[Path]:
    """``OUT/fvd_uncertainty.png/.pdf``: each model's FVD ± se beside the floor's, with FVD∞ and its 95% interval."""

    return fvd_uncertainty_figure(rows, out / FVD_FIGURE, clips=rows[0]["clips"],
                                  title="Final models against the real-vs-real floor: FVD ± se, and FVD∞ [95%]")


def results_section(rows: list[dict]) -> list[str]:
    """The README's ``## Results``: a table of FVD ± se, FVD∞ [95%] and KVD per row of :func:`fvd_rows`, its note
    and the FVD figure."""
    floor = rows[0]["value"]
    lines = ["## Results", "", "| | FVD ± se | FVD∞ [95%] | KVD |", "|---|---:|---|---:|"]
    for r in rows:
        ratio = "" if r["floor"] else f" ({r['value'] / floor:.2f}x floor)"
        lines.append(f"| {r['method']} | {r['value']:.1f}{_se(r)}{ratio} | {_inf(r)} | {r['kvd']:.2f} |")
    return lines + [
        "",
        "`se`: the standard error of the FVD over draws of clips; FVD∞: the bias-corrected estimate of the population "
        "distance with its 95% interval (a grouped jackknife over clips; docs/uncertainty.md). At this clip count, below "
        "the I3D logits' dimension, FVD∞ still carries part of the bias, so compare the models with the floor at the "
        "same N. Records with provenance: `results/` (the evaluation records of `latte_bench.metrics.evaluate`, with "
        "`se`, `fvd_inf` and `fvd_inf_ci`, plus `fvd_real_floor`).",
        "",
        f"FVD of each model and of the floor, bars ± se, with FVD∞ and its 95% interval (◆ on a line; an interval cut "
        f"at 0 starts at the 0 line): ![FVD ± se and FVD∞]({FVD_FIGURE}.png)",
        "",
    ]


def write_table3(out: Path) -> tuple[Path, Path, str]:
    """``OUT/table3.md/.csv`` from the records in ``OUT/results`` (the leaderboard's Table 3 with the demo's column
    explained); returns (md, csv, markdown)."""

    records = load_records(out / "results")
    first = next(r.raw for r in records if r.raw.get("dataset") == get_dataset("demo").name)  # the demo's own records
    size = first["model"]["train_config"]["image_size"]
    footer = (f"The `Demo` column is this demo: {first['protocol']['num_clips']} clips of {first['protocol']['num_frames']} "
              f"frames at {size}x{size} pixels, NOT comparable with the paper's 2,048-clip 256x256 numbers.")
    return leaderboard.write_table(leaderboard.build_table("table3", records), "table3", out, footer=footer)


def refresh_report(out: str | Path, seed: int = 0) -> list[Path]:
    """Re-render what a demo report takes from its stored records alone, training and scoring nothing: the FVD
    figure, ``table3.md/.csv`` and the README's Results and Table 3 sections (the rest of the README is kept).
    Returns the files written."""

    out = Path(out)
    rows = fvd_rows(out / "results", seed)
    files = fvd_figure(rows, out)
    md_path, csv_path, table3 = write_table3(out)
    readme = (out / "README.md").read_text(encoding="utf-8")
    readme = _splice(readme, "## Results\n", "## Samples\n", "\n".join(results_section(rows)) + "\n")
    readme = _splice(readme, table3.split("\n", 1)[0] + "\n", "## Reproduce and continue\n", table3 + "\n")
    write_bytes(out / "README.md", readme.encode("utf-8"))
    return files + [md_path, csv_path, out / "README.md"]


def _splice(text: str, start: str, end: str, new: str) -> str:
    """``text`` with the part from the line ``start`` up to (not including) the line ``end`` replaced by ``new``."""

    i = text.find(start)
    j = text.find(end, i + 1)
    if i < 0 or j < 0 or (i > 0 and text[i - 1] != "\n"):
        raise UserError(f"the demo README has no {start.strip()!r} ... {end.strip()!r} section; run `latte-bench demo` again")
    return text[:i] + new + text[j:]


def _readme(s: DemoSettings, runs: dict, seed: int, threads: int, quick: bool, finals: dict, rows: list[dict],
            sims: dict, table3: str, timings: dict, wall: float, load_start: float) -> str:
    import torch

    cfg = runs[1]
    main = finals[1][1]
    fvd_prov = main.record["results"]["fvd"]["provenance"]
    ckpt = finals[1][0]
    cmd = "latte-bench demo" + (" --quick" if quick else "")
    lines = [
        "# latte-bench demo" + (" (quick settings)" if quick else ""),
        "",
        *([f"> **{QUICK_NOTE}.**", ""] if quick else []),
        f"Produced by `{cmd}` (seed {seed}, {threads} thread(s)) on {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}; wall time **{wall / 60:.1f} min**, process CPU time "
        f"{sum(c for _, c in timings.values()) / 60:.1f} min (1-min load average at the start {load_start:.1f}, at the end "
        f"{load_average():.1f}).",
        "",
        "> **Not comparable with published numbers.** FVD/KVD here use "
        f"{s.clips} clips of {cfg.num_frames} frames at {cfg.image_size}x{cfg.image_size} pixels (upsampled to 224 for the I3D); "
        "the paper uses 2,048 clips of 256x256 videos. FVD is biased upward at small clip counts, so the demo "
        "reports it beside the **real-vs-real floor**: the FVD between two disjoint sets of real clips of the same size, "
        "same protocol, same run.",
        "",
        *results_section(rows),
        "## Samples",
        "",
        "Held-out real clips, then EMA samples of Variant 1 at each checkpoint and of the Variant "
        f"{s.compare_variant} model (rows: videos, columns: frames): ![samples](samples.png)" if s.compare_variant else
        "Held-out real clips, then EMA samples at each checkpoint (rows: videos, columns: frames): ![samples](samples.png)",
        "",
        "Training curve (the training loss, and the final FVD): ![training curves](training_curves.png)",
        "",
        "## Settings",
        "",
        "| setting | value |",
        "|---|---|",
        f"| data | procedural moving shapes (`latte_bench/data/demo.py`), {cfg.num_classes} classes, {cfg.num_frames} frames of "
        f"{cfg.image_size}x{cfg.image_size}; {cfg.demo_videos} training videos (seed {cfg.seed}) |",
    ]
    for v, c in runs.items():
        lines.append(f"| Variant {v} | {_model_description(c)}, pixel space (no VAE), class-conditional; {c.steps} steps, batch "
                     f"{c.batch_size}, AdamW lr {c.lr}, EMA {c.ema_decay}; checkpoints every {c.ckpt_every} steps |")
    lines += [
        f"| sampling | {s.sampler.upper()} {s.sample_steps} steps, EMA weights, x_0 clamped to [-1, 1], seed {seed}, random labels |",
        f"| FVD | TF-Hub I3D (sha256 `{str(fvd_prov.get('detector_sha256'))[:12]}…`), {s.clips} real / {s.clips} generated clips, "
        f"{cfg.num_frames} frames, stride 1, resize `{main.record['protocol'].get('resize')}`, covariance "
        f"`{main.record['protocol'].get('covariance')}`; real = the `demo` dataset of `latte-bench eval` (training-set clips) |",
        "| KVD | unbiased polynomial-kernel MMD² on the same I3D logits |",
        "",
        "### Where the demo preset departs from the paper's recipe",
        "",
        "The model and diffusion code are the package's Latte (`latte_bench.models`, `latte_bench.diffusion`); the paper "
        "presets (`ffs`, `sky`, `ucf101`, `taichi`) are the official configs (linear schedule, ε-prediction, learned variance, "
        "the hybrid loss). The demo preset differs so that a tiny model learns in minutes on a CPU:",
        "",
        *[f"- {line}" for line in deviations(runs, s)],
        "",
        "## Inter-frame similarity (paper Fig. 6)",
        "",
    ]
    lines += [fig6_summary(sims, compare_note=_differences(runs)), ""]
    for v, ana in sims.items():
        prefix = "" if v == 1 else f"v{v}_"
        lines += [f"Variant {v} (`{prefix}similarity_matrices.png`, `{prefix}similarity_per_block.png`):", "",
                  f"![Variant {v} matrices]({prefix}similarity_matrices.png) ![Variant {v} per block]({prefix}similarity_per_block.png)",
                  "", "```", ana["text"], "```", ""]
    lines += [
        table3,
        "## Reproduce and continue",
        "",
        "```bash",
        f"{cmd} --out DIR" + (f" --seed {seed}" if seed else ""),
        *next_commands(Path("DIR"), Path("DIR") / ckpt.relative_to(ckpt.parents[3]), s, seed),
        "```",
        "",
        "The same seed and thread count give the same numbers on the same machine. Training and the detectors run "
        "in floating point on the CPU, so the checkpoints, samples, FVDs and intervals move slightly with the thread count "
        "and the CPU (vector instructions, BLAS kernels); wall times move with the machine and its load.",
        "",
        "## Time per stage (seconds)",
        "",
        "Wall time depends on the machine's load. A second process scores the real-vs-real floor"
        + (f" and then trains, scores and analyses the Variant {s.compare_variant} model" if s.compare_variant else "")
        + " while the first trains Variant 1, so its rows' wall times overlap training's (the total is the run's wall "
        "time) and the CPU column sums both processes; on idle cores a run takes about its CPU time minus the second "
        "process's.",
        "",
        "| stage | wall s | CPU s |",
        "|---|---:|---:|",
        *[f"| {k} | {w:.0f} | {c:.0f} |" for k, (w, c) in timings.items()],
        f"| **total** | **{wall:.0f}** | **{sum(c for _, c in timings.values()):.0f}** |",
        "",
    ]
    return "\n".join(lines)


def deviations(runs: dict, s: DemoSettings) -> list[str]:
    """Where the demo's runs depart from the official recipe, one line each (read from their configs)."""
    cfg = runs[1]
    o = cfg.model_options
    lines = [
        f"pixel space (no VAE) at {cfg.image_size}x{cfg.image_size}, {cfg.num_frames} frames, frame interval "
        f"{cfg.frame_interval}, {cfg.num_classes} classes of procedural shapes, each video one large shape in its class "
        "colour (red square, green disc, blue triangle, yellow cross) moving over a plain dark background (official: "
        "SD-VAE latents of 256x256 real videos, frame interval 3);",
        f"{cfg.model} narrowed to width {o.get('hidden_size')}, {o.get('depth')} blocks, {o.get('num_heads')} heads "
        f"(official: Latte-XL/2, width 1152, 28 blocks); {cfg.steps:,} steps (official: hundreds of thousands)"
        + "".join(f"; the Variant {v} comparison model: {_model_description(c)}, {c.steps:,} steps"
                  for v, c in runs.items() if v != 1) + ";",
        f"{'x_0' if cfg.prediction == 'x0' else 'ε'}-prediction on the `{cfg.noise_schedule}` noise schedule, "
        f"{'learned' if cfg.learn_sigma else 'fixed'} variance, {'MSE + VB' if cfg.learn_sigma else 'MSE'} loss"
        + (f" with Min-SNR-{cfg.snr_gamma:g} weighting (each clip's x_0 error counts min(SNR_t, {cfg.snr_gamma:g}) times)"
           if cfg.snr_gamma else "")
        + " (official: ε-prediction on the linear schedule, learned variance, uniformly weighted MSE + VB loss);",
        f"AdamW lr {cfg.lr:g}, {cfg.warmup_steps} warm-up steps, `{cfg.lr_schedule}` schedule (official: constant 1e-4), "
        f"EMA decay {cfg.ema_decay} (official 0.9999), gradient clipping at norm {cfg.clip_max_norm} from step "
        f"{cfg.start_clip_iter} (official: 0.1 after 20,000 steps), batch {cfg.batch_size} (official 5);",
        f"sampling with {s.sampler.upper()} {s.sample_steps} steps (official evaluation: DDPM 250) and x_0 clamped to "
        "[-1, 1] (right for pixels; Latte passes False for latents).",
    ]
    return lines
