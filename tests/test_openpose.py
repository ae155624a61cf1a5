"""openpose/: decoding synthetic maps into known people, the network's weight layout, loader errors."""

import numpy as np
import pytest
import torch

import openpose
from openpose import (COCO18_NAMES, LIMB_PAF_CHANNELS, LIMBS, Body, BodyPoseNet, OpenPoseWeightsError,
                      decode_people, load_body_weights, published_state_dict)
from openpose.body import pad_right_bottom

# A standing person as offsets from a centre point, COCO-18 order, in pixels.
SKELETON = np.array([
    (0, -40), (0, -26), (-12, -26), (-16, -8), (-18, 8), (12, -26), (16, -8), (18, 8),
    (-8, 10), (-9, 30), (-10, 50), (8, 10), (9, 30), (10, 50), (-4, -44), (4, -44), (-9, -42), (9, -42),
], dtype=np.float64)


def person_at(cx, cy, drop=()):
    """{part: (x, y)} for a standing person centred at (cx, cy), without the parts in drop."""
    return {p: (cx + dx, cy + dy) for p, (dx, dy) in enumerate(SKELETON) if p not in drop}


def render(people, size=(200, 320), blob_sigma=2.5, limb_width=3.0, peak=1.0, paf_norm=1.0):
    """Ideal network output for people given as {part: (x, y)}: heatmap [H, W, 19], paf [H, W, 38].

    Each part is a Gaussian blob of height ``peak``; each limb whose two ends exist is a
    band ``limb_width`` px either side of the segment holding the unit direction
    (times ``paf_norm``) in that limb's two PAF channels.
    """
    height, width = size
    ys, xs = np.mgrid[:height, :width].astype(np.float64)
    heatmap = np.zeros((height, width, 19))
    paf = np.zeros((height, width, 38))
    for parts in people:
        for part, (x, y) in parts.items():
            blob = peak * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * blob_sigma ** 2))
            heatmap[:, :, part] = np.maximum(heatmap[:, :, part], blob)
        for (a, b), (cx, cy) in zip(LIMBS, LIMB_PAF_CHANNELS):
            if a not in parts or b not in parts:
                continue
            start, end = np.array(parts[a]), np.array(parts[b])
            length = np.linalg.norm(end - start)
            u = (end - start) / length
            along = (xs - start[0]) * u[0] + (ys - start[1]) * u[1]
            across = np.abs(-(xs - start[0]) * u[1] + (ys - start[1]) * u[0])
            band = (along >= 0) & (along <= length) & (across <= limb_width)
            paf[band, cx] = u[0] * paf_norm
            paf[band, cy] = u[1] * paf_norm
    heatmap[:, :, 18] = 1 - heatmap[:, :, :18].max(axis=2)
    return heatmap, paf


def assert_same_people(found, expected):
    """Each expected person is decoded exactly once, with exactly its parts (within 1 px)."""
    assert len(found) == len(expected)
    unmatched = list(found)
    for parts in expected:
        # The decoded person holding this person's first part, then all of it must agree.
        first = min(parts)
        match = [p for p in unmatched if np.abs(p.keypoints[first, :2] - parts[first]).max() <= 1]
        assert len(match) == 1, f'person with {COCO18_NAMES[first]} at {parts[first]} not found once'
        person = match[0]
        unmatched.remove(person)
        assert person.num_parts == len(parts)
        assert sorted(np.flatnonzero(person.found)) == sorted(parts)
        for part in range(18):
            if part in parts:
                np.testing.assert_allclose(person.keypoints[part, :2], parts[part], atol=1)
                assert person.keypoints[part, 2] > 0.9
            else:
                np.testing.assert_array_equal(person.keypoints[part], [-1, -1, 0])


# ----------------------------------------------------------------------------
# Decoding


@pytest.mark.parametrize('centres', [
    [(160, 95)],
    [(80, 95), (230, 100)],
    [(55, 95), (160, 100), (265, 98)],
], ids=['one', 'two', 'three'])
def test_decode_recovers_people(centres):
    people = [person_at(cx, cy) for cx, cy in centres]
    found = decode_people(*render(people))
    assert_same_people(found, people)
    for person in found:
        assert isinstance(person, openpose.Person) and person.keypoints.shape == (18, 3)
        # 18 part scores of 1 plus 17 limb scores of about 1 (the shoulder-ear limbs add nothing).
        assert 30 < person.score < 36


def test_decode_person_with_missing_parts():
    partial = person_at(230, 100, drop=(6, 7, 10, 16, 17))   # left elbow and wrist, right ankle, ears
    people = [person_at(80, 95), partial]
    assert_same_people(decode_people(*render(people)), people)


def test_decode_empty_image():
    heatmap, paf = render([])
    assert decode_people(heatmap, paf) == []
    assert openpose.find_peaks(heatmap) == [[] for _ in range(18)]


