"""Image ops used by the StyleGAN networks (pure-PyTorch reference implementations).

Import the submodules directly, as NVIDIA's code does:
``from torch_utils.ops import upfirdn2d, bias_act, conv2d_resample``.
"""
