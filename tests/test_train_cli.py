"""train.py: both upstream command lines, hyper-parameters derived as upstream, errors, run dirs, launching.

Expected numbers are worked out by hand from the upstream scripts' formulas (StyleGAN2-ADA's
``setup_training_loop_kwargs`` with StyleGAN-Human's shhq preset, StyleGAN3's ``main``), not
by calling the code under test.
"""

import json
import os
import shlex
import socket
import subprocess
import sys
import types

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import train
from helpers import one_line_failure
from training import launch
from training import train_config as tc
from training.train_config import DatasetInfo, OptionsError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# StyleGAN-Human README, "Train": the two command lines, verbatim but for the paths.
SG2_README = ('--outdir={outdir} --data={data} '
              '--gpus=8 --aug=noaug --mirror=1 --snap=250 --cfg=shhq --square=False')
SG3_README = ('--outdir={outdir} --cfg=stylegan3-r --gpus=8 --batch=32 --gamma=12.4 '
              '--mirror=1 --aug=noaug --data={data} --square=False --snap=250')


def shhq(resolution=1024, size=1000, has_labels=False, square=False):
    return DatasetInfo(path='/data/SHHQ-1.0', name='SHHQ', resolution=resolution, size=size,
                       has_labels=has_labels, square=square)


def derive(dataset=None, **flags):
    flags.setdefault('device', 'cuda')
    return tc.build_training_options(flags, dataset or shhq())


def make_images(folder, count=4, size=(32, 64)):
    """``count`` PNGs of ``size`` (width, height) in ``folder``."""
    os.makedirs(folder, exist_ok=True)
    width, height = size
    for i in range(count):
        pixels = np.random.RandomState(i).randint(0, 256, size=(height, width, 3), dtype=np.uint8)
        PIL.Image.fromarray(pixels).save(os.path.join(folder, f'img{i:03d}.png'))
    return str(folder)


@pytest.fixture
def rect_data(tmp_path):
    pytest.importorskip('training.dataset')
    return make_images(tmp_path / 'SHHQ-1.0', size=(32, 64))  # 64 high, 32 wide: 2:1.


def invoke(args):
    return CliRunner().invoke(train.main, args if isinstance(args, list) else shlex.split(args))


def printed_options(output):
    """The JSON printed after 'Training options:'."""
    start = output.index('Training options:') + len('Training options:')
    end = output.index('\nOutput directory:')
    return json.loads(output[start:end])


# ----------------------------------------------------------------------------
# Hyper-parameters: StyleGAN2-ADA flavour.


def test_shhq_preset_at_1024_with_8_gpus_matches_upstream():
    c, desc = derive(gpus=8, aug='noaug', mirror=True, snap=250, cfg='shhq', square=False)
    # mb = max(min(8 * min(4096 // 1024, 32), 64), 8) = 32; gamma = 0.0002 * 1024^2 / 32.
    assert (c.batch_size, c.batch_gpu, c.num_gpus) == (32, 4, 8)
    assert c.D_kwargs.epilogue_kwargs.mbstd_group_size == 4
    syn = c.G_kwargs.synthesis_kwargs
    assert (syn.channel_base, syn.channel_max) == (32768, 512)
    assert (c.D_kwargs.channel_base, c.D_kwargs.channel_max) == (32768, 512)
    assert c.G_kwargs.mapping_kwargs.num_layers == 8
    assert c.G_opt_kwargs.lr == 0.002 and c.D_opt_kwargs.lr == 0.002
    assert c.G_opt_kwargs.betas == [0, 0.99] and c.G_opt_kwargs.eps == 1e-8
    assert c.loss_kwargs.r1_gamma == pytest.approx(6.5536)
    assert c.ema_kimg == pytest.approx(10) and c.ema_rampup == 0.05
    assert (syn.num_fp16_res, syn.conv_clamp, c.D_kwargs.num_fp16_res, c.D_kwargs.conv_clamp) == (4, 256, 4, 256)
    assert (c.G_reg_interval, c.D_reg_interval) == (4, 16)
    assert (c.loss_kwargs.pl_weight, c.loss_kwargs.style_mixing_prob) == (2, 0.9)
    assert c.total_kimg == 25000 and c.kimg_per_tick == 4
    assert c.image_snapshot_ticks == c.network_snapshot_ticks == 250
    assert 'augment_kwargs' not in c and 'ada_target' not in c and 'augment_p' not in c
    assert c.training_set_kwargs.xflip is True and c.training_set_kwargs.square is False
    assert c.G_kwargs.square is False and c.D_kwargs.square is False
    assert c.training_set_kwargs.resolution == 1024 and c.training_set_kwargs.max_size == 1000
    assert c.metrics == ['fid50k_full'] and c.random_seed == 0
    assert c.flavour == tc.STYLEGAN2_ADA
    assert desc == 'SHHQ-rectangle-mirror-shhq8-noaug'


def test_shhq_preset_at_512_with_8_gpus():
    c, desc = derive(dataset=shhq(512), gpus=8, cfg='shhq')
    # mb = max(min(8 * 8, 64), 8) = 64; mbstd = min(64 // 8, 4) = 4; gamma = 0.0002 * 512^2 / 64.
    assert (c.batch_size, c.batch_gpu) == (64, 8)
    assert c.D_kwargs.epilogue_kwargs.mbstd_group_size == 4
    assert c.G_kwargs.synthesis_kwargs.channel_base == 32768
    assert c.G_opt_kwargs.lr == 0.0025
    assert c.loss_kwargs.r1_gamma == pytest.approx(0.8192)
    assert c.ema_kimg == pytest.approx(20)
    assert c.augment_kwargs.xflip == 1 and c.augment_kwargs.rotate == 1 and c.ada_target == 0.6  # ada + bgc.
    assert desc == 'SHHQ-rectangle-shhq8'


