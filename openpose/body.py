"""OpenPose body keypoints for an RGB photo: ``Body(weights)(rgb) -> list[Person]``.

Inference follows pytorch-openpose's ``Body`` (what upstream StyleGAN-Human runs):
for each scale in ``scale_search`` the image is resized (bicubic) to
``scale * boxsize`` pixels high, padded right and bottom with grey (128) to a
multiple of the network stride, and run through the network; the output maps are
upsampled by the stride, cropped back to the unpadded size and resized to the
photo's size (bicubic). The maps are averaged over scales and decoded into people.

Two deliberate differences: the input is RGB (it is flipped to the BGR the network
was trained on here, where upstream expects callers to pass OpenCV's BGR), and
several scales are averaged properly (upstream's running sum doubles the earlier
scales; with its default single scale both agree).
"""

import cv2
import numpy as np
import torch

from .decode import decode_people
from .model import DEFAULT_WEIGHTS, load_body_weights


class Body:
    """The OpenPose body model, ready to find people in photos.

    weights_path: ``body_pose_model.pth`` (default ``openpose/model/body_pose_model.pth``,
        relative to the working directory, as upstream). A missing or unusable file
        raises :class:`openpose.OpenPoseWeightsError` (one line).
    device: a torch device or its name ('cpu', 'cuda', 'cuda:1', 'mps').
    scale_search: image heights to run at, as fractions of ``boxsize`` (upstream: [0.5]).
    boxsize, stride, pad_value: network input geometry (368, 8, 128 as upstream).
    thre1, thre2: peak and PAF thresholds of the decoding (0.1, 0.05).
    heatmap_relu: see :class:`openpose.BodyPoseNet` (True reproduces upstream).
    """

    def __init__(self, weights_path=None, device='cpu', scale_search=(0.5,), boxsize=368, stride=8, pad_value=128,
                 thre1=0.1, thre2=0.05, heatmap_relu=True):
        self.weights_path = DEFAULT_WEIGHTS if weights_path is None else weights_path
        self.device = torch.device(device)
        self.net = load_body_weights(self.weights_path, device=self.device, heatmap_relu=heatmap_relu)
        self.scale_search = tuple(scale_search)
        self.boxsize = boxsize
        self.stride = stride
        self.pad_value = pad_value
        self.thre1 = thre1
        self.thre2 = thre2

    def __call__(self, rgb):
        """People in an RGB uint8 image [H, W, 3]; keypoints in its pixel coordinates."""
        heatmap, paf = self.maps(rgb)
        return decode_people(heatmap, paf, thre1=self.thre1, thre2=self.thre2)

    def maps(self, rgb):
        """Scale-averaged (heatmap [H, W, 19], paf [H, W, 38]) float64 at the image's size."""
        bgr = _as_bgr(rgb)
        height, width = bgr.shape[:2]
        heatmap_avg = np.zeros((height, width, 19))
        paf_avg = np.zeros((height, width, 38))
        for scale in self.scale_search:
            factor = scale * self.boxsize / height
            image = cv2.resize(bgr, (0, 0), fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
            paf, heatmap = self._run(image)
            heatmap_avg += self._to_image_size(heatmap, image.shape, (height, width)) / len(self.scale_search)
            paf_avg += self._to_image_size(paf, image.shape, (height, width)) / len(self.scale_search)
        return heatmap_avg, paf_avg

    def _run(self, bgr):
        """Network maps [h/stride, w/stride, C] (float32) for one resized BGR image."""
        padded = pad_right_bottom(bgr, self.stride, self.pad_value)
        x = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1))[None]).float() / 256 - 0.5
        with torch.no_grad():
            paf, heatmap = self.net(x.to(self.device))
        return (paf[0].permute(1, 2, 0).float().cpu().numpy(),
                heatmap[0].permute(1, 2, 0).float().cpu().numpy())

    def _to_image_size(self, maps, resized_shape, size):
        """Upsample by the stride, drop the padding, resize to the photo (bicubic, as upstream)."""
        maps = cv2.resize(maps, (0, 0), fx=self.stride, fy=self.stride, interpolation=cv2.INTER_CUBIC)
        maps = maps[:resized_shape[0], :resized_shape[1]]
        return cv2.resize(maps, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def pad_right_bottom(image, stride, value):
    """Pad [H, W, C] on the right and bottom with ``value`` to multiples of ``stride``."""
    pad_h = -image.shape[0] % stride
    pad_w = -image.shape[1] % stride
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=value)


def _as_bgr(rgb):
    """uint8 [H, W, 3] BGR from an RGB(A) or grey uint8 image."""
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8 or min(rgb.shape[:2]) == 0:
        raise ValueError(f'expected an RGB uint8 image [H, W, 3], got {rgb.dtype} {list(rgb.shape)}')
    return np.ascontiguousarray(rgb[:, :, 2::-1])
