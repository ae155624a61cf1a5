"""Feature networks written in this project, reading the published weight files without running them.

- :mod:`.vgg16_nvidia`: NVIDIA's VGG16 (``vgg16.pt``, TorchScript read by a restricted unpickler):
  the perceptual distance of projection and of the PPL metric.
- :mod:`.lpips`: LPIPS with AlexNet or VGG16 backbones (torchvision layouts, lpips v0.1 heads).
- :mod:`.inception`: Inception-v3 in NVIDIA's published tensor layout (FID, KID, IS, PR).
- :mod:`.e4e`: the e4e encoder (IR-SE50 backbone) that maps a photo to w+.
- :mod:`.resize`: TensorFlow 1's bilinear resize, which the NVIDIA networks expect.
"""