def test_auto_preset_differs_from_shhq_in_mapping_depth_only():
    c, desc = derive(dataset=shhq(256), gpus=2)  # No --cfg: auto.
    # mb = max(min(2 * 16, 64), 2) = 32; fmaps 0.5 below 512; gamma = 0.0002 * 65536 / 32.
    assert (c.batch_size, c.batch_gpu) == (32, 16)
    assert c.D_kwargs.epilogue_kwargs.mbstd_group_size == 4
    assert c.G_kwargs.synthesis_kwargs.channel_base == 16384 and c.D_kwargs.channel_base == 16384
    assert c.G_opt_kwargs.lr == 0.0025
    assert c.loss_kwargs.r1_gamma == pytest.approx(0.4096)
    assert c.ema_kimg == pytest.approx(10) and c.ema_rampup == 0.05
    assert c.G_kwargs.mapping_kwargs.num_layers == 2
    assert desc == 'SHHQ-rectangle-auto2'
    c_shhq, _ = derive(dataset=shhq(256), gpus=2, cfg='shhq')
    assert c_shhq.G_kwargs.mapping_kwargs.num_layers == 8
    c_shhq.G_kwargs.mapping_kwargs.num_layers = 2
    assert c_shhq == c


def test_auto_preset_at_128_on_one_gpu():
    c, _ = derive(dataset=shhq(128))
    # mb = max(min(1 * min(32, 32), 64), 1) = 32; mbstd = min(32, 4); gamma = 0.0002 * 128^2 / 32.
    assert (c.batch_size, c.batch_gpu, c.D_kwargs.epilogue_kwargs.mbstd_group_size) == (32, 32, 4)
    assert c.loss_kwargs.r1_gamma == pytest.approx(0.1024)


def test_paper256_preset_on_one_gpu():
    c, desc = derive(dataset=shhq(256), cfg='paper256')
    assert (c.batch_size, c.batch_gpu) == (64, 8)  # 64 images, 64 // 8 reference GPUs per pass.
    assert c.D_kwargs.epilogue_kwargs.mbstd_group_size == 8
    assert c.G_kwargs.synthesis_kwargs.channel_base == 16384
    assert c.G_opt_kwargs.lr == 0.0025 and c.loss_kwargs.r1_gamma == 1
    assert c.ema_kimg == 20 and c.ema_rampup is None
    assert c.G_kwargs.mapping_kwargs.num_layers == 8
    assert desc == 'SHHQ-rectangle-paper256'


def test_cifar_preset_disables_pl_and_mixing():
    c, _ = derive(dataset=shhq(32), gpus=2, cfg='cifar')
    assert (c.batch_size, c.batch_gpu, c.total_kimg) == (64, 32, 100000)
    assert c.D_kwargs.epilogue_kwargs.mbstd_group_size == 32
    assert c.loss_kwargs.r1_gamma == 0.01 and c.ema_kimg == 500 and c.ema_rampup == 0.05
    assert c.loss_kwargs.pl_weight == 0 and c.loss_kwargs.style_mixing_prob == 0
    assert c.D_kwargs.architecture == 'orig' and c.G_kwargs.mapping_kwargs.num_layers == 2


def test_preset_batch_per_gpu_shrinks_with_more_gpus_than_its_reference():
    c, _ = derive(dataset=shhq(32), gpus=4, cfg='cifar')  # Reference: 2 GPUs x 32.
    assert (c.batch_size, c.batch_gpu) == (64, 16)


def test_stylegan2_preset_with_overrides():
    c, desc = derive(cfg='stylegan2', gpus=8, batch=64, gamma=10.0, kimg=5000, mirror=True, aug='noaug')
    assert (c.batch_size, c.batch_gpu) == (64, 8)
    assert c.loss_kwargs.r1_gamma == 10 and c.total_kimg == 5000
    assert c.ema_kimg == 10 and c.ema_rampup is None and c.G_opt_kwargs.lr == 0.002
    assert c.flavour == tc.STYLEGAN2_ADA  # --cfg=stylegan2 alone: StyleGAN2-ADA's preset.
    assert desc == 'SHHQ-rectangle-mirror-stylegan2-gamma10-kimg5000-batch64-noaug'


def test_performance_flags_and_freeze():
    c, desc = derive(cfg='paper256', dataset=shhq(256), fp32=True, nhwc=True, nobench=True, allow_tf32=True,
                     workers=5, freezed=3, seed=7)
    syn = c.G_kwargs.synthesis_kwargs
    assert (syn.num_fp16_res, syn.conv_clamp, c.D_kwargs.num_fp16_res, c.D_kwargs.conv_clamp) == (0, None, 0, None)
    assert syn.fp16_channels_last is True and c.D_kwargs.block_kwargs.fp16_channels_last is True
    assert c.cudnn_benchmark is False and c.allow_tf32 is True
    assert c.data_loader_kwargs == dict(pin_memory=True, prefetch_factor=2, num_workers=5)
    assert c.D_kwargs.block_kwargs.freeze_layers == 3 and desc.endswith('-freezed3')
    assert c.random_seed == 7


def test_cpu_device_turns_off_pinned_memory():
    c, _ = derive(device='cpu')
    assert c.data_loader_kwargs.pin_memory is False and c.device == 'cpu'


def test_preview_grid_size_defaults_small_on_the_cpu_and_follows_grid():
    assert 'image_grid_size' not in derive(device='cuda')[0]          # upstream's grid (about 7680x4320 pixels)
    assert derive(device='cpu')[0].image_grid_size == [4, 4]          # one CPU grid in seconds, not minutes
    assert derive(device='cpu', grid='6x3')[0].image_grid_size == [6, 3]  # columns x rows
    assert derive(device='cuda', grid='2X5')[0].image_grid_size == [2, 5]
    assert 'image_grid_size' not in derive(device='cpu', grid='auto')[0]
    assert derive(cfg='stylegan3-t', batch=8, gamma=1, device='cpu', grid='1x1')[0].image_grid_size == [1, 1]


