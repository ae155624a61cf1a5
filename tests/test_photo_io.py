"""stylegan_human.photos: the image files phones and the web produce, and broken ones."""

import io
import pathlib
import struct
import warnings
import zlib

import numpy as np
import PIL.Image
import pytest

from stylegan_human.photos import MAX_PIXELS, PhotoError, list_photos, load_photo


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


def _uniform_grey_jpeg(width, height):
    """A valid baseline JPEG of any size, mid-grey everywhere, made without an encoder.

    Each 8x8 block is two one-bit Huffman codes (DC difference 0, end of block), both '0':
    the scan is zero bytes, a quarter of a byte per block, so 30000x30000 is 3.5 MB.
    """
    def segment(marker, payload):
        return bytes([0xFF, marker]) + struct.pack('>H', len(payload) + 2) + payload
    one_symbol_table = bytes([1] + [0] * 15) + b'\x00'      # one code of length 1, for symbol 0
    blocks = -(-width // 8) * -(-height // 8)
    return b''.join([
        b'\xff\xd8',                                                             # start of image
        segment(0xDB, b'\x00' + b'\x01' * 64),                                   # quantisation table 0
        segment(0xC0, struct.pack('>BHHB', 8, height, width, 1) + b'\x01\x11\x00'),  # baseline, 1 component
        segment(0xC4, b'\x00' + one_symbol_table + b'\x10' + one_symbol_table),  # DC and AC tables 0
        segment(0xDA, b'\x01\x01\x00\x00\x3f\x00'),                              # start of scan
        bytes(-(-blocks * 2 // 8)),
        b'\xff\xd9'])


def _png_header_only(width, height):
    """A PNG whose header says ``width`` x ``height`` (no pixel data: only the size is read before refusing)."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IEND', b'')


def test_huge_jpeg_is_decoded_at_reduced_size(tmp_path):
    """30000x30000 (900 megapixels): libjpeg decodes it at 1/8 scale, then it is resized to max_side."""
    (tmp_path / 'huge.jpg').write_bytes(_uniform_grey_jpeg(30000, 30000))
    pillow_limit = PIL.Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter('error')                       # no DecompressionBombWarning either
        loaded = load_photo(tmp_path / 'huge.jpg', max_side=1000)
    assert loaded.shape == (1000, 1000, 3)
    assert np.abs(loaded.astype(int) - 128).max() <= 1
    assert PIL.Image.MAX_IMAGE_PIXELS == pillow_limit          # Pillow's own limit is put back
    # A wide panorama too: reduced by the scale its long side needs, not refused.
    (tmp_path / 'pano.jpg').write_bytes(_uniform_grey_jpeg(64000, 4000))
    assert load_photo(tmp_path / 'pano.jpg', max_side=2000).shape == (125, 2000, 3)


def test_huge_photos_that_cannot_be_decoded_reduced_are_refused(tmp_path):
    (tmp_path / 'huge.png').write_bytes(_png_header_only(30000, 30000))
    with pytest.raises(PhotoError, match='30000x30000.*over 250 megapixels.*only JPEG') as info:
        load_photo(tmp_path / 'huge.png')
    assert '\n' not in str(info.value)
    # Asked for the full size (max_side=None), a huge JPEG cannot be reduced either.
    (tmp_path / 'huge.jpg').write_bytes(_uniform_grey_jpeg(20000, 20000))
    with pytest.raises(PhotoError, match='20000x20000.*over 250 megapixels'):
        load_photo(tmp_path / 'huge.jpg', max_side=None)


def test_readme_states_the_large_photo_rule():
    readme = (pathlib.Path(__file__).parent.parent / 'README.md').read_text()
    assert f'over {MAX_PIXELS // 1_000_000} megapixels' in readme
    assert 'JPEG' in readme.split('## alignment.py')[1].split('\n## ')[0]
