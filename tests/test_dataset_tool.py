"""dataset_tool.py: images -> a training zip/folder, transforms, labels, skipped files, atomic output."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import dataset_tool
from helpers import one_line_failure
from training.dataset import ImageFolderDataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHITE = 255


def pattern(seed, width, height, channels=3):
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.RandomState(seed).randint(0, 256, size=shape, dtype=np.uint8)


def columns(width, height):
    """Each column a different gray level: shows which columns a crop kept."""
    return np.repeat(np.tile((np.arange(width) * 7 % 256).astype(np.uint8), (height, 1))[:, :, None], 3, axis=2)


def save(path, pixels, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(pixels).save(path, **kwargs)
    return path


def run(*args):
    return CliRunner().invoke(dataset_tool.convert_dataset, [str(a) for a in args])


def read_zip(path):
    """{name: HWC array} of the images, and the dataset.json contents."""
    with zipfile.ZipFile(path) as zf:
        images = {n: np.asarray(PIL.Image.open(zf.open(n))) for n in zf.namelist() if n.endswith('.png')}
        meta = json.loads(zf.read('dataset.json'))
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
    return images, meta


@pytest.fixture
def source(tmp_path):
    """Three 2:1 PNGs (one in a subfolder) with class labels."""
    folder = tmp_path / 'src'
    images = {'a.png': pattern(0, 32, 64), 'b.png': pattern(1, 32, 64), 'deep/c.png': pattern(2, 32, 64)}
    for name, pixels in images.items():
        save(folder / name, pixels)
    (folder / 'dataset.json').write_text(json.dumps({'labels': [['a.png', 2], ['b.png', 0], ['deep/c.png', 1]]}))
    return folder, images


def test_folder_to_zip_keeps_pixels_and_labels(source, tmp_path):
    folder, images = source
    result = run('--source', folder, '--dest', tmp_path / 'out' / 'data.zip')
    assert result.exit_code == 0, result.output
    assert 'wrote 3 of 3' in result.output and 'with labels' in result.output
    out, meta = read_zip(tmp_path / 'out' / 'data.zip')
    names = ['00000/img00000000.png', '00000/img00000001.png', '00000/img00000002.png']
    assert sorted(out) == names
    for name, src_name in zip(names, ['a.png', 'b.png', 'deep/c.png']):
        np.testing.assert_array_equal(out[name], images[src_name])
    assert meta == {'labels': [[names[0], 2], [names[1], 0], [names[2], 1]]}
    assert os.listdir(tmp_path / 'out') == ['data.zip']   # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / 'out' / 'data.zip').st_mode & 0o777 == 0o666 & ~umask   # not the temp file's 0600

    ds = ImageFolderDataset(str(tmp_path / 'out' / 'data.zip'), use_labels=True)
    assert ds.image_shape == [3, 64, 32] and ds.resolution == 64 and ds.label_dim == 3
    np.testing.assert_array_equal(ds[2][0], images['deep/c.png'].transpose(2, 0, 1))
    np.testing.assert_array_equal(ds[2][1], [0, 1, 0])


def test_zip_to_folder(source, tmp_path):
    folder, images = source
    assert run('--source', folder, '--dest', tmp_path / 'data.zip').exit_code == 0
    result = run('--source', tmp_path / 'data.zip', '--dest', tmp_path / 'again', '--resolution', '16x32')
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path / 'again').as_posix() for p in (tmp_path / 'again').rglob('*.png'))
    assert written == ['00000/img00000000.png', '00000/img00000001.png', '00000/img00000002.png']
    ds = ImageFolderDataset(tmp_path / 'again', use_labels=True)
    assert ds.image_shape == [3, 32, 16] and ds.has_onehot_labels
    expected = np.asarray(PIL.Image.fromarray(images['b.png']).resize((16, 32), PIL.Image.LANCZOS))
    np.testing.assert_array_equal(ds[1][0], expected.transpose(2, 0, 1))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []


def test_center_crop_keeps_the_middle(tmp_path):
    save(tmp_path / 'src' / 'wide.png', columns(32, 32))
    result = run('--source', tmp_path / 'src', '--dest', tmp_path / 'out.zip',
                 '--transform', 'center-crop', '--resolution', '16x32')
    assert result.exit_code == 0, result.output
    image = list(read_zip(tmp_path / 'out.zip')[0].values())[0]
    np.testing.assert_array_equal(image, columns(32, 32)[:, 8:24])   # 16 middle columns, no resize needed


def test_pad_adds_white_bands(tmp_path):
    square = pattern(3, 32, 32)
    save(tmp_path / 'src' / 'sq.png', square)
    result = run('--source', tmp_path / 'src', '--dest', tmp_path / 'out.zip', '--transform', 'pad',
                 '--resolution', '64')   # a height: 2:1 by default -> 32x64
    assert result.exit_code == 0, result.output
    image = list(read_zip(tmp_path / 'out.zip')[0].values())[0]
    assert image.shape == (64, 32, 3)
    assert (image[:16] == WHITE).all() and (image[48:] == WHITE).all()
    np.testing.assert_array_equal(image[16:48], square)


def test_pad_scales_to_fit(tmp_path):
    save(tmp_path / 'src' / 'wide.png', pattern(4, 64, 32))
    result = run('--source', tmp_path / 'src', '--dest', tmp_path / 'out.zip', '--transform', 'pad',
                 '--resolution', '16x32', '--pad-color', '0,0,255')
    assert result.exit_code == 0, result.output
    image = list(read_zip(tmp_path / 'out.zip')[0].values())[0]
    fitted = np.asarray(PIL.Image.fromarray(pattern(4, 64, 32)).resize((16, 8), PIL.Image.LANCZOS))
    np.testing.assert_array_equal(image[12:20], fitted)
    assert (image[:12] == [0, 0, 255]).all() and (image[20:] == [0, 0, 255]).all()


def test_resize_stretches_and_default_refuses_other_aspects(tmp_path):
    square = pattern(5, 32, 32)
    save(tmp_path / 'src' / 'sq.png', square)
    save(tmp_path / 'src' / 'tall.png', pattern(6, 32, 64))
    result = run('--source', tmp_path / 'src', '--dest', tmp_path / 'out.zip', '--transform', 'resize',
                 '--resolution', '16x32', '--resize-filter', 'box')
    assert result.exit_code == 0, result.output
    images, meta = read_zip(tmp_path / 'out.zip')
    assert meta == {'labels': None}
    stretched = np.asarray(PIL.Image.fromarray(square).resize((16, 32), PIL.Image.BOX))
    np.testing.assert_array_equal(images['00000/img00000000.png'], stretched)

    # No --transform: only images already 2:1 are resized; the square one is reported and skipped.
    result = run('--source', tmp_path / 'src', '--dest', tmp_path / 'plain.zip', '--resolution', '16x32')
    assert result.exit_code == 1
    assert 'sq.png: skipped' in result.output and 'wrote 1 of 2' in result.output
    assert len(read_zip(tmp_path / 'plain.zip')[0]) == 1


def test_center_crop_wide_is_nvidias(tmp_path):
    wide = pattern(7, 64, 32)
    save(tmp_path / 'src' / 'wide.png', wide)
    result = run('--source', tmp_path / 'src', '--dest', tmp_path / 'out.zip', '--transform', 'center-crop-wide',
                 '--resolution', '32x16')
    assert result.exit_code == 0, result.output
    image = list(read_zip(tmp_path / 'out.zip')[0].values())[0]
    assert image.shape == (32, 32, 3)   # letterboxed in a square
    expected = np.asarray(PIL.Image.fromarray(wide[8:24]).resize((32, 16), PIL.Image.LANCZOS))
    np.testing.assert_array_equal(image[8:24], expected)
    assert (image[:8] == 0).all() and (image[24:] == 0).all()


def test_corrupt_file_is_skipped_and_reported(source, tmp_path):
    folder, images = source
    (folder / 'broken.png').write_bytes(b'\x89PNG\r\n garbage')
    truncated = save(folder / 'deep' / 'half.png', pattern(8, 32, 64))
    truncated.write_bytes(truncated.read_bytes()[:300])
    result = run('--source', folder, '--dest', tmp_path / 'out.zip')
    assert result.exit_code == 1
    assert 'broken.png: skipped: not a readable image' in result.output
    assert 'deep/half.png: skipped: cannot decode' in result.output
    assert 'wrote 3 of 5 image(s)' in result.output
    out, meta = read_zip(tmp_path / 'out.zip')
    np.testing.assert_array_equal(out['00000/img00000002.png'], images['deep/c.png'])
    assert [label for _name, label in meta['labels']] == [2, 0, 1]


def test_existing_destination_needs_overwrite(source, tmp_path):
    folder, _images = source
    dest = tmp_path / 'out.zip'
    dest.write_bytes(b'precious')
    one_line_failure(run('--source', folder, '--dest', dest), 'already exists', '--overwrite')
    assert dest.read_bytes() == b'precious'
    assert run('--source', folder, '--dest', dest, '--overwrite').exit_code == 0
    assert len(read_zip(dest)[0]) == 3

    (tmp_path / 'full').mkdir()
    (tmp_path / 'full' / 'keep.txt').write_text('x')
    one_line_failure(run('--source', folder, '--dest', tmp_path / 'full'), 'already exists')
    assert run('--source', folder, '--dest', tmp_path / 'full', '--overwrite').exit_code == 0
    assert not (tmp_path / 'full' / 'keep.txt').exists() and (tmp_path / 'full' / 'dataset.json').exists()
    (tmp_path / 'empty').mkdir()
    assert run('--source', folder, '--dest', tmp_path / 'empty').exit_code == 0   # empty folder: NVIDIA allows


def test_interrupted_run_leaves_nothing(source, tmp_path, monkeypatch):
    folder, _images = source
    calls = []
    real = dataset_tool._png_bytes

    def crash_on_second(pixels):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(pixels)

    monkeypatch.setattr(dataset_tool, '_png_bytes', crash_on_second)
    for dest in ('out.zip', 'outdir'):
        calls.clear()
        with pytest.raises(KeyboardInterrupt):
            dataset_tool.convert_images(str(folder), str(tmp_path / dest), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['src']


def test_grayscale_kept_or_converted(tmp_path):
    gray = pattern(9, 32, 64, channels=1)
    save(tmp_path / 'src' / 'g.png', gray)
    assert run('--source', tmp_path / 'src', '--dest', tmp_path / 'g.zip').exit_code == 0
    ds = ImageFolderDataset(tmp_path / 'g.zip')
    assert ds.num_channels == 1
    np.testing.assert_array_equal(ds[0][0][0], gray)
    assert run('--source', tmp_path / 'src', '--dest', tmp_path / 'rgb.zip', '--img-format', 'RGB').exit_code == 0
    ds = ImageFolderDataset(tmp_path / 'rgb.zip')
    np.testing.assert_array_equal(ds[0][0], np.stack([gray] * 3))


def test_transparency_becomes_white(tmp_path):
    rgba = pattern(10, 32, 64, channels=4)
    rgba[..., 3] = 255
    rgba[:10, :, 3] = 0   # top rows fully transparent
    save(tmp_path / 'src' / 'cutout.png', rgba)
    assert run('--source', tmp_path / 'src', '--dest', tmp_path / 'out.zip').exit_code == 0
    image = list(read_zip(tmp_path / 'out.zip')[0].values())[0]
    assert image.shape == (64, 32, 3)
    assert (image[:10] == WHITE).all()
    np.testing.assert_array_equal(image[10:], rgba[10:, :, :3])


def test_exif_orientation_is_applied(tmp_path):
    exif = PIL.Image.Exif()
    exif[0x0112] = 6   # stored wide, shown turned a quarter: 2:1 portrait
    save(tmp_path / 'src' / 'phone.jpg', pattern(11, 64, 32), exif=exif, quality=95)
    result = run('--source', tmp_path / 'src', '--dest', tmp_path / 'out.zip')
    assert result.exit_code == 0, result.output
    assert list(read_zip(tmp_path / 'out.zip')[0].values())[0].shape == (64, 32, 3)


def test_max_images_and_partial_labels(source, tmp_path):
    folder, _images = source
    save(folder / 'z_unlabeled.png', pattern(12, 32, 64))
    result = run('--source', folder, '--dest', tmp_path / 'two.zip', '--max-images', 2)
    assert result.exit_code == 0, result.output
    out, meta = read_zip(tmp_path / 'two.zip')
    assert len(out) == 2 and len(meta['labels']) == 2
    result = run('--source', folder, '--dest', tmp_path / 'all.zip')
    assert result.exit_code == 0 and 'no label' in result.output and 'z_unlabeled.png' in result.output
    assert read_zip(tmp_path / 'all.zip')[1] == {'labels': None}


@pytest.mark.parametrize('args, words', [
    (['--transform', 'pad'], ['--transform pad', '--resolution']),
    (['--resolution', '48x96'], ['48x96', 'power of two']),
    (['--resolution', '30x64'], ['30x64', '2:1']),
    (['--resolution', '32x64', '--aspect', 'square'], ['32x64', '--aspect square']),
    (['--resolution', '32x64', '--height', '128'], ['disagree']),
    (['--resolution', 'big'], ['big']),
    (['--pad-color', 'teal'], ['teal']),
])
def test_bad_options_are_one_line(source, tmp_path, args, words):
    folder, _images = source
    one_line_failure(run('--source', folder, '--dest', tmp_path / 'out.zip', *args), *words)
    assert not (tmp_path / 'out.zip').exists()


def test_bad_sources(tmp_path):
    one_line_failure(run('--source', tmp_path / 'nowhere', '--dest', tmp_path / 'o.zip'), 'nowhere')
    (tmp_path / 'empty').mkdir()
    one_line_failure(run('--source', tmp_path / 'empty', '--dest', tmp_path / 'o.zip'), 'no readable images')
    save(tmp_path / 'odd' / 'a.png', pattern(0, 30, 50))
    one_line_failure(run('--source', tmp_path / 'odd', '--dest', tmp_path / 'o.zip'), '30x50', '--resolution')
    assert not (tmp_path / 'o.zip').exists()


def test_command_line_script(source, tmp_path):
    folder, _images = source
    (folder / 'bad.jpg').write_bytes(b'not a jpeg')
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'dataset_tool.py'), '--source', str(folder),
                           '--dest', str(tmp_path / 'out.zip'), '--resolution=16x32'],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr
    assert 'bad.jpg: not a readable image' in proc.stdout and 'wrote 3 of 4' in proc.stdout
    assert ImageFolderDataset(str(tmp_path / 'out.zip')).image_shape == [3, 32, 16]
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'dataset_tool.py'), '--source', str(folder),
                           '--dest', str(tmp_path / 'out.zip')], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert 'already exists' in (proc.stdout + proc.stderr)
