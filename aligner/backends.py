"""What the aligner needs from a model: the people in a photo and a person mask.

Two small interfaces, so keypoints and segmentation can come from different models:

- a *pose estimator* has ``find_people(rgb) -> list of [18, 3] arrays``: COCO-18
  keypoints (OpenPose order) as x, y in pixels and a confidence in [0, 1], the most
  prominent person first; a part that was not found has confidence 0.
- a *segmenter* has ``person_mask(rgb) -> HxW float32`` person probability.

MediaPipe Pose is both (the default); OpenPose is a pose estimator, PaddleSeg a
segmenter. :func:`make_backend` builds the pair from names and reports a missing
package or weight file as :class:`BackendUnavailable`, one line.
"""

from typing import Optional

import numpy as np

from .people import (  # noqa: F401 - the names backends share, re-exported for callers of this module
    COCO18_NAMES, DEFAULT_OPENPOSE_WEIGHTS, L_ANKLE, L_HIP, L_SHOULDER, NECK, NOSE, POSE_BACKENDS, R_ANKLE, R_HIP,
    R_SHOULDER, SEGMENTERS, Analysis, BackendUnavailable)


class Backend:
    """A pose estimator and a segmenter used together."""

    def __init__(self, pose, segmenter):
        self.pose = pose
        self.segmenter = segmenter

    def analyse(self, rgb):
        if self.pose is self.segmenter and hasattr(self.pose, 'analyse'):
            return self.pose.analyse(rgb)  # one model run gives both
        people = self.pose.find_people(rgb)
        return Analysis(people=people, mask=self.person_mask(rgb))

    def person_mask(self, rgb):
        """The segmenter's mask alone (HxW float32), e.g. to whiten a background."""
        return np.asarray(self.segmenter.person_mask(rgb), dtype=np.float32)

    def close(self):
        for part in {id(self.pose): self.pose, id(self.segmenter): self.segmenter}.values():
            if hasattr(part, 'close'):
                part.close()


def make_backend(pose: Optional[str] = 'mediapipe', segmenter: str = 'mediapipe', device: str = 'cpu',
                 openpose_weights: Optional[str] = None, ppseg_model: Optional[str] = None) -> Backend:
    """Build the backend pair by name (see POSE_BACKENDS and SEGMENTERS); ``pose=None`` for masks only."""
    if pose is not None and pose not in POSE_BACKENDS:
        raise BackendUnavailable(f'unknown pose backend {pose!r}; choose one of {", ".join(POSE_BACKENDS)}')
    if segmenter not in SEGMENTERS:
        raise BackendUnavailable(f'unknown segmenter {segmenter!r}; choose one of {", ".join(SEGMENTERS)}')
    shared = None
    if 'mediapipe' in (pose, segmenter):
        from .mediapipe_backend import MediaPipePose
        shared = MediaPipePose()
    pose_model = shared if pose == 'mediapipe' else None if pose is None else _openpose(openpose_weights, device)
    seg_model = shared if segmenter == 'mediapipe' else _ppseg(ppseg_model, device)
    return Backend(pose_model, seg_model)


def _openpose(weights, device):
    from .openpose_backend import OpenPoseEstimator
    return OpenPoseEstimator(weights or DEFAULT_OPENPOSE_WEIGHTS, device=device)


def _ppseg(model_dir, device):
    try:
        import PP_HumanSeg
    except ImportError as err:  # pragma: no cover - the package ships with the project
        raise BackendUnavailable(f'PP_HumanSeg package missing: {err}') from None
    try:
        return PP_HumanSeg.HumanSegmenter(model_dir or PP_HumanSeg.DEFAULT_MODEL_DIR, device=device)
    except PP_HumanSeg.PaddleSegError as err:
        raise BackendUnavailable(str(err)) from None
