"""Training loop and loss: short real runs on tiny 2:1 networks, and the pieces checked by hand.

The runs use an in-memory dataset of 32x16 images and networks with at most 32
channels, so that a few hundred images of StyleGAN2 / StyleGAN3 training take
seconds on a CPU.
"""

import contextlib
import json
import os
import pickle
import sys
import types

import numpy as np
import PIL.Image
import pytest
import torch

import dnnlib
import legacy
from torch_utils import precision, training_stats
from training import launch
from training import loss as loss_module
from training import training_loop as tl
from training.train_config import snapshot_kimg

HEIGHT, WIDTH = 32, 16
THIS = __name__  # Classes below are named by this module's import name in class_name strings.


# ----------------------------------------------------------------------------
# Tiny dataset, networks and configs.


class TinyDataset(torch.utils.data.Dataset):
    """Synthetic 2:1 RGB images (soft vertical 'bodies' on a plain background), unlabelled."""

    def __init__(self, num_images=16, height=HEIGHT, seed=0):
        rnd = np.random.RandomState(seed)
        width = height // 2
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        images = []
        for _ in range(num_images):
            cx, cy = rnd.uniform(0.3, 0.7) * width, rnd.uniform(0.4, 0.6) * height
            body = np.exp(-((xx - cx) / (0.15 * width)) ** 2 - ((yy - cy) / (0.3 * height)) ** 2)
            colour = rnd.uniform(0, 255, size=3)
            img = 255 * (1 - body[None]) + colour[:, None, None] * body[None]
            images.append(np.rint(img).clip(0, 255).astype(np.uint8))
        self.images = np.stack(images)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, idx):
        return self.images[idx].copy(), self.get_label(idx)

    def get_label(self, idx):
        return np.zeros([0], dtype=np.float32)

    image_shape = property(lambda self: list(self.images.shape[1:]))
    num_channels = property(lambda self: self.images.shape[1])
    resolution = property(lambda self: self.images.shape[2])
    square = False
    label_shape = [0]
    label_dim = 0
    has_labels = False


class ConfidentDiscriminator(torch.nn.Module):
    """Scores every image +10 (sure it is real): ADA should raise p."""

    def __init__(self, c_dim, img_resolution, img_channels, **_kwargs):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros([]))

    def forward(self, img, c, update_emas=False):
        return (img.flatten(1).sum(dim=1, keepdim=True) * 0 + self.unused * 0 + 10)


class IdentityAugmentPipe(torch.nn.Module):
    """Holds ADA's p and leaves the images alone."""

    def __init__(self):
        super().__init__()
        self.register_buffer('p', torch.zeros([]))

    def forward(self, images):
        return images


def stylegan2_G_kwargs():
    return dnnlib.EasyDict(class_name='training.networks_stylegan2.Generator', z_dim=32, w_dim=32,
                           mapping_kwargs=dict(num_layers=2), channel_base=512, channel_max=32,
                           num_fp16_res=4, conv_clamp=256, fused_modconv_default='inference_only')


def stylegan3_G_kwargs(cfg):
    kwargs = dnnlib.EasyDict(class_name='training.networks_stylegan3.Generator', z_dim=32, w_dim=32,
                             mapping_kwargs=dict(num_layers=2), channel_base=256, channel_max=32,
                             num_layers=4, num_critical=2, margin_size=4, num_fp16_res=4, conv_clamp=256,
                             magnitude_ema_beta=0.5 ** (4 / 20e3))
    if cfg == 'r':
        kwargs.update(conv_kernel=1, use_radial_filters=True)
    return kwargs


def discriminator_kwargs():
    return dnnlib.EasyDict(class_name='training.networks_stylegan2.Discriminator', channel_base=512,
                           channel_max=32, num_fp16_res=4, conv_clamp=256, block_kwargs=dict(),
                           mapping_kwargs=dict(), epilogue_kwargs=dict(mbstd_group_size=2))


