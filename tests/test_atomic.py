"""dnnlib.atomic: outputs appear whole or not at all."""

import os

import numpy as np
import PIL.Image
import pytest

from dnnlib.atomic import atomic_write, save_image


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / 'out.bin'

    def half_then_crash(f):
        f.write(b'partial')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_crash)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / 'out.bin'
    target.write_bytes(b'old')
    with pytest.raises(RuntimeError):
        atomic_write(target, lambda f: (f.write(b'new'), (_ for _ in ()).throw(RuntimeError('boom'))))
    assert target.read_bytes() == b'old'
    assert [p.name for p in tmp_path.iterdir()] == ['out.bin']


def test_save_image_round_trip(tmp_path):
    image = np.random.RandomState(0).randint(0, 256, size=(6, 4, 3), dtype=np.uint8)
    save_image(image, tmp_path / 'sub' / 'a.png')
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / 'sub' / 'a.png')), image)


def test_videos_follow_the_umask(tmp_path):
    import numpy as np
    from stylegan_human.video import FrameWriter
    old = os.umask(0o027)
    try:
        for name in ('a.mp4', 'a.gif'):
            with FrameWriter(tmp_path / name, fps=5) as video:
                video.append(np.zeros((16, 16, 3), np.uint8))
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
