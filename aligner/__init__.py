"""Photo alignment for StyleGAN-Human: a photo of one person -> the model's 1:2 crop.

``alignment.py`` and ``bg_white.py`` are the command lines; in a notebook::

    from aligner import make_backend, load_photo, align_photo
    backend = make_backend()                     # MediaPipe, offline on the CPU
    aligned = align_photo(load_photo('me.jpg'), backend, size=(512, 1024))
"""

from .align import AlignedPhoto, AlignmentError, align_photo
from .backends import COCO18_NAMES, Analysis, Backend, BackendUnavailable, make_backend
from stylegan_human.photos import PhotoError, list_photos, load_photo

__all__ = ['AlignedPhoto', 'AlignmentError', 'align_photo', 'COCO18_NAMES', 'Analysis', 'Backend',
           'BackendUnavailable', 'make_backend', 'PhotoError', 'list_photos', 'load_photo']
