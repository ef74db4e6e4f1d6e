"""What every JSON record says about the environment that produced it."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import sys

_PACKAGES = ("latte-bench", "torch", "numpy", "av", "diffusers", "safetensors", "pillow")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that can move a number (None when absent)."""
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment() -> dict:
    """Python, platform, package versions, torch device info and a UTC timestamp."""
    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "timestamp_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        import torch

        env["torch_threads"] = torch.get_num_threads()
        env["cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # torch missing or broken: the record still gets written
        pass
    return env