def run_kwargs(run_dir, G_kwargs=None, **overrides):
    """training_loop arguments for a short CPU run, shaped like train.py's."""
    c = dnnlib.EasyDict(
        run_dir=str(run_dir),
        training_set_kwargs=dnnlib.EasyDict(class_name=f'{THIS}.TinyDataset', num_images=16),
        data_loader_kwargs=dnnlib.EasyDict(num_workers=0),
        G_kwargs=G_kwargs or stylegan2_G_kwargs(),
        D_kwargs=discriminator_kwargs(),
        G_opt_kwargs=dnnlib.EasyDict(class_name='torch.optim.Adam', lr=0.0025, betas=[0, 0.99], eps=1e-8),
        D_opt_kwargs=dnnlib.EasyDict(class_name='torch.optim.Adam', lr=0.0025, betas=[0, 0.99], eps=1e-8),
        augment_kwargs=None,
        loss_kwargs=dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=1, pl_weight=2,
                                    style_mixing_prob=0.9, pl_no_weight_grad=True),  # train.py's stylegan2
        metrics=[], random_seed=0, num_gpus=1, rank=0, batch_size=4, batch_gpu=2,
        ema_kimg=4 * 10 / 32, ema_rampup=0.05, G_reg_interval=2, D_reg_interval=2,
        augment_p=0, ada_target=None, ada_interval=4, ada_kimg=100,
        total_kimg=0.2, kimg_per_tick=0.1, image_snapshot_ticks=1, network_snapshot_ticks=1,
        resume_pkl=None, resume_kimg=0, cudnn_benchmark=False, abort_fn=None, progress_fn=None,
        device='cpu', image_grid_size=(4, 2))
    c.update(overrides)
    return c


def read_stats(run_dir):
    with open(os.path.join(run_dir, 'stats.jsonl')) as f:
        return [json.loads(line) for line in f]


