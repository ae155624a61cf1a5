"""A local web app: generate, interpolate, style-mix, edit, align, invert and drag people in the browser.

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

\b
The Invert tab runs run_pti.py's inversion on an uploaded photo; it reads the same
weight files (--vgg16, --lpips-weights, --lpips-backbone, --e4e) and asks for at most
--max-projection-steps and --max-pti-steps steps. The Drag tab moves points or joints of a
generated or inverted person (drag.py's DragGAN), at most --max-drag-steps steps.
"""

import dataclasses
import functools
import os
import shutil
import tempfile
import threading
import uuid

import click
import numpy as np
import torch

from dnnlib.atomic import atomic_write, save_image
from dnnlib.errors import InputError, ToolkitError
import dnnlib.util
import legacy
from pti.invert import Inverter, PhotoInversion, WeightFiles, invert_photo
from pti.projector import ProjectionConfig
from pti.tuning import TuningConfig
from stylegan_human import commands, interpolation, runtime, sampling, style_mixing
from stylegan_human.network_access import NetworkAccess, shown as shown_spec
from stylegan_human.network_cache import MIB, NetworkCache
from stylegan_human.request_limits import RequestLimits, check_count, check_seed, whole_number
from torch_utils import precision

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
    sample_image, latents = generate_image(G, seed, psi)
    ws = torch.from_numpy(latents['w'])
    return sample_image, edited_image(G, ws, attr, method, strength, directions_root), latents


def edited_inversion(inversion, attr, method, strength, directions_root):
    """(unedited, edited, latents) of an inverted photo: its tuned generator at its pivot, as edit.py --real does.

    The pivot is used as it is (no truncation), so the unedited image is the inversion's result.
    """
    edited = edited_image(inversion.tuned, inversion.pivot, attr, method, strength, directions_root)
    return inversion.images['after'], edited, dict(w=inversion.pivot.detach().cpu().numpy())


def edited_image(G, ws, attr, method, strength, directions_root):
    """The image of ``ws`` ([1, num_ws, w_dim]) edited by ``method`` at ``strength`` (uint8 HWC)."""
    from edit import methods, published
    try:
        root = published.direction_root(attr, directions_root or 'latent_direction', methods=(method,))
        editor = methods.Editor(G, attr, root, methods=(method,), strength=float(strength))
    except (OSError, ValueError, dnnlib.util.DownloadError) as err:   # DirectionFileError is a ValueError
        raise AppError(f'Editing {attr!r} with {method}: {err}') from None
    ws = ws.to(next(G.parameters()).device)
    return sampling.to_uint8(editor.image(ws, method))[0].cpu().numpy()


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


PIVOTS = {'W projection': 'w', 'e4e encoder (w+)': 'w+'}   # the Invert tab's choices -> run_pti.py --inversion
INVERTED_PERSON = 'Inverted photo'                             # the Edit tab's choice for the last inversion


@dataclasses.dataclass(frozen=True)
class InversionSettings:
    """The Invert tab's weight files (by default the download cache's, as run_pti.py) and step limits."""
    weights: WeightFiles = dataclasses.field(default_factory=WeightFiles)
    max_projection_steps: int = 450    # run_pti.py --first-inv-steps default
    max_tuning_steps: int = 350        # run_pti.py --pti-steps default

    def __post_init__(self):
        for name in ('max_projection_steps', 'max_tuning_steps'):
            if not getattr(self, name) > 0:
                raise InputError(f'{name} limit must be positive, not {getattr(self, name)}', param=name)

    def check_steps(self, projection_steps, tuning_steps):
        """Both step counts as ints within the limits (tuning may be 0: the pivot alone)."""
        projection = whole_number(projection_steps, 'Invert', 'projection steps')
        tuning = whole_number(tuning_steps, 'Invert', 'tuning steps')
        if projection < 1:
            raise InputError(f'Invert: projection steps must be at least 1, not {projection}')
        if tuning < 0:
            raise InputError(f'Invert: tuning steps must be 0 or more, not {tuning}')
        check_count(projection, self.max_projection_steps, 'Invert', 'projection steps')
        check_count(tuning, self.max_tuning_steps, 'Invert', 'tuning steps')
        return projection, tuning

    def e4e_available(self):
        return bool(self.weights.e4e) and os.path.isfile(self.weights.e4e)

    def missing(self, inversion='w'):
        """The one-line message naming every weight file an inversion needs and lacks, or None."""
        try:
            self.weights.check(inversion)
        except ToolkitError as err:
            return str(err)
        return None


