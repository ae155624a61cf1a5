"""A local web app: generate, interpolate, style-mix, edit and align people in the browser.

\b
python app.py --network stylegan_human_v2_512            # then open http://127.0.0.1:7860
python app.py --network pretrained_models/stylegan_human_v2_1024.pkl --port 8000 --device cuda

Needs the app extra (`pip install -e '.[app]'`, which brings Gradio). The page has
a network field and one tab per task. One job runs at a time (a second browser tab
waits its turn); errors appear as a message in the page.

\b
The network field takes a model-zoo name, a file under a --network-dir folder, the
--network given at start, or (with --allow-urls) a URL to a public host. Requests
are bounded (--max-mix-rows, --max-mix-cols, --max-interp-steps, ...) before work
starts; at most --max-networks networks (--max-network-mb of weights) stay loaded,
the least recently used going first. The server listens on 127.0.0.1 only unless
--host says otherwise; --share asks Gradio for a public link.
"""

import functools
import os
import tempfile

import click
import numpy as np
import torch

from dnnlib.atomic import atomic_write
from dnnlib.errors import InputError, ToolkitError
import dnnlib.util
import legacy
from stylegan_human import commands, interpolation, runtime, sampling, style_mixing
from stylegan_human.network_access import NetworkAccess, shown as shown_spec
from stylegan_human.network_cache import MIB, NetworkCache
from stylegan_human.request_limits import RequestLimits, check_seed

STRIP_FRAMES = 8   # frames shown side by side in the interpolation strip


class AppError(InputError):
    """Something the user can fix in the page: shown there as one line."""


# ----------------------------------------------------------------------------
# The work, without any web framework (tests and notebooks call these directly).


class Networks:
    """Generators by what the page names, under ``access``'s rules, kept in a bounded ``cache``.

    By default only model-zoo names may be loaded and two networks are kept.
    """

    def __init__(self, device, access=None, cache=None):
        self.device = device
        self.access = NetworkAccess() if access is None else access
        self.cache = NetworkCache() if cache is None else cache   # (an empty cache is falsy: it has a len)

    def get(self, name):
        try:
            source = self.access.locate(name)
        except ToolkitError as err:
            raise AppError(str(err)) from None
        try:
            return self.cache.get(source.key, load=lambda: self._load(source), place=lambda G: G.to(self.device))
        except AppError:
            raise
        except ToolkitError as err:   # the cache's memory cap
            raise AppError(f'Network {shown_spec(source.spec)}: {err}') from None

    def _load(self, source):
        where = shown_spec(source.spec)
        local = None
        try:
            local = self.access.fetch(source)
            G = legacy.load_network(local, verbose=False)['G_ema']   # .safetensors exports too
        except (ToolkitError, OSError) as err:   # a bad file, a failed or refused download
            message = ' '.join(str(err).split())
            if local and local != source.spec:   # name the network as the page did, not a cache path
                message = message.replace(f'{local}: ', '', 1).replace(local, where)
            if message.startswith(f'{source.spec}: '):
                message = message[len(source.spec) + 2:]
            raise AppError(f'Network {where}: {message}') from None
        except KeyError:
            raise AppError(f'Network {where}: the file holds no G_ema') from None
        return G.eval().requires_grad_(False)


def generate_image(G, seed, psi, noise_mode='const', translate=(0.0, 0.0), rotate=0.0):
    """One person: (uint8 HWC image, latents as {'seed', 'z', 'w'}), exactly as generate.py makes them."""
    seed = check_seed(seed, 'Generate')
    if sampling.version_of(G) != 3 and (any(translate) or rotate):
        translate, rotate = (0.0, 0.0), 0.0   # only StyleGAN3 has an input transform; the sliders are ignored
    try:
        (sample,) = sampling.generate_images(G, [int(seed)], truncation_psi=float(psi), noise_mode=noise_mode,
                                             translate=tuple(translate), rotate=float(rotate), batch_size=1)
    except ValueError as err:
        raise AppError(str(err)) from None
    return sample.image, dict(seed=np.array([sample.seed]), z=sample.z[None], w=sample.w[None])


def interpolation_frames(G, seed_a, seed_b, steps, space='z', method='lerp', psi=0.8, noise_mode='const',
                         limits=RequestLimits()):
    """(frames, ws): every frame of the walk from seed_a to seed_b (uint8 HWC), both ends included, and their w."""
    seed_a, seed_b, steps = interpolation_request(seed_a, seed_b, steps, limits)
    try:
        ws = interpolation.interpolate_latents(G, [seed_a, seed_b], num_interps=steps, space=space,
                                               method=method, truncation_psi=float(psi),
                                               device=next(G.parameters()).device)
    except ValueError as err:
        raise AppError(str(err)) from None
    return list(interpolation.render(G, ws, noise_mode=noise_mode)), ws.cpu().numpy()


