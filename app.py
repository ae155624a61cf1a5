"""A local web app: generate, interpolate, style-mix, edit and align people in the browser.

\b
python app.py --network stylegan_human_v2_512            # then open http://127.0.0.1:7860
python app.py --network pretrained_models/stylegan_human_v2_1024.pkl --port 8000 --device cuda

Needs the app extra (`pip install -e '.[app]'`, which brings Gradio). The page has
a network field (a model-zoo name, a local pickle or .safetensors export, or a
URL) and one tab per task. Networks are loaded once and kept; one job runs at a
time (a second browser tab waits its turn); errors appear as a message in the
page. The server listens on 127.0.0.1 only unless --host says otherwise.
"""

import functools
import os
import tempfile
import threading

import click
import numpy as np
import torch

from dnnlib.atomic import atomic_write
from dnnlib.errors import InputError, ToolkitError
import dnnlib.util
import legacy
from stylegan_human import commands, interpolation, runtime, sampling, style_mixing

STRIP_FRAMES = 8   # frames shown side by side in the interpolation strip


class AppError(InputError):
    """Something the user can fix in the page: shown there as one line."""


# ----------------------------------------------------------------------------
# The work, without any web framework (tests and notebooks call these directly).


class Networks:
    """Loaded generators by name, kept for the life of the app."""

    def __init__(self, device):
        self.device = device
        self._loaded = {}
        self._lock = threading.Lock()

    def get(self, name):
        name = (name or '').strip()
        if not name:
            raise AppError('Network: give a model-zoo name, a .pkl or .safetensors file, or a URL')
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = self._load(name)
            return self._loaded[name]

    def _load(self, name):
        try:
            G = legacy.load_network(name, verbose=False)['G_ema']   # .safetensors exports too
        except (legacy.NetworkFileError, OSError, dnnlib.util.DownloadError) as err:
            raise AppError(f'Network {name}: {err}') from None
        except KeyError:
            raise AppError(f'Network {name}: the file holds no G_ema') from None
        return G.eval().requires_grad_(False).to(self.device)


def generate_image(G, seed, psi, noise_mode='const', translate=(0.0, 0.0), rotate=0.0):
    """One person: (uint8 HWC image, latents as {'seed', 'z', 'w'}), exactly as generate.py makes them."""
    if sampling.version_of(G) != 3 and (any(translate) or rotate):
        translate, rotate = (0.0, 0.0), 0.0   # only StyleGAN3 has an input transform; the sliders are ignored
    try:
        (sample,) = sampling.generate_images(G, [int(seed)], truncation_psi=float(psi), noise_mode=noise_mode,
                                             translate=tuple(translate), rotate=float(rotate), batch_size=1)
    except ValueError as err:
        raise AppError(str(err)) from None
    return sample.image, dict(seed=np.array([sample.seed]), z=sample.z[None], w=sample.w[None])


def interpolation_frames(G, seed_a, seed_b, steps, space='z', method='lerp', psi=0.8, noise_mode='const'):
    """(frames, ws): every frame of the walk from seed_a to seed_b (uint8 HWC), both ends included, and their w."""
    try:
        ws = interpolation.interpolate_latents(G, [int(seed_a), int(seed_b)], num_interps=int(steps), space=space,
                                               method=method, truncation_psi=float(psi),
                                               device=next(G.parameters()).device)
    except ValueError as err:
        raise AppError(str(err)) from None
    return list(interpolation.render(G, ws, noise_mode=noise_mode)), ws.cpu().numpy()


def strip(frames, count=STRIP_FRAMES):
    """``count`` evenly spaced frames (first and last included) side by side."""
    picks = np.unique(np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int))
    return np.concatenate([frames[i] for i in picks], axis=1)


def mixing_grid(G, row_seeds, col_seeds, styles, psi=0.8, noise_mode='const'):
    """(grid, latents): style_mixing.py's grid for these seeds and style layers, and the seeds' w."""
    try:
        rows, cols, layers = (commands.parse_range(text) for text in (row_seeds, col_seeds, styles))
        images = style_mixing.style_mix(G, rows, cols, layers, truncation_psi=float(psi), noise_mode=noise_mode)
    except ValueError as err:
        raise AppError(str(err)) from None
    seeds = list(dict.fromkeys(rows + cols))
    samples = sampling.generate_images(G, seeds, truncation_psi=float(psi), batch_size=1)
    latents = dict(seed=np.array(seeds), w=np.stack([s.w for s in samples]), row_seeds=np.array(rows),
                   col_seeds=np.array(cols), styles=np.array(layers))
    return style_mixing.mixing_grid(images, rows, cols), latents


