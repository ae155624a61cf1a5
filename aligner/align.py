"""One photo -> the aligned 1:2 crop of the one person in it.

``align_photo(rgb, backend)`` returns an :class:`AlignedPhoto` or raises
:class:`AlignmentError` with the reason in one line (no person, several
people, person cut off by the frame).
"""

import dataclasses
from typing import Sequence, Tuple

import cv2
import numpy as np
import scipy.ndimage

from dnnlib.errors import InputError

from . import crop as crop_rule
from .composite import on_white
from .backends import Backend, L_ANKLE, L_HIP, L_SHOULDER, NECK, NOSE, R_ANKLE, R_HIP, R_SHOULDER

DEFAULT_SIZE = (512, 1024)
MASK_THRESHOLD = 0.5
MIN_CONFIDENCE = crop_rule.MIN_KEYPOINT_CONFIDENCE
# Another detection counts as a second person when its torso is at least this
# fraction of the main person's: a neighbour's arm or legs at the edge does not.
SECOND_PERSON_TORSO = 0.5


class AlignmentError(InputError):
    """The photo cannot be aligned; the message is the reason, one line."""


@dataclasses.dataclass
class AlignedPhoto:
    image: np.ndarray       # out_h x out_w x 3 uint8
    mask: np.ndarray        # out_h x out_w uint8, 255 = person
    keypoints: np.ndarray   # [18, 3] COCO-18 in output pixels + confidence
    box: crop_rule.CropBox  # the crop window in (working) source pixels
    source_size: tuple      # (width, height) of the photo as analysed


def align_photo(rgb: np.ndarray, backend: Backend, size: Tuple[int, int] = DEFAULT_SIZE, keep_background: bool = False,
                margin: float = crop_rule.DEFAULT_MARGIN) -> AlignedPhoto:
    """Align the one person in ``rgb`` (HxWx3 uint8) to an image of ``size`` = (width, height)."""
    analysis = backend.analyse(rgb)
    keypoints = main_person(analysis.people)
    person = person_region(analysis.mask, keypoints)
    check_inside_frame(person, keypoints)

    box = crop_rule.alignment_box(person, keypoints, margin=margin)
    # Everything below works on the crop window only: a 12 MP photo stays cheap.
    near_person = cv2.dilate(crop_rule.crop(person.astype(np.uint8), box, fill=0), np.ones((5, 5), np.uint8))
    alpha_crop = np.clip(crop_rule.crop(analysis.mask.astype(np.float32), box, fill=0.0), 0, 1) * near_person
    if keep_background:
        picture = crop_rule.crop(rgb, box, fill=None)
    else:
        picture = on_white(crop_rule.crop(rgb, box, fill=255), alpha_crop)
    image = crop_rule.resize(picture, size)
    mask = np.round(np.clip(crop_rule.resize(alpha_crop, size), 0, 1) * 255).astype(np.uint8)
    if not keep_background:
        image[mask == 0] = 255  # resampling must not leave grey outside the person
    out_keypoints = keypoints.copy()
    out_keypoints[:, :2] = box.to_output(keypoints[:, :2], size)
    return AlignedPhoto(image=image, mask=mask, keypoints=out_keypoints, box=box,
                        source_size=(rgb.shape[1], rgb.shape[0]))


def torso_length(keypoints: np.ndarray) -> float:
    """Neck (or mid-shoulder) to mid-hip distance in pixels; 0 when the torso is not seen."""
    seen = keypoints[:, 2] >= MIN_CONFIDENCE
    if seen[NECK]:
        top = keypoints[NECK, :2]
    elif seen[R_SHOULDER] and seen[L_SHOULDER]:
        top = keypoints[[R_SHOULDER, L_SHOULDER], :2].mean(axis=0)
    else:
        return 0.0
    hips = [i for i in (R_HIP, L_HIP) if seen[i]]
    if not hips:
        return 0.0
    return float(np.linalg.norm(keypoints[hips, :2].mean(axis=0) - top))