def params_of(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


@contextlib.contextmanager
def collecting(regex='Loss/.*'):
    """A training_stats collector holding what is reported inside the block."""
    collector = training_stats.Collector(regex=regex, keep_previous=False)
    yield collector
    collector.update()


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    # Tiny tensors gain nothing from a second thread, and on a busy machine two
    # threads waiting on each other make these runs up to ten times slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ----------------------------------------------------------------------------
# Whole runs.


@pytest.fixture(scope='module')
def sg2_run(tmp_path_factory):
    """A StyleGAN2 run with lazy R1 and path-length regularisation every second step."""
    run_dir = tmp_path_factory.mktemp('sg2')
    ticks = []
    tl.training_loop(**run_kwargs(run_dir, progress_fn=lambda cur, total: ticks.append(cur)))
    return run_dir, ticks


def test_stylegan2_run_writes_logs_grids_and_snapshots(sg2_run):
    run_dir, ticks = sg2_run
    names = sorted(os.listdir(run_dir))
    for name in ('log.txt', 'stats.jsonl', 'reals.png', 'fakes_init.png', 'fakes000000.png',
                 'network-snapshot-000000.pkl'):  # kimg rounds down: every tick of this run is at 0
        assert name in names
    assert not [n for n in names if n.endswith('.tmp')]

    log_text = (run_dir / 'log.txt').read_text()
    tick_lines = [line for line in log_text.splitlines() if line.startswith('tick ')]
    assert len(tick_lines) == 3  # After the first step (4 images), at 104 and at 200 images.
    assert 'kimg 0.0' in tick_lines[0] and 'kimg 0.2' in tick_lines[-1] and 'Exiting...' in log_text

    stats = read_stats(run_dir)
    assert len(stats) == 3
    for name in ('Loss/G/loss', 'Loss/D/loss', 'Loss/scores/real', 'Loss/scores/fake',
                 'Loss/r1_penalty', 'Loss/pl_penalty', 'Loss/G/reg', 'Loss/D/reg'):
        for tick in stats:  # every tick, the regularisers too (they run every second step)
            assert np.isfinite(tick[name]['mean']) and tick[name]['num'] > 0, name
    assert [round(s['Progress/kimg']['mean'] * 1000) for s in stats] == [4, 104, 200]
    assert ticks == [0, 0, 0, 0]

    # Grids: gh x gw tiles of 2:1 images.
    for name in ('reals.png', 'fakes_init.png', 'fakes000000.png'):
        with PIL.Image.open(run_dir / name) as img:
            assert img.size == (4 * WIDTH, 2 * HEIGHT) and img.mode == 'RGB'


def test_stylegan2_snapshot_loads_safely_and_generates_2to1(sg2_run):
    run_dir, _ = sg2_run
    data = legacy.load_network_pkl(str(run_dir / 'network-snapshot-000000.pkl'))
    assert set(data) == {'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}
    assert data['augment_pipe'] is None
    assert data['training_set_kwargs']['class_name'] == f'{THIS}.TinyDataset'
    G = data['G_ema']
    assert G.square is False and not G.training
    with torch.no_grad():
        img = G(torch.randn([2, G.z_dim]), torch.zeros([2, 0]), noise_mode='const')
    assert img.shape == (2, 3, HEIGHT, WIDTH) and torch.isfinite(img).all()
    with torch.no_grad():
        logits = data['D'](img, torch.zeros([2, 0]))
    assert logits.shape == (2, 1)


@pytest.mark.parametrize('cfg', ['t', 'r'])
def test_stylegan3_run_with_blur(tmp_path, cfg):
    c = run_kwargs(tmp_path, G_kwargs=stylegan3_G_kwargs(cfg), total_kimg=0.1, kimg_per_tick=1,
                   G_reg_interval=None, D_reg_interval=16)
    c.loss_kwargs = dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=0.5, pl_weight=0,
                                    blur_init_sigma=2, blur_fade_kimg=0.1)
    tl.training_loop(**c)
    stats = read_stats(tmp_path)
    for name in ('Loss/G/loss', 'Loss/D/loss', 'Loss/r1_penalty'):
        assert np.isfinite(stats[-1][name]['mean']), name
    data = legacy.load_network_pkl(str(tmp_path / 'network-snapshot-000000.pkl'))
    G = data['G_ema']
    assert hasattr(G.synthesis, 'input') and G.square is False
    with torch.no_grad():
        img = G(torch.randn([1, G.z_dim]), torch.zeros([1, 0]))
    assert img.shape == (1, 3, HEIGHT, WIDTH) and torch.isfinite(img).all()


def test_labelled_image_folder_trains_a_conditional_model(tmp_path):
    try:
        from training.dataset import ImageFolderDataset  # noqa: F401
    except ImportError:
        pytest.skip('training/dataset.py missing')
    data_dir = tmp_path / 'data'
    data_dir.mkdir()
    labels = []
    for i in range(8):  # class 0 red, class 1 blue
        colour = (255, 0, 0) if i % 2 == 0 else (0, 0, 255)
        PIL.Image.new('RGB', (WIDTH, HEIGHT), colour).save(data_dir / f'{i:02d}.png')
        labels.append([f'{i:02d}.png', i % 2])
    (data_dir / 'dataset.json').write_text(json.dumps({'labels': labels}))
    c = run_kwargs(tmp_path / 'run', total_kimg=0.004, image_grid_size=(3, 2), G_reg_interval=None)
    c.training_set_kwargs = dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path=str(data_dir),
                                            use_labels=True, max_size=None, xflip=False, resolution=HEIGHT)
    tl.training_loop(**c)

    # The reals grid shows one label per row.
    grid = np.asarray(PIL.Image.open(tmp_path / 'run' / 'reals.png')).astype(int)
    assert grid.shape == (2 * HEIGHT, 3 * WIDTH, 3)
    assert (grid[:HEIGHT] == [255, 0, 0]).all() and (grid[HEIGHT:] == [0, 0, 255]).all()
    data = legacy.load_network_pkl(str(tmp_path / 'run' / 'network-snapshot-000000.pkl'))
    assert data['G_ema'].c_dim == 2 and data['D'].c_dim == 2
    with torch.no_grad():
        img = data['G_ema'](torch.randn([2, 32]), torch.eye(2))
    assert img.shape == (2, 3, HEIGHT, WIDTH)


