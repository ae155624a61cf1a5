"""Make a training dataset: images -> a zip (or folder) of same-size PNGs, with labels.

\b
Examples:
# Aligned 1024x512 photos (alignment.py output, SHHQ) -> a 512x256 training zip
python dataset_tool.py --source=SHHQ-1.0/ --dest=datasets/shhq-512.zip --resolution=256x512
# Any photos -> 2:1, fitted inside 512x1024 on a white background
python dataset_tool.py --source=photos/ --dest=datasets/photos.zip --resolution=1024 --transform=pad
# Square dataset, as NVIDIA's tool makes
python dataset_tool.py --source=faces.zip --dest=datasets/faces/ --transform=center-crop --resolution=256x256

\b
--source  a folder (searched recursively) or a .zip of images, with an optional
          dataset.json: {"labels": [[file name, label], ...]} (NVIDIA's format).
--dest    a .zip file (uncompressed, as NVIDIA's) or a folder; it holds
          00000/img00000000.png, ... and dataset.json with the labels carried over.

\b
Output size: --resolution=WxH (width x height, as NVIDIA's; e.g. 512x1024), or
--resolution=N for height N with the --aspect (2:1 by default: width N/2), or
--width/--height. Without any, the images keep the size most of them have.
StyleGAN-Human trains on 2:1 images (height = 2 x width); square datasets work too.

\b
--transform (how an image becomes the output size):
  (none)            resize, only images that already have the output's aspect
  resize            stretch to the output size, whatever the aspect
  center-crop       cut the largest centred box of the output's aspect, resize
  pad               fit the whole image inside, fill the rest with --pad-color
  center-crop-wide  NVIDIA's: crop to WxH, letterbox in a black WxW square
  center-crop-tall  NVIDIA's: crop to WxH, pillarbox in a black HxH square

An image that cannot be read or does not fit is reported with its reason and
skipped; the rest are converted, a summary follows, and the exit code is 1 if
any was skipped. The destination appears only when complete; an existing one is
kept unless --overwrite is given.
"""

import dataclasses
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections import Counter

import click
import numpy as np
import PIL.Image
import PIL.ImageOps

from dnnlib.errors import InputError
from stylegan_human import commands, runtime

LABELS_FILE = 'dataset.json'
TRANSFORMS = ['center-crop', 'center-crop-wide', 'center-crop-tall', 'resize', 'pad']
RESAMPLE = {'box': PIL.Image.BOX, 'lanczos': PIL.Image.LANCZOS}
ASPECT_TOLERANCE = 0.01   # Without --transform, an image within 1% of the output's aspect is resized.
GRAY_MODES = {'1', 'L', 'LA', 'I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F'}
EXIF_ORIENTATION = 0x0112


class ImageSkipped(InputError):
    """One source image cannot go into the dataset; the message says why."""


# ----------------------------------------------------------------------------
# Reading the source


@dataclasses.dataclass
class SourceImage:
    name: str           # Path relative to the source root, '/'-separated (the dataset.json key).
    size: tuple         # (width, height) as shown, after the EXIF orientation.
    grayscale: bool