@pytest.mark.parametrize('grid', ['0x3', '3', 'axb', '33x1', '4x4x4', '-1x2'])
def test_bad_grid_is_one_line_naming_grid(rect_data, tmp_path, grid):
    outdir = tmp_path / 'runs'
    result = invoke(['--outdir', str(outdir), '--data', rect_data, '--cfg=stylegan2', '--device=cpu',
                     '--metrics=none', f'--grid={grid}'])
    one_line_failure(result, '--grid', grid, 'COLUMNSxROWS')
    assert not outdir.exists()


def test_augmentation_modes_and_body_pipe():
    c, desc = derive(aug='fixed', p=0.3, augpipe='body')
    assert c.augment_p == 0.3 and 'ada_target' not in c
    assert c.augment_kwargs.class_name == 'training.augment.AugmentPipe'
    assert (c.augment_kwargs.rotate90, c.augment_kwargs.rotate, c.augment_kwargs.xflip) == (0, 0, 1)
    assert desc.endswith('-fixed-p0.3-body')
    c, desc = derive(target=0.7)
    assert c.ada_target == 0.7 and desc.endswith('-target0.7')


def test_metric_names_without_metrics_package(monkeypatch):
    monkeypatch.setitem(sys.modules, 'metrics.metric_main', None)  # Unimportable, whether or not it exists.
    if sys.modules.get('metrics') is not None:
        monkeypatch.delattr(sys.modules['metrics'], 'metric_main', raising=False)
    _is_valid, _names, available = tc.metric_registry()
    assert available is False
    c, _ = derive(metrics=['eqt50k_int', 'fid50k_full'])  # Upstream's names are still checked.
    assert c.metrics == ['eqt50k_int', 'fid50k_full']
    with pytest.raises(OptionsError, match='nonsense'):
        derive(metrics=['nonsense'])
    with pytest.raises(OptionsError, match='metric_main'):  # A real run would fail at its first snapshot.
        train._check_metrics_available(['fid50k_full'])
    train._check_metrics_available([])


def test_augpipe_table_matches_augment_module():
    augment = pytest.importorskip('training.augment')
    assert tc.AUGPIPE_SPECS == augment.AUGPIPE_SPECS


def test_subset_cond_and_fractional_kimg():
    c, desc = derive(dataset=shhq(has_labels=True, size=100), subset=10, cond=True, kimg=0.5, seed=3)
    assert c.training_set_kwargs.max_size == 10 and c.training_set_kwargs.random_seed == 3
    assert c.training_set_kwargs.use_labels is True
    assert c.total_kimg == 0.5
    assert desc == 'SHHQ-rectangle-cond-subset10-auto1-kimg0.5'


def test_resume_by_name_url_and_file(tmp_path):
    c, desc = derive(resume='ffhq1024')
    assert c.resume_pkl.endswith('/ffhq-res1024-mirror-stylegan2-noaug.pkl') and c.resume_pkl.startswith('https://')
    assert c.ada_kimg == 100 and c.ema_rampup is None and desc.endswith('-resumeffhq1024')
    c, desc = derive(resume='stylegan_human_v2_1024')  # Model-zoo name: resolved at training time.
    assert c.resume_pkl == 'stylegan_human_v2_1024' and desc.endswith('-resumestylegan_human_v2_1024')
    pkl = tmp_path / 'net.pkl'
    pkl.write_bytes(b'\x80')
    c, desc = derive(resume=str(pkl))
    assert c.resume_pkl == str(pkl) and desc.endswith('-resumecustom') and c.resume_kimg == 0
    snapshot = tmp_path / 'network-snapshot-001234.pkl'
    snapshot.write_bytes(pkl.read_bytes())
    c, _ = derive(resume=str(snapshot))
    assert c.resume_kimg == 1234      # counting goes on from the snapshot's kimg
    c, _ = derive(resume='https://example.com/x.pkl')
    assert c.resume_pkl == 'https://example.com/x.pkl'
    c, desc = derive(resume='noresume')
    assert 'resume_pkl' not in c and c.ada_kimg == 500 and desc.endswith('-noresume')


# ----------------------------------------------------------------------------
# Hyper-parameters: StyleGAN3 flavour.


def test_stylegan3_r_batch32_gamma12_4_matches_upstream():
    c, desc = derive(dataset=shhq(512), cfg='stylegan3-r', gpus=8, batch=32, gamma=12.4, mirror=True,
                     aug='noaug', square=False, snap=250)
    assert c.flavour == tc.STYLEGAN3
    assert c.G_kwargs.class_name == 'training.networks_stylegan3.Generator'
    assert c.D_kwargs.class_name == 'training.networks_stylegan2.Discriminator'
    assert (c.batch_size, c.batch_gpu, c.num_gpus) == (32, 4, 8)
    assert (c.G_kwargs.channel_base, c.G_kwargs.channel_max) == (65536, 1024)  # Doubled for R.
    assert (c.D_kwargs.channel_base, c.D_kwargs.channel_max) == (32768, 512)
    assert c.G_kwargs.mapping_kwargs.num_layers == 2
    assert c.G_opt_kwargs.lr == 0.0025 and c.D_opt_kwargs.lr == 0.002
    assert c.D_kwargs.epilogue_kwargs.mbstd_group_size == 4
    assert c.loss_kwargs.r1_gamma == 12.4
    assert c.ema_kimg == pytest.approx(10) and c.ema_rampup == 0.05
    assert c.G_kwargs.magnitude_ema_beta == pytest.approx(0.5 ** 0.0016)  # 32 / 20000.
    assert c.G_kwargs.conv_kernel == 1 and c.G_kwargs.use_radial_filters is True
    assert c.loss_kwargs.blur_init_sigma == 10 and c.loss_kwargs.blur_fade_kimg == pytest.approx(200)
    assert c.G_reg_interval is None and c.D_reg_interval == 16
    assert c.loss_kwargs.pl_weight == 0 and c.loss_kwargs.style_mixing_prob == 0
    assert c.total_kimg == 25000 and c.kimg_per_tick == 4
    assert c.image_snapshot_ticks == c.network_snapshot_ticks == 250
    assert 'augment_kwargs' not in c
    assert c.G_kwargs.square is False and c.D_kwargs.square is False and c.training_set_kwargs.square is False
    assert c.training_set_kwargs.xflip is True and c.training_set_kwargs.random_seed == 0
    assert 'num_fp16_res' not in c.G_kwargs  # StyleGAN3 leaves it to the networks' default (4).
    assert desc == 'stylegan3-r-SHHQ-gpus8-batch32-gamma12.4'