def test_resume_continues_counting_and_ema_lerps_resumed_G_ema(sg2_run, tmp_path):
    run_dir, _ = sg2_run
    before = legacy.load_network_pkl(str(run_dir / 'network-snapshot-000000.pkl'))
    resume_pkl = tmp_path / 'earlier' / 'network-snapshot-000002.pkl'  # as if saved at 2 kimg
    resume_pkl.parent.mkdir()
    resume_pkl.write_bytes((run_dir / 'network-snapshot-000000.pkl').read_bytes())
    assert snapshot_kimg(resume_pkl) == 2 and snapshot_kimg('G.pkl') == 0
    tmp_path = tmp_path / 'run'
    c = run_kwargs(tmp_path, resume_pkl=str(resume_pkl), resume_kimg=snapshot_kimg(resume_pkl),
                   total_kimg=2.002, G_reg_interval=None, D_reg_interval=None)  # exactly one step of 4 images
    tl.training_loop(**c)
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith('.pkl')) == ['network-snapshot-000002.pkl']
    assert 'kimg 2.0' in (tmp_path / 'log.txt').read_text()
    after = legacy.load_network_pkl(str(tmp_path / 'network-snapshot-000002.pkl'))

    # G and D went on from the snapshot: one Adam step moves each weight by at most lr.
    for key in ('G', 'D'):
        old, new = params_of(before[key]), params_of(after[key])
        assert max((new[n] - old[n]).abs().max().item() for n in old) <= 0.0025 * 1.001

    # G_ema = lerp(new G, resumed G_ema, beta), beta from the ramped-up half-life at 2000 images.
    beta = 0.5 ** (4 / min(c.ema_kimg * 1000, 2000 * 0.05))
    G_new, ema_old, ema_new = params_of(after['G']), params_of(before['G_ema']), params_of(after['G_ema'])
    for name in ema_new:
        expected = G_new[name] + beta * (ema_old[name] - G_new[name])
        torch.testing.assert_close(ema_new[name], expected, rtol=0, atol=1e-6)


def bgc_augment_kwargs():
    """Upstream's 'bgc' pipe, or None when training/augment.py is not there."""
    try:
        import training.augment  # noqa: F401
    except ImportError:
        return None
    return dnnlib.EasyDict(class_name='training.augment.AugmentPipe', xflip=1, rotate90=1, xint=1, scale=1,
                           rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)


def test_first_step_G_ema_equals_G_and_augment_pipe_is_saved(tmp_path):
    augment_kwargs = bgc_augment_kwargs()
    c = run_kwargs(tmp_path, total_kimg=0.004, G_reg_interval=None, D_reg_interval=None, image_snapshot_ticks=None,
                   augment_kwargs=augment_kwargs, augment_p=0.3)
    tl.training_loop(**c)  # One step; R1 every step, through the augmentation pipe.
    assert not os.path.exists(tmp_path / 'fakes000000.png')
    assert np.isfinite(read_stats(tmp_path)[-1]['Loss/r1_penalty']['mean'])
    data = legacy.load_network_pkl(str(tmp_path / 'network-snapshot-000000.pkl'))
    # At cur_nimg = 0 the ramped-up half-life is 0 images: G_ema becomes G exactly.
    G, G_ema = params_of(data['G']), params_of(data['G_ema'])
    for name in G:
        assert torch.equal(G[name], G_ema[name]), name
    if augment_kwargs is None:
        pytest.skip('training/augment.py missing: augmentation not checked')
    assert type(data['augment_pipe']).__name__ == 'AugmentPipe'
    assert data['augment_pipe'].p.item() == pytest.approx(0.3)


def test_ada_raises_p_when_D_is_sure_of_reals(tmp_path):
    c = run_kwargs(tmp_path, total_kimg=0.040, kimg_per_tick=1, network_snapshot_ticks=None,
                   image_snapshot_ticks=None, G_reg_interval=None, D_reg_interval=None,
                   augment_kwargs=dnnlib.EasyDict(class_name=f'{THIS}.IdentityAugmentPipe'),
                   augment_p=0, ada_target=0.6, ada_interval=2, ada_kimg=1)
    c.D_kwargs = dnnlib.EasyDict(class_name=f'{THIS}.ConfidentDiscriminator')
    c.loss_kwargs = dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss', r1_gamma=0)
    tl.training_loop(**c)
    stats = read_stats(tmp_path)
    assert stats[-1]['Loss/signs/real']['mean'] == 1
    # 10 steps of 4 images, adjusted every 2 steps by +(4 * 2) / 1000.
    assert stats[-1]['Progress/augment']['mean'] == pytest.approx(5 * 0.008, abs=1e-6)
    assert stats[0]['Progress/augment']['mean'] == 0  # Tick 0 comes after step 1, before any adjustment.


def test_run_dir_with_an_earlier_run_is_refused(sg2_run):
    run_dir, _ = sg2_run
    with pytest.raises(FileExistsError, match='already holds a training run'):
        tl.training_loop(**run_kwargs(run_dir))


