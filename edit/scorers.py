"""Body measurements for InterfaceGAN directions without labelled data.

Each scorer reads one image through the alignment backends (COCO-18 keypoints of the most
prominent person and the person mask, :mod:`aligner.backends`) and returns a number; a
person or a joint the scorer needs that the backend does not find gives NaN, and
``python -m edit.compute interfacegan --scorer NAME`` leaves those samples out. So any
network (512 or 1024, StyleGAN2 or 3, your own) gets pose directions from its own samples.

Angles are in degrees. "right" and "left" are the person's (COCO's convention), so a
mirrored photo swaps them; ``lean`` changes sign.
"""

import dataclasses
import math
from typing import Callable, Dict, Optional, Sequence, Tuple

import click
import numpy as np

from aligner.people import COCO18_NAMES, Analysis
from dnnlib.errors import InputError
from stylegan_human import commands

MIN_CONFIDENCE = 0.3        # a keypoint below this is taken as not found
MASK_THRESHOLD = 0.5
SKIN_CHROMA_DISTANCE = 10.0  # in Cr/Cb levels (0-255 scale): a face's own shading stays within it
_J = {name: i for i, name in enumerate(COCO18_NAMES)}
_ARMS = {'right': ('right_shoulder', 'right_elbow', 'right_wrist'), 'left': ('left_shoulder', 'left_elbow', 'left_wrist')}
_LEGS = {'right': ('right_hip', 'right_knee', 'right_ankle'), 'left': ('left_hip', 'left_knee', 'left_ankle')}
_FACE = ('nose', 'right_eye', 'left_eye', 'right_ear', 'left_ear')


@dataclasses.dataclass(frozen=True)
class BodyScorer:
    name: str
    description: str
    measure: Callable[[Analysis, np.ndarray], float]   # (analysis, rgb uint8 H x W x 3) -> value or NaN


def _point(keypoints: np.ndarray, name: str) -> Optional[np.ndarray]:
    x, y, confidence = keypoints[_J[name]]
    return np.array([x, y], np.float64) if confidence >= MIN_CONFIDENCE else None


def _person(analysis: Analysis) -> Optional[np.ndarray]:
    return np.asarray(analysis.people[0], np.float64) if analysis.people else None


def _angle_from_down(vector: np.ndarray) -> float:
    """Degrees between ``vector`` (image x, y with y down) and straight down: 0 down, 90 level, 180 up."""
    return math.degrees(math.atan2(abs(vector[0]), vector[1]))


