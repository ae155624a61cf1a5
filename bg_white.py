"""Put the people in photos onto a white background.

\b
Examples:
python bg_white.py --raw_img_dir=./SHHQ-1.0/no_segment/ --raw_seg_dir=./SHHQ-1.0/segments/ \\
    --outdir=./SHHQ-1.0/bg_white/
python bg_white.py --raw_img_dir=photos/ --outdir=photos_white/     # masks computed with MediaPipe

With --raw_seg_dir, each photo's mask is the file of the same name there (or
the same name with another image suffix): greyscale (white = person) or a
colour parsing map (black = background). Without it the masks are computed.
Outputs keep the photo's name and size.
"""

import os

import click

from aligner import BackendUnavailable, make_backend
from aligner.backends import SEGMENTERS
from aligner.folders import white_background_folder
from stylegan_human import commands, runtime


@click.command(cls=commands.Command, help=__doc__)
@click.option('--raw_img_dir', '--raw-img-dir', 'raw_img_dir', default='./SHHQ-1.0/no_segment/', show_default=True,
              metavar='DIR', help='Folder of photos')
@click.option('--raw_seg_dir', '--raw-seg-dir', 'raw_seg_dir', default=None, metavar='DIR',
              help='Folder of masks with the photos\' names (default: compute them)')
@click.option('--outdir', default='./SHHQ-1.0/bg_white/', show_default=True, metavar='DIR',
              help='Where to save the output images')
@click.option('--segmenter', type=click.Choice(SEGMENTERS), default='mediapipe', show_default=True,
              help='How to compute masks when --raw_seg_dir is not given')
@click.option('--ppseg-model', default=None, metavar='DIR', help='PaddleSeg exported model folder (with --segmenter ppseg)')
@click.option('--recursive', '-r', is_flag=True, help='Also process photos in subfolders')
@click.option('--device', default='auto', show_default=True, help=commands.DEVICE_OPTION_HELP + ' (PaddleSeg)')
@commands.user_errors
def main(raw_img_dir, raw_seg_dir, outdir, segmenter, ppseg_model, recursive, device):
    if not os.path.isdir(raw_img_dir):
        raise commands.UserError(f'--raw_img_dir {raw_img_dir}: no such folder')
    if raw_seg_dir is not None and not os.path.isdir(raw_seg_dir):
        raise commands.UserError(f'--raw_seg_dir {raw_seg_dir}: no such folder')
    model = None
    if raw_seg_dir is None:
        try:
            model = make_backend(pose=None, segmenter=segmenter, device=str(commands.choose_device(device)),
                                 ppseg_model=ppseg_model)
        except BackendUnavailable as err:
            raise commands.UserError(str(err)) from None
    os.makedirs(outdir, exist_ok=True)
    try:
        with commands.stop_between_items() as interrupt:
            report, found = white_background_folder(raw_img_dir, outdir, seg_dir=raw_seg_dir, segmenter=model,
                                                    recursive=recursive, stop=lambda: interrupt.requested)
    finally:
        if model is not None:
            model.close()
    if found == 0:
        raise commands.UserError(f'--raw_img_dir {raw_img_dir}: no images found')
    report.finish('whitened', outdir, interrupt.exit_code)


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