def edited_pair(G, seed, psi, attr, method, strength, directions_root):
    """(unedited, edited, latents) for one seed, with edit.py's directions and defaults."""
    from edit import methods, published
    sample_image, latents = generate_image(G, seed, psi)
    try:
        root = published.direction_root(attr, directions_root or 'latent_direction')
        editor = methods.Editor(G, attr, root, methods=(method,), strength=float(strength))
    except (OSError, ValueError, dnnlib.util.DownloadError) as err:   # DirectionFileError is a ValueError
        raise AppError(f'Editing {attr!r} with {method}: {err}') from None
    ws = torch.from_numpy(latents['w']).to(next(G.parameters()).device)
    edited = sampling.to_uint8(editor.image(ws, method))[0].cpu().numpy()
    return sample_image, edited, latents


def aligned_photo(photo):
    """alignment.py on one uploaded photo (HxWx3 uint8): the 512x1024 crop on white."""
    from aligner import align, backends
    if photo is None:
        raise AppError('Alignment: upload a photo first')
    try:
        backend = backends.make_backend()
        return align.align_photo(np.asarray(photo)[..., :3], backend).image
    except (align.AlignmentError, backends.BackendUnavailable) as err:
        raise AppError(f'Alignment: {err}') from None


# ----------------------------------------------------------------------------
# The page.


