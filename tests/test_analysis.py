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
    from latte_bench.training.trainer import build_model

    cfg = preset("demo")
    cfg.num_frames, cfg.image_size, cfg.variant = 6, 8, variant
    cfg.model_options = {"hidden_size": 32, "depth": 4, "num_heads": 2}
    torch.manual_seed(0)
    model = build_model(cfg, 3, cfg.image_size)
    for p in model.parameters():  # adaLN-Zero starts as identity: give the blocks something to do
        torch.nn.init.normal_(p, std=0.2)
    ema = create_ema(model)
    opt = torch.optim.AdamW(model.parameters())
    return save_checkpoint(tmp_path / f"v{variant}.pt", model=model, ema=ema, optimizer=opt, step=1, config=cfg.to_dict())


def test_similarity_analysis_from_checkpoint(tmp_path):
    from latte_bench.errors import UserError

    ckpt = _tiny_checkpoint(tmp_path, variant=1)
    res = analysis.run_analysis("similarity", str(ckpt), out=tmp_path / "out", num_videos=3)
    summ = res["numbers"]["summary"]
    assert list(summ) == ["1 spatial", "2 temporal", "3 spatial", "4 temporal"]
    for s in summ.values():
        assert -1.0 <= s["mean"] <= 1.0 and s["var"] >= 0 and 0 <= s["inverted_first"] <= 4
    mats = res["numbers"]["matrices"]
    assert np.allclose(np.diag(np.array(mats["1 spatial"])), 1.0, atol=1e-5)
    names = {p.name for p in res["files"]}
    assert {"similarity_matrices.png", "similarity_matrices.pdf", "similarity_per_block.png", "similarity.json"} <= names
    with pytest.raises(UserError, match="Variant 1, not --variant 2"):
        analysis.run_analysis("similarity", str(ckpt), out=tmp_path / "out", variant=2)
    with pytest.raises(UserError, match="Variant 4"):
        analysis.run_analysis("fusion", str(ckpt), out=tmp_path / "out")


def test_fusion_analysis_from_variant4_checkpoint(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path, variant=4)
    res = analysis.run_analysis("fusion", str(ckpt), out=tmp_path / "out", num_videos=2, variant=4)
    d = res["numbers"]["distributions"]
    f = 6
    assert d["cross"]["n"] == 2 * f * f * len(res["numbers"]["per_block_means"])
    assert d["spatial"]["n"] == 2 * f * (f - 1) * len(res["numbers"]["per_block_means"])
    assert (tmp_path / "out" / "fusion.png").stat().st_size > 1000