def test_stylegan3_t_with_explicit_hyperparameters():
    c, desc = derive(cfg='stylegan3-t', gpus=2, batch=16, gamma=2.0, batch_gpu=4, cbase=16384, cmax=256,
                     map_depth=3, glr=0.003, dlr=0.001, mbstd_group=2, tick=2, kimg=100, desc='exp', fp32=True)
    assert (c.batch_size, c.batch_gpu) == (16, 4)
    assert (c.G_kwargs.channel_base, c.G_kwargs.channel_max) == (16384, 256)  # Not doubled for T.
    assert c.G_kwargs.mapping_kwargs.num_layers == 3
    assert c.G_opt_kwargs.lr == 0.003 and c.D_opt_kwargs.lr == 0.001
    assert c.D_kwargs.epilogue_kwargs.mbstd_group_size == 2
    assert c.ema_kimg == pytest.approx(5) and c.G_kwargs.magnitude_ema_beta == pytest.approx(0.5 ** 0.0008)
    assert 'conv_kernel' not in c.G_kwargs and 'blur_init_sigma' not in c.loss_kwargs
    assert c.kimg_per_tick == 2 and c.total_kimg == 100
    assert c.ada_target == 0.6 and c.augment_kwargs.rotate == 1  # --aug default ada with bgc.
    assert (c.G_kwargs.num_fp16_res, c.G_kwargs.conv_clamp, c.D_kwargs.num_fp16_res) == (0, None, 0)
    assert desc == 'stylegan3-t-SHHQ-gpus2-batch16-gamma2-exp'


def test_stylegan3_command_line_with_stylegan2_architecture():
    c, _ = derive(cfg='stylegan2', gpus=8, batch=32, gamma=10.0, flavour='stylegan3')
    assert c.flavour == tc.STYLEGAN3
    assert c.G_kwargs.class_name == 'training.networks_stylegan2.Generator'
    assert c.G_kwargs.mapping_kwargs.num_layers == 8 and c.G_opt_kwargs.lr == 0.002
    assert (c.loss_kwargs.style_mixing_prob, c.loss_kwargs.pl_weight, c.G_reg_interval) == (0.9, 2, 4)
    assert c.G_kwargs.fused_modconv_default == 'inference_only' and c.loss_kwargs.pl_no_weight_grad is True
    assert c.ema_rampup == 0.05 and 'magnitude_ema_beta' not in c.G_kwargs


def test_stylegan3_resume_and_fixed_augmentation(tmp_path):
    pkl = tmp_path / 'net.pkl'
    pkl.write_bytes(b'\x80')
    c, _ = derive(cfg='stylegan3-r', batch=32, gamma=6.6, resume=str(pkl), aug='fixed')
    assert c.resume_pkl == str(pkl) and c.ada_kimg == 100 and c.ema_rampup is None
    assert c.loss_kwargs.blur_init_sigma == 0
    assert c.augment_p == 0.2  # StyleGAN3's --p default.


@pytest.mark.parametrize('flags, expected', [
    (dict(), tc.STYLEGAN2_ADA),
    (dict(cfg='stylegan2'), tc.STYLEGAN2_ADA),
    (dict(cfg='shhq', batch=32, gamma=1.0), tc.STYLEGAN2_ADA),
    (dict(nhwc=True), tc.STYLEGAN2_ADA),
    (dict(cfg='stylegan3-t'), tc.STYLEGAN3),
    (dict(cfg='stylegan2', cbase=16384), tc.STYLEGAN3),
    (dict(tick=2), tc.STYLEGAN3),
    (dict(cfg='stylegan2', flavour='stylegan3'), tc.STYLEGAN3),
    (dict(cfg='stylegan2', flavour='auto'), tc.STYLEGAN2_ADA),
])
def test_flavour_detection(flags, expected):
    assert tc.detect_flavour(flags) == expected


@pytest.mark.parametrize('flags, words', [
    (dict(cfg='shhq', cbase=512), ['--cbase', '--cfg=shhq']),
    (dict(cfg='stylegan3-r', batch=32, gamma=1.0, subset=3), ['--subset']),
    (dict(cfg='paper256', flavour='stylegan3'), ['--cfg=paper256']),
    (dict(tick=2, flavour='stylegan2-ada'), ['--tick']),
    (dict(gpus=3), ['--gpus', 'power of two']),
    (dict(gpus=4, batch=6), ['--batch', 'divisible by --gpus']),
    (dict(p=0.3), ['--p', '--aug=fixed']),
    (dict(aug='fixed'), ['--aug=fixed', '--p']),
    (dict(aug='noaug', target=0.5), ['--target', '--aug=ada']),
    (dict(aug='noaug', augpipe='body'), ['--augpipe', 'noaug']),
    (dict(metrics=['fid50k_full', 'fid_bogus']), ['--metrics', 'fid_bogus']),
    (dict(cond=True), ['--cond', 'dataset.json']),
    (dict(subset=5000), ['--subset', '1000']),
    (dict(resume='/nonexistent/net.pkl'), ['--resume', 'no such file']),
    (dict(resume='stylegan_human_v1_1024'), ['--resume', 'StyleGAN1']),
    (dict(cfg='stylegan3-r', batch=32), ['--gamma']),
    (dict(cfg='stylegan3-t', batch=32, gamma=1.0, gpus=3), ['multiple of --gpus']),
    (dict(cfg='stylegan3-t', batch=32, gamma=1.0, gpus=2, batch_gpu=3), ['--batch-gpu']),
    (dict(cfg='stylegan3-t', batch=8, gamma=1.0, gpus=4), ['--mbstd-group']),
])
def test_flag_mistakes_are_options_errors(flags, words):
    with pytest.raises(OptionsError) as info:
        derive(**flags)
    message = str(info.value)
    assert '\n' not in message
    for word in words:
        assert word in message, message


