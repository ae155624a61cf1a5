"""OpenPose (COCO-18 body, pytorch-openpose weights) as the aligner's keypoint detector."""

import numpy as np

from .people import BackendUnavailable


class OpenPoseEstimator:
    """``find_people(rgb)``: the people OpenPose finds, largest score first, missing parts at confidence 0."""

    def __init__(self, weights_path, device='cpu', **options):
        import openpose
        try:
            self._body = openpose.Body(weights_path, device=device, **options)
        except openpose.OpenPoseWeightsError as err:
            raise BackendUnavailable(str(err)) from None

    def find_people(self, rgb):
        people = sorted(self._body(rgb), key=lambda person: -person.score)
        found = []
        for person in people:
            keypoints = np.array(person.keypoints, dtype=np.float64)
            keypoints[~person.found] = 0.0
            found.append(keypoints)
        return found
