"""Align photos of people for StyleGAN-Human: one person per photo -> a 1:2 crop on white.

\b
Examples:
python alignment.py --image-folder img/test/ --output-folder aligned_image/
python alignment.py --image-folder photos/ --output-folder aligned_512/ --size 256x512 --recursive
python alignment.py --image-folder photos/ --output-folder out/ --pose openpose --segmenter ppseg   # upstream's models

The default backend (MediaPipe Pose with its segmentation) ships with the
mediapipe package and runs offline on the CPU. Photos with no person, a person
cut off by the frame, or several people are skipped with the reason; the rest
go on, and the command exits with status 1 if any photo failed.
"""

import os
import re

import click

from aligner import BackendUnavailable, make_backend
from aligner.backends import DEFAULT_OPENPOSE_WEIGHTS, POSE_BACKENDS, SEGMENTERS
from aligner.folders import align_folder, collect_photos
from stylegan_human import commands, runtime
from stylegan_human.photos import DEFAULT_MAX_SIDE, IMAGE_SUFFIXES


def parse_size(text):
    """'512x1024', '1024x512' or '1024' -> (width, height) = (512, 1024): the output is always 1:2."""
    numbers = [int(n) for n in re.split(r'[x*, ]+', str(text).strip().lower()) if n]
    if len(numbers) == 1:
        numbers = [numbers[0] // 2, numbers[0]]
    if len(numbers) != 2 or min(numbers) <= 0 or max(numbers) != 2 * min(numbers):
        raise ValueError(f'{text!r} is not a 1:2 size like 512x1024 or 256x512')
    return min(numbers), max(numbers)


@click.command(cls=commands.Command, help=__doc__)
@click.option('--image-folder', 'image_folder', required=True, metavar='DIR',
              help='Folder of photos (or one photo file)')
@click.option('--output-folder', 'output_folder', default='results', show_default=True, metavar='DIR',
              help='Where to write the aligned images (subfolders are mirrored)')
@click.option('--size', type=commands.ParsedType('WxH', parse_size), default='512x1024', show_default=True,
              help='Output size, width x height at 1:2: 512x1024 for the 1024 models, 256x512 for the 512 ones')
@click.option('--pose', type=click.Choice(POSE_BACKENDS), default='mediapipe', show_default=True,
              help='Keypoint detector: MediaPipe (built in) or OpenPose (needs --openpose-weights)')
@click.option('--segmenter', type=click.Choice(SEGMENTERS), default='mediapipe', show_default=True,
              help='Person segmentation: MediaPipe (built in) or PaddleSeg (needs paddlepaddle and the exported model)')
@click.option('--openpose-weights', default=DEFAULT_OPENPOSE_WEIGHTS, show_default=True, metavar='FILE',
              help="OpenPose body_pose_model.pth (pytorch-openpose's file)")
@click.option('--ppseg-model', default=None, metavar='DIR',
              help='PaddleSeg exported model folder (default: PP_HumanSeg/export_model/deeplabv3p_resnet50_os8_humanseg_512x512_100k_with_softmax)')
@click.option('--recursive', '-r', is_flag=True, help='Also align photos in subfolders')
@click.option('--keep-background', is_flag=True, help='Keep the photo background instead of white')
@click.option('--save-mask', is_flag=True, help='Also write NAME_mask.png (the person mask, aligned)')
@click.option('--save-keypoints', is_flag=True, help='Also write NAME_keypoints.json (COCO-18 keypoints, aligned)')
@click.option('--skip-existing', is_flag=True, help='Leave photos whose output image already exists')
@click.option('--max-side', type=click.IntRange(min=256), default=DEFAULT_MAX_SIDE, show_default=True,
              help='Downscale larger photos to this longest side first')
@click.option('--device', default='auto', show_default=True,
              help=commands.DEVICE_OPTION_HELP + ' (OpenPose and PaddleSeg; MediaPipe runs on the CPU)')
@commands.user_errors
def main(image_folder, output_folder, size, pose, segmenter, openpose_weights, ppseg_model, recursive,
         keep_background, save_mask, save_keypoints, skip_existing, max_side, device):
    if not os.path.exists(image_folder):
        raise commands.UserError(f'--image-folder {image_folder}: no such folder or file')
    if os.path.isfile(image_folder) and not image_folder.lower().endswith(IMAGE_SUFFIXES):
        raise commands.UserError(f'--image-folder {image_folder}: not a folder or an image file')
    if not collect_photos(image_folder, recursive)[0]:
        hint = '' if recursive else ' (add --recursive to look in subfolders)'
        raise commands.UserError(f'--image-folder {image_folder}: no images found{hint}')
    if os.path.exists(output_folder) and not os.path.isdir(output_folder):
        raise commands.UserError(f'--output-folder {output_folder}: exists and is not a folder')
    device = commands.choose_device(device)
    # The backend loads its weights and models here: a missing file ends the run before
    # the output folder exists, so a failed start leaves nothing behind.
    try:
        backend = make_backend(pose=pose, segmenter=segmenter, device=str(device),
                               openpose_weights=openpose_weights, ppseg_model=ppseg_model)
    except BackendUnavailable as err:
        raise commands.UserError(str(err)) from None
    try:
        os.makedirs(output_folder, exist_ok=True)
        with commands.stop_between_items() as interrupt:
            report = align_folder(image_folder, output_folder, backend, size=size, recursive=recursive,
                                  keep_background=keep_background, save_mask=save_mask,
                                  save_keypoints=save_keypoints, skip_existing=skip_existing, max_side=max_side,
                                  backend_names={'pose': pose, 'segmenter': segmenter},
                                  stop=lambda: interrupt.requested)
    finally:
        backend.close()
    report.finish('aligned', output_folder, interrupt.exit_code)


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
