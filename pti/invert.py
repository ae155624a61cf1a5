"""Pivotal Tuning Inversion of a set of photos: pivots, tuned generators and their results on disk.

The orchestration behind ``run_pti.py`` (and any app or notebook that inverts photos):
:class:`Inverter` holds one run's networks and settings; :func:`invert_each` tunes a
generator per photo, :func:`invert_together` one for all of them (multi-id). Results go
to upstream's layout under the run's output folder; a bad photo is reported in the batch
report and the others go on.
"""

import dataclasses
import json
import os
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from dnnlib.atomic import atomic_write, save_image
from stylegan_human.batch_report import PHOTO_FAILURES, BatchReport
from stylegan_human.features.e4e import E4E_SOURCE
from stylegan_human.network_files import save_network_pkl
from . import images as pti_images
from . import losses, weight_files
from .projector import ProjectionConfig, project_w
from .tuning import TuningConfig, synthesize, tune_generator


def save_tensor(tensor: torch.Tensor, path: Union[str, os.PathLike]) -> None:
    atomic_write(path, lambda f: torch.save(tensor.detach().cpu(), f))


def save_json(data: Any, path: Union[str, os.PathLike]) -> None:
    text = json.dumps(data, indent=1)
    atomic_write(path, lambda f: f.write(text), mode='w')


@dataclasses.dataclass(frozen=True)
class WeightFiles:
    """The perceptual networks' weight files: names in pti.weight_files, or paths (None: the default)."""
    lpips_type: str = 'alex'             # 'alex' or 'vgg'
    lpips_lin: Optional[str] = None      # LPIPS linear layers
    lpips_backbone: Optional[str] = None
    e4e: Optional[str] = None            # StyleGAN-Human's e4e_w+.pt (w+ pivots)
    vgg16: str = 'vgg16_nvidia'          # NVIDIA's vgg16.pt (w projection)

    def check(self, inversion: str) -> None:
        """Raise one WeightsError naming every file that a run with ``inversion`` needs and lacks."""
        net = self.lpips_type
        wanted = [(self.lpips_lin or f'lpips_{net}_lin', '--lpips-weights')]
        # A file of the user's may hold the whole LPIPS module (backbone included): then it needs no backbone.
        if self.lpips_backbone or not (self.lpips_lin and os.path.isfile(self.lpips_lin)):
            wanted.append((self.lpips_backbone or losses.DEFAULT_BACKBONE[net], '--lpips-backbone'))
        others = []
        if inversion == 'w':
            wanted.append((self.vgg16, '--vgg16'))
        elif not (self.e4e and os.path.isfile(self.e4e)):
            where = f'not found at {self.e4e}' if self.e4e else 'not given'
            others.append(f"e4e encoder {where}: download StyleGAN-Human's e4e_w+.pt from "
                          f'{E4E_SOURCE} and pass it with --e4e PATH (or use --inversion w)')
        try:
            weight_files.check_present(wanted, others)
        except weight_files.WeightsMissing as err:
            raise losses.WeightsError(str(err)) from None


