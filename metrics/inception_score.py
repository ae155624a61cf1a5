"""Inception Score (Salimans et al., "Improved techniques for training GANs"), computed
as NVIDIA's metrics do: exp(E_x KL(p(y|x) || p(y))) over splits of the generated
images, with the softmax of the Inception-v3 logits taken without the output bias."""

import numpy as np
import scipy.special

from . import frechet_inception_distance
from . import metric_utils

DETECTOR_KWARGS = dict(no_output_bias=True)  # As the original implementation: no bias in the softmax layer.


def inception_score(probs, num_splits):
    """(mean, std) over ``num_splits`` consecutive splits of the class probabilities [N, K]."""
    num = probs.shape[0]
    scores = []
    for i in range(num_splits):
        part = probs[i * num // num_splits: (i + 1) * num // num_splits]
        # part * (log(part) - log(marginal)), taking 0 log 0 = 0 where a probability underflowed to zero.
        kl = scipy.special.xlogy(part, part) - scipy.special.xlogy(part, np.mean(part, axis=0, keepdims=True))
        kl = np.mean(np.sum(kl, axis=1))
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def compute_is(opts, num_gen, num_splits):
    gen_probs = metric_utils.compute_feature_stats_for_generator(
        opts=opts, detector_url=frechet_inception_distance.DETECTOR_URL, detector_kwargs=DETECTOR_KWARGS,
        capture_all=True, max_items=num_gen).get_all()

    if opts.rank != 0:
        return float('nan'), float('nan')
    return inception_score(gen_probs.astype(np.float64), num_splits)
