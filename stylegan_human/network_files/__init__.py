"""Every network file format, in and out.

- :mod:`.safe_pickle`: reading pickles without running them (records, allow-list).
- :mod:`.build`: records -> this project's network classes, constructed within a memory budget
  set by the file and the free memory, then checked strictly against the file's tensors.
- :mod:`.stylegan1_tf`: StyleGAN1 TensorFlow pickles -> PyTorch, without TensorFlow.
- :mod:`.trusted`: the opt-in upstream way (embedded code run), its failures as one-line errors.
- :mod:`.load`: any file, URL or zoo name -> ``{'G_ema': ..., ...}`` with one-line errors.
- :mod:`.export`: writing official pickles and code-free ``.safetensors`` exports.
"""

from .build import rebuild_network
from .export import export_network, load_exported_network, save_network_pkl
from .load import load_network, load_network_pkl
from .safe_pickle import NetworkFileError, PersistentRecord, RefusedGlobal, TFNetworkRecord, read_pickle_safely
from .stylegan1_tf import convert_tf_networks

__all__ = ['NetworkFileError', 'PersistentRecord', 'RefusedGlobal', 'TFNetworkRecord', 'convert_tf_networks',
           'export_network', 'load_exported_network', 'load_network', 'load_network_pkl', 'read_pickle_safely',
           'rebuild_network', 'save_network_pkl']
