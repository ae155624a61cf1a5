"""Find the face in a full-body image and the FFHQ-style square around it.

The square is built the FFHQ way from the eyes and the mouth: centred a little
below the eyes, sized from the eye-to-eye and eye-to-mouth distances (as
upstream's InsetGAN crop: the axis-aligned bounds of FFHQ's oriented quad).

Default finder: MediaPipe face detection (full-range model, bundled) for the
face, then MediaPipe face mesh on an enlarged crop for precise eyes and mouth
corners. With dlib and the user's two model files (mmod_human_face_detector.dat,
shape_predictor_68_face_landmarks.dat), dlib's 68 landmarks, as upstream.
"""

import dataclasses
import os

import numpy as np
import PIL.Image

from dnnlib.errors import InputError

from .people import BackendUnavailable
from .mediapipe_backend import quiet_mediapipe

# Face mesh landmark indices: the two eye contours and the mouth corners.
_MESH_EYE_A = (33, 160, 158, 133, 153, 144)
_MESH_EYE_B = (362, 385, 387, 263, 373, 380)
_MESH_MOUTH_CORNERS = (61, 291)
_MESH_INPUT = 256


class FaceNotFound(InputError):
    """No face in the image (one line; the caller may suggest --face-box)."""


@dataclasses.dataclass(frozen=True)
class FaceBox:
    """Axis-aligned box [x0, x1) x [y0, y1) in pixels."""
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self):
        return self.x1 - self.x0

    @property
    def height(self):
        return self.y1 - self.y0

    def clipped(self, width, height):
        """The box moved (not shrunk) to lie inside a width x height image, if it fits."""
        dx = max(0, -self.x0) - max(0, self.x1 - width)
        dy = max(0, -self.y0) - max(0, self.y1 - height)
        return FaceBox(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)


def parse_box(text: str) -> FaceBox:
    """'x0,y0,x1,y1' -> FaceBox."""
    parts = [p for p in str(text).replace(' ', '').split(',') if p]
    if len(parts) != 4:
        raise ValueError(f'{text!r} is not a box like 200,80,300,180 (x0,y0,x1,y1)')
    x0, y0, x1, y1 = (int(round(float(p))) for p in parts)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f'{text!r}: the box must have x1 > x0 and y1 > y0')
    return FaceBox(x0, y0, x1, y1)


def ffhq_box(eye_a: np.ndarray, eye_b: np.ndarray, mouth_a: np.ndarray, mouth_b: np.ndarray) -> FaceBox:
    """The FFHQ crop square for eyes and mouth corners (any order left/right), as a FaceBox."""
    eye_left, eye_right = sorted([np.asarray(eye_a, float), np.asarray(eye_b, float)], key=lambda p: p[0])
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    mouth_avg = (np.asarray(mouth_a, float) + np.asarray(mouth_b, float)) / 2
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return FaceBox(int(np.floor(quad[:, 0].min())), int(np.floor(quad[:, 1].min())),
                   int(np.ceil(quad[:, 0].max())), int(np.ceil(quad[:, 1].max())))


class MediaPipeFaceFinder:
    """``find(rgb) -> FaceBox`` with MediaPipe's bundled face detection and face mesh."""

    def __init__(self, min_confidence=0.5):
        try:
            with quiet_mediapipe():
                import mediapipe as mp
                self._detector = mp.solutions.face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=min_confidence)
                self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)
                self._detector.process(np.full((64, 64, 3), 255, np.uint8))
                self._mesh.process(np.full((64, 64, 3), 255, np.uint8))
        except ImportError as err:
            raise BackendUnavailable(f'face finding needs MediaPipe ({err}): pip install mediapipe==0.10.14') from None

    def close(self):
        self._detector.close()
        self._mesh.close()

    def find(self, rgb):
        h, w = rgb.shape[:2]
        with quiet_mediapipe():
            found = self._detector.process(np.ascontiguousarray(rgb))
        if not found.detections:
            raise FaceNotFound('no face found in the body image')
        best = max(found.detections, key=lambda d: d.score[0])
        points = np.array([(k.x * w, k.y * h) for k in best.location_data.relative_keypoints])
        eyes, mouth = points[:2], points[3]
        refined = self._mesh_landmarks(rgb, best.location_data.relative_bounding_box)
        if refined is not None:
            return ffhq_box(*refined)
        return ffhq_box(eyes[0], eyes[1], mouth, mouth)

    def _mesh_landmarks(self, rgb, box):
        """(eye, eye, mouth corner, mouth corner) from the face mesh on an enlarged crop, or None."""
        h, w = rgb.shape[:2]
        cx, cy = (box.xmin + box.width / 2) * w, (box.ymin + box.height / 2) * h
        half = max(box.width * w, box.height * h)
        x0, y0 = int(round(cx - half)), int(round(cy - half))
        side = int(round(2 * half))
        crop = np.full((side, side, 3), 255, np.uint8)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
        if sx1 <= sx0 or sy1 <= sy0:
            return None
        crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
        big = np.asarray(PIL.Image.fromarray(crop).resize((_MESH_INPUT, _MESH_INPUT), PIL.Image.LANCZOS))
        with quiet_mediapipe():
            result = self._mesh.process(big)
        if not result.multi_face_landmarks:
            return None
        marks = np.array([(p.x, p.y) for p in result.multi_face_landmarks[0].landmark]) * side + [x0, y0]
        return (marks[list(_MESH_EYE_A)].mean(axis=0), marks[list(_MESH_EYE_B)].mean(axis=0),
                marks[_MESH_MOUTH_CORNERS[0]], marks[_MESH_MOUTH_CORNERS[1]])


class DlibFaceFinder:
    """``find(rgb) -> FaceBox`` with dlib's CNN face detector and 68-point landmarks (the user's files)."""

    def __init__(self, detector_path, predictor_path):
        try:
            import dlib
        except ImportError:
            raise BackendUnavailable('the dlib face finder needs dlib: pip install dlib-bin (or dlib)') from None
        for path, what in ((detector_path, 'mmod_human_face_detector.dat'),
                           (predictor_path, 'shape_predictor_68_face_landmarks.dat')):
            if not path or not os.path.isfile(path):
                raise BackendUnavailable(f'dlib model file not found: {path} (download {what} from '
                                         'http://dlib.net/files/ and pass its path)')
        self._detector = dlib.cnn_face_detection_model_v1(detector_path)
        self._predictor = dlib.shape_predictor(predictor_path)

    def close(self):
        pass

    def find(self, rgb):
        faces = self._detector(rgb, 1)
        if len(faces) == 0:
            raise FaceNotFound('no face found in the body image')
        shape = self._predictor(rgb, faces[0].rect)
        marks = np.array([(p.x, p.y) for p in shape.parts()], dtype=float)
        return ffhq_box(marks[36:42].mean(axis=0), marks[42:48].mean(axis=0), marks[48], marks[54])
