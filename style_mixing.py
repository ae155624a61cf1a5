"""Style mixing: copy chosen style layers of column seeds into row seeds, as a grid.

Examples:

\b
# The upstream command line, unchanged
python style_mixing.py --network=pretrained_models/stylegan_human_v2_1024.pkl --rows=85,100,75,458,1500 \\
    --cols=55,821,1789,293 --styles=0-3 --outdir=outputs/stylemixing

From a notebook: ``stylegan_human.style_mixing.style_mix(G, rows, cols, styles)`` returns the images.
"""

import os

import click

from dnnlib.atomic import save_image
import legacy
from stylegan_human import commands, runtime
from stylegan_human.style_mixing import mixing_grid, style_mix


@click.command(cls=commands.Command, help=__doc__)
@click.option('--network', 'network_pkl', help='Network pickle path, URL or model-zoo name', required=True)
@click.option('--rows', 'row_seeds', type=commands.SEEDS, help='Random seeds for the image rows', required=True)
@click.option('--cols', 'col_seeds', type=commands.SEEDS, help='Random seeds for the image columns', required=True)
@click.option('--styles', 'styles', type=commands.SEEDS, help='Style layers taken from the columns', default='0-6', show_default=True)
@click.option('--trunc', 'truncation_psi', type=float, help='Truncation psi', default=0.8, show_default=True)
@click.option('--noise-mode', help='Noise mode', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--outdir', type=str, default='outputs/stylemixing', show_default=True, metavar='DIR')
@click.option('--class', 'class_idx', type=int, help='Class label for a conditional network')
@click.option('--device', default='auto', show_default=True, help=commands.DEVICE_OPTION_HELP)
@click.option('--trust-embedded-code', is_flag=True, help='Run the code embedded in the pickle (only for files you trust)')
@commands.precision_option
@commands.user_errors
def main(network_pkl, row_seeds, col_seeds, styles, truncation_psi, noise_mode, outdir, class_idx,
         device, trust_embedded_code):
    device = commands.choose_device(device)
    print(f'Loading networks from "{network_pkl}"...')
    G = legacy.load_network(network_pkl, trust_embedded_code=trust_embedded_code)['G_ema']
    G = G.eval().requires_grad_(False).to(device)
    images = style_mix(G, row_seeds, col_seeds, styles, truncation_psi=truncation_psi,
                       noise_mode=noise_mode, class_idx=class_idx, device=device)
    for row in row_seeds:
        for col in col_seeds:
            save_image(images[(row, col)], os.path.join(outdir, f'{row}-{col}.png'))
    save_image(mixing_grid(images, row_seeds, col_seeds), os.path.join(outdir, 'grid.png'))
    print(f'Wrote grid.png and {len(row_seeds) * len(col_seeds)} cells to {outdir}')


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