def _nanmean(values: Sequence[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


# ----------------------------------------------------------------------------
# Pose


def arm_raise(analysis: Analysis, side: str) -> float:
    """How far one arm is raised: the shoulder->wrist line (elbow if the wrist is missing) against straight down."""
    keypoints = _person(analysis)
    if keypoints is None:
        return math.nan
    shoulder, elbow, wrist = (_point(keypoints, n) for n in _ARMS[side])
    hand = wrist if wrist is not None else elbow
    if shoulder is None or hand is None:
        return math.nan
    return _angle_from_down(hand - shoulder)


def leg_spread(analysis: Analysis) -> float:
    """The angle between the two legs (hip->ankle lines; knees if an ankle is missing)."""
    keypoints = _person(analysis)
    if keypoints is None:
        return math.nan
    legs = []
    for side in ('right', 'left'):
        hip, knee, ankle = (_point(keypoints, n) for n in _LEGS[side])
        foot = ankle if ankle is not None else knee
        if hip is None or foot is None:
            return math.nan
        legs.append(foot - hip)
    cos = np.dot(legs[0], legs[1]) / (np.linalg.norm(legs[0]) * np.linalg.norm(legs[1]) + 1e-9)
    return math.degrees(math.acos(float(np.clip(cos, -1, 1))))


def _torso_length(keypoints: np.ndarray) -> Optional[float]:
    neck = _point(keypoints, 'neck')
    hips = [_point(keypoints, n) for n in ('right_hip', 'left_hip')]
    if neck is None or any(h is None for h in hips):
        return None
    return float(np.linalg.norm((hips[0] + hips[1]) / 2 - neck)) or None


def stance_width(analysis: Analysis) -> float:
    """Horizontal distance between the ankles, in torso lengths (neck to mid-hip): size-free."""
    keypoints = _person(analysis)
    if keypoints is None:
        return math.nan
    ankles = [_point(keypoints, n) for n in ('right_ankle', 'left_ankle')]
    torso = _torso_length(keypoints)
    if torso is None or any(a is None for a in ankles):
        return math.nan
    return abs(float(ankles[0][0] - ankles[1][0])) / torso


def lean(analysis: Analysis) -> float:
    """Signed tilt of the torso (mid-hip -> neck) from vertical; positive when the shoulders are to the image's right."""
    keypoints = _person(analysis)
    if keypoints is None:
        return math.nan
    neck = _point(keypoints, 'neck')
    hips = [_point(keypoints, n) for n in ('right_hip', 'left_hip')]
    if neck is None or any(h is None for h in hips):
        return math.nan
    up = neck - (hips[0] + hips[1]) / 2
    return math.degrees(math.atan2(up[0], -up[1]))


# ----------------------------------------------------------------------------
# Mask


def frame_fill(analysis: Analysis) -> float:
    """The share of the image the person mask covers (0-1)."""
    mask = np.asarray(analysis.mask)
    return float((mask > MASK_THRESHOLD).mean()) if analysis.people else math.nan


def _ycrcb(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float64)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    cr = (rgb[..., 0] - y) * 0.713 + 128
    cb = (rgb[..., 2] - y) * 0.564 + 128
    return np.stack([y, cr, cb], axis=-1)


def _limb_band(keypoints: np.ndarray, joints: Sequence[str], radius: float, shape: Sequence[int]) -> np.ndarray:
    """Pixels within ``radius`` of the polyline through the found ``joints`` (stops at the first missing one)."""
    points = []
    for name in joints:
        p = _point(keypoints, name)
        if p is None:
            break
        points.append(p)
    band = np.zeros(shape[:2], bool)
    if len(points) < 2:
        return band
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    for a, b in zip(points[:-1], points[1:]):
        d = b - a
        along = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / max(float(d @ d), 1e-9), 0, 1)
        band |= (xs - a[0] - along * d[0]) ** 2 + (ys - a[1] - along * d[1]) ** 2 <= radius ** 2
    return band


def _face_chroma(keypoints: np.ndarray, ycrcb: np.ndarray, person: np.ndarray, radius: float) -> Optional[np.ndarray]:
    """The median (Cr, Cb) of the person's face: the skin colour to look for on the limbs."""
    nose = _point(keypoints, 'nose')
    if nose is None:
        return None
    ys, xs = np.mgrid[0:person.shape[0], 0:person.shape[1]]
    face = ((xs - nose[0]) ** 2 + (ys - nose[1]) ** 2 <= radius ** 2) & person
    if face.sum() < 4:
        return None
    return np.median(ycrcb[face][:, 1:], axis=0)


def limb_skin_map(analysis: Analysis, rgb: np.ndarray,
                  limbs: Dict[str, Sequence[str]]) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(limb pixels, skin pixels among them) as H x W bool maps, or None when they cannot be told.

    The limbs are bands along shoulder-elbow-wrist (or hip-knee-ankle) inside the person mask;
    their width and the face patch scale with the shoulder width. Skin is judged on chroma
    (Cr, Cb) against the face's own, so it follows each person's skin tone and ignores shading.
    """
    keypoints = _person(analysis)
    if keypoints is None:
        return None
    shoulders = [_point(keypoints, n) for n in ('right_shoulder', 'left_shoulder')]
    if any(s is None for s in shoulders):
        return None
    scale = float(np.linalg.norm(shoulders[0] - shoulders[1]))
    person = np.asarray(analysis.mask) > MASK_THRESHOLD
    ycrcb = _ycrcb(rgb)
    skin_chroma = _face_chroma(keypoints, ycrcb, person, radius=0.15 * scale)
    if skin_chroma is None:
        return None
    band = np.zeros(person.shape, bool)
    for joints in limbs.values():
        band |= _limb_band(keypoints, joints, 0.12 * scale, person.shape)
    band &= person
    if band.sum() < 8:
        return None
    skin = band & (np.linalg.norm(ycrcb[..., 1:] - skin_chroma, axis=-1) <= SKIN_CHROMA_DISTANCE)
    return band, skin


def limb_skin(analysis: Analysis, rgb: np.ndarray, limbs: Dict[str, Sequence[str]]) -> float:
    """The share of the limbs' pixels whose colour is the face's skin colour (0-1; see :func:`limb_skin_map`)."""
    found = limb_skin_map(analysis, rgb, limbs)
    return math.nan if found is None else float(found[1].sum() / found[0].sum())


# ----------------------------------------------------------------------------
# The named scorers


SCORERS: Dict[str, BodyScorer] = {s.name: s for s in (
    BodyScorer('arm_raise', 'mean of both arms, degrees from hanging: 0 down, 90 level, 180 up',
               lambda a, rgb: _nanmean([arm_raise(a, 'right'), arm_raise(a, 'left')])),
    BodyScorer('right_arm_raise', "the person's right arm alone, degrees", lambda a, rgb: arm_raise(a, 'right')),
    BodyScorer('left_arm_raise', "the person's left arm alone, degrees", lambda a, rgb: arm_raise(a, 'left')),
    BodyScorer('leg_spread', 'angle between the legs, degrees', lambda a, rgb: leg_spread(a)),
    BodyScorer('stance_width', 'ankles apart, in torso lengths', lambda a, rgb: stance_width(a)),
    BodyScorer('lean', "torso tilt, degrees, + toward the image's right", lambda a, rgb: lean(a)),
    BodyScorer('frame_fill', 'share of the image the person covers, 0-1', lambda a, rgb: frame_fill(a)),
    BodyScorer('arm_skin', 'skin seen along the arms, 0-1: short sleeves high', lambda a, rgb: limb_skin(a, rgb, _ARMS)),
    BodyScorer('leg_skin', 'skin seen along the legs, 0-1: short hems high', lambda a, rgb: limb_skin(a, rgb, _LEGS)),
)}


def describe() -> str:
    """'name: what it measures; ...' for help texts."""
    return '; '.join(f'{s.name}: {s.description}' for s in SCORERS.values())


class ImageScorer:
    """A named scorer as ``edit.compute`` calls one: images uint8 [N, H, W, 3] -> float64 [N] (NaN: not measured).

    The backend (MediaPipe by default) starts on the first call and serves every later one.
    """

    def __init__(self, name: str, backend: Optional[object] = None):
        if name not in SCORERS:
            raise InputError(f'unknown scorer {name!r}; scorers: {", ".join(SCORERS)}', param='scorer_spec')
        self.scorer = SCORERS[name]
        self.backend = backend

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if self.backend is None:
            from aligner.backends import make_backend
            self.backend = make_backend()
        scores = np.empty(len(images), np.float64)
        for i, rgb in enumerate(images):
            rgb = np.ascontiguousarray(rgb[..., :3])
            scores[i] = self.scorer.measure(self.backend.analyse(rgb), rgb)
        return scores


def make_scorer(name: str, backend: Optional[object] = None) -> ImageScorer:
    """The named scorer (see :data:`SCORERS`), measuring through ``backend`` (default: MediaPipe, made on first use)."""
    return ImageScorer(name, backend)


def measure_all(rgb: np.ndarray, backend: object) -> Dict[str, float]:
    """Every scorer's value on one image (one backend pass)."""
    rgb = np.ascontiguousarray(np.asarray(rgb)[..., :3])
    analysis = backend.analyse(rgb)
    return {name: s.measure(analysis, rgb) for name, s in SCORERS.items()}


# ----------------------------------------------------------------------------
# Looking at what a scorer sees: python -m edit.scorers PHOTO... [--figure PNG]


_SKELETON = (('right_shoulder', 'right_elbow'), ('right_elbow', 'right_wrist'), ('left_shoulder', 'left_elbow'),
             ('left_elbow', 'left_wrist'), ('right_hip', 'right_knee'), ('right_knee', 'right_ankle'),
             ('left_hip', 'left_knee'), ('left_knee', 'left_ankle'), ('right_shoulder', 'left_shoulder'),
             ('right_hip', 'left_hip'), ('neck', 'right_hip'), ('neck', 'left_hip'))


def annotate(rgb: np.ndarray, analysis: Analysis, values: Dict[str, float], height: int = 200) -> np.ndarray:
    """The photo at ``height`` with the limbs' skin (green) and covered (red) pixels tinted, the skeleton
    drawn, and the arm/leg values written under it."""
    import PIL.Image
    import PIL.ImageDraw
    image = np.asarray(rgb, np.float64).copy()
    for limbs in (_ARMS, _LEGS):
        found = limb_skin_map(analysis, rgb, limbs)
        if found is not None:
            band, skin = found
            image[band & ~skin] = 0.45 * image[band & ~skin] + 0.55 * np.array([230, 40, 40])
            image[skin] = 0.45 * image[skin] + 0.55 * np.array([40, 200, 60])
    scale = height / rgb.shape[0]
    width = max(1, int(round(rgb.shape[1] * scale)))
    picture = PIL.Image.fromarray(image.clip(0, 255).astype(np.uint8)).resize((width, height), PIL.Image.BILINEAR)
    canvas = PIL.Image.new('RGB', (max(width, 96), height + 40), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    draw = PIL.ImageDraw.Draw(canvas)
    keypoints = _person(analysis)
    if keypoints is not None:
        for a, b in _SKELETON:
            pa, pb = _point(keypoints, a), _point(keypoints, b)
            if pa is not None and pb is not None:
                draw.line([tuple(pa * scale), tuple(pb * scale)], fill=(255, 220, 0), width=2)

    def fmt(name, digits):
        value = values.get(name, math.nan)
        return '-' if math.isnan(value) else f'{value:.{digits}f}'
    draw.text((2, height + 2), f'arm_skin {fmt("arm_skin", 2)}', fill=(0, 0, 0))
    draw.text((2, height + 14), f'leg_skin {fmt("leg_skin", 2)}', fill=(0, 0, 0))
    draw.text((2, height + 26), f'arm_raise {fmt("arm_raise", 0)}', fill=(0, 0, 0))
    return np.asarray(canvas)


@click.command(cls=commands.Command)
@click.argument('photos', nargs=-1, required=True)
@click.option('--figure', default=None, metavar='PNG', help='Also draw what the skin scorers see, photos side by side')
@commands.user_errors
def cli(photos, figure):
    """Every body scorer's value on PHOTOS, measured as `edit.compute --scorer` measures samples."""
    from aligner.backends import make_backend
    from dnnlib.atomic import save_image
    from stylegan_human.photos import load_photo
    from stylegan_human.batch_report import ITEM_FAILURES
    backend = make_backend()
    panels, failed = [], 0
    click.echo('photo\t' + '\t'.join(SCORERS))
    try:
        for path in photos:
            try:
                rgb = np.ascontiguousarray(load_photo(path)[..., :3])
            except ITEM_FAILURES as err:   # a bad photo is reported and the others still measured
                click.echo(f'Error: {err}' if path in str(err) else f'Error: {path}: {err}', err=True)
                failed += 1
                continue
            analysis = backend.analyse(rgb)
            values = {name: s.measure(analysis, rgb) for name, s in SCORERS.items()}
            click.echo(path + '\t' + '\t'.join('nan' if math.isnan(v) else f'{v:.3f}' for v in values.values()))
            if figure:
                panels.append(annotate(rgb, analysis, values))
    finally:
        backend.close()
    if figure and panels:
        height = max(p.shape[0] for p in panels)
        padded = [np.pad(p, ((0, height - p.shape[0]), (0, 4), (0, 0)), constant_values=255) for p in panels]
        save_image(np.concatenate(padded, axis=1)[:, :-4], figure)
        click.echo(f'wrote {figure}')
    if failed:
        raise SystemExit(1)

if __name__ == '__main__':
    from stylegan_human import runtime
    runtime.start_script()
    cli()  # pylint: disable=no-value-for-parameter