def test_metrics_are_computed_on_each_snapshot(tmp_path, monkeypatch):
    calls = []

    def calc_metric(metric, G, dataset_kwargs, num_gpus, rank, device):
        calls.append(('calc', metric, type(G).__name__, G.training, dataset_kwargs['class_name'], num_gpus, rank))
        return dnnlib.EasyDict(results={f'{metric}_value': 1.5}, metric=metric)

    def report_metric(result_dict, run_dir, snapshot_pkl):
        calls.append(('report', result_dict.metric, run_dir, os.path.basename(snapshot_pkl),
                      os.path.isfile(snapshot_pkl)))

    fake = types.ModuleType('metrics.metric_main')
    fake.calc_metric, fake.report_metric = calc_metric, report_metric
    package = types.ModuleType('metrics')
    package.metric_main = fake
    monkeypatch.setitem(sys.modules, 'metrics', package)
    monkeypatch.setitem(sys.modules, 'metrics.metric_main', fake)

    tl.training_loop(**run_kwargs(tmp_path, metrics=['fid0k'], total_kimg=0.004, kimg_per_tick=1))  # one tick
    assert calls == [
        ('calc', 'fid0k', 'Generator', False, f'{THIS}.TinyDataset', 1, 0),
        ('report', 'fid0k', str(tmp_path), 'network-snapshot-000000.pkl', True),
    ]


# ----------------------------------------------------------------------------
# The loss, against independent computations.


class QuadraticD(torch.nn.Module):
    """D(x) = sum(w * x^2): dD/dx = 2 w x, so R1 has a closed form."""

    def __init__(self, shape):
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(-1, 1, int(np.prod(shape))).reshape(shape))

    def forward(self, img, c, update_emas=False):
        return (self.w * img.square()).flatten(1).sum(dim=1, keepdim=True)


class LinearG(torch.nn.Module):
    """mapping: ws = z (times 1) broadcast to num_ws; synthesis: img = einsum(ws, V). Path lengths in closed form."""

    def __init__(self, z_dim=3, num_ws=2, shape=(1, 4, 2)):
        super().__init__()
        self.z_dim, self.c_dim, self.num_ws = z_dim, 0, num_ws
        gen = torch.Generator().manual_seed(1)
        self.V = torch.nn.Parameter(torch.randn([num_ws, z_dim, *shape], generator=gen))
        self.scale = torch.nn.Parameter(torch.ones([]))  # Makes ws depend on a weight, as a real mapping's do.
        self.mapping = lambda z, c, update_emas=False: (z * self.scale).unsqueeze(1).repeat([1, self.num_ws, 1])
        self.synthesis = lambda ws, update_emas=False: torch.einsum('nkd,kdchw->nchw', ws, self.V)


def test_r1_penalty_and_its_gradient_match_closed_form():
    torch.manual_seed(0)
    real = torch.randn([3, 1, 4, 2])
    D = QuadraticD([1, 4, 2])
    gamma = 0.7
    loss = loss_module.StyleGAN2Loss(device='cpu', G=None, D=D, r1_gamma=gamma)
    with collecting() as stats:
        loss.accumulate_gradients('Dreg', real_img=real, real_c=torch.zeros([3, 0]), gen_z=None, gen_c=None,
                                  gain=4, cur_nimg=0)
    w = D.w.detach()
    penalty = (2 * w * real).square().flatten(1).sum(dim=1)             # |dD/dx|^2 per image
    grad_w = 4 * (gamma / 2) * (8 * w * real.square()).mean(dim=0)   # gain * d/dw of mean(gamma/2 * penalty)
    assert stats.mean('Loss/r1_penalty') == pytest.approx(penalty.mean().item(), rel=1e-5)
    assert stats.mean('Loss/D/reg') == pytest.approx((gamma / 2 * penalty).mean().item(), rel=1e-5)
    assert stats.num('Loss/signs/real') == 3
    torch.testing.assert_close(D.w.grad, grad_w, rtol=1e-5, atol=1e-6)


