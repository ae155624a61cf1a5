"""Project a photo into a network's W space, with NVIDIA's projector options and output files.

Examples:

\b
# NVIDIA's command line, on a full-body network
python projector.py --outdir=out --target=aligned_image/person.png --network=stylegan_human_v2_512

\b
# Quick look on a CPU: fewer steps, no video
python projector.py --outdir=out --target=person.png --network=net.pkl --num-steps=200 --save-video=false

\b
# Render the result again later
python generate.py --network=stylegan_human_v2_512 --projected-w=out/projected_w.npz --outdir=out

The target is center-cropped to the network's shape (1:2 for full-body networks, square
for square ones) and resized. OUTDIR gets target.png, proj.png, projected_w.npz (w
[1, num_ws, w_dim]) and proj.mp4 (target and projection side by side at every step).
NVIDIA's VGG16 (vgg16.pt) is read from the weight files: see
``python -m pti.weight_files list``.
"""

import click
from tqdm import tqdm

import legacy
from dnnlib.errors import InputError
from pti import losses
from pti.nvidia_projector import project_photo, write_projection
from stylegan_human import commands, runtime
from stylegan_human.photos import PhotoError


@click.command(cls=commands.Command, help=__doc__)
@click.option('--network', 'network_pkl', help='Network pickle path, URL or model-zoo name', required=True)
@click.option('--target', 'target_fname', help='Target image file to project to', required=True, metavar='FILE')
@click.option('--num-steps', help='Number of optimization steps', type=click.IntRange(min=1), default=1000, show_default=True)
@click.option('--seed', help='Random seed', type=int, default=303, show_default=True)
@click.option('--save-video', help='Save an mp4 video of the optimization progress', type=bool, default=True, show_default=True)
@click.option('--outdir', help='Where to save the output images', required=True, metavar='DIR')
@click.option('--vgg16', 'vgg16_weights', default='vgg16_nvidia', show_default=True, metavar='NAME|FILE',
              help="NVIDIA's vgg16.pt (the perceptual distance)")
@click.option('--device', default='auto', show_default=True, help=commands.DEVICE_OPTION_HELP)
@click.option('--trust-embedded-code', is_flag=True, help='Run the code embedded in the pickle (only for files you trust)')
@commands.precision_option
@commands.user_errors
def main(network_pkl, target_fname, num_steps, seed, save_video, outdir, vgg16_weights, device, trust_embedded_code):
    device = commands.choose_device(device)
    features = losses.load_vgg16(vgg16_weights, device)   # a missing weight file is reported before any work
    print(f'Loading networks from "{network_pkl}"...')
    G = legacy.load_network(network_pkl, trust_embedded_code=trust_embedded_code)['G_ema']
    G = G.eval().requires_grad_(False).to(device)
    with tqdm(total=num_steps, unit='step', desc='Projecting') as bar:
        def progress(step, dist):
            bar.update(step - bar.n)
            bar.set_postfix(dist=f'{float(dist):.4g}')
        try:
            result, note = project_photo(G, target_fname, features, steps=num_steps, seed=seed, device=device,
                                         progress=progress)
        except PhotoError as err:
            raise InputError(f'{target_fname}: {err}', param='target_fname') from None
    if note:
        print(f'Note: {note}')
    with tqdm(total=len(result.steps), unit='frame', desc='Rendering proj.mp4', disable=not save_video) as frames:
        write_projection(G, result, outdir, save_video=save_video, frame_progress=lambda: frames.update(1))
    print(f'Wrote target.png, proj.png, projected_w.npz{", proj.mp4" if save_video else ""} to {outdir}')


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