# ----------------------------------------------------------------------------
# The command line.


@pytest.mark.parametrize('line', [SG2_README, SG3_README])
def test_upstream_command_lines_verbatim_with_dry_run(rect_data, tmp_path, line):
    outdir = tmp_path / 'runs'
    result = invoke(line.format(outdir=outdir, data=rect_data) + ' --dry-run')
    assert result.exit_code == 0, result.output
    assert 'Dry run; exiting.' in result.output
    c = printed_options(result.output)
    assert not outdir.exists()  # Nothing created.
    assert c['training_set_kwargs']['resolution'] == 64 and c['training_set_kwargs']['max_size'] == 4
    assert c['training_set_kwargs']['square'] is False and c['G_kwargs']['square'] is False
    assert c['training_set_kwargs']['xflip'] is True and c['num_gpus'] == 8
    assert c['image_snapshot_ticks'] == 250 and 'augment_kwargs' not in c
    assert c['run_dir'].startswith(str(outdir / '00000-'))
    if '--cfg=shhq' in line:
        # Height 64: mb = max(min(8 * 32, 64), 8) = 64; gamma = 0.0002 * 64^2 / 64.
        assert (c['batch_size'], c['batch_gpu']) == (64, 8)
        assert c['G_kwargs']['synthesis_kwargs']['channel_base'] == 16384
        assert c['loss_kwargs']['r1_gamma'] == pytest.approx(0.0128)
        assert c['run_dir'].endswith('-SHHQ-1-rectangle-mirror-shhq8-noaug')
    else:
        assert (c['batch_size'], c['batch_gpu']) == (32, 4)
        assert c['G_kwargs']['channel_base'] == 65536 and c['loss_kwargs']['r1_gamma'] == 12.4
        assert c['run_dir'].endswith('-stylegan3-r-SHHQ-1-gpus8-batch32-gamma12.4')


def test_help_explains_the_flavour_rule():
    result = invoke(['--help'])
    assert result.exit_code == 0
    for word in ('--cfg=stylegan3-t|stylegan3-r', '--subset --nhwc --allow-tf32', '--flavour', 'torchrun'):
        assert word in result.output, word


@pytest.mark.parametrize('extra, words', [
    ('--cfg=shhq --resume=/nonexistent/x.pkl', ['--resume']),
    ('--cfg=shhq --metrics=fid50k_full,nonsense', ['--metrics', 'nonsense']),
    ('--cfg=shhq --p=0.2', ['--p']),
    ('--cfg=shhq --gpus=2 --batch=3', ['--batch', '--gpus']),
    ('--cfg=stylegan3-r --gpus=4 --batch=6 --gamma=1', ['multiple of --gpus']),
    ('--cfg=shhq --map-depth=4', ['--map-depth', '--cfg=shhq']),
    ('--cfg=stylegan3-r --batch=32', ['--gamma']),
    ('--cfg=shhq --cond=1', ['--cond']),
    ('--cfg=shhq --gpus=nonsense', ['--gpus']),
])
def test_bad_flags_give_one_line_and_no_run_dir(rect_data, tmp_path, extra, words):
    outdir = tmp_path / 'runs'
    result = invoke(f'--outdir={outdir} --data={rect_data} {extra}')
    one_line_failure(result, *words)
    assert not outdir.exists()


def test_precision_bf16_is_recorded_where_native_and_one_line_elsewhere(rect_data, tmp_path, monkeypatch):
    from torch_utils import precision
    line = f'--outdir={tmp_path / "runs"} --data={rect_data} --cfg=shhq --device=cpu --dry-run'
    monkeypatch.setattr(precision, 'native_bf16', lambda device: True)
    assert printed_options(invoke(line + ' --precision=bf16').output)['precision'] == 'bf16'
    assert 'precision' not in printed_options(invoke(line).output)     # fp32: upstream's options, unchanged
    monkeypatch.setattr(precision, 'native_bf16', lambda device: False)
    one_line_failure(invoke(line + ' --precision=bf16'), '--precision', 'bf16')
    auto = invoke(line + ' --precision=auto')
    assert auto.exit_code == 0 and 'training in fp32' in auto.output
    assert 'precision' not in printed_options(auto.output)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks a machine without CUDA')
def test_upstreams_gpus_8_without_gpus_is_one_line_unless_cpu_is_asked_for(rect_data, tmp_path):
    outdir = tmp_path / 'runs'
    one_line_failure(invoke(f'--outdir={outdir} --data={rect_data} --cfg=shhq --gpus=8 --kimg=1'),
                     '--gpus=8', '--device=cpu')
    assert not outdir.exists()
    result = invoke(f'--outdir={outdir} --data={rect_data} --cfg=shhq --gpus=8 --device=cpu --dry-run')
    assert result.exit_code == 0, result.output


def test_missing_and_broken_datasets(tmp_path):
    pytest.importorskip('training.dataset')
    outdir = tmp_path / 'runs'
    one_line_failure(invoke(f'--outdir={outdir} --data={tmp_path / "nowhere"}'), '--data', 'nowhere')
    empty = tmp_path / 'empty'
    empty.mkdir()
    one_line_failure(invoke(f'--outdir={outdir} --data={empty}'), '--data')
    assert not outdir.exists()


