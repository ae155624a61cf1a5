"""training.dataset: NVIDIA's dataset API with 2:1 images, and one-line errors at open time."""

import json
import pickle
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from training.dataset import DatasetError, ImageFolderDataset

W, H = 32, 64   # StyleGAN-Human's 2:1: height = 2 x width


def pattern(seed, width=W, height=H, channels=3):
    """An image whose every pixel is known: random, different per seed."""
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.RandomState(seed).randint(0, 256, size=shape, dtype=np.uint8)


def save(path, pixels, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(pixels).save(path, **kwargs)
    return path


def make_folder(root, count=4, labels=None, **kwargs):
    """count PNGs img0.png ... in root (the last one in a subfolder); returns their HWC arrays by name."""
    images = {}
    for i in range(count):
        name = f'img{i}.png' if i < count - 1 else f'sub/img{i}.png'
        images[name] = pattern(i, **kwargs)
        save(root / name, images[name])
    if labels is not None:
        (root / 'dataset.json').write_text(json.dumps({'labels': [[n, labels[i]] for i, n in enumerate(images)]}))
    return images


def zip_folder(folder, zip_path):
    with zipfile.ZipFile(zip_path, 'w') as zf:
        for path in sorted(folder.rglob('*')):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return zip_path


def chw(hwc):
    return (hwc[:, :, None] if hwc.ndim == 2 else hwc).transpose(2, 0, 1)


def one_line_error(excinfo, *names):
    message = str(excinfo.value)
    assert '\n' not in message and message
    for name in names:
        assert name in message, message
    assert isinstance(excinfo.value, ValueError) and isinstance(excinfo.value, OSError)
    return message


# ----------------------------------------------------------------------------
# The API


def test_folder_values(tmp_path):
    images = make_folder(tmp_path / 'data')
    jpeg = save(tmp_path / 'data' / 'photo.jpg', pattern(9), quality=95)
    ds = ImageFolderDataset(str(tmp_path / 'data'))
    names = sorted(list(images) + ['photo.jpg'])
    assert len(ds) == 5 and ds.name == 'data'
    assert ds.image_shape == [3, H, W] and ds.num_channels == 3 and ds.resolution == H
    assert ds.label_shape == [0] and ds.label_dim == 0 and not ds.has_labels and not ds.square
    for i, name in enumerate(names):
        image, label = ds[i]
        expected = np.asarray(PIL.Image.open(jpeg)) if name == 'photo.jpg' else images[name]
        assert image.dtype == np.uint8 and label.dtype == np.float32 and label.shape == (0,)
        np.testing.assert_array_equal(image, chw(expected))


def test_zip_reads_the_same_as_the_folder(tmp_path):
    images = make_folder(tmp_path / 'data', labels=[0, 2, 1, 1])
    ds = ImageFolderDataset(zip_folder(tmp_path / 'data', tmp_path / 'data.zip'), use_labels=True)
    assert ds.name == 'data' and len(ds) == 4 and ds.label_dim == 3
    for i, name in enumerate(sorted(images)):
        np.testing.assert_array_equal(ds[i][0], chw(images[name]))
    ds.close()


def test_grayscale_and_mixed_channels(tmp_path):
    gray = make_folder(tmp_path / 'gray', channels=1)
    ds = ImageFolderDataset(tmp_path / 'gray')
    assert ds.image_shape == [1, H, W]
    np.testing.assert_array_equal(ds[0][0], chw(gray['img0.png']))

    mixed = make_folder(tmp_path / 'mixed')
    save(tmp_path / 'mixed' / 'a_gray.png', gray['img0.png'])
    ds = ImageFolderDataset(tmp_path / 'mixed')
    assert ds.num_channels == 3
    np.testing.assert_array_equal(ds[0][0], np.repeat(chw(gray['img0.png']), 3, axis=0))  # widened to RGB
    np.testing.assert_array_equal(ds[1][0], chw(mixed['img0.png']))


def test_square_images(tmp_path):
    images = make_folder(tmp_path / 'sq', width=32, height=32)
    ds = ImageFolderDataset(tmp_path / 'sq', square=True, resolution=32)
    assert ds.resolution == 32 and ds.image_shape == [3, 32, 32] and ds.square
    np.testing.assert_array_equal(ds[0][0], chw(images['img0.png']))


def test_integer_labels_are_one_hot(tmp_path):
    make_folder(tmp_path / 'data', labels=[2, 0, 1, 2])
    ds = ImageFolderDataset(tmp_path / 'data', use_labels=True)
    assert ds.has_labels and ds.has_onehot_labels and ds.label_shape == [3] and ds.label_dim == 3
    # Sorted names: img0, img1, img2, sub/img3 carry 2, 0, 1, 2.
    np.testing.assert_array_equal(np.stack([ds.get_label(i) for i in range(4)]),
                                  np.eye(3, dtype=np.float32)[[2, 0, 1, 2]])
    np.testing.assert_array_equal(ds[1][1], [1, 0, 0])
    assert ds.get_details(3).raw_label == 2
    assert ImageFolderDataset(tmp_path / 'data', use_labels=False).label_dim == 0


def test_vector_labels_are_kept(tmp_path):
    vectors = [[0.5, -1.0], [1.5, 2.0], [0.0, 0.25], [3.0, 4.0]]
    make_folder(tmp_path / 'data', labels=vectors)
    ds = ImageFolderDataset(tmp_path / 'data', use_labels=True)
    assert not ds.has_onehot_labels and ds.label_dim == 2
    labels = np.stack([ds.get_label(i) for i in range(4)])
    assert labels.dtype == np.float32
    np.testing.assert_array_equal(labels, np.array(vectors, dtype=np.float32))


def test_xflip_doubles_with_mirrored_copies(tmp_path):
    make_folder(tmp_path / 'data', labels=[0, 1, 0, 1])
    ds = ImageFolderDataset(tmp_path / 'data', xflip=True, use_labels=True)
    plain = ImageFolderDataset(tmp_path / 'data', use_labels=True)
    assert len(ds) == 8
    for i in range(4):
        np.testing.assert_array_equal(ds[i][0], plain[i][0])
        np.testing.assert_array_equal(ds[i + 4][0], np.flip(plain[i][0], axis=2))  # left-right
        np.testing.assert_array_equal(ds[i + 4][1], plain[i][1])
        assert not ds.get_details(i).xflip and ds.get_details(i + 4).xflip
        assert ds.get_details(i + 4).raw_idx == i


def test_max_size_is_a_seeded_subset(tmp_path):
    images = make_folder(tmp_path / 'data', count=8)
    names = sorted(images)

    def chosen(seed):
        ds = ImageFolderDataset(tmp_path / 'data', max_size=3, random_seed=seed)
        return ds, [ds.get_details(i).raw_idx for i in range(len(ds))]

    ds, picked = chosen(5)
    expected = sorted(np.random.RandomState(5).permutation(8)[:3].tolist())   # NVIDIA's recipe
    assert picked == expected and len(ds) == 3
    for i, raw in enumerate(picked):
        np.testing.assert_array_equal(ds[i][0], chw(images[names[raw]]))
    assert chosen(5)[1] == picked
    assert {tuple(chosen(s)[1]) for s in range(6)} != {tuple(picked)}   # the seed matters
    assert len(ImageFolderDataset(tmp_path / 'data', max_size=3, xflip=True)) == 6
    assert len(ImageFolderDataset(tmp_path / 'data', max_size=100)) == 8


def test_pickle_round_trip_reopens_the_zip(tmp_path):
    make_folder(tmp_path / 'data', labels=[1, 0, 1, 0])
    ds = ImageFolderDataset(zip_folder(tmp_path / 'data', tmp_path / 'data.zip'), use_labels=True, xflip=True)
    first = ds[5]
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._zipfile is None and len(copy) == 8 and copy.label_dim == 2
    for i in range(len(ds)):
        np.testing.assert_array_equal(copy[i][0], ds[i][0])
        np.testing.assert_array_equal(copy[i][1], ds[i][1])
    np.testing.assert_array_equal(copy[5][0], first[0])
    ds.close()
    np.testing.assert_array_equal(ds[5][0], first[0])   # reads again after close()


def test_dataloader_with_a_worker(tmp_path):
    images = make_folder(tmp_path / 'data', labels=[0, 1, 2, 1])
    ds = ImageFolderDataset(zip_folder(tmp_path / 'data', tmp_path / 'data.zip'), use_labels=True, xflip=True)
    ds[0]   # the parent holds an open zip handle before the worker starts
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=1)
    batches = list(loader)
    got = torch.cat([b[0] for b in batches]).numpy()
    labels = torch.cat([b[1] for b in batches]).numpy()
    names = sorted(images)
    expected = [chw(images[n]) for n in names] + [np.flip(chw(images[n]), axis=2) for n in names]
    np.testing.assert_array_equal(got, np.stack(expected))
    np.testing.assert_array_equal(labels, np.eye(3, dtype=np.float32)[[0, 1, 2, 1, 0, 1, 2, 1]])


