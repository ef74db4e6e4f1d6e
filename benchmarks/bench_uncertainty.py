"""Simulation study of FD_N, its ``se``, the N → ∞ estimate and its interval (latte_bench.metrics.uncertainty).

Cases, each drawn ``trials`` times with fresh real and generated sets of N items:

* ``gauss``: Gaussian features of dimension d, two different distributions, closed-form truth;
* ``heavy``: the same distribution on both sides, Student-t (5 dof) tails, truth 0;
* the demo's real 400-d I3D features (reports/demo/results/features): both variants, and the
  real-vs-real floor of disjoint halves of the 64 real clips (truth 0) over random splits.

For each: the bias of FD_N and of FVD∞, mean(se) / std(FD_N), the coverage of the 95% interval
(of the truth), and the seconds per estimate. Default run: a few minutes on one core.

    python benchmarks/bench_uncertainty.py --threads 1 [--figure docs/uncertainty_bias.png] [--json out.json]
    python benchmarks/bench_uncertainty.py --threads 1 --overhead-only   # the cost target alone (needs the I3D weights)

``--overhead`` (or ``--overhead-only``) measures the cost target: the I3D pass's seconds per clip (16 frames, upsampled
to 224) on a few clips, against what ``eval`` adds per FVD at 2,048 clips a side (the se / FVD∞ estimate on 400-d
features) and what ``--metrics prdc`` adds; the share is of the generated side's I3D pass alone (real statistics cached).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # BLAS reads its thread count when numpy loads: set it first
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO_FEATURES = ROOT / "reports" / "demo" / "results" / "features"


def population(d: int, seed: int = 1) -> dict:
    """Two Gaussians of dimension d: ``mu1``, ``mu2`` (d,), ``cov1``, ``cov2`` (d, d) PSD, their Cholesky factors."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((d, d)) / np.sqrt(d)
    b = a + 0.3 * rng.standard_normal((d, d)) / np.sqrt(d)
    cov1, cov2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    return {"mu1": np.zeros(d), "mu2": 0.3 * rng.standard_normal(d), "cov1": cov1, "cov2": cov2,
            "l1": np.linalg.cholesky(cov1), "l2": np.linalg.cholesky(cov2)}


def true_distance(case: str, pop: dict) -> float:
    """The population Fréchet distance of ``case`` ("gauss": closed form; "heavy": 0)."""
    from latte_bench.metrics.stats import frechet_distance

    return 0.0 if case == "heavy" else frechet_distance(pop["mu1"], pop["cov1"], pop["mu2"], pop["cov2"])