def interpolation_request(seed_a, seed_b, steps, limits=RequestLimits()):
    """The interpolation's two seeds and step count as ints, within ``limits``."""
    return check_seed(seed_a, 'Interpolate', 'from seed'), check_seed(seed_b, 'Interpolate', 'to seed'), \
        limits.check_interp_steps(steps)


def strip(frames, count=STRIP_FRAMES):
    """``count`` evenly spaced frames (first and last included) side by side."""
    picks = np.unique(np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int))
    return np.concatenate([frames[i] for i in picks], axis=1)


def mixing_grid(G, row_seeds, col_seeds, styles, psi=0.8, noise_mode='const', limits=RequestLimits()):
    """(grid, latents): style_mixing.py's grid for these seeds and style layers, and the seeds' w.

    The seeds and layers are text ('1,5-7') or lists; each list is held to ``limits``.
    """
    rows, cols, layers = limits.mix_request(row_seeds, col_seeds, styles)
    try:
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
        root = published.direction_root(attr, directions_root or 'latent_direction', methods=(method,))
        editor = methods.Editor(G, attr, root, methods=(method,), strength=float(strength))
    except (OSError, ValueError, dnnlib.util.DownloadError) as err:   # DirectionFileError is a ValueError
        raise AppError(f'Editing {attr!r} with {method}: {err}') from None
    ws = torch.from_numpy(latents['w']).to(next(G.parameters()).device)
    edited = sampling.to_uint8(editor.image(ws, method))[0].cpu().numpy()
    return sample_image, edited, latents


def aligned_photo(photo, limits=RequestLimits()):
    """alignment.py on one uploaded photo (HxWx3 uint8): the 512x1024 crop on white."""
    from aligner import align, backends
    if photo is None:
        raise AppError('Alignment: upload a photo first')
    limits.check_photo(np.asarray(photo))
    try:
        backend = backends.make_backend()
        return align.align_photo(np.asarray(photo)[..., :3], backend).image
    except (align.AlignmentError, backends.BackendUnavailable) as err:
        raise AppError(f'Alignment: {err}') from None


# ----------------------------------------------------------------------------
# The page.


def build_app(networks, default_network='', directions_root=None, workdir=None, limits=RequestLimits(),
              queue_size=None):
    """The Gradio Blocks app; ``networks`` is a :class:`Networks`.

    Each handler checks its request against ``limits`` before it loads a network or starts work;
    ``queue_size`` bounds the jobs waiting their turn (None: no bound).
    """
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
        seed = check_seed(seed, 'Generate')
        progress(0, desc='Generating')
        image, latents = generate_image(networks.get(network), seed, psi, noise_mode, (tx, ty), rotate)
        return image, save_latents(f'seed{seed:04d}_latents.npz', latents)

    @shown
    def on_interpolate(network, seed_a, seed_b, steps, space, method, psi, video_format, progress=gr.Progress()):
        seed_a, seed_b, steps = interpolation_request(seed_a, seed_b, steps, limits)
        if video_format not in ('gif', 'mp4'):
            raise AppError(f'Interpolate: the video is gif or mp4, not {video_format!r}')
        progress(0, desc='Rendering frames')
        frames, ws = interpolation_frames(networks.get(network), seed_a, seed_b, steps, space, method, psi,
                                          limits=limits)
        from stylegan_human.video import FrameWriter
        path = os.path.join(workdir, f'interp_{seed_a}_{seed_b}.{video_format}')
        with FrameWriter(path, fps=15) as writer:
            for frame in progress.tqdm(frames, desc='Writing the video'):
                writer.append(frame)
        name = f'interp_{seed_a}_{seed_b}_latents.npz'
        return strip(frames), path, save_latents(name, dict(seeds=np.array([seed_a, seed_b]), w=ws))

    @shown
    def on_mix(network, rows, cols, styles, psi):
        rows, cols, styles = limits.mix_request(rows, cols, styles)   # before the network: loading is work too
        grid, latents = mixing_grid(networks.get(network), rows, cols, styles, psi, limits=limits)
        return grid, save_latents('mixing_latents.npz', latents)

    @shown
    def on_edit(network, seed, psi, attr, method, strength):
        seed = check_seed(seed, 'Edit')
        before, after, latents = edited_pair(networks.get(network), seed, psi, attr, method, strength,
                                             directions_root)
        return before, after, save_latents(f'seed{seed:04d}_latents.npz', latents)

    @shown
    def on_align(photo):
        return aligned_photo(photo, limits)

    from edit.edit_config import attr_dict
    attributes = sorted(attr_dict['interface_gan'])
    image_kw = dict(format='png', type='numpy', interactive=False)
    with gr.Blocks(title='StyleGAN-Human', analytics_enabled=False) as demo:
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
                steps = gr.Number(value=10, precision=0, elem_id='int-steps',   # bounds: checked by the handler
                                  label=f'Steps (frames = steps + 1; at most {limits.interp_steps})')
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
                rows = gr.Textbox(value='85,100,75', label=f'Row seeds (at most {limits.mix_rows})',
                                  elem_id='mix-rows')
                cols = gr.Textbox(value='55,821', label=f'Column seeds (at most {limits.mix_cols})',
                                  elem_id='mix-cols')
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
    demo.queue(default_concurrency_limit=1, max_size=queue_size)  # one job at a time, across tabs and windows
    return demo