class ImageSource:
    """A folder tree or zip of images: names, headers, decoding, labels."""

    def __init__(self, path):
        self.path = os.fspath(path)
        PIL.Image.init()
        if os.path.isdir(self.path):
            self._zip = None
            names = [os.path.relpath(os.path.join(root, f), self.path).replace('\\', '/')
                     for root, _dirs, files in os.walk(self.path) for f in files]
        elif not os.path.exists(self.path):
            raise commands.UserError(f'--source {self.path}: no such folder or .zip file')
        elif _is_zip_name(self.path):
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as err:
                raise commands.UserError(f'--source {self.path}: not a readable zip file ({err})') from None
            names = [n for n in self._zip.namelist() if not n.endswith('/')]
        else:
            raise commands.UserError(f'--source {self.path}: not a folder or a .zip of images')
        self.names = sorted(n for n in names if _is_image_name(n))
        self.labels = self._read_labels(set(names))

    def close(self):
        if self._zip is not None:
            self._zip.close()

    def _open(self, name):
        if self._zip is None:
            return open(os.path.join(self.path, name), 'rb')
        return self._zip.open(name, 'r')

    def _read_labels(self, names):
        """{name: label} from dataset.json; {} when there is none or it says null."""
        if LABELS_FILE not in names:
            return {}
        where = os.path.join(self.path, LABELS_FILE)
        try:
            with self._open(LABELS_FILE) as f:
                data = json.load(f)
            labels = data['labels']
            return {} if labels is None else {str(k).replace('\\', '/'): v for k, v in labels}
        except (ValueError, OSError, KeyError, TypeError) as err:
            raise commands.UserError(f'{where}: expected {{"labels": [[file name, label], ...]}} '
                                       f'({type(err).__name__}: {err})') from None

    def header(self, name):
        """Size and colour of one image from its header (no pixel decoding)."""
        try:
            with self._open(name) as f, PIL.Image.open(f) as image:
                width, height = image.size
                if _orientation(image) in (5, 6, 7, 8):  # Shown turned by 90 degrees.
                    width, height = height, width
                return SourceImage(name, (width, height), image.mode in GRAY_MODES)
        except Exception as err:  # Pillow raises many kinds for a broken file.
            raise ImageSkipped(f'not a readable image ({_reason(err)})') from None

    def decode(self, name):
        """The image as Pillow shows it: EXIF orientation applied, pixels loaded."""
        try:
            with self._open(name) as f, PIL.Image.open(f) as image:
                image.load()
                return PIL.ImageOps.exif_transpose(image)
        except Exception as err:
            raise ImageSkipped(f'cannot decode the image ({_reason(err)})') from None


def _orientation(image):
    """The EXIF orientation tag when the header has it (1 = as stored)."""
    if image.format == 'PNG' and 'exif' not in image.info:
        return 1   # Pillow would decode the whole PNG looking for an eXIf chunk after the pixels.
    return image.getexif().get(EXIF_ORIENTATION, 1)


