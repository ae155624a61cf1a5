"""Small utilities shared by every script, API-compatible with NVIDIA's ``dnnlib``."""

from .util import EasyDict, make_cache_dir_path  # noqa: F401
