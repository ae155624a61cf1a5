"""Training images and labels read from a folder or a zip (NVIDIA's dataset API).

``ImageFolderDataset(path, resolution=None, use_labels=False, max_size=None,
xflip=False, random_seed=0, square=False)`` behaves like the class of the same
name in StyleGAN2-ADA and StyleGAN3, with StyleGAN-Human's ``square`` flag:

* ``square=False`` (the default, StyleGAN-Human's full-body data): every image is
  2:1 portrait, height = ``resolution`` and width = ``resolution // 2``;
* ``square=True``: width = height = ``resolution``, as NVIDIA's.

Every image header is read when the dataset opens (size and colour mode, no
pixel decoding), so a dataset with mixed sizes, the wrong aspect, a resolution
that is not a power of two, no images, or an unreadable file fails at once with
a one-line :class:`DatasetError` naming the file, before any training step.

Labels come from ``dataset.json`` at the dataset root: ``{"labels": [[file
name, label], ...]}``. Integer labels are class indices (returned one-hot),
vectors are returned as they are (float32).
"""

import collections
import json
import os
import zipfile

import numpy as np
import PIL.Image
import torch

import dnnlib
from dnnlib.errors import FileFormatError

try:
    import pyspng  # optional fast PNG decoder, used when installed (as NVIDIA's)
except ImportError:
    pyspng = None

LABELS_FILE = 'dataset.json'

# Colour modes read as they are: 8-bit grayscale and 8-bit RGB (NVIDIA's two layouts).
CHANNELS_BY_MODE = {'L': 1, 'RGB': 3}


class DatasetError(FileFormatError, OSError):
    """A dataset the user has to fix; the message is one line naming the file.

    Also an ``OSError`` so that code written for NVIDIA's loader, which raises
    ``IOError`` for a bad path, reports it the same way.
    """


# ----------------------------------------------------------------------------