def test_dmain_loss_is_softplus_of_scores():
    torch.manual_seed(0)
    G = LinearG(shape=(1, 4, 2))
    D = QuadraticD([1, 4, 2])
    loss = loss_module.StyleGAN2Loss(device='cpu', G=G, D=D, r1_gamma=0)
    real, gen_z = torch.randn([2, 1, 4, 2]), torch.randn([2, 3])
    with collecting() as stats:
        loss.accumulate_gradients('Dboth', real_img=real, real_c=torch.zeros([2, 0]), gen_z=gen_z,
                                  gen_c=torch.zeros([2, 0]), gain=1, cur_nimg=0)
    with torch.no_grad():
        fake = G.synthesis(G.mapping(gen_z, None))
        fake_scores, real_scores = D(fake, None), D(real, None)
    expected = torch.nn.functional.softplus(fake_scores) + torch.nn.functional.softplus(-real_scores)
    assert stats.mean('Loss/D/loss') == pytest.approx(expected.mean().item(), rel=1e-5)
    assert stats.num('Loss/r1_penalty') == 0  # r1_gamma = 0 turns Dboth into Dmain.
    # d/dw softplus(+-D) = sigmoid(+-D) * (+-x^2), averaged over the batch.
    grad_w = (torch.sigmoid(fake_scores)[:, :, None, None] * fake.square()
              - torch.sigmoid(-real_scores)[:, :, None, None] * real.square()).mean(dim=0)
    torch.testing.assert_close(D.w.grad, grad_w, rtol=1e-5, atol=1e-6)


def test_path_length_penalty_matches_closed_form():
    G = LinearG(z_dim=3, num_ws=2, shape=(1, 4, 2))
    loss = loss_module.StyleGAN2Loss(device='cpu', G=G, D=None, pl_weight=2, pl_batch_shrink=2, pl_decay=0.25)
    gen_z = torch.randn([4, 3])
    torch.manual_seed(5)
    with collecting() as stats:
        loss.accumulate_gradients('Greg', real_img=None, real_c=None, gen_z=gen_z, gen_c=torch.zeros([4, 0]),
                                  gain=1, cur_nimg=0)
    # Replay the noise: img is linear in ws, so J^T y = sum over pixels of V * y.
    torch.manual_seed(5)
    noise = torch.randn([2, 1, 4, 2]) / np.sqrt(4 * 2)
    grads = torch.einsum('kdchw,nchw->nkd', G.V.detach(), noise)
    lengths = grads.square().sum(dim=2).mean(dim=1).sqrt()
    pl_mean = 0.25 * lengths.mean()
    assert loss.pl_mean.item() == pytest.approx(pl_mean.item(), rel=1e-5)
    assert stats.mean('Loss/pl_penalty') == pytest.approx((lengths - pl_mean).square().mean().item(), rel=1e-4)
    assert stats.num('Loss/pl_penalty') == 2  # batch shrunk by 2
    assert G.V.grad is not None and torch.isfinite(G.V.grad).all()


def test_zero_weights_skip_the_regularisers():
    loss = loss_module.StyleGAN2Loss(device='cpu', G=None, D=None, r1_gamma=0, pl_weight=0)
    # With nothing to compute, Greg and Dreg touch neither network (both are None here).
    loss.accumulate_gradients('Greg', None, None, None, None, gain=1, cur_nimg=0)
    loss.accumulate_gradients('Dreg', None, None, None, None, gain=1, cur_nimg=0)


def test_blur_fades_out_and_kernel_is_normalised():
    assert loss_module.blur_sigma_at(0, 10, 200) == 10
    assert loss_module.blur_sigma_at(100_000, 10, 200) == pytest.approx(5)
    assert loss_module.blur_sigma_at(500_000, 10, 200) == 0
    assert loss_module.blur_sigma_at(0, 10, 0) == 0
    kernel = loss_module.blur_kernel(2.0)
    assert kernel.shape == (13,) and kernel.sum().item() == pytest.approx(1)
    assert kernel[6] == kernel.max() and torch.equal(kernel, kernel.flip(0))
    assert kernel[0] / kernel[6] == pytest.approx(2.0 ** -9)  # exp2(-(6/2)^2)
    assert loss_module.blur_kernel(0.3) is None


def test_blur_is_applied_to_what_D_sees():
    seen = []
    loss = loss_module.StyleGAN2Loss(device='cpu', G=None, D=lambda img, c, update_emas: seen.append(img))
    delta = torch.zeros([1, 1, 15, 15])
    delta[0, 0, 7, 7] = 1
    loss.run_D(delta, None, blur_sigma=1)
    taps = 2.0 ** -(np.arange(-3, 4) ** 2.0)
    taps /= taps.sum()
    expected = np.zeros([15, 15])
    expected[4:11, 4:11] = np.outer(taps, taps)  # a delta blurs into the separable kernel
    np.testing.assert_allclose(seen[0][0, 0].numpy(), expected, atol=1e-6)


