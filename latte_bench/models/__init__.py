"""Latte and its variants (``latte.py``), embeddings, and official/DiT checkpoint conversion (``convert.py``).

Public API (imported lazily, so ``import latte_bench.models`` is cheap)::

    create_model("Latte-XL/2", variant=1, num_classes=0, ...)   # -> Latte
    from_official(config, state_dict)                           # official kwargs + weights -> Latte
    load_checkpoint_file(path)                                  # official .pt / .safetensors -> state dict
    export_official(model) / save_official(model, path)         # {"ema": state_dict}
    init_from_dit(model, dit_state_dict, mapping="by_name")     # ImageNet (DiT) initialisation
"""

_EXPORTS = {
    "Latte": "latte_bench.models.latte",
    "create_model": "latte_bench.models.latte",
    "parse_model_name": "latte_bench.models.latte",
    "LATTE_SIZES": "latte_bench.models.latte",
    "from_official": "latte_bench.models.convert",
    "load_official_state_dict": "latte_bench.models.convert",
    "load_checkpoint_file": "latte_bench.models.convert",
    "extract_state_dict": "latte_bench.models.convert",
    "export_official": "latte_bench.models.convert",
    "save_official": "latte_bench.models.convert",
    "init_from_dit": "latte_bench.models.convert",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'latte_bench.models' has no attribute {name!r}")
