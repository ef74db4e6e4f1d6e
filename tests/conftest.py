"""Shared test fixtures: the reference fixtures folder and a single-thread torch setting."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"  # the copies the tests read (MANIFEST.sha256 says how)
MANIFEST = FIXTURES / "MANIFEST.sha256"
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"  # the source of truth, where it exists
SHRUNK = ".nomodel.safetensors"  # a source .safetensors without its model.* weights


class FixtureMismatch(Exception):
    """A reference fixture could not be rebuilt exactly as the manifest records it."""


def read_manifest(path: Path = MANIFEST) -> dict[str, str]:
    """``{path relative to the fixtures root: sha256}`` from a sha256sum-format file (``#`` comments)."""
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            entries[name.strip()] = digest
    return entries


def shrunk_name(name: str) -> str:
    """The repository file that holds source ``name`` without its model weights."""
    return name[: -len(".safetensors")] + SHRUNK


def rebuild_with_model(shrunk: Path, out: Path) -> None:
    """Write the source file: ``shrunk``'s tensors plus the model.* weights of its ``model_from`` file."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(shrunk), "np") as f:
        metadata = dict(f.metadata())
    tensors = load_file(shrunk)
    weights = load_file(shrunk.parent / metadata.pop("model_from"))
    if any(k.startswith("model.") for k in tensors):
        raise FixtureMismatch(f"{shrunk.name} holds model.* weights; it should not")
    tensors.update({k: v for k, v in weights.items() if k.startswith("model.")})
    save_file(tensors, str(out), metadata=metadata)


def materialize_fixtures(dst: Path, src: Path = FIXTURES, manifest: dict[str, str] | None = None) -> Path:
    """Recreate every manifest file under ``dst`` from the copies in ``src``; each must match its sha256."""
    manifest = read_manifest() if manifest is None else manifest
    for name, digest in manifest.items():
        out = dst / name
        out.parent.mkdir(parents=True, exist_ok=True)
        if (src / name).is_file():
            shutil.copyfile(src / name, out)
        elif (src / shrunk_name(name)).is_file():
            rebuild_with_model(src / shrunk_name(name), out)
        else:
            raise FixtureMismatch(f"{name}: neither it nor {shrunk_name(name)} is in {src}")
        got = hashlib.sha256(out.read_bytes()).hexdigest()
        if got != digest:
            raise FixtureMismatch(f"{name}: sha256 {got}, manifest {digest}")
    return dst


@pytest.fixture(scope="session")
def fixtures_dir(tmp_path_factory) -> Path:
    """The reference fixtures (numbers from the reference implementations), byte-identical to
    ``../shared/fixtures``: rebuilt from ``tests/fixtures`` into a temporary folder and checked
    against ``tests/fixtures/MANIFEST.sha256``."""
    try:
        return materialize_fixtures(tmp_path_factory.mktemp("reference_fixtures"))
    except FixtureMismatch as e:
        pytest.fail(f"tests/fixtures does not reproduce MANIFEST.sha256: {e}")


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread for the module: tiny models run fastest single-threaded on a shared 2-core box.

    Use with ``pytestmark = pytest.mark.usefixtures("single_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
