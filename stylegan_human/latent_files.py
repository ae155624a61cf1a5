"""Latent files: the ``latents.npz`` the sampling scripts write, and reading a w / w+ back.

``latents.npz`` holds ``seed`` (int64 [N]), ``z`` (float64 [N, z_dim]) and ``w``
(float32 [N, num_ws, w_dim]). :class:`LatentStream` writes it for any number of samples
with flat memory: each sample's arrays go to scratch files as it comes, and the .npz is
assembled from them at the end (or at an interrupt, from what was finished).
"""

import os
import shutil
import tempfile
import zipfile
from typing import Any, Iterable, Union

import numpy as np
import torch

from dnnlib.atomic import atomic_write
from dnnlib.errors import FileFormatError, InputError

PathLike = Union[str, os.PathLike]


def save_latents(samples: Iterable, path: PathLike) -> None:
    """Write seeds, z and w of ``samples`` (objects with .seed, .z, .w) to an .npz file, atomically."""
    stream = LatentStream(path)
    try:
        for sample in samples:
            stream.add(sample)
    finally:
        stream.close()


class LatentStream:
    """``latents.npz`` written one sample at a time; :meth:`close` writes the file (atomically).

    Closing with no sample added writes nothing.
    """

    _FIELDS = (('seed', np.int64), ('z', np.float64), ('w', np.float32))

    def __init__(self, path: PathLike):
        self.path = os.fspath(path)
        self.count = 0
        self._shapes = {}
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        self._scratch = tempfile.mkdtemp(prefix='.latents-', dir=folder)
        self._files = {name: open(os.path.join(self._scratch, name), 'wb') for name, _ in self._FIELDS}

    def add(self, sample: Any) -> None:
        for name, dtype in self._FIELDS:
            value = np.array(getattr(sample, name), dtype=dtype, order='C')
            if self._shapes.setdefault(name, value.shape) != value.shape:
                raise InputError(f'{name} of seed {sample.seed} has shape {value.shape}, '
                                 f'the others {self._shapes[name]}')
            self._files[name].write(value.tobytes())
        self.count += 1

    def close(self) -> None:
        """Write the .npz from every sample added so far, and remove the scratch files."""
        try:
            for f in self._files.values():
                f.close()
            if self.count:
                atomic_write(self.path, self._write_npz)
        finally:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def _write_npz(self, f) -> None:
        # np.savez's layout: one .npy member per array, copied from the scratch files in chunks.
        with zipfile.ZipFile(f, 'w', allowZip64=True) as archive:
            for name, dtype in self._FIELDS:
                header = {'descr': np.lib.format.dtype_to_descr(np.dtype(dtype)), 'fortran_order': False,
                          'shape': (self.count, *self._shapes[name])}
                with archive.open(f'{name}.npy', 'w', force_zip64=True) as member:
                    np.lib.format.write_array_header_2_0(member, header)
                    size = self.count * int(np.prod(self._shapes[name], dtype=np.int64)) * np.dtype(dtype).itemsize
                    with open(os.path.join(self._scratch, name), 'rb') as source:
                        _copy_bytes(source, member, size)


def _copy_bytes(source, target, size: int, chunk: int = 1 << 20) -> None:
    """Copy the first ``size`` bytes (a sample cut short by an interrupt may follow them)."""
    while size > 0:
        data = source.read(min(chunk, size))
        if not data:
            raise OSError('latent scratch file ended early')
        target.write(data)
        size -= len(data)


def load_latent(path: PathLike, G: torch.nn.Module, device: Union[str, torch.device] = 'cpu') -> torch.Tensor:
    """A w [1, 1, w_dim] or w+ [1, num_ws, w_dim] code for ``G`` from a PTI pivot (.pt) or a
    latents.npz (its first ``w``). Anything else raises one line naming the file."""
    try:
        if str(path).endswith('.npz'):
            with np.load(path) as data:
                if 'w' not in data:
                    raise FileFormatError(f'{path}: no "w" array in this .npz')
                w = torch.from_numpy(np.asarray(data['w'][:1] if data['w'].ndim == 3 else data['w'][None]))
        else:
            w = torch.load(path, map_location='cpu', weights_only=True)
    except FileFormatError:
        raise
    except Exception as err:  # missing file, pickle, zip and tensor errors alike: not a latent file
        raise FileFormatError(f'{path}: not a latent file ({type(err).__name__}: {err})'.splitlines()[0]) from None
    if not isinstance(w, torch.Tensor) or w.ndim != 3 or w.shape[0] != 1 or w.shape[2] != G.w_dim \
            or w.shape[1] not in (1, G.num_ws):
        shape = list(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise FileFormatError(f'{path}: latent of shape {shape}; this network takes [1, {G.num_ws}, {G.w_dim}]')
    return w.to(device, torch.float32)
