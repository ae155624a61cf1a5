"""What the metrics share: options, feature statistics, the feature networks, dataset caching.

Follows NVIDIA's ``metrics/metric_utils.py`` (StyleGAN2-ADA / StyleGAN3): the same
:class:`MetricOptions`, :class:`FeatureStats`, :class:`ProgressMonitor`,
``compute_feature_stats_for_dataset`` / ``..._for_generator`` and multi-process
gathering (each rank computes its share; features are broadcast from every rank
with ``torch.distributed`` and interleaved). Differences:

* the feature networks are this project's modules loaded from NVIDIA's files
  without running them (``metrics.detector_files``), and can be replaced:
  ``MetricOptions(detectors={'inception': module_or_path, 'vgg16': ...})``;
* the sample counts of a metric can be lowered for quick checks
  (``num_gen=``, ``max_real=``, ``num_samples=``, ...);
* dataset features are cached as ``.npz`` (no pickle) under
  ``<cache_dir>/<dataset>-<detector>-<md5>.npz``, keyed by the dataset options,
  its image count, the detector's weights and options; written atomically.
"""

import copy
import hashlib
import json
import os
import sys
import time

import numpy as np
import torch

import dnnlib
from dnnlib.atomic import atomic_write
from dnnlib.errors import InputError

from . import detector_files

# ----------------------------------------------------------------------------


class MetricError(InputError):
    """A metric that cannot be computed as asked (unknown name, bad option); one line."""


# Sample counts a caller may lower (or raise) instead of the metric's published ones.
COUNT_OPTIONS = ('num_gen', 'max_real', 'num_samples', 'num_subsets', 'max_subset_size', 'num_splits')


class MetricOptions:
    def __init__(self, G=None, G_kwargs={}, dataset_kwargs={}, num_gpus=1, rank=0, device=None, progress=None,
                 cache=True, detectors=None, cache_dir=None, allow_download=True, **counts):
        if not 0 <= rank < num_gpus:
            raise MetricError(f'rank {rank} is outside 0..{num_gpus - 1}')
        unknown = sorted(set(counts) - set(COUNT_OPTIONS))
        if unknown:
            raise MetricError(f'unknown metric option {unknown[0]}; known: {", ".join(COUNT_OPTIONS)}')
        self.G = G
        self.G_kwargs = dnnlib.EasyDict(G_kwargs)
        self.dataset_kwargs = dnnlib.EasyDict(dataset_kwargs)
        self.num_gpus = num_gpus
        self.rank = rank
        self.device = torch.device(device) if device is not None else default_device(rank)
        self.progress = progress.sub() if progress is not None and rank == 0 else ProgressMonitor()
        self.cache = cache
        self.detectors = _normalise_detectors(detectors)
        self.cache_dir = cache_dir
        self.allow_download = allow_download
        self.counts = {k: v for k, v in counts.items() if v is not None}

    def sized(self, **defaults):
        """The metric's published counts, with those the caller set instead."""
        return {k: self.counts.get(k, v) for k, v in defaults.items()}


def default_device(rank=0):
    return torch.device('cuda', rank) if torch.cuda.is_available() else torch.device('cpu')


def _normalise_detectors(detectors):
    out = {}
    for key, value in (detectors or {}).items():
        if key not in detector_files.ALIASES:
            raise MetricError(f'unknown detector {key!r}; known: inception, vgg16')
        if value is not None:
            out[detector_files.ALIASES[key]] = value
    return out


# ----------------------------------------------------------------------------
# NVIDIA code calls these through metric_utils too.


construct_class_by_name = dnnlib.util.construct_class_by_name
format_time = dnnlib.util.format_time


# ----------------------------------------------------------------------------
# Feature networks


_feature_detector_cache = dict()


def get_feature_detector_name(url):
    return detector_files.detector_name(url)


