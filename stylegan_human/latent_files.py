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
from typing import Any, Iterable, Sequence, Tuple, Union

import numpy as np
import torch

from dnnlib.atomic import atomic_write
from dnnlib.errors import FileFormatError, InputError, load_failure

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
                with archive.open(_member_info(name), 'w', force_zip64=True) as member:
                    np.lib.format.write_array_header_2_0(member, header)
                    size = self.count * int(np.prod(self._shapes[name], dtype=np.int64)) * np.dtype(dtype).itemsize
                    with open(os.path.join(self._scratch, name), 'rb') as source:
                        _copy_bytes(source, member, size)


def _member_info(name: str) -> zipfile.ZipInfo:
    # A fixed date makes the same latents give the same file bytes (np.savez stamps the clock).
    return zipfile.ZipInfo(f'{name}.npy', date_time=(1980, 1, 1, 0, 0, 0))


def _copy_bytes(source, target, size: int, chunk: int = 1 << 20) -> None:
    """Copy the first ``size`` bytes (a sample cut short by an interrupt may follow them)."""
    while size > 0:
        data = source.read(min(chunk, size))
        if not data:
            raise OSError('latent scratch file ended early')
        target.write(data)
        size -= len(data)


def _read_w(path: PathLike) -> Any:
    """The w array of a latent file: an .npz's ``w`` (ours, NVIDIA's projected_w.npz) or a tensor file."""
    try:
        if str(path).endswith('.npz'):
            with np.load(path) as data:
                if 'w' not in data:
                    raise FileFormatError(f'{path}: no "w" array in this .npz')
                return torch.from_numpy(np.asarray(data['w']))
        return torch.load(path, map_location='cpu', weights_only=True)
    except FileFormatError:
        raise
    except Exception as err:  # missing file, pickle, zip and tensor errors alike: not a latent file
        raise FileFormatError(f'{path}: not a latent file ({type(err).__name__}: {load_failure(err)})') from None


def load_latents(path: PathLike, G: torch.nn.Module, device: Union[str, torch.device] = 'cpu') -> torch.Tensor:
    """Every code in a latent file as w+ [N, num_ws, w_dim] for ``G``.

    Reads NVIDIA's ``projected_w.npz`` and our ``latents.npz`` (``w`` [N, num_ws, w_dim]),
    PTI pivots (.pt, [1, num_ws, w_dim]) and single codes ([num_ws, w_dim]); a w given for
    one layer ([N, 1, w_dim]) is used for all. Anything else raises one line naming the file.
    """
    w = _read_w(path)
    if isinstance(w, torch.Tensor) and w.ndim == 2:
        w = w[None]
    if not isinstance(w, torch.Tensor) or w.ndim != 3 or w.shape[0] < 1 or w.shape[2] != G.w_dim \
            or w.shape[1] not in (1, G.num_ws) or not w.is_floating_point():
        shape = list(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise FileFormatError(f'{path}: latents of shape {shape}; this network takes [N, {G.num_ws}, {G.w_dim}]')
    return w.to(device, torch.float32).expand(-1, G.num_ws, -1).contiguous()


def load_latent(path: PathLike, G: torch.nn.Module, device: Union[str, torch.device] = 'cpu') -> torch.Tensor:
    """A w [1, 1, w_dim] or w+ [1, num_ws, w_dim] code for ``G`` from a PTI pivot (.pt) or a
    latents.npz (its first ``w``). Anything else raises one line naming the file."""
    w = _read_w(path)
    if str(path).endswith('.npz') and isinstance(w, torch.Tensor):
        w = w[:1] if w.ndim == 3 else w[None]
    if not isinstance(w, torch.Tensor) or w.ndim != 3 or w.shape[0] != 1 or w.shape[2] != G.w_dim \
            or w.shape[1] not in (1, G.num_ws):
        shape = list(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise FileFormatError(f'{path}: latent of shape {shape}; this network takes [1, {G.num_ws}, {G.w_dim}]')
    return w.to(device, torch.float32)


def merge_latent_files(parts: Sequence[PathLike], path: PathLike) -> None:
    """Concatenate latents.npz files (seed, z, w) in order into ``path``, atomically and with flat
    memory: the arrays' bytes are streamed from each part. Parts with no file are skipped."""
    parts = [os.fspath(p) for p in parts if os.path.isfile(p)]
    if not parts:
        return
    shapes = {}
    for part in parts:
        with zipfile.ZipFile(part) as archive:
            for name, dtype in LatentStream._FIELDS:
                shape, _ = _member_header(archive, name, dtype, part)
                count, rest = shape[0], shape[1:]
                if shapes.setdefault(name, [0, rest])[1] != rest:
                    raise InputError(f'{part}: {name} of shape {list(rest)}, the others {list(shapes[name][1])}')
                shapes[name][0] += count

    def write(f):
        with zipfile.ZipFile(f, 'w', allowZip64=True) as out:
            for name, dtype in LatentStream._FIELDS:
                count, rest = shapes[name]
                header = {'descr': np.lib.format.dtype_to_descr(np.dtype(dtype)), 'fortran_order': False,
                          'shape': (count, *rest)}
                with out.open(_member_info(name), 'w', force_zip64=True) as member:
                    np.lib.format.write_array_header_2_0(member, header)
                    for part in parts:
                        with zipfile.ZipFile(part) as archive:
                            shape, source = _member_header(archive, name, dtype, part)
                            with source:
                                size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                                _copy_bytes(source, member, size)
    atomic_write(path, write)


def _member_header(archive: zipfile.ZipFile, name: str, dtype: Any, part: str) -> Tuple[tuple, Any]:
    """(shape, open member positioned at its data) of ``name.npy``, checked against ``dtype``."""
    try:
        member = archive.open(f'{name}.npy')
        major, _ = np.lib.format.read_magic(member)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, found = read_header(member)
    except (KeyError, ValueError) as err:
        raise FileFormatError(f'{part}: not a latents file ({err})') from None
    if fortran or np.dtype(found) != np.dtype(dtype):
        member.close()
        raise FileFormatError(f'{part}: {name} is {found}, expected {np.dtype(dtype)}')
    return shape, member
