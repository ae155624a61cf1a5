"""Real-image inversion (PTI): W projection, the e4e encoder, pivotal tuning, and their perceptual networks."""