def get_feature_detector(url, device=torch.device('cpu'), num_gpus=1, rank=0, verbose=False, detectors=None,
                         allow_download=True):
    """The network behind NVIDIA's detector ``url``: a replacement from ``detectors``, or the file, loaded once."""
    assert 0 <= rank < num_gpus
    name = get_feature_detector_name(url)
    given = (detectors or {}).get(detector_files.ALIASES.get(name, name))
    if given is not None and not isinstance(given, (str, os.PathLike)):
        return given.to(device) if isinstance(given, torch.nn.Module) else given
    env = detector_files.FILES[name].env if name in detector_files.FILES else None
    key = (name, None if given is None else os.fspath(given), os.environ.get(env) if env else None, str(device))
    if key not in _feature_detector_cache:
        is_leader = (rank == 0)
        if not is_leader and num_gpus > 1:
            torch.distributed.barrier()  # The leader downloads first.
        try:
            if name in detector_files.FILES:
                detector = detector_files.load_detector(name, path=given, device=device,
                                                        allow_download=allow_download, verbose=verbose and is_leader)
            else:  # Some other URL or file, in one of the known layouts.
                local = dnnlib.util.open_url(url, return_filename=True, verbose=verbose and is_leader)
                detector = detector_files.build_detector(detector_files.read_detector_tensors(local), local)
                detector = detector.to(device)
        finally:
            if is_leader and num_gpus > 1:
                torch.distributed.barrier()  # The others follow.
        _feature_detector_cache[key] = detector
    return _feature_detector_cache[key]


def detector_fingerprint(detector):
    """What identifies a detector in cache keys: a digest of its weights, or its declared cache_key."""
    declared = getattr(detector, 'cache_key', None)
    if declared is not None:
        return str(declared)
    if not isinstance(detector, torch.nn.Module):
        return f'{type(detector).__module__}.{type(detector).__qualname__}'
    digest = hashlib.sha1(type(detector).__qualname__.encode())
    for name, tensor in sorted(detector.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode() + str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------


def iterate_random_labels(opts, batch_size):
    if opts.G.c_dim == 0:
        c = torch.zeros([batch_size, opts.G.c_dim], device=opts.device)
        while True:
            yield c
    else:
        dataset = construct_class_by_name(**opts.dataset_kwargs)
        while True:
            c = [dataset.get_label(np.random.randint(len(dataset))) for _i in range(batch_size)]
            yield torch.from_numpy(np.stack(c)).to(opts.device)


# ----------------------------------------------------------------------------


class FeatureStats:
    """Features accumulated batch by batch: all of them, and/or their running mean and covariance."""

    def __init__(self, capture_all=False, capture_mean_cov=False, max_items=None):
        self.capture_all = capture_all
        self.capture_mean_cov = capture_mean_cov
        self.max_items = max_items
        self.num_items = 0
        self.num_features = None
        self.all_features = None
        self.raw_mean = None
        self.raw_cov = None

    def set_num_features(self, num_features):
        if self.num_features is not None:
            assert num_features == self.num_features
        else:
            self.num_features = num_features
            self.all_features = []
            self.raw_mean = np.zeros([num_features], dtype=np.float64)
            self.raw_cov = np.zeros([num_features, num_features], dtype=np.float64)

    def is_full(self):
        return (self.max_items is not None) and (self.num_items >= self.max_items)

    def append(self, x):
        x = np.asarray(x, dtype=np.float32)
        assert x.ndim == 2
        if (self.max_items is not None) and (self.num_items + x.shape[0] > self.max_items):
            if self.num_items >= self.max_items:
                return
            x = x[:self.max_items - self.num_items]
        self.set_num_features(x.shape[1])
        self.num_items += x.shape[0]
        if self.capture_all:
            self.all_features.append(x)
        if self.capture_mean_cov:
            x64 = x.astype(np.float64)
            self.raw_mean += x64.sum(axis=0)
            self.raw_cov += x64.T @ x64

    def append_torch(self, x, num_gpus=1, rank=0):
        assert isinstance(x, torch.Tensor) and x.ndim == 2
        assert 0 <= rank < num_gpus
        if num_gpus > 1:
            ys = []
            for src in range(num_gpus):
                y = x.clone()
                torch.distributed.broadcast(y, src=src)
                ys.append(y)
            x = torch.stack(ys, dim=1).flatten(0, 1)  # Interleave: item i of rank r is sample i * num_gpus + r.
        self.append(x.detach().cpu().numpy())

    def get_all(self):
        assert self.capture_all
        return np.concatenate(self.all_features, axis=0)

    def get_all_torch(self):
        return torch.from_numpy(self.get_all())

    def get_mean_cov(self):
        assert self.capture_mean_cov
        mean = self.raw_mean / self.num_items
        cov = self.raw_cov / self.num_items
        cov = cov - np.outer(mean, mean)
        return mean, cov

    def save(self, path):
        """Write an .npz atomically (numbers only: loading it runs nothing)."""
        arrays = dict(capture_all=self.capture_all, capture_mean_cov=self.capture_mean_cov,
                      max_items=-1 if self.max_items is None else self.max_items, num_items=self.num_items,
                      num_features=-1 if self.num_features is None else self.num_features)
        if self.num_features is not None:
            arrays.update(raw_mean=self.raw_mean, raw_cov=self.raw_cov)
            if self.capture_all:
                arrays['all_features'] = self.get_all() if self.all_features else np.zeros([0, self.num_features],
                                                                                           np.float32)
        atomic_write(path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}))

    @staticmethod
    def load(path):
        with np.load(path, allow_pickle=False) as data:
            max_items = int(data['max_items'])
            obj = FeatureStats(capture_all=bool(data['capture_all']), capture_mean_cov=bool(data['capture_mean_cov']),
                               max_items=None if max_items < 0 else max_items)
            obj.num_items = int(data['num_items'])
            num_features = int(data['num_features'])
            if num_features >= 0:
                obj.num_features = num_features
                obj.raw_mean = data['raw_mean'].astype(np.float64)
                obj.raw_cov = data['raw_cov'].astype(np.float64)
                obj.all_features = [data['all_features'].astype(np.float32)] if obj.capture_all else []
        return obj


