"""The StyleGAN-Human library: what the scripts, the web app and the notebook share.

See docs/ARCHITECTURE.md for the layers and which module owns what.
"""
