"""Improved precision and recall (Kynkäänniemi et al., "Improved Precision and Recall
Metric for Assessing Generative Models"), computed as NVIDIA's metrics do: VGG16
fc7 features; a sample counts as covered when it lies within the distance of some
manifold point to that point's k-th nearest neighbour. Features are rounded to
float16 as NVIDIA's do; distances are computed in float32 on the CPU (which has no
float16 cdist) and stored as float16."""

import torch

from . import detector_files
from . import metric_utils

DETECTOR_URL = detector_files.VGG16_URL
DETECTOR_KWARGS = dict(return_features=True)


def _cdist(rows, cols):
    if rows.device.type == 'cpu':
        return torch.cdist(rows.float().unsqueeze(0), cols.float().unsqueeze(0))[0].to(rows.dtype)
    return torch.cdist(rows.unsqueeze(0), cols.unsqueeze(0))[0]


def compute_distances(row_features, col_features, num_gpus, rank, col_batch_size):
    """Distances [rows, cols], column batches shared out over the ranks; the whole matrix on rank 0."""
    assert 0 <= rank < num_gpus
    num_cols = col_features.shape[0]
    num_batches = ((num_cols - 1) // col_batch_size // num_gpus + 1) * num_gpus
    col_batches = torch.nn.functional.pad(col_features, [0, 0, 0, -num_cols % num_batches]).chunk(num_batches)
    dist_batches = []
    for col_batch in col_batches[rank::num_gpus]:
        dist_batch = _cdist(row_features, col_batch)
        for src in range(num_gpus):
            dist_broadcast = dist_batch.clone()
            if num_gpus > 1:
                torch.distributed.broadcast(dist_broadcast, src=src)
            dist_batches.append(dist_broadcast.cpu() if rank == 0 else None)
    return torch.cat(dist_batches, dim=1)[:, :num_cols] if rank == 0 else None


def precision_recall(real_features, gen_features, nhood_size, row_batch_size, col_batch_size, num_gpus=1, rank=0):
    """(precision, recall) of the features (float16 tensors on one device); nan on ranks other than 0."""
    results = dict()
    for name, manifold, probes in [('precision', real_features, gen_features),
                                   ('recall', gen_features, real_features)]:
        kth = []
        for manifold_batch in manifold.split(row_batch_size):
            dist = compute_distances(manifold_batch, manifold, num_gpus, rank, col_batch_size)
            kth.append(dist.to(torch.float32).kthvalue(nhood_size + 1).values.to(torch.float16) if rank == 0 else None)
        kth = torch.cat(kth) if rank == 0 else None
        pred = []
        for probes_batch in probes.split(row_batch_size):
            dist = compute_distances(probes_batch, manifold, num_gpus, rank, col_batch_size)
            pred.append((dist <= kth).any(dim=1) if rank == 0 else None)
        results[name] = float(torch.cat(pred).to(torch.float32).mean() if rank == 0 else 'nan')
    return results['precision'], results['recall']


def compute_pr(opts, max_real, num_gen, nhood_size, row_batch_size, col_batch_size):
    real_features = metric_utils.compute_feature_stats_for_dataset(
        opts=opts, detector_url=DETECTOR_URL, detector_kwargs=DETECTOR_KWARGS,
        rel_lo=0, rel_hi=0, capture_all=True, max_items=max_real).get_all_torch().to(torch.float16).to(opts.device)

    gen_features = metric_utils.compute_feature_stats_for_generator(
        opts=opts, detector_url=DETECTOR_URL, detector_kwargs=DETECTOR_KWARGS,
        rel_lo=0, rel_hi=1, capture_all=True, max_items=num_gen).get_all_torch().to(torch.float16).to(opts.device)

    if opts.device.type == 'cpu':
        row_batch_size = min(row_batch_size, 1000)  # Rows are independent: smaller blocks, same answer, less memory.
    return precision_recall(real_features, gen_features, nhood_size, row_batch_size, col_batch_size,
                            num_gpus=opts.num_gpus, rank=opts.rank)
