"""Computing and reporting quality metrics by name (NVIDIA's ``metric_main`` API).

``calc_metric(metric, G=..., dataset_kwargs=..., num_gpus=1, rank=0, device=None,
progress=None, cache=True, G_kwargs={})`` returns ``EasyDict(results, metric,
total_time, total_time_str, num_gpus)``; ``report_metric(result_dict, run_dir,
snapshot_pkl)`` prints it as a JSON line and appends it to
``<run_dir>/metric-<name>.jsonl``. Extra keyword arguments of this project (see
:class:`metrics.metric_utils.MetricOptions`): ``detectors``, ``cache_dir``,
``allow_download``, and lower sample counts for quick checks (``num_gen``,
``max_real``, ``num_samples``, ``num_subsets``, ``max_subset_size``, ``num_splits``).
"""

import json
import os
import time

import torch

import dnnlib
from torch_utils import precision as number_format

from . import frechet_inception_distance
from metrics import inception_score
from . import kernel_inception_distance
from . import metric_utils
from . import perceptual_path_length
from . import precision_recall

# ----------------------------------------------------------------------------

_metric_dict = dict()  # name => fn


def register_metric(fn):
    assert callable(fn)
    _metric_dict[fn.__name__] = fn
    return fn


def is_valid_metric(metric):
    return metric in _metric_dict


def list_valid_metrics():
    return list(_metric_dict.keys())


def check_metric_names(metrics):
    """MetricError (one line) for the first name that is not a metric."""
    for metric in metrics:
        if not is_valid_metric(metric):
            raise metric_utils.MetricError(f'unknown metric {metric!r}; valid metrics: '
                                           f'{", ".join(list_valid_metrics())}')


# ----------------------------------------------------------------------------


def calc_metric(metric, **kwargs):  # See metric_utils.MetricOptions for the arguments.
    check_metric_names([metric])
    opts = metric_utils.MetricOptions(**kwargs)

    start_time = time.time()
    results = _metric_dict[metric](opts)
    total_time = time.time() - start_time

    # Rank 0 computed the numbers; every rank returns them.
    for key, value in list(results.items()):
        if opts.num_gpus > 1:
            value = torch.as_tensor(value, dtype=torch.float64, device=opts.device)
            torch.distributed.broadcast(tensor=value, src=0)
            value = float(value.cpu())
        results[key] = value

    result_dict = dnnlib.EasyDict(
        results=dnnlib.EasyDict(results),
        metric=metric,
        total_time=total_time,
        total_time_str=metric_utils.format_time(total_time),
        num_gpus=opts.num_gpus,
    )
    if number_format.compute_dtype() == torch.bfloat16:   # a bf16 figure must not pass for an fp32 one
        result_dict.precision = 'bf16'
    return result_dict


def report_metric(result_dict, run_dir=None, snapshot_pkl=None):
    metric = result_dict['metric']
    assert is_valid_metric(metric)
    if run_dir is not None and snapshot_pkl is not None:
        snapshot_pkl = os.path.relpath(snapshot_pkl, run_dir)

    jsonl_line = json.dumps(dict(result_dict, snapshot_pkl=snapshot_pkl, timestamp=time.time()))
    print(jsonl_line)
    if run_dir is not None and os.path.isdir(run_dir):
        with open(os.path.join(run_dir, f'metric-{metric}.jsonl'), 'at') as f:
            f.write(jsonl_line + '\n')  # One write per line: readers never see half a record.


# ----------------------------------------------------------------------------
# Recommended metrics.


@register_metric
def fid50k_full(opts):
    opts.dataset_kwargs.update(max_size=None, xflip=False)
    fid = frechet_inception_distance.compute_fid(opts, **opts.sized(max_real=None, num_gen=50000))
    return dict(fid50k_full=fid)


@register_metric
def kid50k_full(opts):
    opts.dataset_kwargs.update(max_size=None, xflip=False)
    kid = kernel_inception_distance.compute_kid(opts, **opts.sized(max_real=1000000, num_gen=50000, num_subsets=100,
                                                                   max_subset_size=1000))
    return dict(kid50k_full=kid)


@register_metric
def pr50k3_full(opts):
    opts.dataset_kwargs.update(max_size=None, xflip=False)
    precision, recall = precision_recall.compute_pr(opts, **opts.sized(max_real=200000, num_gen=50000), nhood_size=3,
                                                    row_batch_size=10000, col_batch_size=10000)
    return dict(pr50k3_full_precision=precision, pr50k3_full_recall=recall)


@register_metric
def ppl2_wend(opts):
    ppl = perceptual_path_length.compute_ppl(opts, **opts.sized(num_samples=50000), epsilon=1e-4, space='w',
                                             sampling='end', crop=False, batch_size=2)
    return dict(ppl2_wend=ppl)


@register_metric
def is50k(opts):
    opts.dataset_kwargs.update(max_size=None, xflip=False)
    mean, std = inception_score.compute_is(opts, **opts.sized(num_gen=50000, num_splits=10))
    return dict(is50k_mean=mean, is50k_std=std)


# ----------------------------------------------------------------------------
# Legacy metrics.


@register_metric
def fid50k(opts):
    opts.dataset_kwargs.update(max_size=None)
    fid = frechet_inception_distance.compute_fid(opts, **opts.sized(max_real=50000, num_gen=50000))
    return dict(fid50k=fid)


@register_metric
def kid50k(opts):
    opts.dataset_kwargs.update(max_size=None)
    kid = kernel_inception_distance.compute_kid(opts, **opts.sized(max_real=50000, num_gen=50000, num_subsets=100,
                                                                   max_subset_size=1000))
    return dict(kid50k=kid)


@register_metric
def pr50k3(opts):
    opts.dataset_kwargs.update(max_size=None)
    precision, recall = precision_recall.compute_pr(opts, **opts.sized(max_real=50000, num_gen=50000), nhood_size=3,
                                                    row_batch_size=10000, col_batch_size=10000)
    return dict(pr50k3_precision=precision, pr50k3_recall=recall)


def _ppl(opts, name, space, sampling):
    ppl = perceptual_path_length.compute_ppl(opts, **opts.sized(num_samples=50000), epsilon=1e-4, space=space,
                                             sampling=sampling, crop=True, batch_size=2)
    return {name: ppl}


@register_metric
def ppl_zfull(opts):
    return _ppl(opts, 'ppl_zfull', space='z', sampling='full')


@register_metric
def ppl_wfull(opts):
    return _ppl(opts, 'ppl_wfull', space='w', sampling='full')


@register_metric
def ppl_zend(opts):
    return _ppl(opts, 'ppl_zend', space='z', sampling='end')


@register_metric
def ppl_wend(opts):
    return _ppl(opts, 'ppl_wend', space='w', sampling='end')