def test_decode_assigns_limbs_by_paf_not_distance():
    # A's left arm is raised; B's left wrist ends right next to A's left elbow. The
    # nearest wrist to A's elbow is B's, but the fields say which wrist belongs to whom.
    a = person_at(100, 100)
    b = person_at(175, 100)
    a[6], a[7] = (116, 78), (118, 40)       # A: elbow up at shoulder height, wrist above the head
    b[6], b[7] = (170, 88), (125, 84)       # B: forearm reaching left, across to A's elbow
    wrists = np.array([a[7], b[7]])
    nearest = np.argmin(np.linalg.norm(wrists - a[6], axis=1))
    assert nearest == 1, 'test layout: the nearest wrist to A\'s elbow should be B\'s'
    assert_same_people(decode_people(*render([a, b])), [a, b])


@pytest.mark.parametrize('parts, peak, paf_norm, kept', [
    ((1, 2, 3), 1.0, 1.0, False),           # 3 parts: too few
    ((1, 2, 3, 4), 1.0, 1.0, True),         # 4 parts: enough
    ((1, 2, 3, 4, 5), 0.3, 0.1, False),     # mean score (5 * 0.3 + 4 * 0.1) / 5 = 0.38 < 0.4
    ((1, 2, 3, 4, 5), 0.3, 0.2, True),      # (5 * 0.3 + 4 * 0.2) / 5 = 0.46
])
def test_decode_prunes_like_upstream(parts, peak, paf_norm, kept):
    person = {p: xy for p, xy in person_at(160, 95).items() if p in parts}
    found = decode_people(*render([person], peak=peak, paf_norm=paf_norm))
    assert len(found) == int(kept)
    if kept:
        assert found[0].num_parts == len(parts)
        # Part scores plus limb scores (a little under paf_norm: joints share PAF pixels).
        limbs = len(parts) - 1
        assert 0 <= len(parts) * peak + limbs * paf_norm - found[0].score < 0.1 * limbs


def test_decode_rejects_mismatched_maps():
    heatmap, paf = render([])
    with pytest.raises(ValueError, match='differ in size'):
        decode_people(heatmap, paf[:-1])


# ----------------------------------------------------------------------------
# Network and weights


def _published_random_weights():
    """A state dict in body_pose_model.pth's layout with small random tensors."""
    with torch.device('meta'):
        layout = published_state_dict(BodyPoseNet().state_dict())
    gen = torch.Generator().manual_seed(0)
    weights = {}
    for key, ref in layout.items():
        fan_in = ref[0].numel() if ref.ndim == 4 else 1
        weights[key] = torch.randn(ref.shape, generator=gen) * fan_in ** -0.5
    return weights


@pytest.fixture(scope='module')
def published_weights():
    return _published_random_weights()


@pytest.fixture(scope='module')
def weights_file(tmp_path_factory, published_weights):
    path = tmp_path_factory.mktemp('openpose') / 'body_pose_model.pth'
    torch.save(published_weights, path)
    return path


def test_published_key_layout():
    with torch.device('meta'):
        layout = published_state_dict(BodyPoseNet().state_dict())
    # Names and shapes as stored in pytorch-openpose's body_pose_model.pth (Caffe layer names).
    expected = {
        'conv1_1.weight': [64, 3, 3, 3],
        'conv4_4_CPM.weight': [128, 256, 3, 3],
        'conv5_1_CPM_L1.weight': [128, 128, 3, 3],
        'conv5_5_CPM_L1.weight': [38, 512, 1, 1],
        'conv5_5_CPM_L2.bias': [19],
        'Mconv1_stage2_L2.weight': [128, 185, 7, 7],
        'Mconv7_stage6_L1.weight': [38, 128, 1, 1],
        'Mconv7_stage6_L2.weight': [19, 128, 1, 1],
    }
    for key, shape in expected.items():
        assert list(layout[key].shape) == shape, key
    # Every convolution has a weight and a bias, and nothing else has parameters:
    # 10 VGG + 2 CPM + 2 x 5 (stage 1) + 2 x 5 x 7 (stages 2-6) convolutions.
    assert len(layout) == 2 * (12 + 10 + 70)
    assert all(not k.startswith('model') for k in layout)


def test_network_shapes(published_weights):
    net = load_body_weights(published_weights)
    with torch.no_grad():
        paf, heatmap = net(torch.zeros(2, 3, 24, 16))
    assert paf.shape == (2, 38, 3, 2) and heatmap.shape == (2, 19, 3, 2)


