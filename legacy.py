"""NVIDIA's entry points for network files, kept under their usual names.

Code written for NVIDIA's StyleGAN2-ADA / StyleGAN3 calls ``legacy.load_network_pkl(f)``;
this project's scripts call ``legacy.load_network(path_url_or_zoo_name)``. The work is done
in :mod:`stylegan_human.network_files`, which library code imports directly.
"""

from stylegan_human.network_files import (  # noqa: F401 - re-exported
    NetworkFileError, PersistentRecord, RefusedGlobal, TFNetworkRecord, convert_tf_networks, export_network,
    load_exported_network, load_network, load_network_pkl, read_pickle_safely, rebuild_network, save_network_pkl)