class Inverter:
    """Holds the networks and settings of one run; ``pivot(target, name)`` and ``tune(...)``."""

    def __init__(self, G: torch.nn.Module, device: torch.device, inversion: str, projection_cfg: ProjectionConfig,
                 tuning_cfg: TuningConfig, seed: int, weights: WeightFiles, outdir: str, run_name: str,
                 reuse_pivots: bool = False, progress: bool = True):
        self.G = G
        self.device = device
        self.inversion = inversion
        self.projection_cfg = projection_cfg
        self.tuning_cfg = tuning_cfg
        self.seed = seed
        self.outdir = outdir
        self.run_name = run_name
        self.reuse_pivots = reuse_pivots
        self.progress = progress
        self.projection_steps_done = 0   # of the last pivot (0: encoded or reused)
        weights.check(inversion)
        self.lpips = losses.load_lpips(weights.lpips_type, weights.lpips_lin, weights.lpips_backbone, device)
        if inversion == 'w+':
            self.encoder = losses.load_encoder(weights.e4e, G.num_ws, device)
        else:
            self.vgg16 = losses.load_vgg16(weights.vgg16, device)

    def pivot_path(self, name):
        return os.path.join(self.outdir, 'embeddings', self.run_name, 'PTI', name, '0.pt')

    def pivot(self, target, name, stop=None):
        """w+ [1, num_ws, w_dim] for the target: reused, encoded (w+) or projected (w).

        ``stop(steps_done) -> bool`` is asked before each projection step; True keeps the w reached so far.
        The projection steps done are in ``self.projection_steps_done`` afterwards.
        """
        path = self.pivot_path(name)
        self.projection_steps_done = 0
        if self.reuse_pivots and os.path.isfile(path):
            return torch.load(path, map_location=self.device, weights_only=True).float()
        target = target.to(self.device)
        if self.inversion == 'w+':
            with torch.no_grad():
                pivot = self.encoder(target)
        else:
            bar = _bar(self.projection_cfg.steps, f'{name}: projecting', self.progress)
            pivot, history = project_w(self.G, target, self.vgg16, self.projection_cfg, seed=self.seed,
                                       device=self.device, progress=_tick(bar, self.projection_cfg.log_every, 'dist'),
                                       stop=stop)
            bar.close()
            self.projection_steps_done = len(history)
        save_tensor(pivot, path)
        return pivot

    def tune(self, pivots, targets, label, stop=None):
        """(tuned generator, stats); ``stop(steps_done) -> bool`` is asked before each step."""
        bar = _bar(self.tuning_cfg.steps, f'{label}: tuning', self.progress)
        tuned, stats = tune_generator(self.G, pivots, targets, self.lpips, self.tuning_cfg, seed=self.seed,
                                      device=self.device, progress=_tick(bar, self.tuning_cfg.check_every, 'lpips'),
                                      stop=stop)
        bar.close()
        return tuned, stats

    def measure(self, G, pivot, target):
        """(uint8 image at the pivot, PSNR dB, LPIPS) against the target."""
        with torch.no_grad():
            synth = synthesize(G, pivot.to(self.device))
            distance = float(self.lpips(synth, target.to(self.device)).mean())
        image = pti_images.tensor_to_uint8(synth)
        return image, pti_images.psnr(image, pti_images.tensor_to_uint8(target)), distance


def _bar(total, desc, enabled):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit='step', disable=not enabled, leave=False)


def _tick(bar, every, label):
    def update(step, value):
        bar.update(step - bar.n)
        bar.set_postfix({label: f'{float(value):.4f}'})  # reads the device once per `every` steps
    return update


def write_results(inverter: Inverter, name: str, target: torch.Tensor, pivot: torch.Tensor, tuned: torch.nn.Module,
                  stats: Dict[str, Any], seconds: float, note: Optional[str]) -> Dict[str, Any]:
    """Images, metrics.json and the side-by-side picture for one photo; returns the metrics."""
    return _write_results(inverter, name, target, pivot, tuned, stats, seconds, note)[0]


def _write_results(inverter, name, target, pivot, tuned, stats, seconds, note):
    """write_results, returning (metrics, {'target', 'before', 'after'} uint8 images)."""
    before, psnr_before, lpips_before = inverter.measure(inverter.G, pivot, target)
    after, psnr_after, lpips_after = inverter.measure(tuned, pivot, target)
    photo = pti_images.tensor_to_uint8(target)
    folder = os.path.join(inverter.outdir, 'results', inverter.run_name, name)
    images = {'target': photo, 'before': before, 'after': after}
    for label, image in images.items():
        save_image(image, os.path.join(folder, f'{label}.png'))
    save_image(np.concatenate([photo, before, after], axis=1), os.path.join(inverter.outdir, f'{name}.png'))
    projection_steps = inverter.projection_cfg.steps if inverter.inversion == 'w' else 0
    metrics = {'image': name, 'inversion': inverter.inversion, 'psnr_after_inversion': round(psnr_before, 3),
               'lpips_after_inversion': round(lpips_before, 5), 'psnr_after_tuning': round(psnr_after, 3),
               'lpips_after_tuning': round(lpips_after, 5),
               'projection_steps': stats.get('projection_steps', projection_steps),
               'tuning_steps': stats['steps'], 'seconds': round(seconds, 2), 'note': note}
    if stats.get('stopped'):
        metrics['stopped'] = True
    save_json(metrics, os.path.join(folder, 'metrics.json'))
    return metrics, images


@dataclasses.dataclass
class PhotoInversion:
    """One photo's PTI result, as :func:`invert_photo` leaves it on disk and in memory."""
    name: str
    pivot: torch.Tensor              # w+ [1, num_ws, w_dim], on the inverter's device
    tuned: torch.nn.Module           # the tuned generator (eval, no gradients)
    images: Dict[str, np.ndarray]    # 'target', 'before' (the pivot's image), 'after' (tuned): uint8 HxWx3
    metrics: Dict[str, Any]          # as metrics.json
    pivot_path: str                  # 0.pt: edit.py --real_w_path, generate.py --projected-w
    network_path: str                # the tuned generator, official pickle (G_ema)
    note: Optional[str] = None       # what was done to the photo (a resize), if anything

    @property
    def stopped(self) -> bool:
        return bool(self.metrics.get('stopped'))


