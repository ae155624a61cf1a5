"""Kernel Inception Distance (Bińkowski et al., "Demystifying MMD GANs"), computed as
NVIDIA's metrics do: the unbiased MMD^2 with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3 on Inception-v3 features, averaged over random subsets."""

import numpy as np

from . import frechet_inception_distance
from . import metric_utils


def kernel_distance(gen_features, real_features, num_subsets, max_subset_size):
    """Mean unbiased MMD^2 over ``num_subsets`` random subsets (drawn with numpy's global RNG)."""
    n = real_features.shape[1]
    m = min(min(real_features.shape[0], gen_features.shape[0]), max_subset_size)
    t = 0
    for _subset_idx in range(num_subsets):
        x = gen_features[np.random.choice(gen_features.shape[0], m, replace=False)]
        y = real_features[np.random.choice(real_features.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / num_subsets / m)


def compute_kid(opts, max_real, num_gen, num_subsets, max_subset_size):
    url = frechet_inception_distance.DETECTOR_URL
    kwargs = frechet_inception_distance.DETECTOR_KWARGS
    real_features = metric_utils.compute_feature_stats_for_dataset(
        opts=opts, detector_url=url, detector_kwargs=kwargs,
        rel_lo=0, rel_hi=0, capture_all=True, max_items=max_real).get_all()

    gen_features = metric_utils.compute_feature_stats_for_generator(
        opts=opts, detector_url=url, detector_kwargs=kwargs,
        rel_lo=0, rel_hi=1, capture_all=True, max_items=num_gen).get_all()

    if opts.rank != 0:
        return float('nan')
    return kernel_distance(gen_features.astype(np.float64), real_features.astype(np.float64), num_subsets,
                           max_subset_size)