# ----------------------------------------------------------------------------


class ProgressMonitor:
    """NVIDIA's progress reporting; verbose monitors with a tag show a tqdm bar."""

    def __init__(self, tag=None, num_items=None, flush_interval=1000, verbose=False, progress_fn=None, pfn_lo=0,
                 pfn_hi=1000, pfn_total=1000):
        self.tag = tag
        self.num_items = num_items
        self.verbose = verbose
        self.flush_interval = flush_interval
        self.progress_fn = progress_fn
        self.pfn_lo = pfn_lo
        self.pfn_hi = pfn_hi
        self.pfn_total = pfn_total
        self.start_time = time.time()
        self.batch_time = self.start_time
        self.batch_items = 0
        self.bar = None
        if verbose and tag is not None:
            import tqdm
            self.bar = tqdm.tqdm(total=num_items, desc=tag, unit='img', file=sys.stderr, leave=True)
        if self.progress_fn is not None:
            self.progress_fn(self.pfn_lo, self.pfn_total)

    def update(self, cur_items):
        assert (self.num_items is None) or (cur_items <= self.num_items)
        if self.bar is not None:
            self.bar.update(cur_items - self.bar.n)
            if self.num_items is not None and cur_items >= self.num_items:
                self.bar.close()
        if (cur_items < self.batch_items + self.flush_interval) and (self.num_items is None
                                                                      or cur_items < self.num_items):
            return
        self.batch_time = time.time()
        self.batch_items = cur_items
        if (self.progress_fn is not None) and (self.num_items is not None):
            self.progress_fn(self.pfn_lo + (self.pfn_hi - self.pfn_lo) * (cur_items / self.num_items), self.pfn_total)

    def sub(self, tag=None, num_items=None, flush_interval=1000, rel_lo=0, rel_hi=1):
        return ProgressMonitor(
            tag=tag, num_items=num_items, flush_interval=flush_interval, verbose=self.verbose,
            progress_fn=self.progress_fn,
            pfn_lo=self.pfn_lo + (self.pfn_hi - self.pfn_lo) * rel_lo,
            pfn_hi=self.pfn_lo + (self.pfn_hi - self.pfn_lo) * rel_hi,
            pfn_total=self.pfn_total,
        )


# ----------------------------------------------------------------------------
# Dataset features, cached


def _detector_for(opts, detector_url, verbose):
    return get_feature_detector(url=detector_url, device=opts.device, num_gpus=opts.num_gpus, rank=opts.rank,
                                verbose=verbose, detectors=opts.detectors, allow_download=opts.allow_download)


def dataset_cache_file(opts, dataset, detector_url, detector, detector_kwargs, max_items, stats_kwargs):
    """Where the features of this dataset under this detector and options are cached."""
    args = dict(dataset_kwargs=opts.dataset_kwargs, num_images=len(dataset), detector_url=detector_url,
                detector=detector_fingerprint(detector), detector_kwargs=detector_kwargs, max_items=max_items,
                stats_kwargs=stats_kwargs)
    md5 = hashlib.md5(json.dumps(args, sort_keys=True, default=repr).encode('utf-8')).hexdigest()
    cache_dir = opts.cache_dir if opts.cache_dir is not None else dnnlib.make_cache_dir_path('gan-metrics')
    return os.path.join(os.fspath(cache_dir), f'{dataset.name}-{get_feature_detector_name(detector_url)}-{md5}.npz')