def launch(demo, host, port, share=False, max_upload_mb=None):
    """Serve ``demo`` until Ctrl-C; with ``share`` Gradio also opens a public link (and says where)."""
    max_bytes = None if max_upload_mb is None else int(max_upload_mb * MIB)
    # quiet: Gradio's own banner suggests share=True, which this app offers as --share; it says where it listens
    demo.launch(server_name=host, server_port=port, share=share, inbrowser=False, show_error=True, quiet=True,
                max_file_size=max_bytes, prevent_thread_lock=True)
    click.echo(f'Running on {demo.local_url}')
    if share and demo.share_url:
        click.echo(f'Public link (anyone who has it can use this app): {demo.share_url}')
    demo.block_thread()


def _whole(minimum=1):
    return click.IntRange(min=minimum)


@click.command(cls=commands.Command, help=__doc__)
@click.option('--network', 'network_pkl', default='',
              help='Network loaded at start and shown first: zoo name, path or URL (always allowed in the page)')
@click.option('--port', type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.option('--host', default='127.0.0.1', show_default=True, help='Address to listen on (0.0.0.0: every interface)')
@click.option('--device', default='auto', show_default=True, help=commands.DEVICE_OPTION_HELP)
@click.option('--directions', 'directions_root', default=None, help='Editing directions folder (as edit.py)')
@click.option('--network-dir', 'network_dirs', multiple=True, type=click.Path(exists=True, file_okay=False),
              help='Folder whose network files the page may load (repeatable; default: none, zoo names only)')
@click.option('--allow-urls', is_flag=True, help='Let the page load networks from http(s) URLs of public hosts')
@click.option('--max-networks', type=_whole(), default=2, show_default=True,
              help='Networks kept loaded at once (least recently used dropped first)')
@click.option('--max-network-mb', type=_whole(), default=2048, show_default=True,
              help='MiB of weights (parameters and buffers) kept loaded at once')
@click.option('--max-mix-rows', type=_whole(), default=RequestLimits.mix_rows, show_default=True,
              help='Style mixing: most row seeds per request')
@click.option('--max-mix-cols', type=_whole(), default=RequestLimits.mix_cols, show_default=True,
              help='Style mixing: most column seeds per request')
@click.option('--max-interp-steps', type=_whole(), default=RequestLimits.interp_steps, show_default=True,
              help='Interpolate: most steps per request (frames = steps + 1)')
@click.option('--max-photo-mp', type=click.FloatRange(min=0, min_open=True), default=RequestLimits.photo_megapixels,
              show_default=True, help='Align: largest photo, in millions of pixels')
@click.option('--max-upload-mb', type=_whole(), default=50, show_default=True, help='Largest upload, in MiB')
@click.option('--queue-size', type=_whole(), default=16, show_default=True,
              help='Jobs that may wait their turn; more are turned away')
@click.option('--share', is_flag=True, help="Ask Gradio for a public link (a tunnel through gradio.live); no password")
@commands.user_errors
def main(network_pkl, port, host, device, directions_root, network_dirs, allow_urls, max_networks, max_network_mb,
         max_mix_rows, max_mix_cols, max_interp_steps, max_photo_mp, max_upload_mb, queue_size, share):
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise commands.UserError("the web app needs Gradio: pip install -e '.[app]'") from None
    limits = RequestLimits(mix_rows=max_mix_rows, mix_cols=max_mix_cols, interp_steps=max_interp_steps,
                           photo_megapixels=max_photo_mp)
    access = NetworkAccess(network_dirs, start_network=network_pkl, allow_urls=allow_urls)
    cache = NetworkCache(max_networks=max_networks, max_bytes=max_network_mb * MIB)
    networks = Networks(commands.choose_device(device), access=access, cache=cache)
    if network_pkl:
        try:
            networks.get(network_pkl)   # load now: a bad --network is a one-line error, not a page error
        except AppError as err:
            raise commands.UserError(str(err)) from None
    demo = build_app(networks, default_network=network_pkl, directions_root=directions_root, limits=limits,
                     queue_size=queue_size)
    launch(demo, host, port, share=share, max_upload_mb=max_upload_mb)


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