def test_aspect_must_match_square_flag(tmp_path):
    pytest.importorskip('training.dataset')
    outdir = tmp_path / 'runs'
    square = make_images(tmp_path / 'square', size=(32, 32))
    rect = make_images(tmp_path / 'rect', size=(32, 64))
    one_line_failure(invoke(f'--outdir={outdir} --data={square} --square=False'), '--data', '--square=True')
    one_line_failure(invoke(f'--outdir={outdir} --data={rect} --square=True'), '--data', '--square=False')
    assert not outdir.exists()
    result = invoke(f'--outdir={outdir} --data={square} --square=True -n')
    assert result.exit_code == 0, result.output
    c = printed_options(result.output)
    assert c['G_kwargs']['square'] is True and c['training_set_kwargs']['resolution'] == 32


def test_cuda_device_without_cuda_is_one_line(rect_data, tmp_path):
    if torch.cuda.is_available():
        pytest.skip('CUDA is available here')
    outdir = tmp_path / 'runs'
    one_line_failure(invoke(f'--outdir={outdir} --data={rect_data} --device=cuda'), '--device=cuda')
    assert not outdir.exists()


# ----------------------------------------------------------------------------
# Run directories and the options file.


def test_next_run_id_skips_existing_runs(tmp_path):
    for name in ('00000-a', '00007-b', '00003-c', 'notes'):
        (tmp_path / name).mkdir()
    (tmp_path / '00020-file.txt').write_text('not a run')
    assert launch.next_run_id(tmp_path) == 8
    assert launch.next_run_id(tmp_path / 'missing') == 0


def test_create_run_dir_never_reuses_a_taken_name(tmp_path, monkeypatch):
    taken = tmp_path / '00000-run'
    taken.mkdir()
    (taken / 'keep.txt').write_text('old')
    monkeypatch.setattr(launch, 'next_run_id', lambda outdir: 0)  # As if another run took 0 meanwhile.
    c = dict(batch_size=4)
    import dnnlib
    c = dnnlib.EasyDict(c)
    run_dir = launch.create_run_dir(str(tmp_path), 'run', c)
    assert run_dir == str(tmp_path / '00001-run') and c.run_dir == run_dir
    assert json.loads((tmp_path / '00001-run' / 'training_options.json').read_text()) == dict(batch_size=4,
                                                                                           run_dir=run_dir)
    assert os.listdir(taken) == ['keep.txt']


def fake_training_loop_module(calls):
    """A stand-in training.training_loop that records its arguments and the options file it finds."""
    def training_loop(run_dir, rank, num_gpus, device, batch_size, batch_gpu, G_kwargs, training_set_kwargs,
                      total_kimg, metrics, random_seed):
        with open(os.path.join(run_dir, 'training_options.json')) as f:
            options = json.load(f)
        calls.append(dict(run_dir=run_dir, rank=rank, num_gpus=num_gpus, device=device, batch_size=batch_size,
                          batch_gpu=batch_gpu, options=options))
    return types.SimpleNamespace(training_loop=training_loop)


def test_run_writes_options_before_training_and_numbers_runs(rect_data, tmp_path, monkeypatch):
    outdir = tmp_path / 'runs'
    (outdir / '00004-earlier').mkdir(parents=True)
    calls = []
    import training
    monkeypatch.setitem(sys.modules, 'training.training_loop', fake_training_loop_module(calls))
    monkeypatch.setattr(training, 'training_loop', sys.modules['training.training_loop'], raising=False)
    args = f'--outdir={outdir} --data={rect_data} --cfg=stylegan3-t --batch=8 --gamma=1 --device=cpu --metrics=none'
    result = invoke(args)
    assert result.exit_code == 0, result.output
    # The fake loop takes no augment_kwargs etc.: the launcher says so and leaves them out.
    assert 'Note: training_loop takes no' in result.output and 'augment_kwargs' in result.output
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert [os.path.basename(call['run_dir']) for call in calls] == [
        '00005-stylegan3-t-SHHQ-1-gpus1-batch8-gamma1', '00006-stylegan3-t-SHHQ-1-gpus1-batch8-gamma1']
    call = calls[0]
    assert (call['rank'], call['num_gpus'], call['device'], call['batch_size'], call['batch_gpu']) == (0, 1, 'cpu', 8, 8)
    assert call['options']['run_dir'] == call['run_dir'] and call['options']['batch_size'] == 8
    assert call['options']['flavour'] == 'stylegan3' and call['options']['device'] == 'cpu'
    assert sorted(os.listdir(outdir)) == ['00004-earlier', os.path.basename(calls[0]['run_dir']),
                                          os.path.basename(calls[1]['run_dir'])]


def test_unusable_outdir_is_one_line(rect_data, tmp_path, monkeypatch):
    calls = []
    import training
    monkeypatch.setitem(sys.modules, 'training.training_loop', fake_training_loop_module(calls))
    monkeypatch.setattr(training, 'training_loop', sys.modules['training.training_loop'], raising=False)
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    result = invoke(f'--outdir={blocker} --data={rect_data} --cfg=stylegan3-t --batch=8 --gamma=1 --device=cpu '
                    '--metrics=none')
    one_line_failure(result, '--outdir')
    assert calls == [] and blocker.read_text() == 'not a folder'


def test_training_loop_kwargs_leaves_out_what_the_loop_does_not_take():
    def loop(run_dir, rank=0, num_gpus=1):
        pass
    notes = []
    kwargs = launch.training_loop_kwargs(dict(run_dir='x', allow_tf32=True, flavour='stylegan3'), loop,
                                         log=notes.append)
    assert kwargs == dict(run_dir='x')
    assert notes == ['Note: training_loop takes no allow_tf32; left out']  # flavour is silently a record.

    def open_loop(**kwargs):
        pass
    assert launch.training_loop_kwargs(dict(run_dir='x', allow_tf32=True), open_loop) == dict(run_dir='x',
                                                                                             allow_tf32=True)