def _all_ranks_agree(opts, flag):
    """Rank 0's answer, on every rank."""
    if opts.num_gpus == 1:
        return flag
    value = torch.as_tensor(float(flag if opts.rank == 0 else False), dtype=torch.float32, device=opts.device)
    torch.distributed.broadcast(tensor=value, src=0)
    return float(value.cpu()) != 0


def default_data_loader_kwargs(device):
    if torch.device(device).type == 'cuda':
        return dict(pin_memory=True, num_workers=3, prefetch_factor=2)
    return dict(num_workers=0)  # On the CPU the detector needs the cores more than decoding does.


def compute_feature_stats_for_dataset(opts, detector_url, detector_kwargs, rel_lo=0, rel_hi=1, batch_size=64,
                                      data_loader_kwargs=None, max_items=None, **stats_kwargs):
    dataset = construct_class_by_name(**opts.dataset_kwargs)
    if data_loader_kwargs is None:
        data_loader_kwargs = default_data_loader_kwargs(opts.device)
    num_items = len(dataset)
    if max_items is not None:
        num_items = min(num_items, max_items)
    detector = _detector_for(opts, detector_url, opts.progress.verbose)

    cache_file = None
    if opts.cache:
        cache_file = dataset_cache_file(opts, dataset, detector_url, detector, detector_kwargs, max_items,
                                        stats_kwargs)
        if _all_ranks_agree(opts, os.path.isfile(cache_file) if opts.rank == 0 else False):
            return FeatureStats.load(cache_file)

    progress = opts.progress.sub(tag='dataset features', num_items=num_items, rel_lo=rel_lo, rel_hi=rel_hi)
    stats = FeatureStats(max_items=num_items, **stats_kwargs)
    item_subset = [(i * opts.num_gpus + opts.rank) % num_items for i in range((num_items - 1) // opts.num_gpus + 1)]
    # A generator of its own: the loader's seed draw leaves the global RNG, and thus the generated
    # images, the same whether or not the features came from the cache.
    loader = torch.utils.data.DataLoader(dataset=dataset, sampler=item_subset, batch_size=batch_size,
                                         generator=torch.Generator().manual_seed(0), **data_loader_kwargs)
    with torch.no_grad():
        for images, _labels in loader:
            if images.shape[1] == 1:
                images = images.repeat([1, 3, 1, 1])
            features = detector(images.to(opts.device), **detector_kwargs)
            stats.append_torch(features, num_gpus=opts.num_gpus, rank=opts.rank)
            progress.update(stats.num_items)

    if cache_file is not None and opts.rank == 0:
        stats.save(cache_file)
    return stats


# ----------------------------------------------------------------------------


def generate_images(G, z, c, G_kwargs):
    """uint8 NCHW images, 3 channels, as NVIDIA's metrics feed them to the detectors."""
    img = G(z=z, c=c, **G_kwargs)
    img = (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return img.repeat([1, 3, 1, 1]) if img.shape[1] == 1 else img


def compute_feature_stats_for_generator(opts, detector_url, detector_kwargs, rel_lo=0, rel_hi=1, batch_size=64,
                                        batch_gen=None, **stats_kwargs):
    if batch_gen is None:
        batch_gen = min(batch_size, 4)
    assert batch_size % batch_gen == 0

    G = copy.deepcopy(opts.G).eval().requires_grad_(False).to(opts.device)
    c_iter = iterate_random_labels(opts=opts, batch_size=batch_gen)

    stats = FeatureStats(**stats_kwargs)
    assert stats.max_items is not None
    if stats.max_items < batch_size:  # Quick checks with few images: generate only what is kept.
        batch_size = -(-stats.max_items // batch_gen) * batch_gen
    detector = _detector_for(opts, detector_url, opts.progress.verbose)
    progress = opts.progress.sub(tag='generator features', num_items=stats.max_items, rel_lo=rel_lo, rel_hi=rel_hi)

    with torch.no_grad():
        while not stats.is_full():
            images = []
            for _i in range(batch_size // batch_gen):
                z = torch.randn([batch_gen, G.z_dim], device=opts.device)
                images.append(generate_images(G, z, next(c_iter), opts.G_kwargs))
            features = detector(torch.cat(images), **detector_kwargs)
            stats.append_torch(features, num_gpus=opts.num_gpus, rank=opts.rank)
            progress.update(stats.num_items)
    return stats