# ----------------------------------------------------------------------------
# Errors at open time: one line naming the file


def test_mixed_sizes(tmp_path):
    make_folder(tmp_path / 'data')
    save(tmp_path / 'data' / 'odd.png', pattern(0, width=16, height=32))
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'data')
    message = one_line_error(excinfo, 'odd.png', '16x32', '32x64')
    assert '4 of the 5' in message


def test_2to1_dataset_needs_2to1_images(tmp_path):
    make_folder(tmp_path / 'sq', width=32, height=32)
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'sq')   # square=False by default
    one_line_error(excinfo, 'img0.png', '32x32', 'square=True')


def test_square_dataset_refuses_2to1_images(tmp_path):
    make_folder(tmp_path / 'data')
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'data', square=True)
    one_line_error(excinfo, 'img0.png', '32x64', 'square=False')


def test_height_must_be_a_power_of_two(tmp_path):
    make_folder(tmp_path / 'data', width=24, height=48)
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'data')
    one_line_error(excinfo, 'img0.png', '48', 'power of two')


def test_resolution_argument_is_checked(tmp_path):
    make_folder(tmp_path / 'data')
    assert ImageFolderDataset(tmp_path / 'data', resolution=64).resolution == 64
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'data', resolution=128)
    one_line_error(excinfo, 'img0.png', '32x64', '64x128')
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'data', resolution=96)
    one_line_error(excinfo, 'resolution=96', 'power of two')


