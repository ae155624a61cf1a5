"""Folders of photos through the aligner: aligned crops, or people put on white, one file per photo.

The work behind ``alignment.py`` and ``bg_white.py``: each photo's output is written
atomically as soon as it is done; a photo that fails is reported in the batch report and
the others go on; ``stop`` (a callable) is asked after each photo, so a caller can end the
batch cleanly (Ctrl-C).
"""

import json
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from dnnlib.atomic import atomic_write, save_image
from stylegan_human.batch_report import BatchReport, output_stems, run_batch
from stylegan_human.photos import DEFAULT_MAX_SIDE, PhotoError, list_photos, load_photo
from .align import AlignedPhoto, align_photo
from .backends import Backend
from .composite import UPSTREAM_BLUR, find_mask_file, load_mask, on_white
from .people import COCO18_NAMES


def keypoints_record(aligned: AlignedPhoto, source_name: str, backend_names: Dict[str, str]) -> Dict[str, Any]:
    """What --save-keypoints writes: COCO-18 keypoints in output pixels and how the crop was made."""
    box = aligned.box
    return {
        'source': source_name,
        'source_size': list(aligned.source_size),
        'crop_box': {'x0': box.x0, 'y0': box.y0, 'width': box.width, 'height': box.height},
        'size': [int(aligned.image.shape[1]), int(aligned.image.shape[0])],
        'backend': backend_names,
        'keypoint_names': list(COCO18_NAMES),
        'keypoints': [[round(float(x), 2), round(float(y), 2), round(float(c), 4)] for x, y, c in aligned.keypoints],
    }


def collect_photos(image_folder: str, recursive: bool = False) -> Tuple[List[str], str]:
    """(photo paths, the folder output names are relative to) for a folder or a single photo."""
    if os.path.isfile(image_folder):
        return [image_folder], os.path.dirname(image_folder) or '.'
    return list_photos(image_folder, recursive=recursive), image_folder


def align_folder(image_folder: str, output_folder: str, backend: Backend, size: Tuple[int, int] = (512, 1024),
                 recursive: bool = False, keep_background: bool = False, save_mask: bool = False,
                 save_keypoints: bool = False, skip_existing: bool = False, max_side: Optional[int] = DEFAULT_MAX_SIDE,
                 backend_names: Optional[Dict[str, str]] = None, progress: bool = True,
                 stop: Optional[Callable[[], bool]] = None) -> BatchReport:
    """Align every photo under ``image_folder`` (or the one photo it names) into ``output_folder``."""
    paths, root = collect_photos(image_folder, recursive)
    stems = output_stems(paths, root)
    report = BatchReport()
    if skip_existing:
        todo = [p for p in paths if not os.path.exists(os.path.join(output_folder, stems[p] + '.png'))]
        report.done = len(paths) - len(todo)
        paths = todo

    def process(path, name):
        aligned = align_photo(load_photo(path, max_side=max_side), backend, size=size,
                              keep_background=keep_background)
        out = os.path.join(output_folder, stems[path])
        # Side files first, the image last: an image on disk means its photo is done.
        if save_mask:
            save_image(aligned.mask, out + '_mask.png')
        if save_keypoints:
            text = json.dumps(keypoints_record(aligned, name, backend_names or {}), indent=1)
            atomic_write(out + '_keypoints.json', lambda f: f.write(text), mode='w')
        save_image(aligned.image, out + '.png')

    return run_batch(paths, root, process, desc='Aligning', report=report, progress=progress, stop=stop)


def white_background_folder(raw_img_dir: str, outdir: str, seg_dir: Optional[str] = None,
                            segmenter: Optional[Backend] = None, recursive: bool = False, blur: int = UPSTREAM_BLUR,
                            progress: bool = True,
                            stop: Optional[Callable[[], bool]] = None) -> Tuple[BatchReport, int]:
    """Composite every photo in ``raw_img_dir`` onto white; masks from ``seg_dir`` or from ``segmenter``.

    Returns (the batch report, how many photos were found)."""
    paths = list_photos(raw_img_dir, recursive=recursive)

    def process(path, name):
        rgb = load_photo(path, max_side=None)
        if seg_dir is not None:
            alpha = load_mask(find_mask_file(seg_dir, name), (rgb.shape[1], rgb.shape[0]))
        else:
            alpha = segmenter.person_mask(rgb)
            if alpha.max() < 0.5:
                raise PhotoError('no person found')
        save_image(on_white(rgb, alpha, blur=blur), os.path.join(outdir, name))

    report = run_batch(paths, raw_img_dir, process, desc='Whitening', report=BatchReport(), progress=progress,
                       stop=stop)
    return report, len(paths)
