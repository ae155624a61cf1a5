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
        weights.check(inversion)
        self.lpips = losses.load_lpips(weights.lpips_type, weights.lpips_lin, weights.lpips_backbone, device)
        if inversion == 'w+':
            self.encoder = losses.load_encoder(weights.e4e, G.num_ws, device)
        else:
            self.vgg16 = losses.load_vgg16(weights.vgg16, device)

    def pivot_path(self, name):
        return os.path.join(self.outdir, 'embeddings', self.run_name, 'PTI', name, '0.pt')

    def pivot(self, target, name):
        """w+ [1, num_ws, w_dim] for the target: reused, encoded (w+) or projected (w)."""
        path = self.pivot_path(name)
        if self.reuse_pivots and os.path.isfile(path):
            return torch.load(path, map_location=self.device, weights_only=True).float()
        target = target.to(self.device)
        if self.inversion == 'w+':
            with torch.no_grad():
                pivot = self.encoder(target)
        else:
            bar = _bar(self.projection_cfg.steps, f'{name}: projecting', self.progress)
            pivot, _ = project_w(self.G, target, self.vgg16, self.projection_cfg, seed=self.seed,
                                 device=self.device, progress=_tick(bar, self.projection_cfg.log_every, 'dist'))
            bar.close()
        save_tensor(pivot, path)
        return pivot

    def tune(self, pivots, targets, label):
        bar = _bar(self.tuning_cfg.steps, f'{label}: tuning', self.progress)
        tuned, stats = tune_generator(self.G, pivots, targets, self.lpips, self.tuning_cfg, seed=self.seed,
                                      device=self.device, progress=_tick(bar, self.tuning_cfg.check_every, 'lpips'))
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
    before, psnr_before, lpips_before = inverter.measure(inverter.G, pivot, target)
    after, psnr_after, lpips_after = inverter.measure(tuned, pivot, target)
    photo = pti_images.tensor_to_uint8(target)
    folder = os.path.join(inverter.outdir, 'results', inverter.run_name, name)
    for label, image in (('target', photo), ('before', before), ('after', after)):
        save_image(image, os.path.join(folder, f'{label}.png'))
    save_image(np.concatenate([photo, before, after], axis=1), os.path.join(inverter.outdir, f'{name}.png'))
    metrics = {'image': name, 'inversion': inverter.inversion, 'psnr_after_inversion': round(psnr_before, 3),
               'lpips_after_inversion': round(lpips_before, 5), 'psnr_after_tuning': round(psnr_after, 3),
               'lpips_after_tuning': round(lpips_after, 5), 'projection_steps':
               inverter.projection_cfg.steps if inverter.inversion == 'w' else 0,
               'tuning_steps': stats['steps'], 'seconds': round(seconds, 2), 'note': note}
    save_json(metrics, os.path.join(folder, 'metrics.json'))
    return metrics


def invert_each(inverter: Inverter, items: Sequence[Tuple[Union[str, os.PathLike], str]], report: BatchReport,
                checkpoints: str, stop: Optional[Callable[[], bool]] = None) -> None:
    """Single-id PTI: a pivot and a tuned generator per photo. ``stop()`` is asked between photos."""
    for index, (path, name) in enumerate(items):
        if stop is not None and stop():
            report.left = len(items) - index
            break
        try:
            start = time.perf_counter()
            target, note = pti_images.load_target(path, pti_images.network_size(inverter.G))
            if note:
                print(f'{name}: {note}')
            pivot = inverter.pivot(target, name)
            tuned, stats = inverter.tune([pivot], [target], name)
            save_network_pkl({'G_ema': tuned}, os.path.join(checkpoints, f'model_{name}.pkl'))   # upstream's name
            m = write_results(inverter, name, target, pivot, tuned, stats, time.perf_counter() - start, note)
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