def test_no_images(tmp_path):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'notes.txt').write_text('no pictures here')
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'empty')
    one_line_error(excinfo, 'empty', 'no image')
    zipfile.ZipFile(tmp_path / 'empty.zip', 'w').close()
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'empty.zip')
    one_line_error(excinfo, 'empty.zip', 'no image')


def test_missing_path_and_bad_zip(tmp_path):
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'nowhere')
    one_line_error(excinfo, 'nowhere')
    (tmp_path / 'broken.zip').write_bytes(b'not a zip at all')
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'broken.zip')
    one_line_error(excinfo, 'broken.zip', 'zip')
    (tmp_path / 'file.txt').write_text('x')
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'file.txt')
    one_line_error(excinfo, 'file.txt')


def test_unreadable_image(tmp_path):
    make_folder(tmp_path / 'data')
    (tmp_path / 'data' / 'sub' / 'junk.png').write_bytes(b'\x89PNG but not really')
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'data')
    one_line_error(excinfo, 'junk.png', 'not a readable image')
    zip_folder(tmp_path / 'data', tmp_path / 'data.zip')
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'data.zip')
    one_line_error(excinfo, 'data.zip', 'junk.png')


def test_unsupported_colour_mode(tmp_path):
    make_folder(tmp_path / 'data')
    save(tmp_path / 'data' / 'alpha.png', pattern(3, channels=4))
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'data')
    one_line_error(excinfo, 'alpha.png', 'RGBA', 'dataset_tool.py')


def test_truncated_image_fails_when_read_naming_it(tmp_path):
    make_folder(tmp_path / 'data')
    path = tmp_path / 'data' / 'img1.png'
    path.write_bytes(path.read_bytes()[:200])   # header intact, pixels cut off
    ds = ImageFolderDataset(tmp_path / 'data')
    ds[0]
    with pytest.raises(DatasetError) as excinfo:
        ds[1]
    one_line_error(excinfo, 'img1.png', 'decode')


def test_label_file_errors(tmp_path):
    make_folder(tmp_path / 'data')
    labels_file = tmp_path / 'data' / 'dataset.json'
    labels_file.write_text(json.dumps({'labels': [['img0.png', 1], ['img1.png', 0]]}))
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'data', use_labels=True)
    one_line_error(excinfo, 'dataset.json', 'img2.png', '2 of the 4')
    assert ImageFolderDataset(tmp_path / 'data', use_labels=False).label_dim == 0   # labels unused: no error

    labels_file.write_text('{"labels": [')
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'data', use_labels=True)
    one_line_error(excinfo, 'dataset.json', 'JSON')

    names = ['img0.png', 'img1.png', 'img2.png', 'sub/img3.png']
    labels_file.write_text(json.dumps({'labels': [[n, 0.5] for n in names]}))
    with pytest.raises(DatasetError) as excinfo:
        ImageFolderDataset(tmp_path / 'data', use_labels=True)
    one_line_error(excinfo, 'dataset.json', '0.5', 'class index')

    labels_file.write_text(json.dumps({'labels': None}))
    assert not ImageFolderDataset(tmp_path / 'data', use_labels=True).has_labels