class Dataset(torch.utils.data.Dataset):
    """Index bookkeeping shared by datasets: subset, x-flips, labels; subclasses read the files."""

    def __init__(self,
                 name,                # Name of the dataset.
                 raw_shape,           # Shape of the raw image data, NCHW.
                 max_size=None,       # Keep at most this many images (a random subset), before xflip. None = all.
                 use_labels=False,    # Read labels? False = label dimension 0.
                 xflip=False,         # Double the dataset with mirrored copies, after max_size.
                 random_seed=0,       # Seed of the max_size subset.
                 square=False,        # False: 2:1 images (height = 2 x width); True: square.
                 ):
        self._name = name
        self._raw_shape = list(raw_shape)
        self._use_labels = use_labels
        self._raw_labels = None
        self._label_shape = None
        self._square = bool(square)

        # The subset is drawn with NVIDIA's recipe so the same seed picks the same images.
        self._raw_idx = np.arange(self._raw_shape[0], dtype=np.int64)
        if max_size is not None and self._raw_idx.size > max_size:
            np.random.RandomState(random_seed).shuffle(self._raw_idx)
            self._raw_idx = np.sort(self._raw_idx[:max_size])

        # Mirrored copies follow the originals: item i + n is item i flipped.
        self._xflip = np.zeros(self._raw_idx.size, dtype=np.uint8)
        if xflip:
            self._raw_idx = np.tile(self._raw_idx, 2)
            self._xflip = np.concatenate([self._xflip, np.ones_like(self._xflip)])

    def _get_raw_labels(self):
        if self._raw_labels is None:
            labels = self._load_raw_labels() if self._use_labels else None
            if labels is None:
                labels = np.zeros([self._raw_shape[0], 0], dtype=np.float32)
            assert isinstance(labels, np.ndarray) and labels.shape[0] == self._raw_shape[0]
            assert labels.dtype in (np.float32, np.int64)
            if labels.dtype == np.int64:
                assert labels.ndim == 1 and np.all(labels >= 0)
            self._raw_labels = labels
        return self._raw_labels

    def close(self):  # Subclasses release their files here.
        pass

    def _load_raw_image(self, raw_idx):  # Subclasses: uint8 CHW array of image raw_idx.
        raise NotImplementedError

    def _load_raw_labels(self):  # Subclasses: int64 [N] class indices, float32 [N, D], or None.
        raise NotImplementedError

    def __getstate__(self):
        # Labels are re-read lazily in the receiving process rather than copied.
        return dict(self.__dict__, _raw_labels=None)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __len__(self):
        return self._raw_idx.size

    def __getitem__(self, idx):
        image = self._load_raw_image(self._raw_idx[idx])
        assert isinstance(image, np.ndarray) and image.dtype == np.uint8
        assert list(image.shape) == self.image_shape
        if self._xflip[idx]:
            image = image[:, :, ::-1]
        return image.copy(), self.get_label(idx)

    def get_label(self, idx):
        label = self._get_raw_labels()[self._raw_idx[idx]]
        if label.dtype == np.int64:
            onehot = np.zeros(self.label_shape, dtype=np.float32)
            onehot[label] = 1
            label = onehot
        return label.copy()

    def get_details(self, idx):
        details = dnnlib.EasyDict()
        details.raw_idx = int(self._raw_idx[idx])
        details.xflip = int(self._xflip[idx]) != 0
        details.raw_label = self._get_raw_labels()[details.raw_idx].copy()
        return details

    @property
    def name(self):
        return self._name

    @property
    def image_shape(self):
        return list(self._raw_shape[1:])

    @property
    def num_channels(self):
        assert len(self.image_shape) == 3  # CHW
        return self.image_shape[0]

    @property
    def square(self):
        return self._square

    @property
    def resolution(self):
        """Image height; the width is the same (square) or half of it (2:1)."""
        assert len(self.image_shape) == 3  # CHW
        _channels, height, width = self.image_shape
        assert width == (height if self._square else height // 2)
        return height

    @property
    def label_shape(self):
        if self._label_shape is None:
            raw_labels = self._get_raw_labels()
            if raw_labels.dtype == np.int64:
                self._label_shape = [int(np.max(raw_labels)) + 1]
            else:
                self._label_shape = raw_labels.shape[1:]
        return list(self._label_shape)

    @property
    def label_dim(self):
        assert len(self.label_shape) == 1
        return self.label_shape[0]

    @property
    def has_labels(self):
        return any(x != 0 for x in self.label_shape)

    @property
    def has_onehot_labels(self):
        return self._get_raw_labels().dtype == np.int64


# ----------------------------------------------------------------------------


class ImageFolderDataset(Dataset):
    """Images (PNG, JPEG, any format Pillow reads) in a folder tree or a zip, all the same size."""

    def __init__(self,
                 path,              # Folder or .zip file.
                 resolution=None,   # Required image height; None = whatever the images have.
                 square=False,      # False: 2:1 images (StyleGAN-Human); True: square images.
                 **super_kwargs,    # use_labels, max_size, xflip, random_seed: see Dataset.
                 ):
        self._path = os.fspath(path)
        self._zipfile = None
        self._zip_pid = None
        self._type, self._all_fnames = self._list_files()

        PIL.Image.init()
        self._image_fnames = sorted(f for f in self._all_fnames if _is_image_name(f))
        if not self._image_fnames:
            raise DatasetError(f'{self._path}: no image files found (PNG, JPEG, ...)')

        headers = [self._read_header(fname) for fname in self._image_fnames]
        width, height = self._check_sizes([size for size, _mode in headers], resolution, bool(square))
        # A grayscale image among colour ones is widened to RGB when read.
        channels = max(CHANNELS_BY_MODE[mode] for _size, mode in headers)

        name = os.path.splitext(os.path.basename(os.path.normpath(self._path)))[0]
        raw_shape = [len(self._image_fnames), channels, height, width]
        super().__init__(name=name, raw_shape=raw_shape, square=square, **super_kwargs)
        if self._use_labels:
            self._get_raw_labels()  # A broken dataset.json fails now, not at the first batch.

    # -- files ---------------------------------------------------------------

    def _list_files(self):
        if os.path.isdir(self._path):
            fnames = {os.path.relpath(os.path.join(root, fname), start=self._path)
                      for root, _dirs, files in os.walk(self._path) for fname in files}
            return 'dir', {f for f in fnames if not _is_os_litter(f)}
        if not os.path.exists(self._path):
            raise DatasetError(f'{self._path}: no such folder or .zip file')
        if _file_ext(self._path) != '.zip':
            raise DatasetError(f'{self._path}: not a folder or a .zip file of images')
        self._type = 'zip'
        try:
            names = self._get_zipfile().namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise DatasetError(f'{self._path}: not a readable zip file ({err})') from None
        return 'zip', {n for n in names if not n.endswith('/') and not _is_os_litter(n)}

    @staticmethod
    def _file_ext(fname):
        return _file_ext(fname)

    def _where(self, fname):
        """The name a message gives for a file: its path, or zip path + member name."""
        return os.path.join(self._path, fname)

    def _get_zipfile(self):
        assert self._type == 'zip'
        # A process forked from the one that opened the zip shares its file offset:
        # each process opens its own handle.
        if self._zipfile is None or self._zip_pid != os.getpid():
            self._zipfile = zipfile.ZipFile(self._path)
            self._zip_pid = os.getpid()
        return self._zipfile

    def _open_file(self, fname):
        if self._type == 'dir':
            return open(os.path.join(self._path, fname), 'rb')
        return self._get_zipfile().open(fname, 'r')

    def close(self):
        try:
            if self._zipfile is not None and self._zip_pid == os.getpid():
                self._zipfile.close()
        finally:
            self._zipfile = None
            self._zip_pid = None

    def __getstate__(self):
        return dict(super().__getstate__(), _zipfile=None, _zip_pid=None)

    # -- checks at open time -------------------------------------------------

    def _read_header(self, fname):
        """(width, height), mode of one image, read from its header without decoding the pixels."""
        try:
            with self._open_file(fname) as f, PIL.Image.open(f) as image:
                size, mode = image.size, image.mode
        except Exception as err:  # Pillow raises many kinds for a broken header.
            raise DatasetError(f'{self._where(fname)}: not a readable image ({_reason(err)})') from None
        if mode not in CHANNELS_BY_MODE:
            raise DatasetError(f'{self._where(fname)}: colour mode {mode} is not supported; only 8-bit '
                               'grayscale (L) and RGB images are (dataset_tool.py converts the others)')
        return size, mode

    def _check_sizes(self, sizes, resolution, square):
        """The (width, height) every image must share; DatasetError naming the first file that breaks a rule."""
        shape = 'square' if square else '2:1'
        if resolution is not None:
            if not _is_power_of_two(resolution):
                raise DatasetError(f'{self._path}: resolution={resolution} is not a power of two (4 or more)')
            expected = (resolution, resolution) if square else (resolution // 2, resolution)
            odd = _first_other(sizes, expected)
            if odd is not None:
                raise DatasetError(f'{self._where(self._image_fnames[odd])}: image is {_wxh(sizes[odd])} '
                                   f'(width x height), but resolution={resolution} ({shape}) needs '
                                   f'{_wxh(expected)}; resize the images with dataset_tool.py')
            return expected

        expected, count = collections.Counter(sizes).most_common(1)[0]
        odd = _first_other(sizes, expected)
        if odd is not None:
            raise DatasetError(f'{self._where(self._image_fnames[odd])}: image is {_wxh(sizes[odd])} '
                               f'(width x height), but {count} of the {len(sizes)} images are {_wxh(expected)}; '
                               'all images must be the same size (dataset_tool.py resizes them)')
        width, height = expected
        first = self._where(self._image_fnames[0])
        if square and width != height:
            raise DatasetError(f'{first}: images are {_wxh(expected)} (width x height), not square; '
                               'square=True needs width == height (use square=False for 2:1 images)')
        if not square and height != 2 * width:
            raise DatasetError(f'{first}: images are {_wxh(expected)} (width x height), but square=False needs '
                               f'height = 2 x width (e.g. {_wxh((height // 2, height))}); '
                               'use square=True for square images')
        if not _is_power_of_two(height):
            raise DatasetError(f'{first}: images are {_wxh(expected)} (width x height); the height {height} '
                               'is not a power of two (4 or more): resize them with dataset_tool.py')
        return expected

    # -- reading -------------------------------------------------------------

    def _load_raw_image(self, raw_idx):
        fname = self._image_fnames[raw_idx]
        try:
            with self._open_file(fname) as f:
                if pyspng is not None and _file_ext(fname) == '.png':
                    image = pyspng.load(f.read())
                else:
                    with PIL.Image.open(f) as pil_image:
                        image = np.array(pil_image)
        except Exception as err:
            raise DatasetError(f'{self._where(fname)}: cannot decode the image ({_reason(err)})') from None
        if image.ndim == 2:
            image = image[:, :, np.newaxis]  # HW => HWC
        channels, height, width = self._raw_shape[1:]
        if image.shape[2] == 1 and channels == 3:
            image = np.repeat(image, 3, axis=2)
        if image.dtype != np.uint8 or image.shape != (height, width, channels):
            raise DatasetError(f'{self._where(fname)}: decoded to {image.dtype} {list(image.shape)} (HWC), '
                               f'expected uint8 {[height, width, channels]}')
        return image.transpose(2, 0, 1)  # HWC => CHW

    def _load_raw_labels(self):
        if LABELS_FILE not in self._all_fnames:
            return None
        where = self._where(LABELS_FILE)
        try:
            with self._open_file(LABELS_FILE) as f:
                data = json.load(f)
        except (ValueError, OSError) as err:
            raise DatasetError(f'{where}: not readable JSON ({_reason(err)})') from None
        if not isinstance(data, dict) or 'labels' not in data:
            raise DatasetError(f'{where}: expected {{"labels": [[file name, label], ...]}}')
        if data['labels'] is None:
            return None
        try:
            table = {str(fname).replace('\\', '/'): label for fname, label in data['labels']}
        except (TypeError, ValueError):
            raise DatasetError(f'{where}: "labels" must be a list of [file name, label] pairs') from None
        keys = [fname.replace('\\', '/') for fname in self._image_fnames]
        missing = [key for key in keys if key not in table]
        if missing:
            raise DatasetError(f'{where}: no label for {missing[0]} ({len(missing)} of the '
                               f'{len(keys)} images have none)')
        return _labels_array([table[key] for key in keys], where)


# ----------------------------------------------------------------------------


def _labels_array(values, where):
    """Class indices -> int64 [N]; vectors of one length -> float32 [N, D]."""
    try:
        labels = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f'{where}: labels must be all class indices or all number vectors of one length') from None
    if labels.ndim == 1:
        if not np.all(np.isfinite(labels)) or np.any(labels < 0) or np.any(labels != np.round(labels)):
            bad = next(v for v in values if not (np.isfinite(v) and v >= 0 and v == round(v)))
            raise DatasetError(f'{where}: label {bad!r} is not a class index (0, 1, 2, ...)')
        return labels.astype(np.int64)
    if labels.ndim == 2:
        return labels.astype(np.float32)
    raise DatasetError(f'{where}: labels must be class indices or flat number vectors')


def _file_ext(fname):
    return os.path.splitext(fname)[1].lower()


def _is_image_name(fname):
    return _file_ext(fname) in PIL.Image.EXTENSION


def _is_os_litter(fname):
    """macOS metadata copies (``__MACOSX/``, ``._name.png``) carry image suffixes but are no images."""
    parts = fname.replace('\\', '/').split('/')
    return parts[0] == '__MACOSX' or parts[-1].startswith('._')


def _is_power_of_two(value):
    return isinstance(value, (int, np.integer)) and value >= 4 and (value & (value - 1)) == 0


def _first_other(sizes, expected):
    return next((i for i, size in enumerate(sizes) if tuple(size) != tuple(expected)), None)


def _wxh(size):
    return f'{size[0]}x{size[1]}'


def _reason(err):
    if isinstance(err, PIL.UnidentifiedImageError):  # Its text is a file object's repr: say what it means.
        return 'unknown format or damaged header'
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0]}' if text else type(err).__name__
