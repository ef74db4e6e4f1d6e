"""Re-measure the silently wrong numbers of issue 20 (items 1-7) through the real CLI.

Each probe is what a hostile user would do: frame folders named ``frame_0.png`` … ``frame_15.png``,
a one-channel single video, a checkpoint whose EMA holds a NaN, a real ``.npz`` rewritten with its size
and mtime kept, ``bench`` rerun on other real data, a work folder without its manifest or with another
evaluation's block, a periodic FVD of training killed after its first block. Every command is
``python -m latte_bench.cli ...`` in a subprocess on tiny synthetic data (16-frame 32x32 waves, 2-3 clips,
the 2-block demo model), one thread, each with its own ``$LATTE_BENCH_CACHE`` (the I3D weights linked in
from the usual cache; nothing is downloaded). Where the fixed behaviour is a number, it is compared with
the reference it must equal (e.g. frame folders against the same videos as an ``.npy``; a cached FVD
against ``--no-cache``); where it is a refusal, the one line and its exit code are shown.

    latte-bench weights fetch i3d          # once, if the I3D weights are not cached yet
    python benchmarks/probe_wrong_numbers.py [--work /tmp/probes] [--commands]

Prints a table: item, probe, before (the issue's figure), now, reference, verdict. ``--commands`` also
prints every command run. About 3 minutes (one thread per command). Exit status 1 when a promise does not hold.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from synthetic import waves  # noqa: E402

TINY_MODEL = '{"hidden_size": 32, "depth": 2, "num_heads": 2}'
# the demo preset (16x16, 4 classes) at 9 frames, the I3D's minimum, with a 2-block Latte; a constant lr without
# warmup and an EMA decay of 0.5, so that 2 steps move the zero-initialised output layer of the model and of its
# EMA, and the samples depend on the weights
DEMO_RUN = ["--num-frames", "9", "--demo-videos", "8", "--model-options", TINY_MODEL, "--lr-schedule", "constant",
            "--warmup-steps", "0", "--ema-decay", "0.5", "--threads", "1", "--no-progress"]
ONE = ["--threads", "1", "--no-progress"]


@dataclass
class Probe:
    work: Path
    commands: list[str] = field(default_factory=list)
    rows: list[tuple[str, ...]] = field(default_factory=list)

    # ------------------------------------------------------------------ running the CLI

    def cache(self, name: str) -> Path:
        """A fresh ``$LATTE_BENCH_CACHE`` holding only a link to the I3D weights."""
        src = Path(os.environ.get("LATTE_BENCH_CACHE", Path.home() / ".cache" / "latte_bench"))
        weights = src / "i3d-kinetics-400.safetensors"
        if not weights.is_file():
            sys.exit(f"{weights}: no I3D weights; run `latte-bench weights fetch i3d` first")
        folder = self.work / "caches" / name
        folder.mkdir(parents=True)
        (folder / weights.name).symlink_to(weights.resolve())
        return folder

    def env(self, cache: Path) -> dict:
        return {**os.environ, "PYTHONPATH": str(ROOT), "LATTE_BENCH_CACHE": str(cache), "LATTE_BENCH_OFFLINE": "1",
                "OMP_NUM_THREADS": "1"}

    def short(self, text: str) -> str:
        return text.replace(str(self.work), "$W")

    def command(self, cache: Path, argv: list[str], note: str = "") -> str:
        """The command as a user would type it, ``$W`` for the work folder."""
        words = " ".join(a if a and " " not in a and '"' not in a else f"'{a}'" for a in argv)
        return self.short(f"LATTE_BENCH_CACHE={cache} latte-bench {words}{note}")

    def cli(self, cache: Path, *argv) -> subprocess.CompletedProcess:
        argv = [str(a) for a in argv]
        self.commands.append(self.command(cache, argv))
        return subprocess.run([sys.executable, "-m", "latte_bench.cli", *argv], env=self.env(cache),
                              capture_output=True, text=True, timeout=900)

    def fvd(self, cache: Path, *argv) -> float:
        """``eval ... --json``: the record's FVD (full precision)."""
        record = self.work / "records" / f"{len(self.commands):03d}.json"
        record.parent.mkdir(exist_ok=True)
        proc = self.cli(cache, *argv, "--json", record)
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
        self.last_record = json.loads(record.read_text())
        self.last_stderr = proc.stderr
        return float(self.last_record["metrics"]["fvd"])

    def refusal(self, proc) -> str:
        lines = proc.stderr.strip().splitlines()
        return f"exit {proc.returncode}: " + self.short(" / ".join(lines)) if lines else f"exit {proc.returncode} (no message)"

    def refused(self, proc, *needles) -> bool:
        """Exit 2 with exactly one `latte-bench: error:` line holding every needle."""
        err = proc.stderr.strip()
        return (proc.returncode == 2 and err.count("\n") == 0 and err.startswith("latte-bench: error: ")
                and all(n in err for n in needles))

    def row(self, item, probe, before, now, reference, holds: bool, verdict: str | None = None) -> None:
        self.rows.append((item, probe, before, now, reference, verdict or ("holds" if holds else "FAILS")))

    # ------------------------------------------------------------------ data

    def folder(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def save_frame_folder(folder: Path, video: np.ndarray, name: str = "{t:02d}.png", numbers=None) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(video):
        Image.fromarray(frame).save(folder / name.format(t=t if numbers is None else numbers[t]), compress_level=0)


def same_size_rewrite(path: Path, write) -> None:
    """Rewrite ``path`` with other content of the same size, then restore its mtime (as ``cp -p`` does)."""
    st = path.stat()
    write(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns, path


def f2(x: float) -> str:
    return f"{x:,.2f}"


# ====================================================================== the probes


def item1(p: Probe) -> None:
    """Frame order: natural sort; gaps and repeats refused; a constant step read."""
    from latte_bench.data.video import write_npz

    d, cache = p.folder("i1"), p.cache("i1")
    real, fake = waves(3, 16, seed=1, size=32), waves(3, 16, seed=0, size=32)
    write_npz(d / "real.npz", real)
    np.save(d / "fake.npy", fake)
    string_order = sorted(range(16), key=lambda t: f"frame_{t}.png")
    np.save(d / "fake_string_order.npy", fake[:, string_order])
    for i, video in enumerate(fake):
        save_frame_folder(d / "frames" / f"v{i}", video, "frame_{t}.png")
        save_frame_folder(d / "step3" / f"v{i}", video, "frame_{t}.png", numbers=[3 * t for t in range(16)])
    common = ["eval", "--real", d / "real.npz", "--num-clips", 3, *ONE]
    ref = p.fvd(cache, *common, "--fake", d / "fake.npy")
    wrong = p.fvd(cache, *common, "--fake", d / "fake_string_order.npy")
    now = p.fvd(cache, *common, "--fake", d / "frames")
    p.row("1", "`frame_0.png … frame_15.png` folders as --fake", "15,312 (string order; natural 14,754)",
          f"FVD {f2(now)}", f"same videos as .npy: {f2(ref)} (string order: {f2(wrong)})", now == ref and wrong != ref)
    step = p.fvd(cache, *common, "--fake", d / "step3")
    p.row("1", "frames numbered 0, 3, 6 … 45 (a constant step)", "—", f"FVD {f2(step)}", f"same videos as .npy: {f2(ref)}",
          step == ref)

    gap = d / "gap" / "taichi" / "frames" / "train"
    shutil.copytree(d / "frames", gap)
    (gap / "v1" / "frame_5.png").unlink()
    proc = p.cli(cache, "eval", "--real", gap, "--fake", d / "fake.npy", "--num-clips", 3, "--allow-fewer", *ONE)
    p.row("1", "`v1/frame_5.png` deleted, folder as --real", "read as 15 frames that jump", p.refusal(proc),
          "exit 2, one line naming v1", p.refused(proc, str(gap / "v1"), "jump from 4 to 6"))
    proc = p.cli(cache, "data", "check", "taichi", "--data", d / "gap" / "taichi")
    listed = proc.returncode == 1 and "skipped: v1: " in proc.stdout and "jump from 4 to 6" in proc.stdout
    line = next((x.strip() for x in proc.stdout.splitlines() if "skipped: v1" in x), proc.stdout.strip()[-200:])
    p.row("1", "the same folder, `data check taichi`", "—", f"exit {proc.returncode}: {p.short(line)}",
          "exit 1, v1 listed as skipped", listed)
    for i, video in enumerate(fake):  # the frame number first, a constant number after it
        save_frame_folder(d / "number_first" / f"v{i}", video, "{t}_take2.png")
    proc = p.cli(cache, "eval", "--real", d / "real.npz", "--fake", d / "number_first", "--num-clips", 3, *ONE)
    p.row("1", "`0_take2.png … 15_take2.png` (the last number is not the frame's)", "—", p.refusal(proc),
          "exit 2 (or the .npy's FVD), never another order", p.refused(proc, str(d / "number_first" / "v0")))
    shutil.copy(d / "frames" / "v1" / "frame_1.png", d / "frames" / "v1" / "frame_01.png")
    proc = p.cli(cache, "eval", "--real", d / "real.npz", "--fake", d / "frames", "--num-clips", 3, *ONE)
    p.row("1", "`frame_01.png` beside `frame_1.png` (a repeated number)", "—", p.refusal(proc),
          "exit 2, one line naming v1", p.refused(proc, str(d / "frames" / "v1")))


def item2(p: Probe) -> None:
    """Arrays that fit only by reading one axis as another are refused."""
    from latte_bench.data.video import write_npz

    d, cache = p.folder("i2"), p.cache("i2")
    write_npz(d / "real.npz", waves(2, 16, seed=1, size=32))
    video = waves(1, 16, seed=0, size=32)[0]
    bad = {
        "(T,H,W,1) single one-channel video as --fake": ("one.npy", video[..., :1], "fake"),
        "the same array as --real": ("one.npy", video[..., :1], "real"),
        "the same array under `videos` in a .npz": ("one.npz", video[..., :1], "fake"),
        "(N,T,H,W,4) four channels": ("rgba.npy", np.concatenate([video, video[..., :1]], -1)[None].repeat(2, 0), "fake"),
        "(N,T,H,4,3), W below 8": ("narrow.npy", waves(2, 16, seed=0, size=32)[:, :, :, :4], "fake"),
        "(N,T,H,W) no channel axis": ("gray.npy", waves(2, 16, seed=0, size=32)[..., 0], "fake"),
    }
    for probe, (name, array, side) in bad.items():
        np.savez(d / name, videos=array) if name.endswith(".npz") else np.save(d / name, array)
        real, fake = (d / "real.npz", d / name) if side == "fake" else (d / name, d / "real.npz")
        proc = p.cli(cache, "eval", "--real", real, "--fake", fake, "--num-clips", 2, "--allow-fewer", *ONE)
        before = "FVD 16,766, exit 0 (read as 16 videos of 32x1 px)" if probe.startswith("(T,H,W,1)") else "—"
        p.row("2", probe, before, p.refusal(proc), "exit 2, one line naming the file and (N,T,H,W,3)",
              p.refused(proc, str(d / name), "(N,T,H,W,3)"))


def demo_run(p: Probe) -> Path:
    """The demo preset at 9 frames, a 2-block Latte trained 2 steps (items 3 and 6)."""
    run = p.work / "run_demo"
    if not run.exists():
        proc = p.cli(p.cache("train_demo"), "train", "demo", "--out", run, "--steps", 2, "--ckpt-every", 2, *DEMO_RUN)
        assert proc.returncode == 0, proc.stderr
    return run


def item3(p: Probe) -> None:
    """Non-finite weights, samples and losses are never scored or written."""
    import torch

    from latte_bench.training.checkpoint import latest_checkpoint, load_checkpoint

    d, cache = p.folder("i3"), p.cache("i3")
    run = demo_run(p)
    ckpt = load_checkpoint(latest_checkpoint(run))
    ckpt["ema"]["final_layer.linear.weight"][0, 0] = float("nan")
    torch.save(ckpt, d / "nan_ema.pt")
    common = ["--num-clips", 2, "--num-frames", 9, "--steps", 4, "--allow-fewer", *ONE]
    proc = p.cli(cache, "eval", "--dataset", "demo", "--ckpt", d / "nan_ema.pt", *common)
    p.row("3", "EMA weight set to NaN, `eval --dataset demo --ckpt`", "FVD 1016.86, exit 0", p.refusal(proc),
          "exit 2, one line naming the tensor", p.refused(proc, "final_layer.linear.weight", "NaN"))
    out = d / "samples"
    proc = p.cli(cache, "sample", "--ckpt", d / "nan_ema.pt", "--num-videos", 2, "--out", out, "--steps", 4, *ONE)
    nothing = not out.exists() or not any(out.rglob("*"))
    p.row("3", "the same checkpoint, `sample --format mp4`", "all-black videos written", p.refusal(proc)
          + ("; nothing written" if nothing else "; FILES WRITTEN"), "exit 2, nothing in --out",
          p.refused(proc, "final_layer.linear.weight") and nothing)
    proc = p.cli(cache, "export-official", "--ckpt", d / "nan_ema.pt", "--out", d / "official.pt")
    holds = p.refused(proc, "final_layer.linear.weight") and not (d / "official.pt").exists()
    p.row("3", "the same checkpoint, `export-official`", "—", p.refusal(proc), "exit 2, no file written", holds,
          None if not holds or str(d) in proc.stderr else "holds (the line says --ckpt, not the file)")
    shutil.copytree(run, d / "resumed")
    torch.save(ckpt, latest_checkpoint(d / "resumed"))  # the run's latest checkpoint is the NaN one
    proc = p.cli(cache, "train", "demo", "--out", d / "resumed", "--steps", 4, "--ckpt-every", 2, "--resume", *DEMO_RUN)
    p.row("3", "the NaN checkpoint as a run's latest, `train demo --resume`", "—", p.refusal(proc),
          "exit 2, one line naming the tensor", p.refused(proc, "final_layer.linear.weight", "NaN"))
    model_nan = p.fvd(cache, "eval", "--dataset", "demo", "--ckpt", d / "nan_ema.pt", "--weights", "model", *common)
    model_ok = p.fvd(cache, "eval", "--dataset", "demo", "--ckpt", run, "--weights", "model", *common)
    ema_ok = p.fvd(cache, "eval", "--dataset", "demo", "--ckpt", run, *common)
    p.row("3", "the same checkpoint, `--weights model` (finite)", "—", f"FVD {f2(model_nan)}",
          f"the untouched checkpoint, --weights model: {f2(model_ok)} (its EMA: {f2(ema_ok)})",
          model_nan == model_ok != ema_ok)
    train_out = d / "diverged"
    proc = p.cli(cache, "train", "demo", "--out", train_out, "--steps", 6, "--lr", "1e30", "--clip-max-norm", "1e30",
                 "--ckpt-every", 1, *DEMO_RUN)
    kept = sorted(x.name for x in (train_out / "checkpoints").iterdir()) if (train_out / "checkpoints").exists() else []
    at = re.search(r"training diverged at step (\d+)", proc.stderr)
    p.row("3", "`train demo --lr 1e30 --clip-max-norm 1e30 --ckpt-every 1`", "`trained to step N  loss nan`",
          p.refusal(proc) + f"; checkpoints left: {', '.join(kept) or 'none'}",
          "exit 2 at the diverged step, only the checkpoints before it",
          p.refused(proc) and at is not None and all(int(k.split(".")[0]) < int(at.group(1)) for k in kept))


def item4(p: Probe) -> None:
    """The real-statistics cache: content-hashed arrays, content-sampled folders."""
    from latte_bench.data.video import write_npz
    from PIL import Image

    d = p.folder("i4")
    write_npz(d / "fake.npz", waves(3, 16, seed=0, size=32))
    write_npz(d / "real.npz", waves(3, 16, seed=2, size=32))
    cache = p.cache("i4_npz")
    common = ["eval", "--real", d / "real.npz", "--fake", d / "fake.npz", "--num-clips", 3, *ONE]
    first = p.fvd(cache, *common)
    same_size_rewrite(d / "real.npz", lambda path: write_npz(path, waves(3, 16, seed=3, size=32)))
    cached = p.fvd(cache, *common)
    fresh = p.fvd(cache, *common, "--no-cache")
    p.row("4", "real .npz rewritten, same size, mtime restored (`os.utime`)", "584.22 cached vs 3,786.05 fresh",
          f"FVD {f2(cached)} (before the rewrite {f2(first)})", f"--no-cache: {f2(fresh)}", cached == fresh != first)

    real = d / "real_frames"
    for i, video in enumerate(waves(3, 16, seed=2, size=32)):
        save_frame_folder(real / f"v{i}", video)
    other = waves(1, 16, seed=9, size=32)[0]
    cache = p.cache("i4_frames")
    common = ["eval", "--real", real, "--fake", d / "fake.npz", "--num-clips", 3, *ONE]
    first = p.fvd(cache, *common)
    for label, name, covered in (("first", "00.png", True), ("middle", "07.png", False)):
        same_size_rewrite(real / "v1" / name, lambda path: Image.fromarray(other[7]).save(path, format="PNG", compress_level=0))
        cached = p.fvd(cache, *common)
        fresh = p.fvd(cache, *common, "--no-cache")
        if covered:
            p.row("4", f"frame folder: the {label} frame of v1 swapped, same size and mtime", "—",
                  f"FVD {f2(cached)} (before {f2(first)})", f"--no-cache: {f2(fresh)}", cached == fresh != first)
        else:  # docs/evaluation.md: a swapped middle frame is not covered by the key
            p.row("4", f"frame folder: a {label} frame of v1 swapped, same size and mtime", "—",
                  f"FVD {f2(cached)} (served from the cache)", f"--no-cache: {f2(fresh)}", cached == first != fresh,
                  "as documented: not covered" if cached == first != fresh else
                  ("caught (better than documented)" if cached == fresh else "FAILS"))
        first = fresh


def item5(p: Probe) -> None:
    """`bench` reuses a record only for the same real data."""
    d, cache = p.folder("i5"), p.cache("i5")
    run = d / "run"
    proc = p.cli(cache, "train", "demo", "--steps", 1, "--out", run, "--model-options", TINY_MODEL, "--num-frames", 9,
                 "--demo-videos", 4, "--batch-size", 2, "--num-classes", 0, *ONE)
    assert proc.returncode == 0, proc.stderr
    for name, seed in (("a", 0), ("b", 7)):
        for i, video in enumerate(waves(2, 9, seed=seed, size=16)):
            save_frame_folder(d / name / "train" / f"v{i}", video)
    common = ["bench", "--method", "m", "--ckpt", f"taichi={run}", "--out", d / "out", "--num-clips", 2, "--num-frames", 9,
              "--real-stride", 1, "--steps", 2, "--metrics", "fvd", *ONE]
    fvd, reused = [], []
    for name in ("a", "b", "a"):
        proc = p.cli(cache, *common, "--data-root", f"taichi={d / name}")
        assert proc.returncode == 0, proc.stderr
        (entry,) = json.loads((d / "out" / "bench.json").read_text())["evaluations"]
        fvd.append(json.loads((d / "out" / entry["record"]).read_text())["metrics"]["fvd"])
        reused.append("1 recorded (reused), 0 to run" in proc.stdout)
    ref = p.fvd(cache, "eval", "--dataset", "taichi", "--ckpt", run, "--data", d / "b", "--num-clips", 2,
                "--num-frames", 9, "--real-stride", 1, "--steps", 2, "--allow-fewer", "--no-cache", *ONE)
    p.row("5", "`bench` rerun with another `--data-root` (a, then b)", "kept 10,458.83 vs 4,718.11",
          f"FVD {f2(fvd[1])}, {'reused' if reused[1] else 'run again'} (a: {f2(fvd[0])})",
          f"`eval --data b --no-cache`: {f2(ref)}", fvd[1] == ref != fvd[0] and not reused[1])
    p.row("5", "… then back to root a", "—", f"FVD {f2(fvd[2])}, {'reused' if reused[2] else 'run again'}",
          f"the first run on a: {f2(fvd[0])}, reused", fvd[2] == fvd[0] and reused[2])
    from PIL import Image

    other = waves(1, 9, seed=9, size=16)[0, 4]
    same_size_rewrite(d / "a" / "train" / "v0" / "00.png",
                      lambda path: Image.fromarray(other).save(path, format="PNG", compress_level=0))
    proc = p.cli(cache, *common, "--data-root", f"taichi={d / 'a'}")
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads((d / "out" / "bench.json").read_text())["evaluations"]
    changed = json.loads((d / "out" / entry["record"]).read_text())["metrics"]["fvd"]
    again = "1 recorded (reused), 0 to run" in proc.stdout
    ref = p.fvd(cache, "eval", "--dataset", "taichi", "--ckpt", run, "--data", d / "a", "--num-clips", 2,
                "--num-frames", 9, "--real-stride", 1, "--steps", 2, "--allow-fewer", "--no-cache", *ONE)
    p.row("5", "root a edited in place (first frame of v0 swapped, same size and mtime), `bench` again", "—",
          f"FVD {f2(changed)}, {'reused' if again else 'run again'}", f"`eval --data a --no-cache`: {f2(ref)}",
          changed == ref != fvd[0] and not again)


def item6(p: Probe) -> None:
    """Work folders and cache entries are used only by the evaluation they belong to."""
    from latte_bench.data.video import write_npz

    d, cache = p.folder("i6"), p.cache("i6")
    run = demo_run(p)
    common = ["eval", "--dataset", "demo", "--ckpt", run, "--num-clips", 2, "--num-frames", 9, "--block-size", 1,
              "--sampler", "ddim", "--steps", 5, "--metrics", "fvd", "--allow-fewer", *ONE]
    seed0 = p.fvd(cache, *common, "--seed", 0, "--work-dir", d / "a")
    fresh1 = p.fvd(cache, *common, "--seed", 1, "--work-dir", d / "b")
    for how, damage in (("deleted", lambda m: m.unlink()), ("emptied", lambda m: m.write_text(""))):
        shutil.rmtree(d / "w", ignore_errors=True)
        shutil.copytree(d / "a", d / "w")
        damage(d / "w" / "manifest.json")
        proc = p.cli(cache, *common, "--seed", 1, "--work-dir", d / "w")
        p.row("6", f"seed 0's work folder, manifest.json {how}, rerun with --seed 1",
              "1,354.78 (seed 0's blocks) vs fresh 1,355.55" if how == "deleted" else "—", p.refusal(proc),
              f"exit 2, one line naming the folder (fresh seed 1: {f2(fresh1)}; seed 0: {f2(seed0)})",
              p.refused(proc, str(d / "w"), "no readable manifest.json"))
    shutil.rmtree(d / "w")
    shutil.copytree(d / "a", d / "w")
    shutil.copy(d / "b" / "manifest.json", d / "w" / "manifest.json")
    forged = p.fvd(cache, *common, "--seed", 1, "--work-dir", d / "w")
    warned, resumed = "another evaluation" in p.last_stderr, p.last_record["run"]["resumed_blocks"]
    p.row("6", "seed 0's work folder given seed 1's manifest.json, rerun with --seed 1", "—",
          f"FVD {f2(forged)}, " + (f"warned, {resumed} blocks resumed" if warned else "no warning"),
          f"the fresh seed-1 run: {f2(fresh1)}", forged == fresh1 and warned and resumed == 0)
    for ext in (".npz", ".json"):
        shutil.copy(d / "a" / f"block_00000{ext}", d / "b" / f"block_00000{ext}")
    again = p.fvd(cache, *common, "--seed", 1, "--work-dir", d / "b")
    warned = "another evaluation" in p.last_stderr
    resumed = p.last_record["run"]["resumed_blocks"]
    p.row("6", "seed 0's block_00000 copied (checksum and all) into seed 1's folder, rerun",
          "1,252.91 instead of 1,255.42", f"FVD {f2(again)}, warned, {resumed} block resumed" if warned else
          f"FVD {f2(again)}, no warning", f"the seed-1 run before the copy: {f2(fresh1)}",
          again == fresh1 and warned and resumed == 1)

    cache = p.cache("i6_entries")
    write_npz(d / "fake.npz", waves(2, 9, seed=1))
    for seed in (0, 3):
        write_npz(d / f"real{seed}.npz", waves(2, 9, seed=seed))
    common = ["eval", "--fake", d / "fake.npz", "--num-clips", 2, "--num-frames", 9, *ONE]
    p.fvd(cache, *common, "--real", d / "real0.npz")
    second = p.fvd(cache, *common, "--real", d / "real3.npz")
    first_entry, second_entry = sorted((cache / "i3d_stats").glob("*.npz"), key=lambda x: x.stat().st_mtime_ns)
    for ext in (".npz", ".json"):
        shutil.copy(first_entry.with_suffix(ext), second_entry.with_suffix(ext))
    third = p.fvd(cache, *common, "--real", d / "real3.npz")
    warned = "another evaluation" in p.last_stderr
    p.row("6", "real-statistics cache entry of real0 copied over real3's, rerun on real3", "—",
          f"FVD {f2(third)}" + (", warned, recomputed" if warned else ", no warning"),
          f"real3 before the copy: {f2(second)}", third == second and warned)


def item7(p: Probe) -> None:
    """A periodic FVD of training (a model in memory) never resumes another run's blocks."""
    from latte_bench.data.video import write_npz

    d = p.folder("i7")
    write_npz(d / "real.npz", waves(2, 9, seed=5, size=16))

    def train(out: Path, seed: int) -> list:
        return ["train", "demo", "--out", out, "--seed", seed, "--steps", 2, "--ckpt-every", 2, "--fvd-every", 2,
                "--fvd-real", d / "real.npz", "--fvd-videos", 2, "--sample-steps", 4, *DEMO_RUN]

    def logged(out: Path) -> tuple[float, int]:
        (line,) = [json.loads(x) for x in open(out / "metrics.jsonl") if '"fvd"' in x]
        record = json.loads(Path(line["record"]).read_text())
        return line["fvd"], record["run"]["resumed_blocks"]

    # run A (seed 0) killed right after its periodic FVD wrote its first block: its default work folder stays
    for attempt in range(4):
        left = p.cache(f"i7_left{attempt}")
        argv = [str(a) for a in train(d / f"a_killed{attempt}", 0)]
        p.commands.append(p.command(left, argv, "  # SIGKILL once $LATTE_BENCH_CACHE/eval_work_stats/*/block_00000.json exists"))
        proc = subprocess.Popen([sys.executable, "-m", "latte_bench.cli", *argv], env=p.env(left),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and not list((left / "eval_work_stats").glob("*/block_00000.json")):
            time.sleep(0.001)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        folders = [f for f in (left / "eval_work_stats").glob("*") if (f / "block_00000.json").exists()]
        if proc.returncode == -signal.SIGKILL and folders:
            break
    else:
        p.row("7", "periodic FVD killed after its block", "—", "could not kill in time (4 tries)", "—", False, "not run")
        return
    # run B (seed 1: other weights, the same model name, step and sampling settings) in that cache
    proc = p.cli(left, *train(d / "b_left", 1))
    assert proc.returncode == 0, proc.stderr
    b_left, b_resumed = logged(d / "b_left")
    still = folders[0].exists()
    runs = {}
    for name, seed in (("b_fresh", 1), ("a_fresh", 0)):
        fresh = p.cache(f"i7_{name}")
        proc = p.cli(fresh, *train(d / name, seed))
        assert proc.returncode == 0, proc.stderr
        runs[name] = logged(d / name)[0]
    # control: run A itself (same seed, same weights) reaches its leftover folder and resumes from it
    proc = p.cli(left, *train(d / "a_again", 0))
    assert proc.returncode == 0, proc.stderr
    a_again, a_resumed = logged(d / "a_again")
    p.row("7", "run A's periodic FVD killed after block 0; run B (other seed) at the same step",
          "B resumed A's blocks", f"B: FVD {f2(b_left)}, {b_resumed} blocks resumed; A's folder kept: {still}",
          f"B in a fresh cache: {f2(runs['b_fresh'])} (A: {f2(runs['a_fresh'])})",
          b_left == runs["b_fresh"] != runs["a_fresh"] and b_resumed == 0 and still)
    p.row("7", "control: run A again (same weights) in that cache", "—",
          f"FVD {f2(a_again)}, {a_resumed} block resumed", f"A in a fresh cache: {f2(runs['a_fresh'])}",
          a_again == runs["a_fresh"] and a_resumed == 1)


ITEMS = {"1": item1, "2": item2, "3": item3, "4": item4, "5": item5, "6": item6, "7": item7}


def table(rows) -> str:
    head = ("item", "probe", "before (issue 20)", "now", "reference", "verdict")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=None, help="folder for the data, caches and runs (default: a new temporary one)")
    parser.add_argument("--items", default=",".join(ITEMS), help="comma-separated items to run (default: all)")
    parser.add_argument("--commands", action="store_true", help="also print every command run")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="probe_wrong_numbers_"))
    if work.exists() and any(work.iterdir()):
        sys.exit(f"{work}: not empty; pass a new --work folder")
    work.mkdir(parents=True, exist_ok=True)
    probe = Probe(work.resolve())
    start = time.time()
    try:
        for item in args.items.split(","):
            t0 = time.time()
            ITEMS[item.strip()](probe)
            print(f"item {item}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        if args.commands:
            print("Commands ($W is the work folder):\n")
            print("\n".join(f"    {c}" for c in probe.commands) + "\n")
        print(table(probe.rows))
        print(f"\n{len(probe.rows)} probes in {time.time() - start:.0f} s; "
              f"{sum(r[-1] == 'FAILS' for r in probe.rows)} fail")
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder: {work}", file=sys.stderr)
    return 1 if any(r[-1] in ("FAILS", "not run") for r in probe.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
