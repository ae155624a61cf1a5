"""How many images fit in one forward pass: free memory over the memory one image needs."""

import contextlib

import torch

_HEADROOM = 0.5            # use at most half of what is free now
_ACTIVATION_FACTOR = 6     # live tensors at the widest layer, as multiples of its output
# On CPU the fast synthesis runs image by image, so a larger batch buys no speed, only
# memory, and the mapping's matrix products round differently: stay at 1 there.
_MAX_BATCH = {'cuda': 32, 'mps': 8}


def available_bytes(device):
    """Memory free for new tensors on ``device`` (None when it cannot be told)."""
    device = torch.device(device)
    if device.type == 'cuda':
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == 'cpu':
        try:
            with open('/proc/meminfo') as f:
                for line in f:
                    if line.startswith('MemAvailable:'):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


@contextlib.contextmanager
def widest_output(module):
    """Record the largest single output (bytes per image) of any submodule while the block runs.

    Yields a one-element list that holds the number once the block has run.
    """
    found = [0]

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.ndim > 0 and output.shape[0] > 0:
            found[0] = max(found[0], output[0].numel() * output.element_size())
    handles = [m.register_forward_hook(hook) for m in module.modules()]
    try:
        yield found
    finally:
        for handle in handles:
            handle.remove()


def pick_batch_size(bytes_per_image, device, remaining):
    """Batch size for the ``remaining`` images: what half the free memory holds, at least 1."""
    device = torch.device(device)
    cap = min(_MAX_BATCH.get(device.type, 1), max(remaining, 1))
    free = available_bytes(device)
    if free is None or bytes_per_image <= 0:
        return 1
    return int(max(1, min(cap, _HEADROOM * free // (_ACTIVATION_FACTOR * bytes_per_image))))
