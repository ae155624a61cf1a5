"""StyleGAN-Human's drop-in for NVIDIA's StyleGAN2-ADA and StyleGAN3 checkouts.

Upstream StyleGAN-Human trains in a checkout of NVlabs/stylegan2-ada-pytorch or
NVlabs/stylegan3 into which its modified files were copied. ``python -m training.dropin
--into CHECKOUT`` writes this toolkit's equivalents there, so that NVIDIA's own training
loop (its training_loop.py, loss.py and augment.py, unchanged) trains 2:1 networks with
upstream's command lines:

* ``train.py``: this checkout's options plus ``--square``, ``--cfg=shhq`` (StyleGAN2-ADA),
  ``--augpipe=body``; hyper-parameters from ``training/train_config.py`` (``nvidia_train.py``);
* ``training/dataset.py``: the toolkit's dataset (2:1 or square images);
* ``training/train_config.py``: the toolkit's option logic (new in the checkout);
* the networks: ``training/networks.py`` (StyleGAN2-ADA) or ``training/networks_stylegan2.py``
  and ``training/networks_stylegan3.py`` (StyleGAN3), the toolkit's own.

The files are generated from the toolkit's modules (``sources.py``) and may import only
what that checkout has (``trees.py`` records its module names). NVIDIA's files that are
replaced are kept as ``*.orig``. Snapshots trained there load in this toolkit
(``legacy.load_network``).
"""

from .export import export_dropin, plan_export
from .trees import TREE_NAMES, DropinError, detect_tree

__all__ = ['TREE_NAMES', 'DropinError', 'detect_tree', 'export_dropin', 'plan_export']
