"""Loupe's Python tools: export CLIP-style models to Loupe model directories, write prompt banks,
and compute the PyTorch reference of DAPO inference used by the Rust parity tests.

Modules that need only numpy/safetensors/pillow (no torch): ``archs``, ``model_dir``, ``bank``,
``prompts``, ``images``, ``safetensors_io``. Everything else imports torch.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
