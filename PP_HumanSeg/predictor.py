"""Person probability from a PaddleSeg human-segmentation export, run by Paddle Inference.

The numbers follow PaddleSeg's own inference path (``Compose`` + ``reverse_transform``):

- the network takes RGB (``Compose`` converts cv2's BGR to RGB before the transforms),
  as float32 pixel values 0-255 through the deploy.yaml transforms in order (cv2
  resizes; ``Normalize`` is ``(x / 255 - mean) / std``), then NCHW with N = 1;
- the ``*_with_softmax`` exports output ``[N, 2, h, w]`` class probabilities, channel
  1 = person; argmax exports output ``[N, h, w]`` labels, 1 = person;
- the map is brought back to the photo by undoing the transforms in reverse
  (bilinear resize back, padding cropped off). cv2's INTER_LINEAR equals Paddle's
  ``interpolate(mode='bilinear')`` (half-pixel centres) that PaddleSeg uses.

Upstream's alignment thresholds by argmax over the two resized probabilities, which is
the same as ``probability > 0.5`` here.

:func:`preprocess` and :func:`postprocess` are plain numpy + OpenCV, so they are
testable without Paddle; :class:`HumanSegmenter` adds the Paddle predictor.
"""

import os
import warnings

import cv2
import numpy as np

from .deploy_config import (DEFAULT_MODEL_DIR, LimitLong, Normalize, Padding, PaddleSegError, Resize, ResizeByLong,
                            ResizeByShort, load_deploy_config)

PERSON_CLASS = 1  # PaddleSeg human segmentation: 0 background, 1 person

_CV2_INTERP = {'NEAREST': cv2.INTER_NEAREST, 'LINEAR': cv2.INTER_LINEAR, 'CUBIC': cv2.INTER_CUBIC,
               'AREA': cv2.INTER_AREA, 'LANCZOS4': cv2.INTER_LANCZOS4}

INSTALL_HINT = ('PaddleSeg backend needs paddlepaddle: pip install paddlepaddle (CPU) or paddlepaddle-gpu; '
                'or use the default MediaPipe backend')


# ---------------------------------------------------------------------------- pre/post

def _scaled(size, target, by_long):
    """(h, w) scaled so its long (or short) side is ``target``, rounded as PaddleSeg does."""
    h, w = size
    scale = target / (max(h, w) if by_long else min(h, w))
    return int(round(h * scale)), int(round(w * scale))


def _size_after(t, size):
    """The (h, w) an image of ``size`` has after transform ``t``."""
    h, w = size
    if isinstance(t, Resize):
        return t.target_size[1], t.target_size[0]
    if isinstance(t, ResizeByLong):
        return _scaled(size, t.long_size, by_long=True)
    if isinstance(t, ResizeByShort):
        return _scaled(size, t.short_size, by_long=False)
    if isinstance(t, LimitLong):
        long_side = max(h, w)
        if t.max_long is not None and long_side > t.max_long:
            return _scaled(size, t.max_long, by_long=True)
        if t.min_long is not None and long_side < t.min_long:
            return _scaled(size, t.min_long, by_long=True)
        return size
    if isinstance(t, Padding):
        width, height = t.target_size
        if h > height or w > width:
            raise PaddleSegError(f'image of {w}x{h} is larger than the deploy.yaml Padding target {width}x{height}; '
                                 f'add a resize before Padding')
        return height, width
    return size  # Normalize


def _apply(t, img):
    if isinstance(t, Normalize):
        mean = np.asarray(t.mean, np.float32)
        std = np.asarray(t.std, np.float32)
        return (img / np.float32(255) - mean) / std
    h, w = _size_after(t, img.shape[:2])
    if isinstance(t, Padding):
        return cv2.copyMakeBorder(img, 0, h - img.shape[0], 0, w - img.shape[1], cv2.BORDER_CONSTANT,
                                  value=t.im_padding_value)
    if (h, w) == img.shape[:2]:
        return img
    interp = _CV2_INTERP[t.interp] if isinstance(t, Resize) else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp)


