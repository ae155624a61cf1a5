"""Small helpers used by the networks, the ops and the training loop.

Same names and behaviour as ``torch_utils.misc`` in NVIDIA's StyleGAN2-ADA /
StyleGAN3 code, so network modules written for either code base run here.
"""

import contextlib
import functools
import re
import warnings

import numpy as np
import torch

# ---------------------------------------------------------------------------
# Constant tensors, built once per (value, shape, dtype, device, layout).
# Re-creating a small constant every forward pass would mean a host->device
# copy each time.

_constant_cache = dict()


def constant(value, shape=None, dtype=None, device=None, memory_format=None):
    """Return a cached tensor holding ``value``, broadcast to ``shape`` if given."""
    value = np.asarray(value)
    if shape is not None:
        shape = tuple(shape)
    if dtype is None:
        dtype = torch.get_default_dtype()
    device = torch.device('cpu') if device is None else torch.device(device)
    if memory_format is None:
        memory_format = torch.contiguous_format

    key = (value.shape, value.dtype, value.tobytes(), shape, dtype, device, memory_format)
    tensor = _constant_cache.get(key)
    if tensor is None:
        # copy(): the cached tensor must not share memory with the caller's array.
        tensor = torch.as_tensor(value.copy(), dtype=dtype, device=device)
        if shape is not None:
            tensor = tensor.expand(torch.broadcast_shapes(tensor.shape, shape))
        tensor = tensor.contiguous(memory_format=memory_format)
        _constant_cache[key] = tensor
    return tensor


# ---------------------------------------------------------------------------
# NaN/Inf replacement and trace-friendly assertions (names kept for old callers).

nan_to_num = torch.nan_to_num
symbolic_assert = torch._assert  # pylint: disable=protected-access


@contextlib.contextmanager
def suppress_tracer_warnings():
    """Silence ``torch.jit.TracerWarning`` inside the block.

    ``warnings.catch_warnings`` would also reset the "already warned" registry,
    so a single filter entry is pushed and popped instead.
    """
    entry = ('ignore', None, torch.jit.TracerWarning, None, 0)
    warnings.filters.insert(0, entry)
    try:
        yield
    finally:
        if entry in warnings.filters:
            warnings.filters.remove(entry)


def assert_shape(tensor, ref_shape):
    """Raise AssertionError unless ``tensor.shape`` matches ``ref_shape``.

    ``None`` in ``ref_shape`` matches any size. Sizes that are tensors (as seen
    while tracing) are checked with a symbolic assert so the trace keeps the check.
    """
    if tensor.ndim != len(ref_shape):
        raise AssertionError(f'Wrong number of dimensions: got {tensor.ndim}, expected {len(ref_shape)}')
    for idx, (size, want) in enumerate(zip(tensor.shape, ref_shape)):
        if want is None:
            continue
        if isinstance(want, torch.Tensor):
            with suppress_tracer_warnings():
                symbolic_assert(torch.equal(torch.as_tensor(size), want), f'Wrong size for dimension {idx}')
        elif isinstance(size, torch.Tensor):
            with suppress_tracer_warnings():
                symbolic_assert(torch.equal(size, torch.as_tensor(want)),
                                f'Wrong size for dimension {idx}: expected {want}')
        elif size != want:
            raise AssertionError(f'Wrong size for dimension {idx}: got {size}, expected {want}')


