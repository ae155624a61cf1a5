"""From OpenPose heatmaps and part affinity fields to people (numpy/scipy only).

The steps and constants are those of the OpenPose body demo as ported by
pytorch-openpose, which upstream StyleGAN-Human runs, so the same maps give the same
people:

1. :func:`find_peaks`: smooth each part heatmap (Gaussian, sigma 3) and keep local
   maxima (4-neighbourhood) above ``thre1``; the score is the unsmoothed heatmap value.
2. :func:`connect_limbs`: for each of the 19 limbs, score every pair of candidate
   end points by the mean dot product of the PAF with the segment direction at
   ``mid_num`` evenly spaced samples, plus a penalty for segments longer than half the
   image height; keep pairs whose samples are > ``thre2`` for more than 80 % of the
   samples, then match greedily, best score first, each candidate used once.
3. :func:`group_people`: walk the limbs in order, growing people from shared end
   points, merging two partial people joined by a limb when they share no part.
4. Drop people with fewer than 4 parts or a mean score below 0.4.

Maps are channel-last, ``[H, W, C]`` in image pixels (as they come out of the
resize in :class:`openpose.Body`). Keypoints are (x, y) pixel coordinates.
"""

import dataclasses

import numpy as np
from scipy.ndimage import gaussian_filter

COCO18_NAMES = ('nose', 'neck', 'right_shoulder', 'right_elbow', 'right_wrist', 'left_shoulder', 'left_elbow',
                'left_wrist', 'right_hip', 'right_knee', 'right_ankle', 'left_hip', 'left_knee', 'left_ankle',
                'right_eye', 'left_eye', 'right_ear', 'left_ear')
NUM_PARTS = 18

# Limbs as (part A, part B) in the order they are connected and grouped. The order
# matters: grouping starts people only on the first 17 limbs (the last two,
# shoulder-ear, can only join parts to an existing person).
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17))
# PAF channels (x, y) of each limb above, in the network's 38-channel output.
LIMB_PAF_CHANNELS = ((12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3), (4, 5), (6, 7),
                     (8, 9), (10, 11), (28, 29), (30, 31), (34, 35), (32, 33), (36, 37), (18, 19), (26, 27))
_STARTING_LIMBS = 17

# Missing parts in Person.keypoints.
MISSING_XY = -1.0


@dataclasses.dataclass(eq=False)   # compared by identity: numpy fields have no truth value
class Person:
    """One detected person.

    keypoints: float array [18, 3] of (x, y, score) in COCO-18 order (:data:`COCO18_NAMES`);
        a part that was not found is (-1, -1, 0).
    score: sum of the part scores and of the limb (PAF) scores that joined them.
    num_parts: number of parts found.
    """
    keypoints: np.ndarray
    score: float
    num_parts: int

    @property
    def found(self):
        """Boolean [18]: which parts were found."""
        return self.keypoints[:, 0] != MISSING_XY


def find_peaks(heatmaps, threshold=0.1, sigma=3.0):
    """Part candidates: per part, a list of (x, y, score, id) with ids unique over all parts.

    heatmaps: [H, W, C>=18]; channels past the 18th (background) are ignored.
    Candidates of one part come in row-major order (top to bottom, then left to right).
    """
    heatmaps = np.asarray(heatmaps)
    peaks = []
    next_id = 0
    for part in range(NUM_PARTS):
        raw = heatmaps[:, :, part]
        smooth = gaussian_filter(raw, sigma=sigma)
        # A peak is >= its four neighbours; outside the image counts as 0.
        padded = np.pad(smooth, 1)
        is_peak = ((smooth >= padded[:-2, 1:-1]) & (smooth >= padded[2:, 1:-1]) &
                   (smooth >= padded[1:-1, :-2]) & (smooth >= padded[1:-1, 2:]) & (smooth > threshold))
        ys, xs = np.nonzero(is_peak)
        found = [(int(x), int(y), float(raw[y, x]), next_id + n) for n, (x, y) in enumerate(zip(xs, ys))]
        peaks.append(found)
        next_id += len(found)
    return peaks


def _pair_scores(cand_a, cand_b, paf_x, paf_y, image_height, thre2, mid_num):
    """Scores [nA, nB] of every candidate pair (with distance prior) and the acceptance mask."""
    a = np.array([c[:2] for c in cand_a], dtype=np.float64)[:, None, :]   # [nA, 1, 2]
    b = np.array([c[:2] for c in cand_b], dtype=np.float64)[None, :, :]   # [1, nB, 2]
    vec = b - a
    norm = np.maximum(np.sqrt((vec ** 2).sum(-1)), 1e-3)                 # [nA, nB]
    unit = vec / norm[..., None]
    # Sample points (linspace end to end, rounded half to even like Python's round()).
    start, stop = np.broadcast_arrays(a, b)
    pts = np.rint(np.linspace(start, stop, mid_num)).astype(np.int64)    # [mid, nA, nB, 2]
    dots = paf_x[pts[..., 1], pts[..., 0]] * unit[..., 0] + paf_y[pts[..., 1], pts[..., 0]] * unit[..., 1]
    # Limbs longer than half the image height are penalised, shorter ones are not.
    score = dots.mean(0) + np.minimum(0.5 * image_height / norm - 1, 0)
    ok = ((dots > thre2).sum(0) > 0.8 * mid_num) & (score > 0)
    return score, ok