StepCallback = Callable[[str, int, int], bool]   # (phase, steps done, steps in all) -> stop now?


def invert_photo(inverter: Inverter, path: Union[str, os.PathLike], name: str, checkpoints: str,
                 on_step: Optional[StepCallback] = None) -> PhotoInversion:
    """Single-id PTI of one aligned photo: its pivot, tuned generator, images and metrics, written as run_pti.py does.

    ``on_step(phase, steps_done, total)`` is told before each step of the projection (phase
    ``'projection'``) and of the tuning (``'tuning'``); when it returns True that loop ends there and
    the result so far is kept (a stopped projection is followed by a tuning that ``on_step`` may stop
    at once). Photo problems raise the errors of :data:`PHOTO_FAILURES`.
    """
    start = time.perf_counter()
    target, note = pti_images.load_target(path, pti_images.network_size(inverter.G))
    stopped_in = []   # the phases on_step stopped

    def asking(phase, total):
        def ask(done):
            if on_step(phase, done, total):
                stopped_in.append(phase)
                return True
            return False
        return None if on_step is None else ask
    pivot = inverter.pivot(target, name, stop=asking('projection', inverter.projection_cfg.steps))
    projection_steps = inverter.projection_steps_done
    tuned, stats = inverter.tune([pivot], [target], name, stop=asking('tuning', inverter.tuning_cfg.steps))
    stats = dict(stats, projection_steps=projection_steps, stopped=bool(stopped_in))
    network_path = os.path.join(checkpoints, f'model_{name}.pkl')   # upstream's name
    save_network_pkl({'G_ema': tuned}, network_path)
    metrics, images = _write_results(inverter, name, target, pivot, tuned, stats, time.perf_counter() - start, note)
    return PhotoInversion(name=name, pivot=pivot, tuned=tuned, images=images, metrics=metrics,
                          pivot_path=inverter.pivot_path(name), network_path=network_path, note=note)


def invert_each(inverter: Inverter, items: Sequence[Tuple[Union[str, os.PathLike], str]], report: BatchReport,
                checkpoints: str, stop: Optional[Callable[[], bool]] = None) -> None:
    """Single-id PTI: a pivot and a tuned generator per photo. ``stop()`` is asked between photos."""
    for index, (path, name) in enumerate(items):
        if stop is not None and stop():
            report.left = len(items) - index
            break
        try:
            result = invert_photo(inverter, path, name, checkpoints)
            if result.note:
                print(f'{name}: {result.note}')
            m = result.metrics
            print(f'{name}: PSNR {m["psnr_after_inversion"]:.2f} -> {m["psnr_after_tuning"]:.2f} dB, '
                  f'LPIPS {m["lpips_after_inversion"]:.4f} -> {m["lpips_after_tuning"]:.4f}')
            report.done += 1
        except PHOTO_FAILURES as err:
            report.failures.append((name, str(err)))
            print(f'{name}: skipped: {err}')


def invert_together(inverter: Inverter, items: Sequence[Tuple[Union[str, os.PathLike], str]],
                    report: BatchReport, checkpoints: str, stop: Optional[Callable[[], bool]] = None) -> None:
    """Multi-id PTI: pivots for all photos, then one generator tuned on all of them.

    ``stop()`` is asked between pivots; once it says True no generator is tuned."""
    start = time.perf_counter()
    done = []
    for index, (path, name) in enumerate(items):
        if stop is not None and stop():
            report.left = len(items) - index
            return
        try:
            target, note = pti_images.load_target(path, pti_images.network_size(inverter.G))
            if note:
                print(f'{name}: {note}')
            done.append((name, target, inverter.pivot(target, name), note))
        except PHOTO_FAILURES as err:
            report.failures.append((name, str(err)))
            print(f'{name}: skipped: {err}')
    if not done:
        return
    tuned, stats = inverter.tune([d[2] for d in done], [d[1] for d in done], 'all photos')
    save_network_pkl({'G_ema': tuned}, os.path.join(checkpoints, f'model_{inverter.run_name}_multi_id.pkl'))
    for name, target, pivot, note in done:
        write_results(inverter, name, target, pivot, tuned, stats, time.perf_counter() - start, note)
        report.done += 1