def build_app(networks, default_network='', directions_root=None, workdir=None):
    """The Gradio Blocks app; ``networks`` is a :class:`Networks`."""
    import gradio as gr
    from stylegan_human import zoo as model_zoo
    workdir = workdir or tempfile.mkdtemp(prefix='stylegan_human_app_')

    def shown(fn):
        """Run ``fn`` for the page: a user error becomes a message there, not a stack trace.

        functools.wraps keeps fn's signature visible, so Gradio still passes its progress tracker.
        """
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except ToolkitError as err:   # the library's own message, as the command lines print it
                raise gr.Error(str(err)) from None
        return wrapper

    def save_latents(name, latents):
        path = os.path.join(workdir, name)
        atomic_write(path, lambda f: np.savez(f, **latents))
        return path

    @shown
    def on_generate(network, seed, psi, noise_mode, tx, ty, rotate, progress=gr.Progress()):
        progress(0, desc='Generating')
        image, latents = generate_image(networks.get(network), seed, psi, noise_mode, (tx, ty), rotate)
        return image, save_latents(f'seed{int(seed):04d}_latents.npz', latents)

    @shown
    def on_interpolate(network, seed_a, seed_b, steps, space, method, psi, video_format, progress=gr.Progress()):
        progress(0, desc='Rendering frames')
        frames, ws = interpolation_frames(networks.get(network), seed_a, seed_b, steps, space, method, psi)
        from stylegan_human.video import FrameWriter
        path = os.path.join(workdir, f'interp_{int(seed_a)}_{int(seed_b)}.{video_format}')
        with FrameWriter(path, fps=15) as writer:
            for frame in progress.tqdm(frames, desc='Writing the video'):
                writer.append(frame)
        name = f'interp_{int(seed_a)}_{int(seed_b)}_latents.npz'
        return strip(frames), path, save_latents(name, dict(seeds=np.array([int(seed_a), int(seed_b)]), w=ws))

    @shown
    def on_mix(network, rows, cols, styles, psi):
        grid, latents = mixing_grid(networks.get(network), rows, cols, styles, psi)
        return grid, save_latents('mixing_latents.npz', latents)

    @shown
    def on_edit(network, seed, psi, attr, method, strength):
        before, after, latents = edited_pair(networks.get(network), seed, psi, attr, method, strength,
                                             directions_root)
        return before, after, save_latents(f'seed{int(seed):04d}_latents.npz', latents)

    @shown
    def on_align(photo):
        return aligned_photo(photo)

    from edit.edit_config import attr_dict
    attributes = sorted(attr_dict['interface_gan'])
    image_kw = dict(format='png', type='numpy', interactive=False)
    with gr.Blocks(title='StyleGAN-Human') as demo:
        gr.Markdown('# StyleGAN-Human\nFull-body people from a StyleGAN network, on this machine.')
        with gr.Row():
            network = gr.Textbox(value=default_network, label='Network (zoo name, .pkl / .safetensors path, URL)',
                                 elem_id='network', scale=3)
            zoo = gr.Dropdown(choices=model_zoo.list_models(), value=None, label='Model zoo', scale=1)
        zoo.change(lambda name: name or gr.update(), zoo, network)
        psi = gr.Slider(-1, 2, value=0.8, step=0.05, label='Truncation psi', elem_id='psi')

        with gr.Tab('Generate'):
            with gr.Row():
                seed = gr.Number(value=0, precision=0, minimum=0, label='Seed', elem_id='gen-seed')
                noise_mode = gr.Radio(['const', 'random', 'none'], value='const', label='Noise')
            with gr.Accordion('StyleGAN3 input transform', open=False):
                tx = gr.Slider(-1, 1, value=0, step=0.01, label='Translate x')
                ty = gr.Slider(-1, 1, value=0, step=0.01, label='Translate y')
                rotate = gr.Slider(-180, 180, value=0, step=1, label='Rotate (degrees)')
            run = gr.Button('Generate', variant='primary', elem_id='gen-run')
            image = gr.Image(label='Person', elem_id='gen-image', **image_kw)
            latents = gr.File(label='Latents (seed, z, w)', elem_id='gen-latents')
            run.click(on_generate, [network, seed, psi, noise_mode, tx, ty, rotate], [image, latents])

        with gr.Tab('Interpolate'):
            with gr.Row():
                seed_a = gr.Number(value=85, precision=0, minimum=0, label='From seed', elem_id='int-a')
                seed_b = gr.Number(value=100, precision=0, minimum=0, label='To seed', elem_id='int-b')
                steps = gr.Number(value=10, precision=0, minimum=1, maximum=500, label='Steps (frames = steps + 1)',
                                  elem_id='int-steps')
            with gr.Row():
                space = gr.Radio(['z', 'w'], value='z', label='Space')
                method = gr.Radio(['lerp', 'slerp'], value='lerp', label='Method')
                video_format = gr.Radio(['gif', 'mp4'], value='gif', label='Video')
            run = gr.Button('Interpolate', variant='primary', elem_id='int-run')
            strip_image = gr.Image(label=f'{STRIP_FRAMES} frames of the walk', elem_id='int-strip', **image_kw)
            with gr.Row():
                video = gr.File(label='Video', elem_id='int-video')
                walk_latents = gr.File(label='Latents (w of every frame)')
            run.click(on_interpolate, [network, seed_a, seed_b, steps, space, method, psi, video_format],
                      [strip_image, video, walk_latents])

        with gr.Tab('Style mixing'):
            with gr.Row():
                rows = gr.Textbox(value='85,100,75', label='Row seeds', elem_id='mix-rows')
                cols = gr.Textbox(value='55,821', label='Column seeds', elem_id='mix-cols')
                styles = gr.Textbox(value='0-6', label='Layers taken from the columns', elem_id='mix-styles')
            run = gr.Button('Mix', variant='primary', elem_id='mix-run')
            grid = gr.Image(label='Grid', elem_id='mix-grid', **image_kw)
            mix_latents = gr.File(label='Latents (w of every seed)')
            run.click(on_mix, [network, rows, cols, styles, psi], [grid, mix_latents])

        with gr.Tab('Edit'):
            with gr.Row():
                edit_seed = gr.Number(value=0, precision=0, minimum=0, label='Seed')
                attr = gr.Dropdown(attributes, value=attributes[0], label='Attribute')
                edit_method = gr.Radio(['interfacegan', 'stylespace', 'sefa'], value='interfacegan', label='Method')
                strength = gr.Slider(-20, 20, value=5, step=0.5, label='Strength')
            run = gr.Button('Edit', variant='primary')
            with gr.Row():
                before = gr.Image(label='Before', **image_kw)
                after = gr.Image(label='After', **image_kw)
            edit_latents = gr.File(label='Latents (seed, z, w)')
            run.click(on_edit, [network, edit_seed, psi, attr, edit_method, strength], [before, after, edit_latents])

        with gr.Tab('Align a photo'):
            photo = gr.Image(label='Photo of one person, whole body', type='numpy', format='png')
            run = gr.Button('Align', variant='primary')
            crop = gr.Image(label='Aligned (512x1024, on white)', **image_kw)
            run.click(on_align, photo, crop)
    demo.queue(default_concurrency_limit=1)  # one job at a time, across tabs and browser windows
    return demo


@click.command(cls=commands.Command, help=__doc__)
@click.option('--network', 'network_pkl', default='', help='Network shown first: zoo name, path or URL')
@click.option('--port', type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.option('--host', default='127.0.0.1', show_default=True, help='Address to listen on (0.0.0.0: every interface)')
@click.option('--device', default='auto', show_default=True, help=commands.DEVICE_OPTION_HELP)
@click.option('--directions', 'directions_root', default=None, help='Editing directions folder (as edit.py)')
@commands.user_errors
def main(network_pkl, port, host, device, directions_root):
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise commands.UserError("the web app needs Gradio: pip install -e '.[app]'") from None
    networks = Networks(commands.choose_device(device))
    if network_pkl:
        try:
            networks.get(network_pkl)   # load now: a bad --network is a one-line error, not a page error
        except AppError as err:
            raise commands.UserError(str(err)) from None
    demo = build_app(networks, default_network=network_pkl, directions_root=directions_root)
    demo.launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=True)


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