def test_both_key_layouts_load(published_weights):
    net = load_body_weights(published_weights)
    module_layout = net.state_dict()
    assert 'model0.conv1_1.weight' in module_layout and 'model6_2.Mconv7_stage6_L2.bias' in module_layout
    torch.testing.assert_close(module_layout['model6_2.Mconv7_stage6_L2.weight'],
                               published_weights['Mconv7_stage6_L2.weight'], rtol=0, atol=0)
    again = load_body_weights(module_layout)
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for got, want in zip(again(x), net(x)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    # nn.Module.load_state_dict takes the published layout as stored, too.
    with torch.device('meta'):
        fresh = BodyPoseNet()
    fresh.load_state_dict(published_weights, assign=True)
    torch.testing.assert_close(fresh.model3_1.Mconv2_stage3_L1.weight, published_weights['Mconv2_stage3_L1.weight'])


def test_heatmap_relu_matches_upstream_quirk(published_weights):
    state = dict(published_weights, **{'Mconv7_stage6_L2.bias': torch.full((19,), -10.0)})   # negative heatmaps
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        upstream = load_body_weights(state)(x)[1]
        caffe = load_body_weights(state, heatmap_relu=False)(x)[1]
    assert upstream.min() == 0 and caffe.max() < 0


def test_body_runs_on_small_image(weights_file):
    body = Body(weights_file, device='cpu', boxsize=64)
    rgb = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    heatmap, paf = body.maps(rgb)
    assert heatmap.shape == (64, 96, 19) and paf.shape == (64, 96, 38)
    assert np.isfinite(heatmap).all() and np.isfinite(paf).all()
    people = body(rgb)
    assert isinstance(people, list) and all(isinstance(p, openpose.Person) for p in people)


def test_body_preprocessing_and_resize(weights_file, monkeypatch):
    """RGB -> BGR, /256 - 0.5, grey padding; output maps come back at the photo's size and place."""
    body = Body(weights_file, boxsize=40, scale_search=[1.0])
    seen = []

    def fake_net(x):
        seen.append(x)
        # "Heatmap": channel 0 of each part is the stride-8 mean of the input's blue channel.
        pooled = torch.nn.functional.avg_pool2d(x[:, :1] + 0.5, 8)
        return pooled.repeat(1, 38, 1, 1), pooled.repeat(1, 19, 1, 1)

    monkeypatch.setattr(body, 'net', fake_net)
    rgb = np.zeros((60, 45, 3), dtype=np.uint8)
    rgb[40:52, 30:42, 2] = 255                  # a blue square, lower right
    heatmap, paf = body.maps(rgb)
    x = seen[0]
    # 60x45 photo at boxsize 40 -> 40x30, padded to 40x32.
    assert x.shape == (1, 3, 40, 32)
    assert x[0, 0].max() == pytest.approx(255 / 256 - 0.5) and x[0, 2, :, :30].max() < 0   # blue first (BGR)
    assert torch.all(x[0, :, :, 30:] == 128 / 256 - 0.5)                          # grey padding on the right
    assert heatmap.shape == (60, 45, 19) and paf.shape == (60, 45, 38)
    y, x_ = np.unravel_index(np.argmax(heatmap[:, :, 0]), heatmap.shape[:2])
    assert 36 <= y <= 56 and 26 <= x_ <= 45


def test_pad_right_bottom():
    padded = pad_right_bottom(np.zeros((9, 16, 3), np.uint8), 8, 128)
    assert padded.shape == (16, 16, 3)
    assert (padded[9:] == 128).all() and (padded[:9] == 0).all()


# ----------------------------------------------------------------------------
# Errors


def _write_text(path):
    path.write_text('not weights\n')


def _write_wrong_key(path):
    # Right shapes, one key renamed; zero-stride views keep the file tiny.
    with torch.device('meta'):
        layout = published_state_dict(BodyPoseNet().state_dict())
    weights = {k: torch.zeros(()).expand(v.shape) for k, v in layout.items()}
    weights['conv1_1_typo.weight'] = weights.pop('conv1_1.weight')
    torch.save(weights, path)


def _write_truncated(path):
    torch.save({'conv1_1.weight': torch.zeros(64, 3, 3, 3)}, path)
    path.write_bytes(path.read_bytes()[:200])


@pytest.mark.parametrize('make, says', [
    (None, 'not found'),
    (_write_text, 'not a readable PyTorch weights file'),
    (_write_truncated, 'not a readable PyTorch weights file'),
    (_write_wrong_key, 'missing conv1_1.weight'),
], ids=['missing', 'text', 'truncated', 'wrong-key'])
def test_body_weight_errors(tmp_path, make, says):
    path = tmp_path / 'body_pose_model.pth'
    if make is not None:
        make(path)
    with pytest.raises(OpenPoseWeightsError) as info:
        Body(path)
    message = str(info.value)
    assert '\n' not in message and str(path) in message and says in message
    assert 'body_pose_model.pth from https://' in message and '--openpose-weights' in message
    assert isinstance(info.value, ValueError)


def test_wrong_shape_is_reported():
    with torch.device('meta'):
        state = BodyPoseNet().state_dict()
    state['model6_1.Mconv7_stage6_L1.weight'] = torch.zeros(19, 128, 1, 1)
    with pytest.raises(OpenPoseWeightsError, match=r'Mconv7_stage6_L1.weight has shape \[19, 128, 1, 1\]'):
        load_body_weights(state)