def draw(case: str, pop: dict, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) real and (n, d) generated float32 features of ``case``."""
    d = len(pop["mu1"])
    if case == "heavy":  # t(5) scaled so that the covariance is cov1 on both sides
        scale = np.sqrt(3 / 5)
        return ((rng.standard_t(5, (n, d)) * scale) @ pop["l1"].T).astype(np.float32), \
               ((rng.standard_t(5, (n, d)) * scale) @ pop["l1"].T).astype(np.float32)
    return (pop["mu1"] + rng.standard_normal((n, d)) @ pop["l1"].T).astype(np.float32), \
           (pop["mu2"] + rng.standard_normal((n, d)) @ pop["l2"].T).astype(np.float32)


def study(case: str, d: int, n: int, trials: int, seed: int = 0) -> dict:
    """Summary over ``trials`` draws: truth, bias of value and of inf, se ratio, coverage, seconds per estimate."""
    from latte_bench.metrics.uncertainty import fvd_from_features

    pop = population(d)
    truth = true_distance(case, pop)
    rng = np.random.default_rng(seed)
    est, seconds = [], 0.0
    for k in range(trials):
        real, fake = draw(case, pop, n, rng)
        t0 = time.perf_counter()
        est.append(fvd_from_features(real, fake, seed=k))
        seconds += time.perf_counter() - t0
    return summarize(case, d, n, truth, est, seconds)


def summarize(case: str, d: int, n: int, truth: float, est: list, seconds: float) -> dict:
    value = np.array([e.value for e in est])
    inf = np.array([e.inf for e in est])
    se = np.array([e.se for e in est])
    covered = np.array([e.inf_ci[0] <= truth <= e.inf_ci[1] for e in est])
    return {"case": case, "d": d, "n": n, "trials": len(est), "truth": truth,
            "mean_value": float(value.mean()), "bias_value": float(value.mean() - truth),
            "bias_inf": float(inf.mean() - truth), "mean_se": float(se.mean()),
            "std_value": float(value.std(ddof=1)), "se_ratio": float(se.mean() / value.std(ddof=1)),
            "std_inf": float(inf.std(ddof=1)), "coverage": float(covered.mean()), "seconds": seconds / len(est)}


def demo_study(splits: int = 40) -> list[dict]:
    """The demo's I3D features: each variant's estimate, and the floor of random disjoint 32/32 real halves."""
    from latte_bench.metrics.stats import FeatureStats
    from latte_bench.metrics.uncertainty import fvd_from_features

    rows = []
    files = sorted(DEMO_FEATURES.glob("*_fvd_real.npz"))
    for real_file in files:
        real = FeatureStats.load(real_file)
        fake = FeatureStats.load(real_file.with_name(real_file.name.replace("_real", "_fake")))
        e = fvd_from_features(real, fake)
        rows.append({"case": real_file.name.split("_seed")[0], "d": e.dim, "n": e.n_real, "value": e.value,
                     "se": e.se, "inf": e.inf, "ci": list(e.inf_ci)})
    if files:
        feats = FeatureStats.load(files[0]).features
        rng = np.random.default_rng(0)
        est = []
        t0 = time.perf_counter()
        for k in range(splits):
            p = rng.permutation(len(feats))
            half = len(feats) // 2
            est.append(fvd_from_features(feats[p[:half]], feats[p[half:2 * half]], seed=k))
        s = summarize("demo floor", feats.shape[1], half, 0.0, est, time.perf_counter() - t0)
        rows.append({**s, "value": s["mean_value"]})
    return rows


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()``: on a shared machine the CPU seconds are the stable ones."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def overhead_study(clips: int = 8, n: int = 2048, d: int = 400, seed: int = 0) -> dict:
    """(wall, CPU) seconds: ``i3d_per_clip`` (a 16-frame 16x16 clip upsampled to 224, as the demo scores),
    ``estimate`` (se and FVD∞ at ``n`` x ``d``), ``prdc`` (at ``n`` x ``d``); ``share`` = estimate / (n x i3d_per_clip)
    and ``share_prdc``, in CPU seconds."""
    import torch

    from latte_bench.metrics.i3d import load_i3d
    from latte_bench.metrics.prdc import prdc
    from latte_bench.metrics.resize import preprocess_clips
    from latte_bench.metrics.uncertainty import fvd_from_features

    rng = np.random.default_rng(seed)
    net = load_i3d("cpu")
    video = torch.from_numpy(rng.integers(0, 256, (clips, 16, 16, 16, 3), dtype=np.uint8))

    def i3d():
        for k in range(clips):
            net(preprocess_clips(video[k:k + 1]))

    with torch.no_grad():
        net(preprocess_clips(video[:1]))  # warm-up
        wall, cpu = _timed(i3d)
    per_clip = (wall / clips, cpu / clips)
    real, fake = rng.standard_normal((n, d)), rng.standard_normal((n, d)) + 0.1
    estimate = _timed(lambda: fvd_from_features(real, fake))
    knn = _timed(lambda: prdc(real, fake))
    return {"i3d_per_clip": per_clip, "estimate": estimate, "prdc": knn, "n": n, "d": d,
            "share": estimate[1] / (n * per_clip[1]), "share_prdc": knn[1] / (n * per_clip[1])}


def overhead_line(o: dict) -> str:
    return (f"cost at {o['n']:,} clips, {o['d']}-d, CPU seconds (wall): I3D {o['i3d_per_clip'][1]:.2f} "
            f"({o['i3d_per_clip'][0]:.2f}) s/clip -> the generated side's pass {o['n'] * o['i3d_per_clip'][1]:.0f} s; "
            f"se + FVD∞ {o['estimate'][1]:.2f} ({o['estimate'][0]:.2f}) s, {o['share']:.3%} of it; "
            f"prdc {o['prdc'][1]:.2f} ({o['prdc'][0]:.2f}) s, {o['share_prdc']:.3%}")


PLAN = [("gauss", 16, n, 60) for n in (64, 128, 256, 600, 1024, 2048)] + \
       [("heavy", 16, n, 60) for n in (64, 256, 600, 2048)] + \
       [("gauss", 400, 256, 6), ("gauss", 400, 512, 6), ("gauss", 400, 1024, 4), ("gauss", 400, 2048, 3),
        ("heavy", 400, 2048, 3)]


def table(rows: list[dict]) -> str:
    head = "| case | d | N | trials | truth | mean FD_N | bias FD_N | bias FVD∞ | mean se | std FD_N | se/std | coverage | s/estimate |"
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(f"| {r['case']} | {r['d']} | {r['n']} | {r['trials']} | {r['truth']:.3f} | {r['mean_value']:.3f} | "
                     f"{r['bias_value']:.3f} | {r['bias_inf']:.3f} | {r['mean_se']:.3f} | {r['std_value']:.3f} | "
                     f"{r['se_ratio']:.2f} | {r['coverage']:.2f} | {r['seconds']:.3f} |")
    return "\n".join(lines)


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from latte_bench.fsutil import atomic_path

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    for i, (case, d) in enumerate([("gauss", 16), ("heavy", 16)]):
        sel = [r for r in rows if r["case"] == case and r["d"] == d]
        n = [r["n"] for r in sel]
        ax[i].plot(n, [r["bias_value"] for r in sel], "o-", label="FD_N (reported value)")
        ax[i].plot(n, [r["bias_inf"] for r in sel], "s-", label="FVD∞ (bias-corrected)")
        ax[i].axhline(0, color="k", lw=0.6)
        ax[i].set_xscale("log")
        ax[i].set_xlabel("clips per side N")
        ax[i].set_title(f"{'two Gaussians' if case == 'gauss' else 'same distribution, t(5) tails'}, d={d}")
    ax[0].set_ylabel("bias (mean − truth)")
    ax[0].legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (set before numpy loads)")
    p.add_argument("--quick", action="store_true", help="d=16 only, fewer trials")
    p.add_argument("--figure", type=Path, default=None, help="write the bias-vs-N figure (PNG)")
    p.add_argument("--json", type=Path, default=None, help="write all rows as JSON")
    p.add_argument("--overhead", action="store_true", help="also measure the cost target (needs the I3D weights)")
    p.add_argument("--overhead-only", action="store_true", help="measure the cost target only")
    args = p.parse_args()
    if args.overhead_only:
        print(overhead_line(overhead_study()))
        return
    plan = [(c, d, n, 20) for c, d, n, _ in PLAN if d == 16] if args.quick else PLAN
    rows = []
    for case, d, n, trials in plan:
        rows.append(study(case, d, n, trials))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    demo = demo_study()
    print("\n" + table(rows))
    print("\ndemo I3D features (reports/demo/results/features):")
    for r in demo:
        if "coverage" in r:
            print(f"  floor, {r['trials']} random 32/32 splits of the real clips: mean FD_N {r['mean_value']:.1f}, "
                  f"mean FVD∞ {r['bias_inf']:.1f}, mean se {r['mean_se']:.1f}, interval contains 0 in {r['coverage']:.0%}")
        else:
            print(f"  {r['case']}: FVD {r['value']:.1f} ± {r['se']:.1f}, FVD∞ {r['inf']:.1f} [{r['ci'][0]:.1f}, {r['ci'][1]:.1f}]")
    overhead = overhead_study() if args.overhead else None
    if overhead:
        print("\n" + overhead_line(overhead))
    if args.figure:
        figure(rows, args.figure)
    if args.json:
        from latte_bench.fsutil import write_json

        write_json(args.json, {"rows": rows, "demo": demo, "overhead": overhead})


if __name__ == "__main__":
    main()
