"""Style mixing: copy chosen style layers of column seeds into row seeds, as a grid.

Examples:

\b
# The upstream command line, unchanged
python style_mixing.py --network=pretrained_models/stylegan_human_v2_1024.pkl --rows=85,100,75,458,1500 \\
    --cols=55,821,1789,293 --styles=0-3 --outdir=outputs/stylemixing

From a notebook: ``style_mix(G, rows, cols, styles)`` returns the images.
"""

import os

import click
import numpy as np
import torch

import cli_common
from stylegan_human import runtime
import legacy
from dnnlib.atomic import save_image
from generate import make_labels, seed_to_z, to_uint8


def check_styles(G, styles):
    """Style indices must name ws of this network."""
    bad = [s for s in styles if not 0 <= s < G.num_ws]
    if bad:
        raise ValueError(f'--styles {bad[0]}: this network has styles 0-{G.num_ws - 1}')


def style_mix(G, row_seeds, col_seeds, styles, truncation_psi=0.8, noise_mode='const',
              class_idx=None, device=None):
    """Return {(row_seed, col_seed): uint8 HWC}; (s, s) is seed s's own image.

    A cell takes the row seed's w with the column seed's w copied into ``styles``.
    """
    check_styles(G, styles)
    device = torch.device(device) if device is not None else next(G.parameters()).device
    seeds = list(dict.fromkeys(list(row_seeds) + list(col_seeds)))
    c = make_labels(G, class_idx, 1, device)
    with torch.no_grad():
        # One seed per call, as generate.py does, so a seed's image here is bit-identical to it.
        w_of = {s: G.mapping(torch.from_numpy(seed_to_z(s, G.z_dim)).to(device), c,
                             truncation_psi=truncation_psi)[0] for s in seeds}

        def render(w):
            return to_uint8(G.synthesis(w[None], noise_mode=noise_mode, force_fp32=True))[0].cpu().numpy()

        images = {(s, s): render(w_of[s]) for s in seeds}
        for row in row_seeds:
            for col in col_seeds:
                if (row, col) not in images:
                    w = w_of[row].clone()
                    w[list(styles)] = w_of[col][list(styles)]
                    images[(row, col)] = render(w)
    return images


def mixing_grid(images, row_seeds, col_seeds):
    """Top row: column seeds; left column: row seeds; the corner stays black."""
    h, w, c = next(iter(images.values())).shape
    canvas = np.zeros([h * (len(row_seeds) + 1), w * (len(col_seeds) + 1), c], dtype=np.uint8)
    for j, col in enumerate(col_seeds):
        canvas[:h, (j + 1) * w:(j + 2) * w] = images[(col, col)]
    for i, row in enumerate(row_seeds):
        canvas[(i + 1) * h:(i + 2) * h, :w] = images[(row, row)]
        for j, col in enumerate(col_seeds):
            canvas[(i + 1) * h:(i + 2) * h, (j + 1) * w:(j + 2) * w] = images[(row, col)]
    return canvas


@click.command(cls=cli_common.Command, help=__doc__)
@click.option('--network', 'network_pkl', help='Network pickle path, URL or model-zoo name', required=True)
@click.option('--rows', 'row_seeds', type=cli_common.SEEDS, help='Random seeds for the image rows', required=True)
@click.option('--cols', 'col_seeds', type=cli_common.SEEDS, help='Random seeds for the image columns', required=True)
@click.option('--styles', 'col_styles', type=cli_common.SEEDS, help='Style layers taken from the columns', default='0-6', show_default=True)
@click.option('--trunc', 'truncation_psi', type=float, help='Truncation psi', default=0.8, show_default=True)
@click.option('--noise-mode', help='Noise mode', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True)
@click.option('--outdir', type=str, default='outputs/stylemixing', show_default=True, metavar='DIR')
@click.option('--class', 'class_idx', type=int, help='Class label for a conditional network')
@click.option('--device', default='auto', show_default=True, help=cli_common.DEVICE_OPTION_HELP)
@click.option('--trust-embedded-code', is_flag=True, help='Run the code embedded in the pickle (only for files you trust)')
@cli_common.user_errors
def main(network_pkl, row_seeds, col_seeds, col_styles, truncation_psi, noise_mode, outdir, class_idx,
         device, trust_embedded_code):
    device = cli_common.choose_device(device)
    print(f'Loading networks from "{network_pkl}"...')
    G = legacy.load_network(network_pkl, trust_embedded_code=trust_embedded_code)['G_ema']
    G = G.eval().requires_grad_(False).to(device)
    try:
        images = style_mix(G, row_seeds, col_seeds, col_styles, truncation_psi=truncation_psi,
                           noise_mode=noise_mode, class_idx=class_idx, device=device)
    except ValueError as err:
        raise cli_common.UserError(str(err)) from None
    for row in row_seeds:
        for col in col_seeds:
            save_image(images[(row, col)], os.path.join(outdir, f'{row}-{col}.png'))
    save_image(mixing_grid(images, row_seeds, col_seeds), os.path.join(outdir, 'grid.png'))
    print(f'Wrote grid.png and {len(row_seeds) * len(col_seeds)} cells to {outdir}')


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