# ----------------------------------------------------------------------------
# Launching.


def test_torchrun_environment_parsing():
    assert launch.torchrun_environment({}) is None
    assert launch.torchrun_environment({'PATH': '/bin'}) is None
    env = launch.torchrun_environment(dict(RANK='5', WORLD_SIZE='16', LOCAL_RANK='5', LOCAL_WORLD_SIZE='8',
                                           MASTER_ADDR='node0', MASTER_PORT='29500'))
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size) == (5, 16, 5, 8)
    assert (env.master_addr, env.master_port) == ('node0', '29500')
    env = launch.torchrun_environment(dict(RANK='9', WORLD_SIZE='16', LOCAL_RANK='1', MASTER_ADDR='n',
                                           MASTER_PORT='1'))
    assert env.local_world_size == 16  # Unknown: at most the world.
    bad = [
        (dict(RANK='0', WORLD_SIZE='2', LOCAL_RANK='0', MASTER_ADDR='n'), 'MASTER_PORT'),
        (dict(RANK='0'), 'WORLD_SIZE'),
        (dict(RANK='x', WORLD_SIZE='2', LOCAL_RANK='0', MASTER_ADDR='n', MASTER_PORT='1'), 'RANK'),
        (dict(RANK='2', WORLD_SIZE='2', LOCAL_RANK='0', MASTER_ADDR='n', MASTER_PORT='1'), 'RANK=2'),
        (dict(RANK='1', WORLD_SIZE='2', LOCAL_RANK='3', LOCAL_WORLD_SIZE='2', MASTER_ADDR='n', MASTER_PORT='1'),
         'LOCAL_RANK=3'),
    ]
    for environ, word in bad:
        with pytest.raises(launch.LaunchError, match=word):
            launch.torchrun_environment(environ)


def test_torchrun_world_size_sets_processes_and_batch_split(rect_data):
    environ = dict(RANK='3', WORLD_SIZE='4', LOCAL_RANK='1', LOCAL_WORLD_SIZE='2', MASTER_ADDR='n',
                   MASTER_PORT='1')
    flags = dict(outdir='x', data=rect_data, cfg='stylegan3-r', gpus=8, batch=32, gamma=12.4, device='cpu',
                 dry_run=True)
    c, desc, env, device_type = train.prepare_run(flags, environ=environ, cuda_available=False)
    assert env.rank == 3 and device_type == 'cpu'
    assert (c.num_gpus, c.batch_size, c.batch_gpu) == (4, 32, 8)
    assert desc.endswith('-gpus4-batch32-gamma12.4')


def test_devices():
    assert launch.resolve_device_type('auto', cuda_available=False) == 'cpu'
    assert launch.resolve_device_type('auto', cuda_available=True) == 'cuda'
    assert launch.resolve_device_type('cpu', cuda_available=True) == 'cpu'
    with pytest.raises(launch.LaunchError, match='CUDA is not available'):
        launch.resolve_device_type('cuda', cuda_available=False)
    launch.check_device_count('cpu', 8, cuda_count=0)  # CPU processes need no GPU.
    launch.check_cpu_processes_asked_for('cpu', 'cpu', 8)   # --device=cpu: several CPU processes are meant
    launch.check_cpu_processes_asked_for('auto', 'cpu', 1)
    with pytest.raises(launch.LaunchError, match='--gpus=8: this machine has no CUDA device.*add --device=cpu'):
        launch.check_cpu_processes_asked_for('auto', 'cpu', 8)   # upstream's --gpus=8 where no GPU is
    launch.check_device_count('cuda', 2, cuda_count=2)
    with pytest.raises(launch.LaunchError, match='has 2'):
        launch.check_device_count('cuda', 4, cuda_count=2)
    with pytest.raises(launch.LaunchError, match='has 2'):
        launch.check_device_count('cuda', 1, highest_local_rank=2, cuda_count=2)
    assert launch.backend_for('cuda') == 'nccl' and launch.backend_for('cpu') == 'gloo'
    assert str(launch.process_device('cuda', 3)) == 'cuda:3' and str(launch.process_device('cpu', 3)) == 'cpu'
    assert launch.file_init_method('/tmp/x').startswith('file://')


def recording_loop(run_dir, rank, num_gpus, device, **_options):
    """A training loop that checks torch.distributed and training_stats, then writes what it saw."""
    from torch_utils import training_stats
    total = torch.tensor([float(rank + 1)])
    torch.distributed.all_reduce(total)
    record = dict(rank=rank, num_gpus=num_gpus, device=device, total=float(total),
                  backend=str(torch.distributed.get_backend()), world=torch.distributed.get_world_size(),
                  stats_sync=str(training_stats._sync_device), stats_rank=training_stats._rank,
                  threads=torch.get_num_threads())
    with open(os.path.join(run_dir, f'rank{rank}.json'), 'w') as f:
        json.dump(record, f)