def test_style_mixing_takes_the_tail_from_another_latent():
    G = LinearG(z_dim=3, num_ws=6)
    loss = loss_module.StyleGAN2Loss(device='cpu', G=G, D=None, style_mixing_prob=1)
    z = torch.randn([2, 3])
    _img, ws = loss.run_G(z, torch.zeros([2, 0]))
    same = (ws == z[:, None, :]).all(dim=2).all(dim=0)
    cutoff = int(same.to(torch.int64).argmin())
    assert 1 <= cutoff < 6 and same[:cutoff].all() and not same[cutoff:].any()


# ----------------------------------------------------------------------------
# Loop pieces.


def test_ema_update_is_the_expected_lerp():
    torch.manual_seed(0)
    G = torch.nn.Linear(3, 2)
    G.register_buffer('w_avg', torch.randn([2]))
    G_ema = torch.nn.Linear(3, 2)
    G_ema.register_buffer('w_avg', torch.zeros([2]))
    old = params_of(G_ema)
    beta = tl.ema_beta(cur_nimg=1000, batch_size=4, ema_kimg=10, ema_rampup=0.05)
    assert beta == pytest.approx(0.5 ** (4 / 50))  # half-life min(10000, 1000 * 0.05) images
    assert tl.ema_beta(cur_nimg=10**7, batch_size=4, ema_kimg=10, ema_rampup=0.05) == pytest.approx(0.5 ** (4 / 10000))
    assert tl.ema_beta(cur_nimg=0, batch_size=4, ema_kimg=10, ema_rampup=None) == pytest.approx(0.5 ** (4 / 10000))
    tl.update_ema(G_ema, G, beta)
    for name, p in G.named_parameters():
        torch.testing.assert_close(dict(G_ema.named_parameters())[name].detach(),
                                   beta * old[name] + (1 - beta) * p.detach())
    assert torch.equal(G_ema.w_avg, G.w_avg)


def test_ada_adjustment_direction_and_floor():
    assert tl.ada_adjustment(1.0, 0.6, batch_size=32, ada_interval=4, ada_kimg=500) == pytest.approx(128 / 500e3)
    assert tl.ada_adjustment(0.2, 0.6, batch_size=32, ada_interval=4, ada_kimg=500) == pytest.approx(-128 / 500e3)
    pipe = IdentityAugmentPipe()
    pipe.p.fill_(0.001)
    stats = training_stats.Collector(regex='Loss/signs/real')
    training_stats.report('Loss/signs/real', [-1.0, -1.0, 1.0])
    tl.adjust_augment_p(pipe, stats, ada_target=0.6, batch_size=4, ada_interval=1, ada_kimg=1)
    assert pipe.p.item() == 0  # 0.001 - 0.004, floored at 0


def test_lazy_regularisation_phases_and_optimizer_settings():
    G, D = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    opt = dict(class_name='torch.optim.Adam', lr=0.002, betas=[0, 0.99], eps=1e-8)
    phases = tl.build_phases(G, D, opt, opt, G_reg_interval=4, D_reg_interval=None)
    assert [(p.name, p.interval) for p in phases] == [('Gmain', 1), ('Greg', 4), ('Dboth', 1)]
    assert phases[0].opt is phases[1].opt
    group = phases[0].opt.param_groups[0]
    assert group['lr'] == pytest.approx(0.002 * 4 / 5)
    assert group['betas'][1] == pytest.approx(0.99 ** 0.8) and group['betas'][0] == 0
    assert phases[2].opt.param_groups[0]['lr'] == 0.002


def test_gradient_sync_cleans_non_finite_values():
    module = torch.nn.Linear(2, 1)
    module.weight.grad = torch.tensor([[float('nan'), float('inf')]])
    module.bias.grad = torch.tensor([-float('inf')])
    tl.sync_gradients(module, num_gpus=1)
    assert module.weight.grad.tolist() == [[0, 1e5]] and module.bias.grad.tolist() == [-1e5]


class ExplodesWhenPickled:
    def __reduce__(self):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-write


def test_interrupted_snapshot_write_keeps_the_previous_file(sg2_run, tmp_path):
    run_dir, _ = sg2_run
    target = tmp_path / 'network-snapshot-000000.pkl'
    original = (run_dir / 'network-snapshot-000000.pkl').read_bytes()
    target.write_bytes(original)
    G = legacy.load_network_pkl(str(target))['G_ema']
    with pytest.raises(KeyboardInterrupt):
        tl.save_snapshot(dict(G_ema=G, D=G, extra=ExplodesWhenPickled()), str(target))
    assert target.read_bytes() == original
    assert os.listdir(tmp_path) == [target.name]