def check_invertible(G):
    """Photos are aligned to 1:2 (full body): a network of another shape cannot take them."""
    from pti.images import network_size
    width, height = network_size(G)
    if width * 2 != height:
        raise AppError(f'Invert: this network makes {width}x{height} images; aligned photos are 1:2 '
                       '(full body), so inverting needs a 2:1 network such as the StyleGAN-Human ones')


def inverted_photo(G, aligned, folder, settings, inversion='w', projection_steps=450, tuning_steps=350,
                   device='cpu', on_step=None) -> PhotoInversion:
    """run_pti.py on one aligned photo (HxWx3 uint8), into ``folder`` in run_pti.py's layout.

    ``on_step(phase, steps_done, total) -> stop?`` is told before every projection and tuning step
    (pti.invert.invert_photo); a stop keeps and returns the result so far. Returns a
    pti.invert.PhotoInversion (pivot, tuned generator, images, metrics, file paths).
    """
    check_invertible(G)
    photo_path = os.path.join(folder, 'aligned', 'photo.png')
    save_image(aligned, photo_path)            # read back by the library exactly as run_pti.py reads a photo
    inverter = Inverter(G, device, inversion, ProjectionConfig(steps=projection_steps),
                        TuningConfig(steps=tuning_steps), 0, settings.weights, folder, 'app', progress=False)
    return invert_photo(inverter, photo_path, 'photo', os.path.join(folder, 'checkpoints'), on_step=on_step)


def inversion_summary(result):
    """One line for the page: the numbers before and after tuning, the steps, and any stop or note."""
    m = result.metrics
    text = (f'PSNR {m["psnr_after_inversion"]:.2f} dB after the pivot, {m["psnr_after_tuning"]:.2f} dB after '
            f'tuning; LPIPS {m["lpips_after_inversion"]:.4f} -> {m["lpips_after_tuning"]:.4f} '
            f'({m["projection_steps"]} projection steps, {m["tuning_steps"]} tuning steps, {m["seconds"]:.1f} s)')
    if result.stopped:
        text = 'Stopped: ' + text
    if result.note:
        text += f'; photo {result.note}'
    return text


class Inversions:
    """The latest inversion (one tuned generator at most) and the page session it belongs to; the running job's Stop."""

    def __init__(self):
        self._lock = threading.Lock()
        self._latest = None          # (session, PhotoInversion, folder)
        self._running = None         # (session, threading.Event)

    def start(self, session):
        """A fresh stop flag for ``session``'s job (one job runs at a time: the queue sees to it)."""
        with self._lock:
            self._running = (session, threading.Event())
            return self._running[1]

    def finish(self):
        with self._lock:
            self._running = None

    def stop(self, session):
        """Ask ``session``'s running inversion to stop at its next step; False if it has none."""
        with self._lock:
            if self._running is None or self._running[0] != session:
                return False
            self._running[1].set()
            return True

    def keep(self, session, result, folder):
        """Keep ``result`` as the latest; the previous one (generator and files) is let go."""
        with self._lock:
            previous, self._latest = self._latest, (session, result, folder)
        if previous is not None and previous[2] != folder:
            shutil.rmtree(previous[2], ignore_errors=True)

    def latest(self, session, task='Edit'):
        with self._lock:
            if self._latest is None or self._latest[0] != session:
                raise AppError(f'{task}: no inverted photo yet: invert one in the Invert tab first '
                               '(the page keeps only the latest inversion)')
            return self._latest[1]


@dataclasses.dataclass(frozen=True)
class DragSettings:
    """The Drag tab's step limit."""
    max_steps: int = 200

    def check_steps(self, steps):
        count = whole_number(steps, 'Drag', 'steps')
        if count < 1:
            raise InputError(f'Drag: steps must be at least 1, not {count}')
        check_count(count, self.max_steps, 'Drag', 'steps')
        return count


