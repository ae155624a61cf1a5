"""StyleGAN1 TensorFlow pickles -> PyTorch; moved to :mod:`stylegan_human.network_files.stylegan1_tf`."""

from stylegan_human.network_files.stylegan1_tf import convert_tf_networks  # noqa: F401 - re-exported
