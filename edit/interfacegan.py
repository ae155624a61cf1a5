"""InterfaceGAN boundaries: a linear classifier on latent codes; its normal is the edit direction.

As the InterfaceGAN authors do, continuous scores are turned into two classes
by keeping only the most and least attribute-like samples (``chosen_ratio`` of
each end); binary labels are used as they are. The classifier here is an
L2-regularised logistic regression (fitted with L-BFGS), whose normal on
separable data points the same way as a linear SVM's.
"""

from typing import Tuple

import numpy as np
import torch


def select_extremes(latents: np.ndarray, scores: np.ndarray,
                    chosen_ratio: float = 0.02) -> Tuple[np.ndarray, np.ndarray]:
    """Top and bottom ``chosen_ratio`` of samples by score -> (latents, 0/1 labels)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    count = max(1, int(round(len(scores) * chosen_ratio)))
    order = np.argsort(scores)
    keep = np.concatenate([order[:count], order[-count:]])
    return np.asarray(latents)[keep], np.concatenate([np.zeros(count), np.ones(count)])


def train_boundary(latents: np.ndarray, labels: np.ndarray, chosen_ratio: float = 0.02, l2: float = 1e-4,
                   steps: int = 200) -> np.ndarray:
    """Unit normal [D] of the boundary separating label 1 from label 0 (points toward label 1).

    latents: [N, D] codes (w, or one layer of w+); labels: [N] 0/1 labels, or scores
    (anything else), of which the extremes are used.
    """
    latents = np.asarray(latents, dtype=np.float64).reshape(len(latents), -1)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    if len(latents) != len(labels):
        raise ValueError(f'{len(latents)} latents but {len(labels)} labels')
    if not np.isin(labels, (0, 1)).all():
        latents, labels = select_extremes(latents, labels, chosen_ratio)
    if labels.min() == labels.max():
        raise ValueError('the labels have only one class')
    mean, std = latents.mean(axis=0), latents.std(axis=0) + 1e-8
    x = torch.from_numpy((latents - mean) / std)
    y = torch.from_numpy(labels)
    weight = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn='strong_wolfe')

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ weight + bias, y) + l2 * weight.square().sum()
        loss.backward()
        return loss
    optimizer.step(closure)
    normal = weight.detach().numpy() / std          # back to the latent space's own units
    return (normal / np.linalg.norm(normal)).astype(np.float32)
