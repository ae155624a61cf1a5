"""Alignment throughput on the CPU: images per second at about 1 and 12 megapixels.

\b
python benchmarks/bench_alignment.py                       # fixture photo, 1 MP and 12 MP
python benchmarks/bench_alignment.py --photo me.jpg --repeats 10

Each test photo is a person pasted on a cluttered background at the given size
(as a JPEG on disk, like a phone's). Timed per image: decoding, the model
(MediaPipe pose + segmentation, two passes to rule out a second person), the
crop and resize, and writing the PNG; the table splits the time into those parts.
"""

import os
import pathlib
import sys
import tempfile
import time

import click
import numpy as np
import PIL.Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aligner import align_photo, load_photo, make_backend  # noqa: E402
from dnnlib.atomic import save_image  # noqa: E402

DEFAULT_PHOTO = ROOT / 'tests' / 'data' / 'photos' / 'p_center.png'
SIZES = {'1 MP': (816, 1224), '12 MP': (3000, 4000)}


def make_test_photo(person_path, size, seed=0):
    """The person (on white) scaled to 80% of the height, pasted on clutter; RGB array."""
    w, h = size
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (h // 64 + 1, w // 64 + 1, 3)).astype(np.uint8)
    canvas = np.asarray(PIL.Image.fromarray(blocks).resize((w, h), PIL.Image.NEAREST)).copy()
    person = PIL.Image.open(person_path).convert('RGB')
    scale = 0.8 * h / person.height
    person = np.asarray(person.resize((round(person.width * scale), round(person.height * scale)), PIL.Image.LANCZOS))
    ph, pw = person.shape[:2]
    y0, x0 = (h - ph) // 2, (w - pw) // 3
    region = canvas[y0:y0 + ph, x0:x0 + pw]
    region[:] = np.where(person.min(axis=2, keepdims=True) > 235, region, person)
    return canvas


class _TimedBackend:
    """Wraps a backend to time its model calls."""

    def __init__(self, backend):
        self.backend, self.seconds = backend, 0.0

    def analyse(self, rgb):
        start = time.perf_counter()
        try:
            return self.backend.analyse(rgb)
        finally:
            self.seconds += time.perf_counter() - start


def bench_size(backend, photo_path, size, repeats, workdir):
    src = os.path.join(workdir, f'photo_{size[0]}x{size[1]}.jpg')
    PIL.Image.fromarray(make_test_photo(photo_path, size)).save(src, quality=92)
    timed = _TimedBackend(backend)
    load = align = save = 0.0
    align_photo(load_photo(src), timed)  # warm-up
    timed.seconds = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        rgb = load_photo(src)
        t1 = time.perf_counter()
        aligned = align_photo(rgb, timed)
        t2 = time.perf_counter()
        save_image(aligned.image, os.path.join(workdir, 'out.png'))
        t3 = time.perf_counter()
        load, align, save = load + t1 - t0, align + t2 - t1, save + t3 - t2
    total = load + align + save
    return {'images_per_s': repeats / total, 'load_ms': 1e3 * load / repeats,
            'model_ms': 1e3 * timed.seconds / repeats, 'crop_ms': 1e3 * (align - timed.seconds) / repeats,
            'save_ms': 1e3 * save / repeats}


@click.command()
@click.option('--photo', 'photo_path', default=str(DEFAULT_PHOTO), show_default=True, help='A photo of one person on white')
@click.option('--repeats', type=click.IntRange(min=1), default=5, show_default=True)
def main(photo_path, repeats):
    if not os.path.isfile(photo_path):
        raise click.ClickException(f'--photo {photo_path}: not found (pass a photo of one person on white)')
    backend = make_backend()
    print(f'MediaPipe and OpenCV on the CPU, {os.cpu_count()} core(s); {repeats} repeats per size')
    print(f'{"size":>6} {"pixels":>12} {"img/s":>7} {"load ms":>8} {"model ms":>9} {"crop ms":>8} {"save ms":>8}')
    with tempfile.TemporaryDirectory() as workdir:
        for label, size in SIZES.items():
            r = bench_size(backend, photo_path, size, repeats, workdir)
            print(f'{label:>6} {f"{size[0]}x{size[1]}":>12} {r["images_per_s"]:7.2f} {r["load_ms"]:8.0f} '
                  f'{r["model_ms"]:9.0f} {r["crop_ms"]:8.0f} {r["save_ms"]:8.0f}')
    backend.close()


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
