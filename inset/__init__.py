"""InsetGAN: a face generator's face fitted onto a body generator's person (see insetgan.py)."""