def to_array(image, channels, background):
    """PIL image in any mode -> uint8 HWC (channels 3) or HW (channels 1); transparency over ``background``."""
    if image.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N'):  # 16-bit grayscale: keep the top 8 bits.
        image = PIL.Image.fromarray((np.asarray(image, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8))
    if image.mode == 'P':
        image = image.convert('RGBA' if 'transparency' in image.info else 'RGB')
    if image.mode in ('RGBA', 'LA', 'PA', 'La', 'RGBa'):
        backdrop = PIL.Image.new('RGBA', image.size, tuple(background) + (255,))
        image = PIL.Image.alpha_composite(backdrop, image.convert('RGBA'))
    image = image.convert('RGB' if channels == 3 else 'L')
    return np.asarray(image).copy()


# ----------------------------------------------------------------------------
# Transforms: uint8 HW or HWC array -> array of the output size, or ImageSkipped


def resize(img, width, height, resample):
    if img.shape[1] == width and img.shape[0] == height:
        return img
    return np.asarray(PIL.Image.fromarray(img).resize((width, height), resample))


def crop_box(img, left, top, width, height):
    return img[top:top + height, left:left + width]


def centered_crop_to_aspect(img, width, height):
    """The largest centred box with the aspect width:height."""
    h, w = img.shape[:2]
    if w * height > h * width:   # Too wide: keep the full height.
        cw, ch = max(1, round(h * width / height)), h
    else:                        # Too tall: keep the full width.
        cw, ch = w, max(1, round(w * height / width))
    return crop_box(img, (w - cw) // 2, (h - ch) // 2, cw, ch)


def paste_centered(canvas, img):
    top = (canvas.shape[0] - img.shape[0]) // 2
    left = (canvas.shape[1] - img.shape[1]) // 2
    canvas[top:top + img.shape[0], left:left + img.shape[1]] = img
    return canvas


def blank(width, height, like, color):
    shape = (height, width) + like.shape[2:]
    value = color if like.ndim == 3 else round(0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2])
    canvas = np.empty(shape, dtype=np.uint8)
    canvas[...] = value
    return canvas


def make_transform(transform, width, height, resample=PIL.Image.LANCZOS, pad_color=(255, 255, 255)):
    """A function img -> output image (ImageSkipped when the image cannot be made to fit)."""

    def keep_aspect(img):
        h, w = img.shape[:2]
        if abs((w / h) / (width / height) - 1) > ASPECT_TOLERANCE:
            raise ImageSkipped(f'is {w}x{h}, not the aspect of {width}x{height}; '
                               'use --transform center-crop, pad or resize')
        return resize(img, width, height, resample)

    def stretch(img):
        return resize(img, width, height, resample)

    def center_crop(img):
        return resize(centered_crop_to_aspect(img, width, height), width, height, resample)

    def pad(img):
        h, w = img.shape[:2]
        scale = min(width / w, height / h)
        fitted = resize(img, min(width, max(1, round(w * scale))), min(height, max(1, round(h * scale))), resample)
        return paste_centered(blank(width, height, img, pad_color), fitted)

    def center_crop_wide(img):  # NVIDIA's: for wide outputs in a square training canvas.
        h, w = img.shape[:2]
        ch = int(np.round(width * h / w))
        if w < width or ch < height:
            raise ImageSkipped(f'is {w}x{h}, smaller than the {width}x{height} crop of center-crop-wide')
        img = resize(crop_box(img, 0, (h - ch) // 2, w, ch), width, height, resample)
        return paste_centered(blank(width, width, img, (0, 0, 0)), img)

    def center_crop_tall(img):  # NVIDIA's: for tall outputs in a square training canvas.
        h, w = img.shape[:2]
        cw = int(np.round(height * w / h))
        if h < height or cw < width:
            raise ImageSkipped(f'is {w}x{h}, smaller than the {width}x{height} crop of center-crop-tall')
        img = resize(crop_box(img, (w - cw) // 2, 0, cw, h), width, height, resample)
        return paste_centered(blank(height, height, img, (0, 0, 0)), img)

    return {None: keep_aspect, 'resize': stretch, 'center-crop': center_crop, 'pad': pad,
            'center-crop-wide': center_crop_wide, 'center-crop-tall': center_crop_tall}[transform]


def canvas_size(transform, width, height):
    """Size of the images written: NVIDIA's wide/tall crops sit in a square."""
    if transform == 'center-crop-wide':
        return width, width
    if transform == 'center-crop-tall':
        return height, height
    return width, height


# ----------------------------------------------------------------------------
# Options -> output size


def parse_resolution(text):
    """'512x1024' or '512,1024' -> (512, 1024) (width, height); '1024' -> (None, 1024)."""
    match = re.match(r'^\s*(\d+)\s*(?:[x,]\s*(\d+))?\s*$', str(text))
    if not match:
        raise ValueError(f'{text!r} is not WxH (e.g. 512x1024) or a height (e.g. 1024)')
    if match.group(2) is None:
        return None, int(match.group(1))
    return int(match.group(1)), int(match.group(2))


def parse_color(text):
    """'white', 'black', 'R,G,B' or a gray level -> (r, g, b)."""
    named = {'white': (255, 255, 255), 'black': (0, 0, 0), 'gray': (128, 128, 128), 'grey': (128, 128, 128)}
    text = str(text).strip().lower()
    if text in named:
        return named[text]
    try:
        values = [int(v) for v in text.split(',')]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise ValueError(f'{text!r} is not a colour: use white, black, R,G,B or a gray level 0-255')
    return tuple(values)


def output_size(resolution=None, width=None, height=None, aspect=None):
    """(width, height) asked for by the options, None where the images decide; UserError if they disagree."""
    if resolution is not None:
        res_w, res_h = resolution
        if (width is not None and res_w is not None and width != res_w) or (height is not None and height != res_h):
            raise commands.UserError('--resolution and --width/--height disagree')
        width, height = res_w if res_w is not None else width, res_h
    ratio = {'2:1': 2, 'square': 1, None: 2}[aspect]  # height / width; StyleGAN-Human's default is 2:1
    if width is None and height is not None:
        if height % ratio:
            raise commands.UserError(f'height {height} is odd: a 2:1 image needs an even height')
        width = height // ratio
    elif height is None and width is not None:
        height = width * ratio
    return width, height


def check_output_size(width, height, aspect, what):
    """The images written must be 2:1 or square with a power-of-two height; ``what`` names where the size came from."""
    size = f'{what} {width}x{height} (width x height)'
    if height == 2 * width:
        shape = '2:1'
    elif height == width:
        shape = 'square'
    else:
        raise commands.UserError(f'{size}: neither 2:1 (height = 2 x width, e.g. 512x1024) nor square; '
                                   'choose one with --resolution')
    if aspect is not None and aspect != shape:
        raise commands.UserError(f'{size}: {shape}, not --aspect {aspect}')
    if height < 4 or height & (height - 1):
        raise commands.UserError(f'{size}: the height {height} is not a power of two (4 or more); '
                                   'choose one with --resolution')


# ----------------------------------------------------------------------------
# Writing the destination atomically


def check_dest(dest, overwrite):
    """Refuse to replace an existing destination unless asked (an empty folder is fine, as NVIDIA's)."""
    if not dest:
        raise commands.UserError('--dest must not be empty')
    if overwrite or not os.path.lexists(dest):
        return
    if _is_zip_name(dest) or not _is_empty_folder(dest):
        raise commands.UserError(f'--dest {dest} already exists; pass --overwrite to replace it')


class DatasetWriter:
    """Files go to a temporary zip or folder beside ``dest``; ``commit`` renames it into place."""

    def __init__(self, dest, overwrite=False):
        check_dest(dest, overwrite)
        self.dest = os.path.abspath(dest)
        self.is_zip = _is_zip_name(dest)
        parent = os.path.dirname(self.dest)
        os.makedirs(parent, exist_ok=True)
        prefix = '.' + os.path.basename(self.dest) + '.'
        if self.is_zip:
            fd, self.tmp = tempfile.mkstemp(prefix=prefix, suffix='.tmp', dir=parent)
            os.close(fd)
            self._zip = zipfile.ZipFile(self.tmp, 'w', compression=zipfile.ZIP_STORED)
        else:
            self.tmp = tempfile.mkdtemp(prefix=prefix, suffix='.tmp', dir=parent)

    def write(self, name, data):
        if isinstance(data, str):
            data = data.encode('utf8')
        if self.is_zip:
            self._zip.writestr(name, data)
            return
        path = os.path.join(self.tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)

    def commit(self):
        # Temporary files are private (0600/0700); the dataset gets the permissions of a normal file/folder.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, (0o666 if self.is_zip else 0o777) & ~umask)
        if self.is_zip:
            self._zip.close()
            os.replace(self.tmp, self.dest)
            return
        old = None
        if os.path.lexists(self.dest):  # Moved aside, then removed once the new folder is in place.
            old = tempfile.mkdtemp(prefix='.' + os.path.basename(self.dest) + '.', suffix='.old',
                                   dir=os.path.dirname(self.dest))
            os.replace(self.dest, os.path.join(old, 'previous'))
        os.replace(self.tmp, self.dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def discard(self):
        if self.is_zip:
            self._zip.close()
            if os.path.exists(self.tmp):
                os.remove(self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ----------------------------------------------------------------------------
# The conversion


@dataclasses.dataclass
class ConversionReport:
    written: int = 0
    skipped: list = dataclasses.field(default_factory=list)   # (source name, reason)
    size: tuple = None                                         # (width, height) of the images written
    labeled: bool = False
    notes: list = dataclasses.field(default_factory=list)

    def summary(self):
        lines = [f'wrote {self.written} of {self.written + len(self.skipped)} image(s)'
                 + (f' at {self.size[0]}x{self.size[1]} (width x height)' if self.size else '')
                 + (', with labels' if self.labeled else '')
                 + (f'; skipped {len(self.skipped)}:' if self.skipped else '')]
        lines += [f'  {name}: {reason}' for name, reason in self.skipped]
        return '\n'.join(lines + self.notes)


def convert_images(source, dest, *, max_images=None, transform=None, resolution=None, width=None, height=None,
                   aspect=None, resize_filter='lanczos', img_format='keep', pad_color=(255, 255, 255),
                   overwrite=False, progress=True, log=print):
    """Convert ``source`` (folder or zip of images) into a training dataset at ``dest``; returns a ConversionReport.

    Options as the command line's; ``resolution`` is (width or None, height).
    User mistakes raise commands.UserError; bad images are skipped and listed in the report.
    """
    check_dest(dest, overwrite)  # Before the work, not after.
    width, height = output_size(resolution, width, height, aspect)
    if transform is not None and width is None:
        raise commands.UserError(f'--transform {transform} needs --resolution WxH (or --width and --height)')

    src = ImageSource(source)
    try:
        report = ConversionReport()
        images = _scan_headers(src, report, log, progress)
        if not images:
            raise commands.UserError(f'--source {source}: no readable images found'
                                       + (f' ({len(report.skipped)} unreadable)' if report.skipped else ''))
        asked = width is not None
        if not asked:  # The size most images have.
            (width, height), _count = Counter(img.size for img in images).most_common(1)[0]
        out_w, out_h = canvas_size(transform, width, height)
        check_output_size(out_w, out_h, aspect, f'--transform {transform} output' if transform in (
            'center-crop-wide', 'center-crop-tall') else 'output size' if asked else 'most --source images are')
        report.size = (out_w, out_h)
        convert = make_transform(transform, width, height, RESAMPLE[resize_filter], pad_color)
        channels = _output_channels(images, img_format)

        writer = DatasetWriter(dest, overwrite=overwrite)
        try:
            labels = _write_images(src, images, writer, convert, channels, pad_color, max_images, report,
                                   log, progress)
            if report.written == 0:
                raise commands.UserError(f'none of the {len(report.skipped)} image(s) could be converted '
                                           '(reasons above); nothing written')
            writer.write(LABELS_FILE, json.dumps({'labels': labels}))
            writer.commit()
        except BaseException:
            writer.discard()
            raise
        report.labeled = labels is not None
        return report
    finally:
        src.close()


def _scan_headers(src, report, log, progress):
    from tqdm import tqdm
    images = []
    for name in tqdm(src.names, desc='Reading headers', unit='img', disable=not progress, leave=False):
        try:
            images.append(src.header(name))
        except ImageSkipped as err:
            report.skipped.append((name, str(err)))
            (tqdm.write if progress else log)(f'{name}: skipped: {err}')
    return images


def _output_channels(images, img_format):
    if img_format == 'L':
        return 1
    if img_format == 'RGB':
        return 3
    return 1 if all(img.grayscale for img in images) else 3  # keep: grayscale stays so unless colour is mixed in


def _write_images(src, images, writer, convert, channels, pad_color, max_images, report, log, progress):
    """Decode, transform and store each image; returns the label list, or None when not every image has one."""
    from tqdm import tqdm
    total = len(images) if max_images is None else min(len(images), max_images)
    labels, unlabeled = [], []
    with tqdm(total=total, desc='Writing', unit='img', disable=not progress) as bar:
        for image in images:
            if max_images is not None and report.written >= max_images:
                break
            try:
                pixels = convert(to_array(src.decode(image.name), channels, pad_color))
            except ImageSkipped as err:
                report.skipped.append((image.name, str(err)))
                (bar.write if progress else log)(f'{image.name}: skipped: {err}')
                continue
            assert (pixels.shape[1], pixels.shape[0]) == report.size
            index = f'{report.written:08d}'
            archive_name = f'{index[:5]}/img{index}.png'
            writer.write(archive_name, _png_bytes(pixels))
            report.written += 1
            bar.update(1)
            if image.name in src.labels:
                labels.append([archive_name, src.labels[image.name]])
            else:
                unlabeled.append(image.name)
    if not src.labels:
        return None
    if unlabeled:
        report.notes.append(f'note: {len(unlabeled)} image(s) have no label in dataset.json (first: {unlabeled[0]}); '
                            'the dataset is written without labels')
        return None
    return labels


def _png_bytes(pixels):
    buffer = io.BytesIO()
    # Uncompressed PNGs decode fastest in the training loop (NVIDIA's choice).
    PIL.Image.fromarray(pixels).save(buffer, format='png', compress_level=0, optimize=False)
    return buffer.getvalue()


def _is_image_name(name):
    parts = name.replace('\\', '/').split('/')
    if parts[0] == '__MACOSX' or parts[-1].startswith('._'):  # macOS metadata copies, not images
        return False
    return os.path.splitext(name)[1].lower() in PIL.Image.EXTENSION


def _is_zip_name(path):
    return os.path.splitext(os.fspath(path))[1].lower() == '.zip'


def _is_empty_folder(path):
    return os.path.isdir(path) and not os.listdir(path)


def _reason(err):
    if isinstance(err, PIL.UnidentifiedImageError):  # Its text is a file object's repr: say what it means.
        return 'unknown format or damaged header'
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0]}' if text else type(err).__name__


# ----------------------------------------------------------------------------
# Command line


@click.command(cls=commands.Command, help=__doc__)
@click.option('--source', help='Folder or .zip of input images', required=True, metavar='PATH')
@click.option('--dest', help='Output .zip or folder', required=True, metavar='PATH')
@click.option('--max-images', help='Output only up to `max-images` images', type=click.IntRange(min=1), default=None)
@click.option('--transform', help='How images become the output size (see above)', type=click.Choice(TRANSFORMS))
@click.option('--resolution', help="Output size, width x height (e.g. '512x1024'), or a height", metavar='WxH',
              type=commands.ParsedType('WxH', parse_resolution))
@click.option('--width', help='Output width', type=click.IntRange(min=1))
@click.option('--height', help='Output height', type=click.IntRange(min=1))
@click.option('--aspect', help='Output shape when only a height (or width) is given [default: 2:1]',
              type=click.Choice(['2:1', 'square']))
@click.option('--resize-filter', help='Filter to use when resizing images for output resolution',
              type=click.Choice(['box', 'lanczos']), default='lanczos', show_default=True)
@click.option('--img-format', help='Output colour: keep (grayscale stays 1 channel unless mixed with colour), L or RGB',
              type=click.Choice(['keep', 'L', 'RGB']), default='keep', show_default=True)
@click.option('--pad-color', help='Fill of --transform pad and of transparent pixels: white, black, R,G,B',
              type=commands.ParsedType('color', parse_color), default='white', show_default=True)
@click.option('--overwrite', help='Replace an existing --dest', is_flag=True)
@commands.user_errors
def convert_dataset(source, dest, max_images, transform, resolution, width, height, aspect, resize_filter,
                    img_format, pad_color, overwrite):
    report = convert_images(source, dest, max_images=max_images, transform=transform, resolution=resolution,
                            width=width, height=height, aspect=aspect, resize_filter=resize_filter,
                            img_format=img_format, pad_color=pad_color, overwrite=overwrite)
    print(report.summary())
    print(f'Output: {dest}')
    if report.skipped:
        raise SystemExit(1)


if __name__ == '__main__':
    runtime.start_script()
    convert_dataset()  # pylint: disable=no-value-for-parameter