def test_two_cpu_processes_are_spawned_with_gloo(tmp_path):
    c = dict(run_dir=str(tmp_path), batch_size=4, device='cpu')
    launch.launch_local(c, 2, 'cpu', loop_fn=recording_loop)
    records = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(2)]
    for rank, record in enumerate(records):
        assert record['rank'] == rank and record['num_gpus'] == 2 and record['world'] == 2
        assert record['device'] == 'cpu' and record['backend'] == 'gloo' and record['total'] == 3.0
        assert record['stats_sync'] == 'cpu' and record['stats_rank'] == rank
        assert record['threads'] == max(1, (os.cpu_count() or 1) // 2)


_TORCHRUN_DRIVER = r'''
import json, os, sys, types
sys.path.insert(0, {root!r})
import torch
def training_loop(run_dir, rank, num_gpus, device, batch_size, batch_gpu, **_options):
    total = torch.tensor([float(rank + 1)])
    torch.distributed.all_reduce(total)
    with open(os.path.join({results!r}, 'rank%d.json' % rank), 'w') as f:
        json.dump(dict(run_dir=run_dir, rank=rank, num_gpus=num_gpus, device=device, batch_size=batch_size,
                       batch_gpu=batch_gpu, total=float(total)), f)
sys.modules['training.training_loop'] = types.SimpleNamespace(training_loop=training_loop)
import train
train.main(sys.argv[1:])
'''


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_torchrun_processes_share_one_run_dir(rect_data, tmp_path):
    outdir, results = tmp_path / 'runs', tmp_path / 'results'
    results.mkdir()
    driver = _TORCHRUN_DRIVER.format(root=ROOT, results=str(results))
    args = shlex.split(SG3_README.format(outdir=outdir, data=rect_data)) + ['--device=cpu', '--metrics=none',
                                                                           '--batch=8']
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE='2', LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE='2',
                   MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
        procs.append(subprocess.Popen([sys.executable, '-c', driver] + args, env=env, cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    records = [json.loads((results / f'rank{r}.json').read_text()) for r in range(2)]
    run_dirs = os.listdir(outdir)
    assert len(run_dirs) == 1 and run_dirs[0] == '00000-stylegan3-r-SHHQ-1-gpus2-batch8-gamma12.4'
    for rank, record in enumerate(records):
        assert record['run_dir'] == str(outdir / run_dirs[0])
        assert (record['rank'], record['num_gpus'], record['device'], record['total']) == (rank, 2, 'cpu', 3.0)
        assert (record['batch_size'], record['batch_gpu']) == (8, 4)  # The batch split across WORLD_SIZE.
    options = json.loads((outdir / run_dirs[0] / 'training_options.json').read_text())
    assert options['num_gpus'] == 2
    assert 'Training options:' in outputs[0] and 'Training options:' not in outputs[1]  # Rank 0 prints.
    assert 'WORLD_SIZE' in outputs[0]  # --gpus=8 is overridden, and says so.


# ----------------------------------------------------------------------------
# A real (tiny) training run on the CPU.


def test_tiny_cpu_training_run_end_to_end(rect_data, tmp_path, monkeypatch):
    pytest.importorskip('training.training_loop')
    legacy = pytest.importorskip('legacy')
    outdir = tmp_path / 'runs'
    result = invoke(f'--outdir={outdir} --data={rect_data} --cfg=stylegan2 --cbase=512 --cmax=32 --map-depth=2 '
                    '--batch=4 --gamma=1 --mbstd-group=2 --kimg=0.008 --snap=1 --metrics=none --aug=noaug '
                    '--workers=1 --device=cpu --grid=3x2')
    assert result.exit_code == 0, result.output
    assert 'Note: training_loop takes no' not in result.output  # Every option reaches the loop.
    (run_dir,) = outdir.iterdir()
    assert run_dir.name == '00000-stylegan2-SHHQ-1-gpus1-batch4-gamma1'
    names = set(os.listdir(run_dir))
    assert {'training_options.json', 'log.txt', 'stats.jsonl', 'network-snapshot-000000.pkl'} <= names
    for grid in ('reals.png', 'fakes_init.png', 'fakes000000.png'):    # --grid=3x2 of 32x64 images
        assert PIL.Image.open(run_dir / grid).size == (3 * 32, 2 * 64), grid
    stats = [json.loads(line) for line in (run_dir / 'stats.jsonl').read_text().splitlines()]
    assert stats[-1]['Progress/kimg']['mean'] == pytest.approx(0.008)
    data = legacy.load_network_pkl(str(run_dir / 'network-snapshot-000000.pkl'))
    G = data['G_ema']
    with torch.no_grad():
        img = G(torch.zeros([1, G.z_dim]), torch.zeros([1, G.c_dim]), noise_mode='const')
    assert list(img.shape) == [1, 3, 64, 32]  # A 2:1 network, as --square=False (default) asks.
    assert torch.isfinite(img).all()


def test_resume_file_that_does_not_load_or_fit_is_one_line(tmp_path):
    """A corrupt --resume pickle, or one for another image size, stops before any run dir exists."""
    import subprocess
    import sys
    import torch
    import legacy
    from training import networks_stylegan2
    data = tmp_path / 'data'
    data.mkdir()
    for i in range(4):
        PIL.Image.fromarray(np.full((64, 32, 3), 40 * i, np.uint8)).save(data / f'{i}.png')
    corrupt = tmp_path / 'corrupt.pkl'
    corrupt.write_bytes(b'\x80\x04not a pickle')
    torch.manual_seed(0)
    G = networks_stylegan2.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=32, img_channels=3,
                                     channel_base=128, channel_max=16, square=False)
    other_size = tmp_path / 'network-snapshot-000010.pkl'
    legacy.save_network_pkl(dict(G=G, G_ema=G, D=None), str(other_size))
    for resume, message in ((corrupt, 'corrupt.pkl'), (other_size, 'makes 32x16 images, the dataset has 64x32')):
        result = subprocess.run([sys.executable, os.path.join(ROOT, 'train.py'), '--outdir', str(tmp_path / 'runs'),
                                 '--data', str(data), '--cfg', 'stylegan2', '--kimg', '1', '--metrics', 'none',
                                 '--resume', str(resume), '--device', 'cpu'],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result.stderr
        error_lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(error_lines) == 1 and error_lines[0].startswith('Error: --resume=') and message in error_lines[0]
        assert 'Traceback' not in result.stderr
        assert not (tmp_path / 'runs').exists() or not any((tmp_path / 'runs').iterdir())
