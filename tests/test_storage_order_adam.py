"""StorageOrderAdam: PyTorch's Adam, stepped over parameters in any dense layout without copying them."""

import pytest
import torch

from torch_utils.layout import is_dense, same_layout, storage_order_view
from torch_utils.storage_order_adam import StorageOrderAdam


def _layouts(seed):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(6, 5, 3, 3, generator=g)
    return {
        'contiguous': base.clone(),
        'channels_last': base.contiguous(memory_format=torch.channels_last),
        'transposed_channels_last': base.transpose(0, 1).contiguous(memory_format=torch.channels_last).transpose(0, 1),
        'vector': torch.randn(7, generator=g),
    }


@pytest.mark.parametrize('name', ['contiguous', 'channels_last', 'transposed_channels_last', 'vector'])
def test_steps_match_torch_adam_and_keep_the_layout(name):
    ours = torch.nn.Parameter(_layouts(0)[name])
    reference = torch.nn.Parameter(ours.detach().contiguous().clone())
    strides = ours.stride()
    optimizer = StorageOrderAdam([ours], lr=0.01, betas=(0.8, 0.9))
    reference_optimizer = torch.optim.Adam([reference], lr=0.01, betas=(0.8, 0.9))
    for step in range(5):
        target = torch.randn(ours.shape, generator=torch.Generator().manual_seed(step))
        for p, opt in ((ours, optimizer), (reference, reference_optimizer)):
            opt.zero_grad()
            ((p - target) ** 3).sum().backward()
            opt.step()
    torch.testing.assert_close(ours.detach(), reference.detach(), rtol=1e-6, atol=1e-6)
    assert ours.stride() == strides
    assert not torch.equal(ours.detach(), _layouts(0)[name])   # it moved


def test_a_gradient_in_another_layout_is_laid_out_like_its_parameter():
    p = torch.nn.Parameter(_layouts(1)['channels_last'])
    reference = torch.nn.Parameter(p.detach().clone())
    optimizer, reference_optimizer = StorageOrderAdam([p], lr=0.1), torch.optim.Adam([reference], lr=0.1)
    grad = torch.randn(p.shape)                     # contiguous, unlike p
    p.grad, reference.grad = grad.clone(), grad.clone()
    optimizer.step()
    reference_optimizer.step()
    torch.testing.assert_close(p.detach(), reference.detach())


def test_parameters_without_gradients_are_left_alone():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    optimizer = StorageOrderAdam([a, b], lr=0.1)
    a.grad = torch.ones(3)
    optimizer.step()
    assert torch.all(a < 1) and torch.equal(b.detach(), torch.ones(3))
    optimizer.zero_grad()
    assert a.grad is None


def test_dense_and_not_dense():
    layouts = _layouts(2)
    assert all(is_dense(t) for t in layouts.values())
    assert not is_dense(torch.randn(4, 6)[:, ::2])
    t = layouts['channels_last']
    assert same_layout(torch.randn(3, 8, 1, 1), torch.randn(3, 8, 1, 1).contiguous(memory_format=torch.channels_last))
    assert not same_layout(t, layouts['contiguous']) and not same_layout(t, t[:1])
    assert storage_order_view(t).data_ptr() == t.data_ptr()
    torch.testing.assert_close(storage_order_view(t), t.permute(0, 2, 3, 1).reshape(-1))
    with pytest.raises(ValueError, match='dense parameters'):
        StorageOrderAdam([torch.nn.Parameter(torch.randn(4, 6)[:, ::2])], lr=0.1)