def profiled_function(fn):
    """Decorator: show calls of ``fn`` as a named range in the autograd profiler."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.autograd.profiler.record_function(fn.__name__):
            return fn(*args, **kwargs)
    return wrapper


# ---------------------------------------------------------------------------
# Endless data sampler.

class InfiniteSampler(torch.utils.data.Sampler):
    """Yield dataset indices forever, split between ``num_replicas`` processes.

    With ``shuffle``, the order is shuffled once from ``seed`` and then keeps
    drifting: after each step the current item swaps with a random earlier one
    within a window of ``window_size * len(dataset)`` items. The sequence is the
    same as NVIDIA's for the same arguments, so training runs are reproducible.
    """

    def __init__(self, dataset, rank=0, num_replicas=1, shuffle=True, seed=0, window_size=0.5):
        assert len(dataset) > 0
        assert num_replicas > 0
        assert 0 <= rank < num_replicas
        assert 0 <= window_size <= 1
        super().__init__()
        self.dataset = dataset
        self.rank = rank
        self.num_replicas = num_replicas
        self.shuffle = shuffle
        self.seed = seed
        self.window_size = window_size

    def __iter__(self):
        order = np.arange(len(self.dataset))
        rnd = None
        window = 0
        if self.shuffle:
            rnd = np.random.RandomState(self.seed)
            rnd.shuffle(order)
            window = int(np.rint(order.size * self.window_size))

        step = 0
        while True:
            pos = step % order.size
            if step % self.num_replicas == self.rank:
                yield order[pos]
            if window >= 2:
                other = (pos - rnd.randint(window)) % order.size
                order[pos], order[other] = order[other], order[pos]
            step += 1


# ---------------------------------------------------------------------------
# Parameters and buffers.

def params_and_buffers(module):
    assert isinstance(module, torch.nn.Module)
    return list(module.parameters()) + list(module.buffers())


def named_params_and_buffers(module):
    assert isinstance(module, torch.nn.Module)
    return list(module.named_parameters()) + list(module.named_buffers())


def copy_params_and_buffers(src_module, dst_module, require_all=False):
    """Copy every same-named parameter/buffer of ``src_module`` into ``dst_module``."""
    assert isinstance(src_module, torch.nn.Module)
    assert isinstance(dst_module, torch.nn.Module)
    src_tensors = dict(named_params_and_buffers(src_module))
    # no_grad: an in-place copy into a leaf that requires grad is otherwise refused.
    with torch.no_grad():
        for name, tensor in named_params_and_buffers(dst_module):
            assert (name in src_tensors) or (not require_all), name
            if name in src_tensors:
                tensor.copy_(src_tensors[name].detach()).requires_grad_(tensor.requires_grad)


@contextlib.contextmanager
def frozen_weights(*modules):
    """The modules' parameters take no gradient inside the block (their flags restored after):
    optimising a latent through a network would otherwise also compute, and accumulate, a
    gradient for every weight, as much arithmetic again as the backward pass needs."""
    saved = [(p, p.requires_grad) for module in modules for p in module.parameters()]
    for p, _ in saved:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


# ---------------------------------------------------------------------------
# DistributedDataParallel helpers.

@contextlib.contextmanager
def ddp_sync(module, sync):
    """Skip DDP gradient all-reduce inside the block unless ``sync`` is true."""
    assert isinstance(module, torch.nn.Module)
    if sync or not isinstance(module, torch.nn.parallel.DistributedDataParallel):
        yield
    else:
        with module.no_sync():
            yield


def check_ddp_consistency(module, ignore_regex=None):
    """Assert that every parameter/buffer equals the one held by rank 0."""
    assert isinstance(module, torch.nn.Module)
    for name, tensor in named_params_and_buffers(module):
        fullname = type(module).__name__ + '.' + name
        if ignore_regex is not None and re.fullmatch(ignore_regex, fullname):
            continue
        tensor = tensor.detach()
        if tensor.is_floating_point():
            tensor = nan_to_num(tensor)  # NaN != NaN would fail the check everywhere.
        other = tensor.clone()
        torch.distributed.broadcast(tensor=other, src=0)
        assert (tensor == other).all(), fullname


# ---------------------------------------------------------------------------
# Module summary table.

def print_module_summary(module, inputs, max_nesting=3, skip_redundant=True):
    """Run ``module(*inputs)``, print one row per submodule, return the outputs.

    Rows list the parameters, buffers, output shape and dtype of each submodule
    up to ``max_nesting`` levels deep; a tensor is counted at its first owner only.
    """
    assert isinstance(module, torch.nn.Module)
    assert not isinstance(module, torch.jit.ScriptModule)
    assert isinstance(inputs, (tuple, list))

    # Record (module, output tensors) in the order the calls finish.
    records = []
    depth = [0]

    def pre_hook(_mod, _inputs):
        depth[0] += 1

    def post_hook(mod, _inputs, outputs):
        depth[0] -= 1
        if depth[0] <= max_nesting:
            outs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
            records.append((mod, [t for t in outs if isinstance(t, torch.Tensor)]))

    hooks = [m.register_forward_pre_hook(pre_hook) for m in module.modules()]
    hooks += [m.register_forward_hook(post_hook) for m in module.modules()]
    try:
        outputs = module(*inputs)
    finally:
        for hook in hooks:
            hook.remove()

    # Attribute each tensor to the first record that sees it.
    seen = set()
    entries = []
    for mod, outs in records:
        params = [t for t in mod.parameters() if id(t) not in seen]
        buffers = [t for t in mod.buffers() if id(t) not in seen]
        new_outs = [t for t in outs if id(t) not in seen]
        seen |= {id(t) for t in params + buffers + new_outs}
        if skip_redundant and not (params or buffers or new_outs):
            continue
        entries.append((mod, outs, params, buffers))

    header = [type(module).__name__, 'Parameters', 'Buffers', 'Output shape', 'Datatype']
    rows = [header, ['---'] * len(header)]
    names = {mod: name for name, mod in module.named_modules()}
    param_total = 0
    buffer_total = 0
    for mod, outs, params, buffers in entries:
        name = '<top-level>' if mod is module else names[mod]
        n_param = sum(t.numel() for t in params)
        n_buffer = sum(t.numel() for t in buffers)
        shapes = [str(list(t.shape)) for t in outs] or ['-']
        dtypes = [str(t.dtype).split('.')[-1] for t in outs] or ['-']
        suffix = ':0' if len(outs) >= 2 else ''
        counts = [str(n) if n else '-' for n in (n_param, n_buffer)]
        rows.append([name + suffix, *counts, shapes[0], dtypes[0]])
        for idx in range(1, len(outs)):
            rows.append([f'{name}:{idx}', '-', '-', shapes[idx], dtypes[idx]])
        param_total += n_param
        buffer_total += n_buffer
    rows.append(['---'] * len(header))
    rows.append(['Total', str(param_total), str(buffer_total), '-', '-'])

    widths = [max(len(cell) for cell in column) for column in zip(*rows)]
    print()
    for row in rows:
        print('  '.join(cell + ' ' * (width - len(cell)) for cell, width in zip(row, widths)))
    print()
    return outputs
