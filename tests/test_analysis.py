"""Similarity matrices, inverted-pair counts and fusion distributions against direct computations."""

from __future__ import annotations

import numpy as np
import pytest

from latte_bench.reports import analysis, figures


def _direct_cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_similarity_matrix_matches_direct_loop():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(3, 5, 4, 6))  # B, F, N, D
    sim = analysis.block_similarity(feats, reduce="flatten")
    expect = np.zeros((5, 5))
    for b in range(3):
        for i in range(5):
            for j in range(5):
                expect[i, j] += _direct_cos(feats[b, i].ravel(), feats[b, j].ravel()) / 3
    np.testing.assert_allclose(sim, expect, atol=1e-12)
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-12)
    # mean over tokens gives a different (layout-free) frame vector
    sim_mean = analysis.block_similarity(feats, reduce="mean")
    expect01 = np.mean([_direct_cos(feats[b, 0].mean(0), feats[b, 1].mean(0)) for b in range(3)])
    assert sim_mean[0, 1] == pytest.approx(expect01, abs=1e-12)


def test_torch_input_and_bad_shapes():
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 4, 3, 5)
    np.testing.assert_allclose(analysis.block_similarity(x), analysis.block_similarity(x.numpy()), atol=1e-6)
    with pytest.raises(ValueError):
        analysis.frame_vectors(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        analysis.frame_vectors(np.zeros((1, 2, 3, 4)), reduce="max")


def test_inverted_pairs_on_constructed_matrix():
    f = 5
    # similarity decays with distance except frame 0 is very close to frame 3
    s = np.array([[1.0 - 0.1 * abs(i - j) for j in range(f)] for i in range(f)])
    assert analysis.count_inverted_first(s) == 0
    assert analysis.count_inverted_all(s) == 0
    s[0, 3] = s[3, 0] = 0.95  # beats S[0,1] = 0.9
    s[1, 4] = s[4, 1] = 0.9  # equal to S[1,2] = 0.9: ties are not inversions
    s[2, 4] = s[4, 2] = 0.91  # beats S[2,3] = 0.9
    assert analysis.count_inverted_first(s) == 1
    assert analysis.count_inverted_all(s) == 2
    summ = analysis.similarity_summary(s)
    off = s[~np.eye(f, dtype=bool)]
    assert summ["mean"] == pytest.approx(off.mean())
    assert summ["var"] == pytest.approx(off.var())
    assert summ["inverted_first"] == 1 and summ["inverted_all"] == 2


def test_inverted_pairs_from_features():
    # frames 0 and 2 identical, frame 1 orthogonal: frame 1's neighbour loses to frame 2
    v0, v1 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    feats = np.stack([v0, v1, v0, v1])[None]  # (1, F=4, D=2)
    s = analysis.block_similarity(feats)
    assert analysis.count_inverted_first(s) == 1  # j=2 beats j=1; j=3 ties with j=1 (0 vs 0)
    assert analysis.count_inverted_all(s) == 2  # (0,2) and (1,3)


def test_fusion_distributions_and_figures(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.normal(size=(2, 1, 3, 4))
    spatial = base + 0.05 * rng.normal(size=(2, 6, 3, 4))  # nearly constant over frames
    temporal = rng.normal(size=(2, 6, 3, 4))  # unrelated frames
    d = analysis.fusion_distributions({"block 1": (spatial, temporal)})
    assert d["spatial"].shape == (2 * 6 * 5,)
    assert d["cross"].shape == (2 * 6 * 6,)
    assert d["spatial"].mean() > 0.9 > d["temporal"].mean()
    vs = analysis.frame_vectors(spatial)
    vt = analysis.frame_vectors(temporal)
    assert d["cross"][6 * 1 + 2] == pytest.approx(_direct_cos(vs[0, 1], vt[0, 2]))
    with pytest.raises(ValueError):
        analysis.fusion_distributions({"b": (spatial, temporal[:, :, :2])})

    rep = analysis.similarity_report({"spatial 1": spatial, "temporal 1": temporal})
    paths = figures.similarity_matrices_figure(rep, tmp_path / "sim")
    paths += figures.similarity_summary_figure(rep, tmp_path / "sim_summary")
    paths += figures.fusion_figure(d, tmp_path / "fusion")
    for p in paths:
        assert p.exists() and p.stat().st_size > 1000
    assert {p.suffix for p in paths} == {".png", ".pdf"}


def _tiny_checkpoint(tmp_path, variant):
    """A real training checkpoint (latte-bench train format) of a tiny pixel-space Latte."""
    import torch

    from latte_bench.training.checkpoint import save_checkpoint
    from latte_bench.training.ema import create_ema
    from latte_bench.training.presets import preset
    from latte_bench.training.checkpoint import build_model

    cfg = preset("demo")
    cfg.num_frames, cfg.image_size, cfg.variant = 6, 8, variant
    cfg.model_options = {"hidden_size": 32, "depth": 4, "num_heads": 2}
    torch.manual_seed(0)
    model = build_model(cfg, 3, cfg.image_size)
    for p in model.parameters():  # adaLN-Zero starts as identity: give the blocks something to do
        torch.nn.init.normal_(p, std=0.2)
    ema = create_ema(model)
    opt = torch.optim.AdamW(model.parameters())
    return save_checkpoint(tmp_path / f"v{variant}.pt", model=model, ema=ema, optimizer=opt, step=1,
                           config={**cfg.to_dict(), "latent_channels": 3, "latent_size": cfg.image_size})


def test_similarity_analysis_from_checkpoint(tmp_path):
    import torch

    from latte_bench.errors import UserError

    ckpt = _tiny_checkpoint(tmp_path, variant=1)
    res = analysis.run_analysis("similarity", str(ckpt), out=tmp_path / "out", num_videos=3)
    nums = res["numbers"]
    summ, mats = nums["summary"], {k: np.array(v) for k, v in nums["matrices"].items()}
    assert list(summ) == ["1 spatial", "2 temporal", "3 spatial", "4 temporal"]
    assert nums["checkpoint_step"] == 1 and nums["weights"] == "ema" and nums["num_videos"] == 3

    # the same numbers, computed here from the model's own block outputs with a direct loop
    loaded, cfg = analysis.load_analysis_model(str(ckpt))
    video, labels = analysis.analysis_videos(cfg, num_videos=3, seed=0)
    feats = analysis.model_features(loaded.model, cfg, video, labels, timestep=250, seed=0)
    out3 = feats["blocks.2.out"].double().numpy()  # (B, F, N, D) after the third block
    b, f = out3.shape[:2]
    expect = np.zeros((f, f))
    for v in range(b):
        for i in range(f):
            for j in range(f):
                expect[i, j] += _direct_cos(out3[v, i].ravel(), out3[v, j].ravel()) / b
    np.testing.assert_allclose(mats["3 spatial"], expect, atol=2e-6)
    off = expect[~np.eye(f, dtype=bool)]
    assert summ["3 spatial"]["mean"] == pytest.approx(off.mean(), abs=2e-6)
    assert summ["3 spatial"]["var"] == pytest.approx(off.var(), rel=1e-3, abs=1e-9)
    # the blocks change the features: the matrices of the first and last block are not the same
    assert np.abs(mats["1 spatial"] - mats["4 temporal"]).max() > 1e-3
    assert 0 < summ["1 spatial"]["var"]  # frames are not all equally similar
    assert torch.is_tensor(feats["blocks.0.out"]) and feats["blocks.0.out"].shape[:2] == (3, 6)

    names = {p.name for p in res["files"]}
    assert {"similarity_matrices.png", "similarity_matrices.pdf", "similarity_per_block.png", "similarity.json"} <= names
    with pytest.raises(UserError, match="Variant 1, not --variant 2"):
        analysis.run_analysis("similarity", str(ckpt), out=tmp_path / "out", variant=2)
    with pytest.raises(UserError, match="Variant 4"):
        analysis.run_analysis("fusion", str(ckpt), out=tmp_path / "out")


def test_official_checkpoint_branch_of_the_loader(tmp_path):
    """An official {"ema": state_dict} file (no config) is built from --preset and gives the same
    analysis as the same weights in a training checkpoint."""
    import torch

    from latte_bench.errors import UserError
    from latte_bench.training.checkpoint import save_checkpoint
    from latte_bench.training.ema import create_ema
    from latte_bench.training.presets import preset
    from latte_bench.training.checkpoint import build_model

    cfg = preset("demo")  # a small pixel-space model with classes
    torch.manual_seed(1)
    model = build_model(cfg, 3, cfg.image_size)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    ema = create_ema(model)
    official = tmp_path / "official.pt"
    torch.save({"ema": ema.state_dict()}, official)
    ours = save_checkpoint(tmp_path / "ours.pt", model=model, ema=ema, optimizer=torch.optim.AdamW(model.parameters()),
                           step=1,
                           config={**cfg.to_dict(), "latent_channels": 3, "latent_size": cfg.image_size})

    loaded, got = analysis.load_analysis_model(str(official), preset="demo")
    size = cfg.image_size  # pixel space: the latent is the frame
    assert loaded.checkpoint["format"] == "official" and loaded.latent_shape == (cfg.num_frames, 3, size, size)
    assert (got.variant, got.num_frames, got.image_size, got.num_classes) == (1, cfg.num_frames, size, cfg.num_classes)
    for k, v in ema.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v), k
    a = analysis.run_analysis("similarity", str(official), out=tmp_path / "a", preset="demo", num_videos=2)["numbers"]
    b = analysis.run_analysis("similarity", str(ours), out=tmp_path / "b", num_videos=2)["numbers"]
    assert a["summary"] == b["summary"] and a["matrices"] == b["matrices"]
    with pytest.raises(UserError, match="--preset"):
        analysis.run_analysis("similarity", str(official), out=tmp_path / "c")


def test_fusion_analysis_from_variant4_checkpoint(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path, variant=4)
    res = analysis.run_analysis("fusion", str(ckpt), out=tmp_path / "out", num_videos=2, variant=4)
    d = res["numbers"]["distributions"]
    f = 6
    assert d["cross"]["n"] == 2 * f * f * len(res["numbers"]["per_block_means"])
    assert d["spatial"]["n"] == 2 * f * (f - 1) * len(res["numbers"]["per_block_means"])
    assert (tmp_path / "out" / "fusion.png").stat().st_size > 1000

    # block 1's means, computed here from the model's own head outputs with a direct loop
    loaded, cfg = analysis.load_analysis_model(str(ckpt), variant=4)
    video, labels = analysis.analysis_videos(cfg, num_videos=2, seed=0)
    feats = analysis.model_features(loaded.model, cfg, video, labels, timestep=250, seed=0)
    sp = feats["blocks.0.spatial_attn"].double().numpy()  # (B, F, N, D/2 per half)
    tp = feats["blocks.0.temporal_attn"].double().numpy()
    cross = [_direct_cos(sp[b, i].ravel(), tp[b, j].ravel()) for b in range(2) for i in range(f) for j in range(f)]
    within = [_direct_cos(sp[b, i].ravel(), sp[b, j].ravel()) for b in range(2) for i in range(f) for j in range(f) if i != j]
    means = res["numbers"]["per_block_means"]["block 1"]
    assert means["cross"] == pytest.approx(np.mean(cross), abs=2e-6)
    assert means["spatial"] == pytest.approx(np.mean(within), abs=2e-6)
    assert abs(means["spatial"] - means["cross"]) > 1e-3  # the two halves are not the same features


def test_per_block_figure_says_no_inverted_pairs_instead_of_an_empty_panel(tmp_path):
    import matplotlib.image

    from latte_bench.reports.figures import similarity_summary_figure

    def lower_panel_ink(inverted: int) -> float:
        summary = {f"spatial_{i}": {"mean": 0.7 + 0.01 * i, "var": 1e-3, "inverted_first": 0, "inverted_all": inverted}
                   for i in range(4)}
        png = similarity_summary_figure({"summary": summary}, tmp_path / f"fig{inverted}")[0]
        img = matplotlib.image.imread(png)[..., :3].mean(axis=2)  # (H, W) in [0, 1]
        h, w = img.shape
        return float((img[int(0.62 * h):int(0.75 * h), int(0.3 * w):int(0.7 * w)] < 0.6).mean())

    assert lower_panel_ink(0) > 0.002  # the note is drawn in the middle of the lower panel
    assert lower_panel_ink(3) > 0.002  # bars
