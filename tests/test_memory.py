"""Batch size by free memory, the widest-layer probe, and the allocator setting."""

import os
import platform

import torch

import generate
from torch_utils import allocator, memory


def test_pick_batch_size_uses_half_the_free_memory(monkeypatch):
    monkeypatch.setattr(memory, 'available_bytes', lambda device: 1200)
    per_image = 10        # 6 live tensors of this size -> 60 bytes an image; half of 1200 holds 10
    assert memory.pick_batch_size(per_image, 'cuda', remaining=100) == 10
    assert memory.pick_batch_size(per_image, 'cuda', remaining=3) == 3
    assert memory.pick_batch_size(1000, 'cuda', remaining=100) == 1
    assert memory.pick_batch_size(per_image, 'cpu', remaining=100) == 1   # image by image on CPU
    monkeypatch.setattr(memory, 'available_bytes', lambda device: None)
    assert memory.pick_batch_size(per_image, 'cuda', remaining=100) == 1


def test_available_bytes_on_this_machine():
    free = memory.available_bytes('cpu')
    if not os.path.exists('/proc/meminfo'):
        assert free is None
        return
    total = next(int(line.split()[1]) * 1024 for line in open('/proc/meminfo') if line.startswith('MemTotal:'))
    assert 0 < free <= total


def test_widest_output_reports_the_largest_per_image_tensor():
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 8, 1), torch.nn.Conv2d(8, 3, 1))
    with memory.widest_output(net) as widest:
        net(torch.zeros(5, 2, 4, 6))
    assert widest[0] == 8 * 4 * 6 * 4
    assert not net[0]._forward_hooks  # hooks removed


def test_generate_picks_the_batch_after_the_first_image(monkeypatch, fixtures_dir):
    import legacy
    G = legacy.load_network(fixtures_dir / 'networks' / 'sg2_rect64.pkl')['G_ema']
    seen = []
    original = G.mapping.forward

    def spy(z, c, **kwargs):
        seen.append(z.shape[0])
        return original(z, c, **kwargs)
    monkeypatch.setattr(G.mapping, 'forward', spy)
    monkeypatch.setattr(memory, '_MAX_BATCH', {'cpu': 2})
    samples = generate.generate_images(G, [1, 2, 3, 4])
    assert seen[:2] == [1, 2] and sum(seen) == 4 and len(samples) == 4
    alone = generate.generate_images(G, [3], batch_size=1)[0]
    assert abs(samples[2].image.astype(int) - alone.image.astype(int)).max() <= 1


def test_reuse_freed_memory_applies_on_glibc_linux():
    on_glibc = platform.system() == 'Linux' and platform.libc_ver()[0] == 'glibc'
    assert allocator.reuse_freed_memory() is on_glibc