def connect_limbs(peaks, paf, image_height=None, thre2=0.05, mid_num=10):
    """Match candidates into limbs using the part affinity fields.

    peaks: output of :func:`find_peaks`. paf: [H, W, 38]. image_height: for the
    distance prior (defaults to the PAF height).
    Returns one float array per limb (:data:`LIMBS` order), rows
    (id A, id B, limb score, index in A's candidates, index in B's candidates); empty
    [0, 5] when no pair qualifies, or None when either part has no candidate.
    """
    paf = np.asarray(paf)
    image_height = paf.shape[0] if image_height is None else image_height
    connections = []
    for (part_a, part_b), (ch_x, ch_y) in zip(LIMBS, LIMB_PAF_CHANNELS):
        cand_a, cand_b = peaks[part_a], peaks[part_b]
        if not cand_a or not cand_b:
            connections.append(None)
            continue
        score, ok = _pair_scores(cand_a, cand_b, paf[:, :, ch_x], paf[:, :, ch_y], image_height, thre2, mid_num)
        ii, jj = np.nonzero(ok)   # row-major, the reference's candidate order
        order = np.argsort(-score[ii, jj], kind='stable')
        rows, used_a, used_b = [], set(), set()
        for i, j in zip(ii[order], jj[order]):
            if i in used_a or j in used_b:
                continue
            rows.append((cand_a[i][3], cand_b[j][3], score[i, j], i, j))
            used_a.add(i)
            used_b.add(j)
            if len(rows) >= min(len(cand_a), len(cand_b)):
                break
        connections.append(np.array(rows, dtype=np.float64).reshape(-1, 5))
    return connections


def group_people(peaks, connections, min_parts=4, min_mean_score=0.4):
    """Assemble limbs into people.

    Returns a float array [P, 20]: columns 0-17 hold the candidate id of each part
    (-1: missing), column 18 the total score, column 19 the number of parts. People
    with fewer than ``min_parts`` parts or a total score per part below
    ``min_mean_score`` are dropped.
    """
    cand_score = {c[3]: c[2] for part in peaks for c in part}
    people = np.full((0, NUM_PARTS + 2), -1.0)
    for k, ((part_a, part_b), conn) in enumerate(zip(LIMBS, connections)):
        if conn is None:
            continue
        for id_a, id_b, limb_score, _, _ in conn:
            # People already holding either end of this limb (the reference keeps two at most).
            owners = [p for p in range(len(people)) if people[p, part_a] == id_a or people[p, part_b] == id_b][:2]
            gain = cand_score[int(id_b)] + limb_score
            if len(owners) == 1:
                row = people[owners[0]]
                if row[part_b] != id_b:
                    row[part_b] = id_b
                    row[-1] += 1
                    row[-2] += gain
            elif len(owners) == 2:
                p1, p2 = owners
                shares_part = np.any((people[p1, :NUM_PARTS] >= 0) & (people[p2, :NUM_PARTS] >= 0))
                if not shares_part:
                    # Two halves of one person, joined by this limb: merge them.
                    people[p1, :NUM_PARTS] += people[p2, :NUM_PARTS] + 1   # -1 + id + 1 == id where p1 lacks it
                    people[p1, -2:] += people[p2, -2:]
                    people[p1, -2] += limb_score
                    people = np.delete(people, p2, axis=0)
                else:
                    people[p1, part_b] = id_b
                    people[p1, -1] += 1
                    people[p1, -2] += gain
            elif k < _STARTING_LIMBS:
                row = np.full(NUM_PARTS + 2, -1.0)
                row[part_a], row[part_b] = id_a, id_b
                row[-1] = 2
                row[-2] = cand_score[int(id_a)] + cand_score[int(id_b)] + limb_score
                people = np.vstack([people, row])
    keep = (people[:, -1] >= min_parts) & (people[:, -2] / np.maximum(people[:, -1], 1) >= min_mean_score)
    return people[keep]


def decode_people(heatmap, paf, thre1=0.1, thre2=0.05, sigma=3.0, mid_num=10, min_parts=4, min_mean_score=0.4,
                  image_height=None):
    """People in OpenPose maps: a list of :class:`Person`, in the reference's grouping order.

    heatmap: [H, W, 18 or 19] part heatmaps; paf: [H, W, 38] part affinity fields,
    both at image resolution. An image with nobody in it gives [].
    """
    heatmap = np.asarray(heatmap, dtype=np.float64)
    paf = np.asarray(paf, dtype=np.float64)
    if heatmap.shape[:2] != paf.shape[:2]:
        raise ValueError(f'heatmap {heatmap.shape} and paf {paf.shape} differ in size')
    peaks = find_peaks(heatmap, threshold=thre1, sigma=sigma)
    connections = connect_limbs(peaks, paf, image_height=image_height, thre2=thre2, mid_num=mid_num)
    groups = group_people(peaks, connections, min_parts=min_parts, min_mean_score=min_mean_score)
    by_id = {c[3]: c for part in peaks for c in part}
    people = []
    for row in groups:
        keypoints = np.tile(np.array([MISSING_XY, MISSING_XY, 0.0]), (NUM_PARTS, 1))
        for part in range(NUM_PARTS):
            if row[part] >= 0:
                x, y, score, _ = by_id[int(row[part])]
                keypoints[part] = (x, y, score)
        people.append(Person(keypoints=keypoints, score=float(row[-2]), num_parts=int(row[-1])))
    return people
