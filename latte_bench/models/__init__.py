"""Latte and its variants (``latte.py``), Latte-T2V (``latte_t2v.py``), embeddings, official/DiT checkpoint conversion (``convert.py``), FLOPs (``flops.py``).

Public API (imported lazily, so ``import latte_bench.models`` is cheap)::

    create_model("Latte-XL/2", variant=1, num_classes=0, ...)   # -> Latte
    LatteT2V.from_pretrained(folder)                            # Latte-1's transformer/ (``latte_t2v.py``)
    from_official(config, state_dict)                           # official kwargs + weights -> Latte
    extract_state_dict(obj)                                     # the state dict inside {"ema": ...} / {"model": ...}
    export_official(model) / save_official(model, path)         # {"ema": state_dict}
    init_from_dit(model, dit_state_dict, mapping="by_name")     # ImageNet (DiT) initialisation
    forward_macs(model, frames)                                 # multiply-adds of one forward pass (``flops.py``)
"""

from latte_bench.lazy import lazy_getattr

_EXPORTS = {
    "Latte": "latte",
    "LatteT2V": "latte_t2v",
    "create_model": "latte",
    "parse_model_name": "latte",
    "LATTE_SIZES": "latte",
    "from_official": "convert",
    "load_official_state_dict": "convert",
    "extract_state_dict": "convert",
    "export_official": "convert",
    "save_official": "convert",
    "init_from_dit": "convert",
    "forward_macs": "flops",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