def parse_drag_points(text):
    """The Drag tab's points, one per line or ';': 'x,y -> x,y' (pixels) or 'joint:dx,dy' (a joint move).

    Returns (pixel handles, pixel targets, joint moves); a bad entry is one line naming it.
    """
    from edit import drag_handles
    handles, targets, moves = [], [], []
    for entry in [e.strip() for e in str(text or '').replace(';', '\n').splitlines() if e.strip()]:
        try:
            if '->' in entry:
                start, end = entry.split('->', 1)
                handles.append(drag_handles.parse_point(start.strip()))
                targets.append(drag_handles.parse_point(end.strip()))
            else:
                moves.append(drag_handles.parse_move(entry))
        except ValueError as err:
            raise AppError(f'Drag: {err}') from None
    if not handles and not moves:
        raise AppError('Drag: give points as "x,y -> x,y" or joint moves as "right_wrist:+40,-30"')
    return handles, targets, moves


def dragged(G, w, handles, targets, moves, steps, folder, backend=None, should_stop=None, on_step=None):
    """drag.py on ``w`` (w or w+): joint moves found by the pose backend on the start image, then
    DragGAN; writes drag_w.npz and points.json into ``folder``. Returns (result, handles, targets, paths)."""
    from edit import drag as dragging, drag_handles, drag_outputs
    try:
        height, width = dragging.image_size(G)
        dragging.feature_names(G)   # StyleGAN1 has no features to track: one line
        if moves:
            backend = backend or drag_handles.default_backend()
            joints = drag_handles.find_joints(dragging.render(G, w), backend)
            joint_handles, joint_targets = drag_handles.resolve_moves(moves, joints)
            handles, targets = list(handles) + joint_handles, list(targets) + joint_targets
        dragging.check_points(handles, height, width, 'handle', 'handles')
        dragging.check_points(targets, height, width, 'target', 'targets')
        result = dragging.drag(G, w, handles, targets, dragging.DragConfig(steps=steps),
                               on_step=on_step, should_stop=should_stop)
    except ToolkitError as err:
        raise AppError(f'Drag: {err}') from None
    w_path, points_path = os.path.join(folder, 'drag_w.npz'), os.path.join(folder, 'points.json')
    drag_outputs.save_w(w_path, result.w)
    drag_outputs.write_json(points_path, drag_outputs.points_record(result, handles, targets))
    return result, handles, targets, (w_path, points_path)


def drag_summary(result):
    distances = ', '.join(f'{d:.1f}' for d in result.distances)
    ending = {'reached': 'every handle reached its target', 'steps': 'the step limit was reached',
              'stopped': 'Stopped'}[result.reason]
    text = f'{result.steps} step(s); distances to the targets: {distances} px; {ending}'
    return ('Stopped: ' + text) if result.reason == 'stopped' else text


def _session(request):
    return getattr(request, 'session_hash', None) or ''


# ----------------------------------------------------------------------------
# The page.


