"""The reference fixtures in tests/fixtures/ against MANIFEST.sha256 and ../shared/fixtures/."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import (
    FIXTURES,
    SHARED_FIXTURES,
    SHRUNK,
    FixtureMismatch,
    materialize_fixtures,
    read_manifest,
    shrunk_name,
)
from safetensors import safe_open
from safetensors.numpy import save_file

from latte_bench.fsutil import sha256_file


def _files(root):
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_fixtures_dir_is_the_manifest_byte_for_byte(fixtures_dir):
    manifest = read_manifest()
    assert len(manifest) == 10 and "README.md" in manifest
    assert _files(fixtures_dir) == set(manifest)
    for name, digest in manifest.items():
        assert sha256_file(fixtures_dir / name) == digest, name


def test_repository_copies_are_the_manifest_files_or_their_shrunk_forms():
    manifest = read_manifest()
    stored = _files(FIXTURES) - {"MANIFEST.sha256"}
    verbatim = stored & set(manifest)
    shrunk = {name for name in manifest if shrunk_name(name) in stored}
    assert verbatim | shrunk == set(manifest) and not verbatim & shrunk
    assert stored == verbatim | {shrunk_name(n) for n in shrunk}  # nothing unlisted
    assert sorted(shrunk) == [f"latte_official/diffusion_{s}.safetensors" for s in ("class_ddim50", "uncond_1000", "uncond_250")]


def test_shrunk_files_drop_exactly_the_model_weights(fixtures_dir):
    for path in sorted(FIXTURES.rglob(f"*{SHRUNK}")):
        name = path.relative_to(FIXTURES).as_posix().replace(SHRUNK, ".safetensors")
        with safe_open(str(path), "np") as small, safe_open(str(fixtures_dir / name), "np") as full:
            assert set(small.keys()) == {k for k in full.keys() if not k.startswith("model.")}, name
            assert any(k.startswith("model.") for k in full.keys()), name
            meta = dict(small.metadata())
            assert (FIXTURES / "latte_official" / meta.pop("model_from")).is_file()
            assert meta == full.metadata(), name


@pytest.mark.skipif(not SHARED_FIXTURES.is_dir(), reason=f"no source of truth at {SHARED_FIXTURES} (only on the project's machines)")
def test_copies_equal_the_shared_source_of_truth(fixtures_dir):
    manifest = read_manifest()
    assert _files(SHARED_FIXTURES) == set(manifest), "../shared/fixtures changed: update tests/fixtures and MANIFEST.sha256"
    for name, digest in manifest.items():
        assert sha256_file(SHARED_FIXTURES / name) == digest, f"{name} differs from ../shared/fixtures"
        assert sha256_file(fixtures_dir / name) == digest, name


def test_a_changed_or_missing_copy_is_refused(tmp_path):
    names = ["i3d_tfhub/uniform_seed0.npz", "latte_official/diffusion_uncond_250.safetensors"]
    manifest = {n: d for n, d in read_manifest().items() if n in names}
    src = tmp_path / "src"
    for rel in ["i3d_tfhub/uniform_seed0.npz", shrunk_name(names[1]), "latte_official/latte_uncond.safetensors"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / rel, src / rel)
    assert _files(materialize_fixtures(tmp_path / "ok", src, manifest)) == set(names)

    # one weight of the model the shrunk file borrows, moved by one float32 ulp
    weights = src / "latte_official/latte_uncond.safetensors"
    with safe_open(str(weights), "np") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    bias = tensors["model.final_layer.linear.bias"]
    bias[0] = np.nextafter(bias[0], np.float32(1))
    save_file(tensors, str(weights), metadata=metadata)
    with pytest.raises(FixtureMismatch, match="diffusion_uncond_250.safetensors: sha256"):
        materialize_fixtures(tmp_path / "bad", src, manifest)

    (src / "i3d_tfhub/uniform_seed0.npz").unlink()
    with pytest.raises(FixtureMismatch, match="uniform_seed0.npz: neither"):
        materialize_fixtures(tmp_path / "missing", src, manifest)