def preprocess(rgb, cfg):
    """RGB uint8 HxWx3 -> the network input, float32 ``[1, 3, h, w]``."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'expected an HxWx3 RGB image, got shape {rgb.shape}')
    img = rgb.astype(np.float32)  # PaddleSeg resizes float pixels, so no rounding before Normalize
    for t in cfg.transforms:
        img = _apply(t, img)
    return np.ascontiguousarray(img.transpose(2, 0, 1)[np.newaxis], dtype=np.float32)


def _looks_like_probabilities(x):
    return x.min() >= -1e-3 and x.max() <= 1 + 1e-3 and np.allclose(x.sum(axis=0), 1, atol=1e-2)


def person_probability(output):
    """The person map at the network's resolution, float32 [0, 1], from any PaddleSeg output layout.

    ``[N, C, h, w]`` with C >= 2: channel 1 (softmax is applied first when the export
    left logits); ``[N, 1, h, w]``: taken as the person probability; ``[N, h, w]`` or
    ``[h, w]`` integer labels: 1 where the label is the person class. Batch item 0.
    """
    out = np.asarray(output)
    if out.ndim == 4:
        out = out[0]
        if out.shape[0] == 1:
            out = out[0]
        else:
            out = out.astype(np.float32)
            if not _looks_like_probabilities(out):  # logits: export without softmax or argmax
                out = np.exp(out - out.max(axis=0, keepdims=True))
                out /= out.sum(axis=0, keepdims=True)
            return np.ascontiguousarray(out[PERSON_CLASS])
    elif out.ndim == 3:
        out = out[0]
    if out.ndim != 2:
        raise ValueError(f'unexpected segmentation output shape {np.shape(output)}')
    if np.issubdtype(out.dtype, np.integer) or out.dtype == bool:
        return (out == PERSON_CLASS).astype(np.float32)
    return np.clip(out, 0, 1).astype(np.float32)


def postprocess(output, image_size, cfg=None):
    """The network output -> person probability float32 HxW at ``image_size`` = (H, W).

    With ``cfg`` the deploy transforms are undone in reverse (padding cropped, resizes
    reversed); without it the map is simply resized to the image.
    """
    prob = person_probability(output)
    height, width = int(image_size[0]), int(image_size[1])
    steps = []  # (kind, (h, w) before the transform)
    size = (height, width)
    for t in (cfg.transforms if cfg is not None else ()):
        after = _size_after(t, size)
        if isinstance(t, Padding):
            steps.append(('crop', size))
        elif after != size:
            steps.append(('resize', size))
        size = after
    if prob.shape != size:  # a network whose output is not at its input size
        prob = cv2.resize(prob, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    for kind, (h, w) in reversed(steps):
        if kind == 'crop':
            prob = prob[:h, :w]
        else:
            prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
    if prob.shape != (height, width):
        prob = cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(prob, 0, 1).astype(np.float32)


# ---------------------------------------------------------------------------- Paddle

def _import_paddle():
    """paddle with paddle.inference loaded, or PaddleSegError saying how to install it."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='No ccache found')  # Paddle 3 warns on import
            import paddle
            import paddle.inference  # noqa: F401  (the predictor API)
    except ImportError as err:
        if err.name == 'paddle':
            raise PaddleSegError(INSTALL_HINT) from None
        raise PaddleSegError(f'paddlepaddle is installed but does not import ({err}); reinstall it (pip install '
                             f'--force-reinstall paddlepaddle) or use the default MediaPipe backend') from None
    except Exception as err:  # broken binary installs raise OSError and friends
        raise PaddleSegError(f'paddlepaddle does not import ({type(err).__name__}: {err}); reinstall it '
                             f'or use the default MediaPipe backend') from None
    return paddle


def _gpu_id(device, paddle):
    """None for CPU, the CUDA device index for 'cuda[:N]'; PaddleSegError otherwise."""
    name = str(device)
    if name == 'cpu' or name == 'mps':  # Paddle has no Apple GPU backend: run on the CPU
        return None
    if name == 'cuda' or name.startswith('cuda:'):
        index = name.partition(':')[2] or '0'
        if not index.isdigit():
            raise PaddleSegError(f'device {name!r}: use cpu, cuda or cuda:N')
        if not paddle.is_compiled_with_cuda():
            raise PaddleSegError(f'device {name}: the installed paddlepaddle has no CUDA support; '
                                 f'pip install paddlepaddle-gpu, or use --device cpu')
        return int(index)
    raise PaddleSegError(f'device {name!r}: PaddleSeg runs on cpu, cuda or cuda:N')


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class HumanSegmenter:
    """PaddleSeg person segmentation: ``segmenter(rgb) -> HxW float32`` probability in [0, 1].

    ``model_dir`` is a PaddleSeg export folder (deploy.yaml + model files) or its
    deploy.yaml; the default is upstream's DeepLabV3+ ResNet-50 human-seg model under
    ``PP_HumanSeg/export_model/``. ``device`` is 'cpu', 'cuda' or 'cuda:N' ('mps' runs
    on the CPU). Problems are raised as one-line :class:`PaddleSegError`: paddle
    missing, then model folder missing, then deploy.yaml or model files unusable.
    """

    def __init__(self, model_dir=DEFAULT_MODEL_DIR, device='cpu'):
        paddle = _import_paddle()
        self.config = load_deploy_config(model_dir)
        gpu = _gpu_id(device, paddle)
        pcfg = paddle.inference.Config(self.config.model_file, self.config.params_file)
        pcfg.disable_glog_info()
        if gpu is None:
            pcfg.disable_gpu()
            # Paddle Inference defaults to one CPU thread; a ResNet-50 at 512x512 wants more.
            pcfg.set_cpu_math_library_num_threads(_cpu_count())
        else:
            pcfg.enable_use_gpu(256, gpu)  # initial memory pool in MB, device id
        try:
            self._predictor = paddle.inference.create_predictor(pcfg)
        except Exception as err:  # Paddle's C++ errors are long: keep their first line
            first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
            raise PaddleSegError(f'{self.config.model_file}: Paddle cannot load the model ({first}); '
                                 f're-download and re-extract the model zip') from None
        self._input = self._predictor.get_input_handle(self._predictor.get_input_names()[0])
        self._output_name = self._predictor.get_output_names()[0]
        self.device = 'cpu' if gpu is None else f'cuda:{gpu}'

    def __call__(self, rgb):
        """Person probability float32 HxW in [0, 1] for an RGB uint8 HxWx3 image."""
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f'expected an RGB uint8 HxWx3 image, got {rgb.dtype} {rgb.shape}')
        data = preprocess(rgb, self.config)
        self._input.reshape(list(data.shape))
        self._input.copy_from_cpu(data)
        self._predictor.run()
        output = self._predictor.get_output_handle(self._output_name).copy_to_cpu()
        return postprocess(output, rgb.shape[:2], self.config)

    # The aligner's segmenter interface (aligner.backends).
    person_mask = __call__
