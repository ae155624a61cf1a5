"""Edit generated or inverted people with InterfaceGAN, StyleSpace and SeFa directions.

\b
Examples:
python edit.py --network pretrained_models/stylegan_human_v2_1024.pkl --attr_name upper_length \\
    --seeds 61531,61570,61571,61610 --outdir outputs/edit_results
python edit.py --network outputs/pti/checkpoints/model_test.pkl --attr_name upper_length \\
    --outdir outputs/edit_results --real True --real_w_path outputs/pti/embeddings/test/PTI/test/0.pt \\
    --real_img_path aligned_image/test.png

Directions: upstream's published files (fetched once by attribute name into the
download cache when --directions does not hold them), or your own in the same
layout. Each seed gives a strip: [photo |] original | one image per method;
--gen_video True adds an MP4 sweeping the strength from 0 to full.
The edits run directly on this project's networks (StyleGAN2 or 3), in their own S space.
"""

import os

import click
import numpy as np

from dnnlib.atomic import save_image
from edit import sweep
from edit.directions import DirectionFileError
from edit.edit_config import KNOWN_ATTRIBUTES, load_config
from edit.methods import METHODS, Editor
from edit.published import direction_root
import legacy
from stylegan_human import commands, runtime


def parse_bool(value):
    text = str(value).strip().lower()
    if text in ('1', 'true', 'yes', 'y', 'on'):
        return True
    if text in ('0', 'false', 'no', 'n', 'off', ''):
        return False
    raise click.BadParameter(f'{value!r} is not true or false')


@click.command(cls=commands.Command, help=__doc__)
# '---network': upstream's README types three dashes in its inversion -> edit command; it runs as written.
@click.option('--network', '---network', 'network_pkl', required=True, help='Network pickle path, URL or zoo name')
@click.option('--attr_name', '--attr-name', 'attr_name', required=True,
              help=f'Attribute: {", ".join(KNOWN_ATTRIBUTES)}')
@click.option('--trunc', 'truncation_psi', type=float, default=0.8, show_default=True, help='Truncation psi (seeds)')
@click.option('--gen_video', '--gen-video', 'gen_video', default='True', show_default=True,
              help='Also write an MP4 of the strength sweep (True/False)')
@click.option('--combine', default='True', show_default=True, help='One video with all methods side by side (True/False)')
@click.option('--seeds', type=commands.SEEDS, default='61531,61570,61571,61610', show_default=True)
@click.option('--outdir', default='outputs/editing', show_default=True, metavar='DIR')
@click.option('--real', default='False', show_default=True, help='Edit an inverted photo (True/False)')
@click.option('--real_w_path', '--real-w-path', 'real_w_path', default=None, help='The pivot 0.pt from run_pti.py')
@click.option('--real_img_path', '--real-img-path', 'real_img_path', default=None,
              help='The photo, shown first in the strip')
@click.option('--method', type=click.Choice(METHODS + ('all',)), default='all', show_default=True)
@click.option('--strength', type=float, default=None, help="Override the attribute's strength (all methods)")
@click.option('--layers', type=commands.SEEDS, default=None,
              help='Override the layers: the w+ layers for SeFa; with --method stylespace, its S layer (first value)')
@click.option('--directions', 'directions_dir', default='latent_direction', show_default=True, metavar='DIR',
              help="Folder in upstream's latent_direction layout (fetched when it lacks the attribute)")
@click.option('--device', default='auto', show_default=True, help=commands.DEVICE_OPTION_HELP)
@commands.precision_option
@commands.user_errors
def main(network_pkl, attr_name, truncation_psi, gen_video, combine, seeds, outdir, real, real_w_path, real_img_path,
         method, strength, layers, directions_dir, device):
    try:
        gen_video, combine, real = parse_bool(gen_video), parse_bool(combine), parse_bool(real)
    except click.BadParameter as err:
        raise commands.UserError(str(err)) from None
    config, known = load_config(directions_dir)
    if attr_name not in known:
        raise commands.UserError(f'--attr_name {attr_name}: unknown; known attributes: {", ".join(known)}')
    if real and not real_w_path:
        raise commands.UserError('--real True needs --real_w_path (the pivot 0.pt written by run_pti.py)')
    device = commands.choose_device(device)
    G = legacy.load_network(network_pkl)['G_ema'].eval().requires_grad_(False).to(device).float()
    methods = METHODS if method == 'all' else (method,)
    if method == 'all':   # an attribute of your own may have directions for some methods only
        methods = tuple(m for m in METHODS if attr_name in config[{'interfacegan': 'interface_gan'}.get(m, m)])
    try:
        root = (directions_dir if attr_name not in KNOWN_ATTRIBUTES
                else direction_root(attr_name, directions_dir, methods))   # only these methods' files
        editor = Editor(G, attr_name, root, methods, strength, layers, config=config)
    except DirectionFileError as err:
        raise commands.UserError(str(err)) from None
    photo = sweep.load_photo(real_img_path, G).to(device) if real and real_img_path else None

    codes = sweep.start_codes(G, seeds, truncation_psi, real_w_path if real else None, device)
    os.makedirs(outdir, exist_ok=True)
    strips = []
    for label, ws in codes:
        def frame(fraction, ws=ws):
            return sweep.panels(G, editor, ws, methods, photo, fraction)
        strip = np.concatenate(frame(1.0), axis=1)
        save_image(strip, os.path.join(outdir, f'{attr_name}_{label}.png'))
        strips.append(strip)
        if gen_video:
            sweep.write_sweep(outdir, attr_name, label, methods, frame, combine, with_photo=photo is not None)
    save_image(np.concatenate(strips, axis=0), os.path.join(outdir, 'final.png'))
    print(f'Wrote {len(strips)} strip(s) to {outdir}')


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
