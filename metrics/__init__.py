"""Quality metrics (FID, KID, precision/recall, PPL, IS) as NVIDIA's StyleGAN2-ADA /
StyleGAN3 compute them, with the feature networks rebuilt in this project and
their published weight files read without running them. Entry point:
:mod:`metrics.metric_main`."""
