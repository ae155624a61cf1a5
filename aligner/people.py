"""What every backend produces and shares: COCO-18 keypoints, one photo's analysis, the backend error.

Kept apart from :mod:`.backends` (which builds the backends) so that each backend module
can import these without importing the module that imports it.
"""

import dataclasses
import os

import numpy as np

from dnnlib.errors import UnavailableError

COCO18_NAMES = ('nose', 'neck', 'right_shoulder', 'right_elbow', 'right_wrist', 'left_shoulder', 'left_elbow',
                'left_wrist', 'right_hip', 'right_knee', 'right_ankle', 'left_hip', 'left_knee', 'left_ankle',
                'right_eye', 'left_eye', 'right_ear', 'left_ear')
NOSE, NECK, R_SHOULDER, L_SHOULDER, R_HIP, L_HIP, R_ANKLE, L_ANKLE = 0, 1, 2, 5, 8, 11, 10, 13

POSE_BACKENDS = ('mediapipe', 'openpose')
SEGMENTERS = ('mediapipe', 'ppseg')
DEFAULT_OPENPOSE_WEIGHTS = os.path.join('openpose', 'model', 'body_pose_model.pth')


class BackendUnavailable(UnavailableError):
    """A chosen backend lacks its package or weights; the message says what to install or download."""


@dataclasses.dataclass
class Analysis:
    """One photo as the backends see it."""
    people: list        # [18, 3] keypoint arrays, most prominent first
    mask: np.ndarray    # HxW float32 person probability (all people the segmenter saw)