def test_grid_images_are_tiled_row_major(tmp_path):
    images = np.zeros([6, 1, 4, 2], dtype=np.float32)
    for i in range(6):
        images[i] = i * 50
    tl.save_image_grid(images, str(tmp_path / 'grid.png'), drange=[0, 255], grid_size=(3, 2))
    grid = np.asarray(PIL.Image.open(tmp_path / 'grid.png'))
    assert grid.shape == (8, 6)
    assert grid[0, 0] == 0 and grid[0, 2] == 50 and grid[0, 4] == 100 and grid[4, 0] == 150 and grid[7, 5] == 250


def test_format_time():
    assert tl.format_time(42) == '42s'
    assert tl.format_time(187) == '3m 07s'
    assert tl.format_time(2 * 3600 + 5 * 60 + 9) == '2h 05m 09s'
    assert tl.format_time(4 * 86400 + 3 * 3600 + 12 * 60) == '4d 03h 12m'


# ----------------------------------------------------------------------------
# Two processes (gloo on the CPU): all ranks end with the same weights.


def _two_process_worker(rank, init_method, run_dir, out_dir):
    torch.set_num_threads(1)
    torch.distributed.init_process_group('gloo', init_method=init_method, rank=rank, world_size=2)
    original = tl.snapshot_networks

    def snapshot_and_record(G, D, G_ema, augment_pipe, training_set_kwargs, num_gpus):
        state = {key: params_of(module) for key, module in (('G', G), ('D', D), ('G_ema', G_ema))}
        with open(os.path.join(out_dir, f'rank{rank}.pkl'), 'wb') as f:
            pickle.dump(state, f)
        return original(G, D, G_ema, augment_pipe, training_set_kwargs, num_gpus)

    tl.snapshot_networks = snapshot_and_record
    try:
        c = run_kwargs(run_dir, num_gpus=2, rank=rank, batch_size=4, batch_gpu=2, total_kimg=0.016,
                       kimg_per_tick=1, image_snapshot_ticks=None, network_snapshot_ticks=100)
        tl.training_loop(**c)
        torch.distributed.barrier()  # As launch.py does before tearing down.
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_keep_identical_weights(tmp_path):
    run_dir, out_dir = tmp_path / 'run', tmp_path / 'out'
    out_dir.mkdir()
    init_method = launch.file_init_method(str(out_dir))  # train.py's rendezvous for spawned processes.
    torch.multiprocessing.spawn(_two_process_worker, args=(init_method, str(run_dir), str(out_dir)), nprocs=2)
    states = []
    for rank in range(2):
        with open(out_dir / f'rank{rank}.pkl', 'rb') as f:
            states.append(pickle.load(f))
    for key in ('G', 'D', 'G_ema'):
        assert states[0][key].keys() == states[1][key].keys()
        for name, value in states[0][key].items():
            assert torch.equal(value, states[1][key][name]), (key, name)
    stats = read_stats(run_dir)
    assert stats[-1]['Progress/kimg']['mean'] == pytest.approx(0.016)
    assert (run_dir / 'network-snapshot-000000.pkl').is_file()
    # Only rank 0 logs: one status line per tick, not two.
    tick_lines = [line for line in (run_dir / 'log.txt').read_text().splitlines() if line.startswith('tick ')]
    assert len(tick_lines) == len(stats) == 2


def test_a_bf16_run_computes_the_synthesis_in_bf16_with_finite_losses(tmp_path):
    # train.py --precision bf16 records 'precision' in the options; the launcher enters the scope.
    seen = []

    def loop(**kwargs):
        seen.append(precision.compute_dtype())
        return tl.training_loop(**kwargs)
    c = dict(run_kwargs(tmp_path, total_kimg=0.008, kimg_per_tick=1, image_snapshot_ticks=None), precision='bf16')
    launch.train_in_this_process(c, rank=0, world_size=1, device_type='cpu', local_rank=0, local_world_size=1,
                                 loop_fn=loop)
    assert seen == [torch.bfloat16] and precision.compute_dtype() == torch.float32
    stats = read_stats(tmp_path)[-1]
    for name in ('Loss/G/loss', 'Loss/D/loss', 'Loss/r1_penalty', 'Loss/pl_penalty'):
        assert name in stats and np.isfinite(stats[name]['mean']), name
