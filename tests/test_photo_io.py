"""stylegan_human.photos: the image files phones and the web produce, and broken ones."""

import io

import numpy as np
import PIL.Image
import pytest

from stylegan_human.photos import PhotoError, list_photos, load_photo


def _gradient(w=60, h=40):
    x = np.linspace(0, 255, w)[None, :, None]
    y = np.linspace(0, 255, h)[:, None, None]
    return np.concatenate([np.broadcast_to(x, (h, w, 1)), np.broadcast_to(y, (h, w, 1)),
                           np.full((h, w, 1), 90.0)], axis=2).astype(np.uint8)


def test_exif_orientation_is_applied(tmp_path):
    rgb = _gradient(60, 40)
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / 'phone.jpg'
    PIL.Image.fromarray(rgb).save(path, exif=exif, quality=98)
    loaded = load_photo(path)
    assert loaded.shape == (60, 40, 3)
    upright = np.asarray(PIL.Image.fromarray(rgb).transpose(PIL.Image.Transpose.ROTATE_270))
    assert np.abs(loaded.astype(int) - upright.astype(int)).mean() < 3


def test_transparency_becomes_white(tmp_path):
    rgba = np.zeros((20, 10, 4), np.uint8)
    rgba[..., :3] = (200, 10, 10)
    rgba[:10, :, 3] = 255            # top half opaque red, bottom half fully transparent
    PIL.Image.fromarray(rgba, 'RGBA').save(tmp_path / 'cutout.png')
    loaded = load_photo(tmp_path / 'cutout.png')
    assert (loaded[:10] == (200, 10, 10)).all()
    assert (loaded[10:] == 255).all()

    palette = PIL.Image.fromarray(rgba, 'RGBA').convert('P')
    palette.info['transparency'] = palette.getpixel((0, 15))
    palette.save(tmp_path / 'web.gif', transparency=palette.getpixel((0, 15)))
    assert (load_photo(tmp_path / 'web.gif')[15:] == 255).all()


def test_greyscale_and_16_bit(tmp_path):
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    PIL.Image.fromarray(grey, 'L').save(tmp_path / 'grey.png')
    loaded = load_photo(tmp_path / 'grey.png')
    assert loaded.shape == (16, 16, 3) and (loaded[..., 0] == grey).all() and (loaded[..., 2] == grey).all()

    deep = (grey.astype(np.uint16) * 257)  # 16-bit full range
    PIL.Image.fromarray(deep).save(tmp_path / 'deep.png')
    loaded = load_photo(tmp_path / 'deep.png')
    assert np.abs(loaded[..., 1].astype(int) - grey).max() <= 1


def test_cmyk_jpeg(tmp_path):
    rgb = _gradient()
    PIL.Image.fromarray(rgb).convert('CMYK').save(tmp_path / 'print.jpg', quality=98)
    loaded = load_photo(tmp_path / 'print.jpg')
    assert loaded.shape == rgb.shape
    assert np.abs(loaded.astype(int) - rgb.astype(int)).mean() < 6


@pytest.mark.parametrize('suffix', ['jpg', 'png'])
def test_very_large_photo_is_downscaled(tmp_path, suffix):
    big = PIL.Image.fromarray(_gradient(64, 48)).resize((5000, 3750))
    big.save(tmp_path / f'big.{suffix}')
    loaded = load_photo(tmp_path / f'big.{suffix}', max_side=1000)
    assert loaded.shape == (750, 1000, 3)
    assert loaded.shape == load_photo(tmp_path / f'big.{suffix}', max_side=1000).shape


def _truncated_jpeg():
    buf = io.BytesIO()
    PIL.Image.fromarray(_gradient(200, 200)).save(buf, format='JPEG')
    return buf.getvalue()[:1500]


@pytest.mark.parametrize('name, data, reason', [
    ('notes.jpg', b'this is a text file, not a photo\n', 'not an image'),
    ('empty.jpg', b'', 'empty file'),
    ('cut.jpg', _truncated_jpeg(), 'truncated'),
])
def test_bad_files_raise_one_line(tmp_path, name, data, reason):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(PhotoError, match=reason) as info:
        load_photo(tmp_path / name)
    assert '\n' not in str(info.value)


def test_zero_size_png_is_refused(tmp_path):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    header = struct.pack('>IIBBBBB', 0, 0, 8, 2, 0, 0, 0)
    (tmp_path / 'zero.png').write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IEND', b''))
    with pytest.raises(PhotoError):
        load_photo(tmp_path / 'zero.png')


def test_missing_file(tmp_path):
    with pytest.raises(PhotoError, match='No such file'):
        load_photo(tmp_path / 'nowhere.jpg')


def test_list_photos(tmp_path):
    (tmp_path / 'sub').mkdir()
    for name in ['b.JPG', 'a.png', 'notes.txt', '.hidden.png', 'sub/c.webp']:
        (tmp_path / name).write_bytes(b'x')
    assert [p.split('/')[-1] for p in list_photos(str(tmp_path))] == ['a.png', 'b.JPG']
    assert [p.split('/')[-1] for p in list_photos(str(tmp_path), recursive=True)] == ['a.png', 'b.JPG', 'c.webp']


def test_16_bit_colour_png(tmp_path):
    import cv2
    rgb = _gradient()
    cv2.imwrite(str(tmp_path / 'deep_rgb.png'), (rgb[..., ::-1].astype(np.uint16) * 257))
    loaded = load_photo(tmp_path / 'deep_rgb.png')
    assert np.abs(loaded.astype(int) - rgb.astype(int)).max() <= 1
