"""PP_HumanSeg: deploy.yaml reading, pre/postprocessing, one-line errors, and (with paddle) a real export."""

import contextlib
import os
import sys
import types

import cv2
import numpy as np
import pytest

import PP_HumanSeg
from PP_HumanSeg import deploy_config as dc
from PP_HumanSeg import predictor as pr
from PP_HumanSeg.deploy_config import Normalize, Padding, Resize, ResizeByLong

# What PaddleSeg's export.py writes (yaml.dump: block style, sorted keys) for the
# published deeplabv3p_resnet50_os8_humanseg_512x512 export.
PUBLISHED_DEPLOY = """\
Deploy:
  model: model.pdmodel
  params: model.pdiparams
  transforms:
  - target_size:
    - 512
    - 512
    type: Resize
  - type: Normalize
"""

# Hand-written style and newer PaddleSeg keys (input_shape, output_op).
HANDWRITTEN_DEPLOY = """\
# exported by hand
Deploy:
  input_shape: [-1, 3, -1, -1]
  model: "model.pdmodel"   # relative to this file
  output_op: softmax
  params: 'model.pdiparams'
  transforms:
    - type: Resize
      target_size: [398, 224]
      interp: LINEAR
    - {type: Normalize, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
"""


def write_export(folder, deploy=PUBLISHED_DEPLOY, model=b'\x0a\x00fake program', params=b'\x00' * 16):
    """A folder that passes the file checks (the model is not runnable)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'deploy.yaml'), 'w') as f:
        f.write(deploy)
    for name, data in (('model.pdmodel', model), ('model.pdiparams', params)):
        if data is not None:
            with open(os.path.join(folder, name), 'wb') as f:
                f.write(data)
    return str(folder)


def one_line_error(excinfo):
    message = str(excinfo.value)
    assert '\n' not in message and message
    return message


# ---------------------------------------------------------------------------- deploy.yaml

def test_published_deploy_yaml(tmp_path):
    cfg = dc.load_deploy_config(write_export(tmp_path / 'm'))
    assert cfg.transforms == (Resize((512, 512), 'LINEAR'), Normalize((0.5,) * 3, (0.5,) * 3))
    assert cfg.model_file == str(tmp_path / 'm' / 'model.pdmodel')
    assert cfg.params_file == str(tmp_path / 'm' / 'model.pdiparams')
    assert cfg.input_size == (512, 512) and cfg.mean == (0.5,) * 3 and cfg.std == (0.5,) * 3
    # The deploy.yaml path itself is accepted too.
    assert dc.load_deploy_config(tmp_path / 'm' / 'deploy.yaml') == cfg


def test_handwritten_deploy_yaml(tmp_path):
    cfg = dc.load_deploy_config(write_export(tmp_path, HANDWRITTEN_DEPLOY))
    assert cfg.transforms[0] == Resize((398, 224), 'LINEAR')  # (width, height)
    assert cfg.mean == (0.485, 0.456, 0.406) and cfg.std == (0.229, 0.224, 0.225)


def test_deploy_yaml_is_read_with_pyyaml(tmp_path):
    """Any YAML PaddleSeg (which itself reads it with PyYAML) could write: anchors, flow style, comments."""
    deploy = ('common: &norm {type: Normalize, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}\n'
              'Deploy:\n  model: model.pdmodel\n  params: model.pdiparams\n'
              '  transforms: [{type: Resize, target_size: [512, 512]}, *norm]   # as exported\n')
    cfg = dc.load_deploy_config(write_export(tmp_path, deploy))
    assert cfg.transforms == (Resize((512, 512), 'LINEAR'), Normalize((0.5,) * 3, (0.5,) * 3))
    assert not hasattr(dc, 'parse_simple_yaml')
    assert not os.path.exists(os.path.join(os.path.dirname(dc.__file__), 'simple_yaml.py'))


@pytest.mark.parametrize('deploy, where', [
    ('Deploy: [unclosed\n', 'line 2'),
    ('Deploy:\n  model: a\n\tparams: b\n', 'line 3'),
    ('Deploy:\n  model: "unterminated\n', 'line 3'),
])
def test_malformed_yaml_is_a_file_format_error_naming_file_and_line(tmp_path, deploy, where):
    from dnnlib.errors import FileFormatError
    write_export(tmp_path, deploy)
    with pytest.raises(FileFormatError) as excinfo:
        dc.load_deploy_config(tmp_path)
    assert isinstance(excinfo.value, dc.PaddleSegError)          # the aligner still reports it as a backend problem
    message = one_line_error(excinfo)
    assert str(tmp_path / 'deploy.yaml') in message and 'not valid YAML' in message and where in message


@pytest.mark.parametrize('deploy, expected', [
    ('Deploy: [unclosed\n', 'not valid YAML'),
    ('Model:\n  model: model.pdmodel\n', 'no "Deploy:" section'),
    ('Deploy:\n  params: model.pdiparams\n', '"Deploy: model"'),
    (PUBLISHED_DEPLOY + '  - type: RandomBlur\n', "transform 'RandomBlur' is not supported"),
    (PUBLISHED_DEPLOY.replace('  - type: Normalize\n', '  - {type: Normalize, std: [0, 1, 1]}\n'), 'std must not'),
    (PUBLISHED_DEPLOY.replace('    - 512\n    - 512\n', '    - 512\n'), 'two positive integers'),
    (PUBLISHED_DEPLOY.replace('  - type: Normalize\n', '  - {type: Normalize, scale: 2}\n'), 'unsupported or missing'),
    (PUBLISHED_DEPLOY.replace('    type: Resize\n', '    type: Resize\n    keep_ratio: true\n'), 'keep_ratio'),
    (PUBLISHED_DEPLOY.replace('    type: Resize\n', '    type: Resize\n    interp: RANDOM\n'), 'interp'),
])
def test_broken_deploy_yaml(tmp_path, deploy, expected):
    write_export(tmp_path, deploy)
    with pytest.raises(dc.PaddleSegError) as excinfo:
        dc.load_deploy_config(tmp_path)
    message = one_line_error(excinfo)
    assert expected in message and str(tmp_path / 'deploy.yaml') in message


@pytest.mark.parametrize('model, params, expected', [
    (None, b'\x00', 'model.pdmodel: model file named in'),
    (b'\x0a', None, 'model.pdiparams: params file named in'),
    (b'', b'\x00', 'model file is empty'),
    (b'<html>404</html>', b'\x00', 'not a Paddle inference model'),
    (b'version https://git-lfs.github.com/spec/v1\n', b'\x00', 'not a Paddle inference model'),
])
def test_missing_or_bad_model_files(tmp_path, model, params, expected):
    write_export(tmp_path, model=model, params=params)
    with pytest.raises(dc.PaddleSegError) as excinfo:
        dc.load_deploy_config(tmp_path)
    assert expected in one_line_error(excinfo)


def test_model_folder_missing_and_nested(tmp_path):
    missing = tmp_path / 'nope'
    with pytest.raises(dc.PaddleSegError) as excinfo:
        dc.load_deploy_config(missing)
    message = one_line_error(excinfo)
    assert str(missing) in message and '--ppseg-model' in message and dc.MODEL_URL in message
    default_message = dc.missing_model_message(PP_HumanSeg.DEFAULT_MODEL_DIR)
    assert dc.MODEL_URL in default_message and '--ppseg-model' in default_message
    # A folder without deploy.yaml ...
    (tmp_path / 'empty').mkdir()
    with pytest.raises(dc.PaddleSegError, match='has no deploy.yaml'):
        dc.load_deploy_config(tmp_path / 'empty')
    # ... but one unzipped a level too deep is found.
    write_export(tmp_path / 'outer' / dc.MODEL_NAME)
    nested = dc.load_deploy_config(tmp_path / 'outer')
    assert nested.model_file == str(tmp_path / 'outer' / dc.MODEL_NAME / 'model.pdmodel')


def test_default_model_dir_is_absolute_under_package():
    package = os.path.dirname(os.path.abspath(PP_HumanSeg.__file__))
    assert PP_HumanSeg.DEFAULT_MODEL_DIR == os.path.join(package, 'export_model', dc.MODEL_NAME)


# ---------------------------------------------------------------------------- preprocessing

def make_cfg(*transforms):
    return dc.DeployConfig(path='deploy.yaml', model_file='m', params_file='p', transforms=tuple(transforms))


def test_preprocess_normalise_numbers_and_rgb_order():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 255  # red
    rgb[0, 0] = (0, 51, 204)
    x = pr.preprocess(rgb, make_cfg(Normalize()))
    assert x.shape == (1, 3, 2, 3) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x[0, :, 0, 0], [-1.0, -0.6, 0.6], atol=1e-6)  # (v / 255 - 0.5) / 0.5
    np.testing.assert_allclose(x[0, :, 1, 2], [1.0, -1.0, -1.0], atol=1e-6)  # channel 0 stays red
    x = pr.preprocess(rgb, make_cfg(Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))))
    np.testing.assert_allclose(x[0, :, 0, 0], [-0.485 / 0.229, (0.2 - 0.456) / 0.224, (0.8 - 0.406) / 0.225],
                               rtol=1e-5)


def test_preprocess_resize_is_width_height_on_float_pixels():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    x = pr.preprocess(rgb, make_cfg(Resize((16, 24)), Normalize()))
    assert x.shape == (1, 3, 24, 16)  # target_size is (width, height)
    expected = cv2.resize(rgb.astype(np.float32), (16, 24), interpolation=cv2.INTER_LINEAR) / 127.5 - 1
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), expected, atol=1e-5)


def test_preprocess_resize_by_long_and_padding():
    rgb = np.full((30, 60, 3), 255, np.uint8)
    x = pr.preprocess(rgb, make_cfg(ResizeByLong(20), Padding((24, 16)), Normalize()))
    assert x.shape == (1, 3, 16, 24)
    np.testing.assert_allclose(x[0, :, :10, :20], 1.0, atol=1e-6)
    np.testing.assert_allclose(x[0, :, 10:, :], 0.0, atol=1e-6)  # padded with 127.5 -> 0 after Normalize
    np.testing.assert_allclose(x[0, :, :, 20:], 0.0, atol=1e-6)
    with pytest.raises(dc.PaddleSegError, match='larger than the deploy.yaml Padding'):
        pr.preprocess(rgb, make_cfg(Padding((24, 16))))


# ---------------------------------------------------------------------------- postprocessing

def softmax_output(person):
    """[1, 2, h, w] probabilities with channel 1 = ``person``."""
    person = np.asarray(person, np.float32)
    return np.stack([1 - person, person])[np.newaxis]


def test_postprocess_picks_person_channel_and_resizes_to_image():
    out = softmax_output(np.full((512, 512), 0.8))
    out[0, 0] = 0.2
    mask = pr.postprocess(out, (1024, 512), make_cfg(Resize((512, 512)), Normalize()))
    assert mask.shape == (1024, 512) and mask.dtype == np.float32
    np.testing.assert_allclose(mask, 0.8, atol=1e-6)
    # Left half person at network resolution -> left half person in the photo (W=300, H=200).
    person = np.zeros((64, 64), np.float32)
    person[:, :32] = 1
    mask = pr.postprocess(softmax_output(person), (200, 300), make_cfg(Resize((64, 64))))
    assert mask.shape == (200, 300)
    assert mask[:, :140].min() > 0.99 and mask[:, 160:].max() < 0.01


def test_postprocess_matches_upstream_argmax_of_resized_probabilities():
    rng = np.random.default_rng(1)
    out = softmax_output(rng.random((32, 32)))
    mask = pr.postprocess(out, (70, 45), make_cfg(Resize((32, 32))))
    both = np.stack([cv2.resize(out[0, c], (45, 70), interpolation=cv2.INTER_LINEAR) for c in range(2)])
    np.testing.assert_array_equal(mask > 0.5, both.argmax(0) == 1)


def test_postprocess_other_output_layouts():
    labels = np.zeros((1, 8, 8), np.int64)
    labels[0, 2:6, 2:6] = 1
    mask = pr.postprocess(labels, (8, 8))  # argmax export: [N, h, w] labels
    np.testing.assert_array_equal(mask, labels[0].astype(np.float32))
    single = np.full((1, 1, 4, 4), 0.25, np.float32)
    np.testing.assert_allclose(pr.postprocess(single, (8, 8)), 0.25)
    logits = np.zeros((1, 2, 4, 4), np.float32)
    logits[0, 1] = np.log(3.0)  # softmax -> 3 / (1 + 3)
    np.testing.assert_allclose(pr.person_probability(logits), 0.75, atol=1e-6)
    with pytest.raises(ValueError, match='output shape'):
        pr.person_probability(np.zeros((1, 1, 1, 2, 2)))


def test_postprocess_undoes_padding_then_resize():
    # 30x60 photo -> ResizeByLong(20) -> 10x20 -> Padding to 16x24: the person map
    # covers exactly the unpadded 10x20 area.
    cfg = make_cfg(ResizeByLong(20), Padding((24, 16)), Normalize())
    person = np.zeros((16, 24), np.float32)
    person[:10, :20] = 1
    mask = pr.postprocess(softmax_output(person), (30, 60), cfg)
    assert mask.shape == (30, 60)
    np.testing.assert_allclose(mask, 1.0, atol=1e-6)


# ---------------------------------------------------------------------------- one-line errors

def test_paddle_missing_comes_first(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'paddle', None)
    monkeypatch.setitem(sys.modules, 'paddle.inference', None)
    with pytest.raises(PP_HumanSeg.PaddleSegError) as excinfo:
        PP_HumanSeg.HumanSegmenter(tmp_path / 'missing')
    assert one_line_error(excinfo) == pr.INSTALL_HINT
    assert 'pip install paddlepaddle' in pr.INSTALL_HINT and 'MediaPipe' in pr.INSTALL_HINT


def fake_paddle(cuda=False):
    def refuse(*args):
        raise AssertionError('the predictor should not be built')
    inference = types.SimpleNamespace(Config=refuse, create_predictor=refuse)
    return types.SimpleNamespace(is_compiled_with_cuda=lambda: cuda, inference=inference)


def test_model_folder_missing_error(tmp_path, monkeypatch):
    monkeypatch.setattr(pr, '_import_paddle', fake_paddle)
    with pytest.raises(PP_HumanSeg.PaddleSegError) as excinfo:
        PP_HumanSeg.HumanSegmenter(tmp_path / 'missing')
    message = one_line_error(excinfo)
    assert str(tmp_path / 'missing') in message and '--ppseg-model' in message and dc.MODEL_URL in message


@pytest.mark.parametrize('device, expected', [('cuda', 'no CUDA support'), ('cuda:1', 'no CUDA support'),
                                              ('tpu', 'cpu, cuda or cuda:N'), ('cuda:x', 'cpu, cuda or cuda:N')])
def test_device_errors(tmp_path, monkeypatch, device, expected):
    monkeypatch.setattr(pr, '_import_paddle', fake_paddle)
    with pytest.raises(PP_HumanSeg.PaddleSegError) as excinfo:
        PP_HumanSeg.HumanSegmenter(write_export(tmp_path), device=device)
    assert expected in one_line_error(excinfo)


def test_aligner_reports_ppseg_problems_as_backend_unavailable(tmp_path, monkeypatch):
    from aligner.backends import BackendUnavailable, make_backend
    monkeypatch.setattr(pr, '_import_paddle', fake_paddle)
    with pytest.raises(BackendUnavailable, match='not found'):
        make_backend(pose=None, segmenter='ppseg', ppseg_model=str(tmp_path / 'missing'))


# ---------------------------------------------------------------------------- with paddle

def export_red_detector(folder, model_format, head):
    """Export a 1x1-conv 'segmenter' whose person logit is 4 x the normalised red channel.

    It makes the result predictable (red = person) and shows the channel order: with
    BGR input the blue channel would drive it.
    """
    paddle = pytest.importorskip('paddle')
    import paddle.nn.functional as F

    class RedNet(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = paddle.nn.Conv2D(3, 2, 1)
            weight = np.zeros((2, 3, 1, 1), np.float32)
            weight[1, 0] = 4.0
            self.conv.weight.set_value(weight)
            self.conv.bias.set_value(np.zeros(2, np.float32))

        def forward(self, x):
            out = F.softmax(self.conv(x), axis=1)
            return paddle.argmax(out, axis=1) if head == 'argmax' else out

    net = RedNet()
    net.eval()
    if model_format == 'pdmodel' and hasattr(paddle, 'pir_utils'):
        guard = paddle.pir_utils.OldIrGuard()  # Paddle 3: the published models' legacy format
    else:
        guard = contextlib.nullcontext()
    with guard:
        spec = [paddle.static.InputSpec([None, 3, None, None], 'float32')]
        static = paddle.jit.to_static(net, input_spec=spec, full_graph=True)
        paddle.jit.save(static, os.path.join(folder, 'model'))
    # Paddle 2.x writes model.pdmodel whichever format was asked for.
    model_file = 'model.json' if os.path.exists(os.path.join(folder, 'model.json')) else 'model.pdmodel'
    with open(os.path.join(folder, 'deploy.yaml'), 'w') as f:
        f.write(PUBLISHED_DEPLOY.replace('model.pdmodel', model_file).replace('512', '32'))
    return folder


# Paddle 3.3's legacy-IR tracing rejects argmax, so the argmax head uses the new format.
@pytest.mark.parametrize('model_format, head', [('pdmodel', 'softmax'), ('json', 'softmax'), ('json', 'argmax')])
def test_end_to_end_with_paddle(tmp_path, model_format, head):
    folder = export_red_detector(str(tmp_path), model_format, head)
    segmenter = PP_HumanSeg.HumanSegmenter(folder, device='cpu')
    rgb = np.zeros((90, 45, 3), np.uint8)
    rgb[:, :20, 0] = 255  # red left part: person
    rgb[:, 20:, 2] = 255  # blue right part: background
    mask = segmenter(rgb)
    assert mask.shape == (90, 45) and mask.dtype == np.float32
    assert 0 <= mask.min() and mask.max() <= 1
    if head == 'softmax':
        np.testing.assert_allclose(mask[:, :15], 1 / (1 + np.exp(-4.0)), atol=1e-5)
        np.testing.assert_allclose(mask[:, 25:], 1 / (1 + np.exp(4.0)), atol=1e-5)
    else:
        assert mask[:, :15].min() == 1 and mask[:, 25:].max() == 0
    np.testing.assert_array_equal(segmenter.person_mask(rgb), mask)
    with pytest.raises(ValueError, match='uint8'):
        segmenter(rgb.astype(np.float32))
