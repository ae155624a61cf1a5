"""Atomic file output: a crash or Ctrl-C never leaves a truncated file under the final name."""

import os
import tempfile


def atomic_write(path, write_fn, mode='wb'):
    """Call ``write_fn(file)`` on a temporary file beside ``path``, then rename it into place."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        # mkstemp makes the file private (0600); give it what open() would: 0666 less the umask.
        default_permissions(tmp)
        with os.fdopen(fd, mode) as f:
            write_fn(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def default_permissions(path):
    """Give ``path`` (a mkstemp file, 0600) the permissions open() would: 0666 less the umask."""
    os.chmod(path, 0o666 & ~_umask())


def _umask():
    """The process umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_image(image, path):
    """Write an HWC uint8 array (or PIL image) atomically; the format follows the suffix."""
    import PIL.Image
    if not isinstance(image, PIL.Image.Image):
        image = PIL.Image.fromarray(image)
    fmt = PIL.Image.registered_extensions().get(os.path.splitext(os.fspath(path))[1].lower(), 'PNG')
    options = {'quality': 95} if fmt == 'JPEG' else {}  # Pillow's default 75 visibly blurs faces
    atomic_write(path, lambda f: image.save(f, format=fmt, **options))