def main_person(people: Sequence[np.ndarray]) -> np.ndarray:
    """The person to align, or AlignmentError when there is none or more than one."""
    people = [np.asarray(p, dtype=np.float64) for p in people]
    torsos = [torso_length(p) for p in people]
    if not people or max(torsos) == 0:
        raise AlignmentError('no person found')
    main = int(np.argmax(torsos))
    others = sum(1 for i, t in enumerate(torsos) if i != main and t >= SECOND_PERSON_TORSO * torsos[main])
    if others:
        raise AlignmentError(f'{others + 1} people found; crop the photo to one person')
    return people[main]


# Limbs of the COCO-18 skeleton, used to keep the person apart from touching neighbours.
SKELETON = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
            (8, 11), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
LEGS = ((8, 9, 10), (11, 12, 13))
# How far from its skeleton a person's pixels reach (hair, loose clothes, shoes),
# as a fraction of the torso length.
BODY_REACH = 0.6


def person_region(mask: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The main person's pixels: the segment holding most of its keypoints, near its skeleton.

    A neighbour touching the person (a hand on a shoulder, a dress at the frame
    edge) joins the connected region; keeping only pixels within reach of the
    person's own skeleton leaves it out of the extent and the crop.
    """
    region = _connected_region(mask, keypoints)
    reach = BODY_REACH * torso_length(keypoints)
    if reach <= 0:
        return region
    distance = cv2.distanceTransform(_skeleton_image(keypoints, region), cv2.DIST_L2, 5)
    return region & (distance <= reach)


def _skeleton_image(keypoints, region):
    """uint8 image: 0 on the skeleton's limbs, 1 elsewhere (what distanceTransform measures from)."""
    h, w = region.shape
    canvas = np.ones((h, w), np.uint8)
    seen = keypoints[:, 2] >= MIN_CONFIDENCE
    points = np.round(keypoints[:, :2]).astype(np.int64)
    for a, b in SKELETON:
        if seen[a] and seen[b]:
            cv2.line(canvas, tuple(int(v) for v in points[a]), tuple(int(v) for v in points[b]), 0, 1)
    bottom = int(np.nonzero(region.any(axis=1))[0].max())
    for leg in LEGS:  # feet hidden (a long dress): the leg goes on down to the bottom of the region
        found = [i for i in leg if seen[i]]
        if found and found[-1] != leg[-1]:
            x, y = (int(v) for v in points[found[-1]])
            cv2.line(canvas, (x, y), (x, max(y, bottom)), 0, 1)
    return canvas


def _connected_region(mask, keypoints):
    """The connected part of the thresholded mask that holds most of the keypoints."""
    labels, count = scipy.ndimage.label(mask > MASK_THRESHOLD, structure=np.ones((3, 3)))
    if count == 0:
        raise AlignmentError('person found but the segmentation is empty')
    h, w = mask.shape
    votes = np.zeros(count + 1)
    for x, y, conf in keypoints:
        xi, yi = int(round(x)), int(round(y))
        if conf >= MIN_CONFIDENCE and 0 <= xi < w and 0 <= yi < h:
            votes[labels[yi, xi]] += conf
    votes[0] = 0
    if votes.max() > 0:
        chosen = int(np.argmax(votes))
    else:  # keypoints fell between regions (thin limbs): take the biggest region
        chosen = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    return labels == chosen


def check_inside_frame(person: np.ndarray, keypoints: np.ndarray) -> None:
    """AlignmentError when the head or the feet are outside the photo."""
    h = person.shape[0]
    rows = np.nonzero(person.any(axis=1))[0]
    head_out = rows.min() == 0 or keypoints[NOSE, 1] < 0
    feet = keypoints[[R_ANKLE, L_ANKLE]]
    feet_out = rows.max() == h - 1 or bool(np.any(feet[:, 1] > h - 1))
    if head_out and feet_out:
        raise AlignmentError('person cut off at the top and bottom of the photo (head and feet outside the frame)')
    if head_out:
        raise AlignmentError('person cut off at the top of the photo (head outside the frame)')
    if feet_out:
        raise AlignmentError('person cut off at the bottom of the photo (feet outside the frame)')
