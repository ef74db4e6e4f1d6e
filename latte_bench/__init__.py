"""latte-bench: an evaluation-first benchmarking suite for latent video diffusion transformers.

Submodules are imported lazily by the code that needs them; importing ``latte_bench``
itself is cheap and pulls in no heavy dependency.
"""

__version__ = "0.1.0"
