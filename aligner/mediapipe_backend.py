"""MediaPipe Pose as keypoint detector and person segmenter, offline on the CPU.

Uses the "full" pose landmark model (model_complexity=1) with its segmentation
output: both ship inside the mediapipe 0.10.14 wheel. Complexity 2 ("heavy")
would be downloaded at run time, so it is never used.

MediaPipe Pose follows one person. To tell a photo of several people, the
first person is painted out and the photo looked at again; a second person
with a visible torso counts (fragments of neighbours at the edges do not).
"""

import contextlib
import ctypes
import os
import warnings
from typing import Iterator, Tuple

import numpy as np
import scipy.ndimage

from .people import Analysis, BackendUnavailable

# MediaPipe's 33 landmarks -> COCO-18 (OpenPose order); the neck is the mid-shoulder point.
_COCO_FROM_MP = {0: 0, 2: 12, 3: 14, 4: 16, 5: 11, 6: 13, 7: 15, 8: 24, 9: 26, 10: 28,
                11: 23, 12: 25, 13: 27, 14: 5, 15: 2, 16: 8, 17: 7}
_MP_SHOULDERS = (11, 12)
_MP_HIPS = (23, 24)
MASK_THRESHOLD = 0.5


class MediaPipePose:
    """Pose + segmentation with MediaPipe; ``analyse(rgb)`` returns an :class:`Analysis`."""

    def __init__(self, min_confidence=0.5):
        try:
            with _quiet_native_logs():
                import mediapipe as mp
        except ImportError as err:
            raise BackendUnavailable(
                f'the default alignment backend needs MediaPipe ({err}): pip install mediapipe==0.10.14 '
                '(wheels for Python 3.9-3.12), or choose --pose openpose --segmenter ppseg') from None
        with _quiet_native_logs():
            self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                                enable_segmentation=True, min_detection_confidence=min_confidence)
            # The graph starts its models on worker threads, which log as they go:
            # one blank frame waits for that while the logs are still silenced.
            self._pose.process(np.full((64, 32, 3), 255, np.uint8))

    def close(self):
        self._pose.close()

    def _run(self, rgb):
        """One MediaPipe pass -> (landmarks [33, 4] as x_px, y_px, visibility, presence; mask) or None."""
        with quiet_mediapipe():
            result = self._pose.process(np.ascontiguousarray(rgb))
        if result.pose_landmarks is None:
            return None
        h, w = rgb.shape[:2]
        marks = np.array([[p.x * w, p.y * h, p.visibility, p.presence] for p in result.pose_landmarks.landmark],
                         dtype=np.float64)
        mask = result.segmentation_mask
        mask = np.zeros((h, w), np.float32) if mask is None else np.asarray(mask, dtype=np.float32)
        return marks, mask

    def analyse(self, rgb):
        first = self._run(rgb)
        if first is None:
            return Analysis(people=[], mask=np.zeros(rgb.shape[:2], np.float32))
        marks, mask = first
        people = [to_coco18(marks, rgb.shape)]
        second = self._run(_paint_out(rgb, mask))
        if second is not None and _has_full_torso(second[0], rgb.shape) \
                and _mask_area(second[1]) >= 0.25 * _mask_area(mask):
            people.append(to_coco18(second[0], rgb.shape))
        return Analysis(people=people, mask=mask)

    def find_people(self, rgb):
        return self.analyse(rgb).people

    def person_mask(self, rgb):
        found = self._run(rgb)
        return np.zeros(rgb.shape[:2], np.float32) if found is None else found[1]


def to_coco18(marks: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """MediaPipe landmarks [33, >=3] in pixels -> COCO-18 [18, 3] (x, y, confidence).

    Points MediaPipe places outside the frame keep their coordinates (the aligner
    uses them to tell a cut-off person) with their low visibility as confidence.
    """
    coco = np.zeros((18, 3), np.float64)
    for c, m in _COCO_FROM_MP.items():
        coco[c] = marks[m, :3]
    shoulders = marks[list(_MP_SHOULDERS)]
    coco[1, :2] = shoulders[:, :2].mean(axis=0)
    coco[1, 2] = shoulders[:, 2].min()
    coco[:, 2] = np.clip(coco[:, 2], 0, 1)
    return coco


def _has_full_torso(marks, shape, min_visibility=0.5):
    """Both shoulders and both hips seen, inside the frame."""
    h, w = shape[:2]
    torso = marks[list(_MP_SHOULDERS + _MP_HIPS)]
    inside = (torso[:, 0] >= 0) & (torso[:, 0] < w) & (torso[:, 1] >= 0) & (torso[:, 1] < h)
    return bool(np.all(inside) and np.all(torso[:, 2] >= min_visibility))


def _mask_area(mask):
    return float((mask > MASK_THRESHOLD).sum())


def _paint_out(rgb, mask):
    """The photo with the found person (mask grown a little) filled with white."""
    person = scipy.ndimage.binary_dilation(mask > 0.2, iterations=max(2, min(rgb.shape[:2]) // 100))
    out = rgb.copy()
    out[person] = 255
    return out


@contextlib.contextmanager
def quiet_mediapipe() -> Iterator[None]:
    """Around MediaPipe calls: no native log lines, no protobuf deprecation warning."""
    with _quiet_native_logs(), warnings.catch_warnings():
        warnings.filterwarnings('ignore', message=r'SymbolDatabase\.GetPrototype\(\) is deprecated')
        yield


def _flush_c_stdio():
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # not a POSIX libc (Windows): nothing buffered to worry about
        pass


@contextlib.contextmanager
def _quiet_native_logs():
    """Silence TFLite/absl chatter written straight to file descriptor 2 by MediaPipe's C++ code."""
    os.environ.setdefault('GLOG_minloglevel', '2')
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (some notebook front ends): nothing to silence
        yield
        return
    try:
        with open(os.devnull, 'w') as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                _flush_c_stdio()  # C++ may hold the text in a stdio buffer: drop it while it still goes nowhere
                os.dup2(saved, 2)
    finally:
        os.close(saved)