def build_app(networks, default_network='', directions_root=None, workdir=None, limits=RequestLimits(),
              queue_size=None, inversion=None, drag_settings=DragSettings(), number_format=torch.float32):
    """The Gradio Blocks app; ``networks`` is a :class:`Networks`; every tab computes in
    ``number_format`` (``--precision``: float32 or bfloat16).

    Each handler checks its request against ``limits`` (and the Invert tab's against ``inversion``,
    an :class:`InversionSettings`) before it loads a network or starts work; ``queue_size`` bounds
    the jobs waiting their turn (None: no bound).
    """
    import gradio as gr
    from stylegan_human import zoo as model_zoo
    workdir = workdir or tempfile.mkdtemp(prefix='stylegan_human_app_')
    inversion = inversion or InversionSettings()
    inversions = Inversions()

    def shown(fn):
        """Run ``fn`` for the page: a user error becomes a message there, not a stack trace.

        functools.wraps keeps fn's signature visible, so Gradio still passes its progress tracker.
        """
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                # Here, not around the server: Gradio runs each request in a worker thread.
                with precision.use_precision(number_format):
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
    def on_edit(network, seed, psi, attr, method, strength, person='Seed', request: gr.Request = None):
        if person == INVERTED_PERSON:   # the tuned generator at the pivot; the network field and psi do not apply
            before, after, latents = edited_inversion(inversions.latest(_session(request)), attr, method, strength,
                                                      directions_root)
            return before, after, save_latents('inverted_latents.npz', latents)
        seed = check_seed(seed, 'Edit')
        before, after, latents = edited_pair(networks.get(network), seed, psi, attr, method, strength,
                                             directions_root)
        return before, after, save_latents(f'seed{seed:04d}_latents.npz', latents)

    @shown
    def on_align(photo):
        return aligned_photo(photo, limits)

    @shown
    def on_invert(network, photo, pivot, projection_steps, tuning_steps, progress=gr.Progress(),
                  request: gr.Request = None):
        kind = PIVOTS.get(pivot)
        if kind is None:
            raise AppError(f'Invert: the pivot is one of {", ".join(PIVOTS)}, not {pivot!r}')
        projection_steps, tuning_steps = inversion.check_steps(projection_steps, tuning_steps)
        if photo is None:
            raise AppError('Invert: upload a photo first')
        limits.check_photo(np.asarray(photo))
        inversion.weights.check(kind)          # every missing weight file in one line, before any work
        session = _session(request)
        stop = inversions.start(session)       # from here on, Stop ends the job at its next step
        folder = os.path.join(workdir, 'inversions', uuid.uuid4().hex)

        def on_step(phase, done, total):
            progress((done, total), desc='Projecting into W' if phase == 'projection' else 'Tuning the generator',
                     unit='steps')
            return stop.is_set()
        try:
            progress(0, desc='Loading the network')
            G = networks.get(network)
            check_invertible(G)
            progress(0, desc='Aligning the photo')
            aligned = aligned_photo(photo, limits)
            progress(0, desc='Loading the perceptual networks')
            result = inverted_photo(G, aligned, folder, inversion, kind, projection_steps, tuning_steps,
                                    networks.device, on_step=on_step)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)   # nothing half-made is left or offered
            raise
        finally:
            inversions.finish()
        inversions.keep(session, result, folder)
        images = result.images
        return (images['target'], images['before'], images['after'], inversion_summary(result),
                result.pivot_path, result.network_path)

    def on_stop(request: gr.Request = None):
        inversions.stop(_session(request))

    @shown
    def on_drag(network, person, seed, psi, points, steps, progress=gr.Progress(), request: gr.Request = None):
        steps = drag_settings.check_steps(steps)
        handles, targets, moves = parse_drag_points(points)   # before any work
        session = _session(request)
        if person == INVERTED_PERSON:   # the tuned generator at its pivot, as in the Edit tab
            latest = inversions.latest(session, 'Drag')
            G, w = latest.tuned, latest.pivot
        else:
            G = networks.get(network)
            _, w = sampling.map_seeds(G, [check_seed(seed, 'Drag')], float(psi), device=networks.device)
        stop = inversions.start(session)
        folder = os.path.join(workdir, 'drags', uuid.uuid4().hex)
        os.makedirs(folder)

        def on_step(state):
            progress((state.step, steps), desc='Dragging', unit='steps')
        try:
            result, handles, targets, paths = dragged(G, w, handles, targets, moves, steps, folder,
                                                      should_stop=stop.is_set, on_step=on_step)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            inversions.finish()
        from edit.drag_outputs import draw_points
        start = draw_points(result.start_image, result.points[0], targets)
        end = draw_points(result.end_image, result.points[-1], targets)
        return start, end, drag_summary(result), paths[0], paths[1]

    from edit.edit_config import attr_dict
    attributes = sorted(attr_dict['interface_gan'])
    image_kw = dict(format='png', type='numpy', interactive=False)
    # Gradio copies every returned file (tuned networks too) into its cache: drop copies older than an hour.
    with gr.Blocks(title='StyleGAN-Human', analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
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
                person = gr.Radio(['Seed', INVERTED_PERSON], value='Seed', label='Person', elem_id='edit-person',
                                  info='Inverted photo: the latest inversion of the Invert tab (its tuned network)')
                edit_seed = gr.Number(value=0, precision=0, minimum=0, label='Seed', elem_id='edit-seed')
                attr = gr.Dropdown(attributes, value=attributes[0], label='Attribute')
                edit_method = gr.Radio(['interfacegan', 'stylespace', 'sefa'], value='interfacegan', label='Method',
                                       elem_id='edit-method')
                strength = gr.Slider(-20, 20, value=5, step=0.5, label='Strength', elem_id='edit-strength')
            run = gr.Button('Edit', variant='primary', elem_id='edit-run')
            with gr.Row():
                before = gr.Image(label='Before', elem_id='edit-before', **image_kw)
                after = gr.Image(label='After', elem_id='edit-after', **image_kw)
            edit_latents = gr.File(label='Latents (seed, z, w)')
            run.click(on_edit, [network, edit_seed, psi, attr, edit_method, strength, person],
                      [before, after, edit_latents])

        with gr.Tab('Align a photo'):
            photo = gr.Image(label='Photo of one person, whole body', type='numpy', format='png')
            run = gr.Button('Align', variant='primary')
            crop = gr.Image(label='Aligned (512x1024, on white)', **image_kw)
            run.click(on_align, photo, crop)

        with gr.Tab('Invert'):
            missing = inversion.missing('w')
            if missing:
                e4e_works = inversion.e4e_available() and not inversion.missing('w+')
                gr.Markdown(f'The W projection needs weight files that are not here. {missing}'
                            + ('. The e4e pivot has its files.' if e4e_works else ''), elem_id='inv-missing')
            pivots = list(PIVOTS) if inversion.e4e_available() else ['W projection']
            with gr.Row():
                inv_photo = gr.Image(label='Photo of one person, whole body', type='numpy', format='png',
                                     elem_id='inv-photo')
                with gr.Column():
                    pivot = gr.Radio(pivots, value='W projection', label='Pivot', elem_id='inv-pivot',
                                     info=None if len(pivots) > 1 else 'e4e: start the app with --e4e e4e_w+.pt')
                    proj_steps = gr.Number(value=min(450, inversion.max_projection_steps), precision=0,
                                           elem_id='inv-proj-steps',
                                           label=f'Projection steps (at most {inversion.max_projection_steps})')
                    tune_steps = gr.Number(value=min(350, inversion.max_tuning_steps), precision=0,
                                           elem_id='inv-tune-steps',
                                           label=f'Tuning steps (at most {inversion.max_tuning_steps})')
                    with gr.Row():
                        run = gr.Button('Invert', variant='primary', elem_id='inv-run')
                        stop = gr.Button('Stop', variant='stop', elem_id='inv-stop')
            summary = gr.Textbox(label='Result', interactive=False, elem_id='inv-summary')
            with gr.Row():
                inv_target = gr.Image(label='Aligned photo', elem_id='inv-target', **image_kw)
                inv_before = gr.Image(label='Before: the pivot', elem_id='inv-before', **image_kw)
                inv_after = gr.Image(label='After: tuned', elem_id='inv-after', **image_kw)
            with gr.Row():
                pivot_file = gr.File(label='Pivot (0.pt: edit.py --real_w_path, generate.py --projected-w)',
                                     elem_id='inv-pivot-file')
                network_file = gr.File(label='Tuned network (official pickle)', elem_id='inv-network-file')
            run.click(on_invert, [network, inv_photo, pivot, proj_steps, tune_steps],
                      [inv_target, inv_before, inv_after, summary, pivot_file, network_file],
                      show_progress_on=summary)
            # Not queued: it must reach the running job, which holds the queue's one worker.
            stop.click(on_stop, None, None, queue=False)

        with gr.Tab('Drag'):
            gr.Markdown('Move points of the person (DragGAN): a pixel to a pixel, `x,y -> x,y`, or a joint by an '
                        'offset, `right_wrist:+40,-30` (joints found by the pose backend). One per line.')
            with gr.Row():
                drag_person = gr.Radio(['Seed', INVERTED_PERSON], value='Seed', label='Person',
                                       elem_id='drag-person', info='Inverted photo: the latest inversion')
                drag_seed = gr.Number(value=0, precision=0, minimum=0, label='Seed', elem_id='drag-seed')
                drag_steps = gr.Number(value=min(100, drag_settings.max_steps), precision=0, elem_id='drag-steps',
                                       label=f'Steps (at most {drag_settings.max_steps})')
            drag_points = gr.Textbox(value='', lines=3, label='Points', elem_id='drag-points',
                                     placeholder='100,200 -> 110,190\nright_wrist:+40,-30')
            with gr.Row():
                run = gr.Button('Drag', variant='primary', elem_id='drag-run')
                stop = gr.Button('Stop', variant='stop', elem_id='drag-stop')
            drag_result = gr.Textbox(label='Result', interactive=False, elem_id='drag-summary')
            with gr.Row():
                drag_start = gr.Image(label='Start (red: handles, blue: targets)', elem_id='drag-start', **image_kw)
                drag_end = gr.Image(label='End', elem_id='drag-end', **image_kw)
            with gr.Row():
                drag_w = gr.File(label='w+ (drag_w.npz: generate.py --projected-w, edit.py)', elem_id='drag-w')
                drag_json = gr.File(label='Tracked points (points.json)', elem_id='drag-points-file')
            run.click(on_drag, [network, drag_person, drag_seed, psi, drag_points, drag_steps],
                      [drag_start, drag_end, drag_result, drag_w, drag_json], show_progress_on=drag_result)
            stop.click(on_stop, None, None, queue=False)
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
@click.option('--max-projection-steps', type=_whole(), default=InversionSettings.max_projection_steps,
              show_default=True, help='Invert: most W projection steps per request')
@click.option('--max-pti-steps', type=_whole(), default=InversionSettings.max_tuning_steps, show_default=True,
              help='Invert: most pivotal tuning steps per request')
@click.option('--vgg16', 'vgg16_weights', default='vgg16_nvidia', show_default=True, metavar='NAME|FILE',
              help="Invert: NVIDIA's vgg16.pt for the W projection (as run_pti.py)")
@click.option('--lpips-type', type=click.Choice(['alex', 'vgg']), default='alex', show_default=True,
              help='Invert: LPIPS backbone')
@click.option('--lpips-weights', default=None, metavar='NAME|FILE',
              help='Invert: LPIPS linear layers (default: lpips_<type>_lin)')
@click.option('--lpips-backbone', default=None, metavar='NAME|FILE',
              help='Invert: LPIPS backbone weights (default: alexnet_torchvision / vgg16_torchvision)')
@click.option('--e4e', 'e4e_path', default='./pti/e4e_w+.pt', show_default=True, metavar='FILE',
              help="Invert: StyleGAN-Human's e4e_w+.pt; the e4e pivot is offered when the file is there")
@click.option('--max-drag-steps', type=_whole(), default=DragSettings.max_steps, show_default=True,
              help='Drag: most DragGAN steps per request')
@click.option('--precision', 'precision_name', type=click.Choice(precision.PRECISIONS), default='fp32', show_default=True,
              help=commands.PRECISION_OPTION_HELP)
@click.option('--share', is_flag=True, help="Ask Gradio for a public link (a tunnel through gradio.live); no password")
@commands.user_errors
def main(network_pkl, port, host, device, directions_root, network_dirs, allow_urls, max_networks, max_network_mb,
         max_mix_rows, max_mix_cols, max_interp_steps, max_photo_mp, max_upload_mb, queue_size, max_projection_steps,
         max_pti_steps, vgg16_weights, lpips_type, lpips_weights, lpips_backbone, e4e_path, max_drag_steps,
         precision_name, share):
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise commands.UserError("the web app needs Gradio: pip install -e '.[app]'") from None
    limits = RequestLimits(mix_rows=max_mix_rows, mix_cols=max_mix_cols, interp_steps=max_interp_steps,
                           photo_megapixels=max_photo_mp)
    access = NetworkAccess(network_dirs, start_network=network_pkl, allow_urls=allow_urls)
    cache = NetworkCache(max_networks=max_networks, max_bytes=max_network_mb * MIB)
    networks = Networks(commands.choose_device(device), access=access, cache=cache)
    number_format = commands.precision_dtype(precision_name, networks.device)
    if network_pkl:
        try:
            networks.get(network_pkl)   # load now: a bad --network is a one-line error, not a page error
        except AppError as err:
            raise commands.UserError(str(err)) from None
    weights = WeightFiles(lpips_type=lpips_type, lpips_lin=lpips_weights, lpips_backbone=lpips_backbone,
                          e4e=e4e_path, vgg16=vgg16_weights)
    inversion = InversionSettings(weights, max_projection_steps=max_projection_steps, max_tuning_steps=max_pti_steps)
    missing = inversion.missing('w')
    if missing:   # the rest of the app works; the Invert tab says the same
        click.echo(f'Invert tab: {missing}')
    demo = build_app(networks, default_network=network_pkl, directions_root=directions_root, limits=limits,
                     queue_size=queue_size, inversion=inversion, drag_settings=DragSettings(max_steps=max_drag_steps),
                     number_format=number_format)
    launch(demo, host, port, share=share, max_upload_mb=max_upload_mb)


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
