"""calc_metrics.py: results written for good inputs, one line and exit code 1 for bad ones.

A tiny 2:1 generator pickle, a folder of PNGs and a stand-in feature network saved
as a TorchScript file (its builder registered in ``detector_files.BUILDERS``), with
the metrics' sample counts lowered so that each run takes a second or two.
"""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

import calc_metrics
import dnnlib
import legacy
from helpers import one_line_failure
from metrics import detector_files
from metrics import metric_utils
from torch_utils import precision
from test_metrics import HEIGHT, StandInDetector, dataset_kwargs, tiny_generator, write_dataset
from test_metrics import write_torchscript_archive

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL_COUNTS = dict(num_gen=12, num_samples=8, num_subsets=3, max_subset_size=12, num_splits=2)


def _build_standin(tensors, where):
    detector = StandInDetector()
    detector.load_state_dict({'proj': tensors['proj'], 'logits': tensors['logits']})
    return detector


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'cache'))  # Dataset features and downloads stay here.
    monkeypatch.delenv('METRICS_INCEPTION_FILE', raising=False)
    monkeypatch.delenv('METRICS_VGG16_FILE', raising=False)
    monkeypatch.setitem(detector_files.BUILDERS, 'inception-2015-12-05', _build_standin)
    monkeypatch.setitem(detector_files.BUILDERS, 'vgg16', _build_standin)
    monkeypatch.setattr(metric_utils.MetricOptions, 'sized',
                        lambda self, **defaults: {k: SMALL_COUNTS.get(k, v) for k, v in defaults.items()})
    data = write_dataset(tmp_path / 'data', num_images=16)
    network = tmp_path / 'network.pkl'
    legacy.save_network_pkl({'G_ema': tiny_generator(), 'training_set_kwargs': None}, network)
    detector = tmp_path / 'standin-inception.pt'
    write_torchscript_archive(StandInDetector().state_dict(), detector)
    return dnnlib.EasyDict(tmp=tmp_path, data=data, network=str(network), detector=str(detector))


def run(*args):
    return CliRunner().invoke(calc_metrics.calc_metrics, [str(a) for a in args])


def json_lines(output):
    """The metric records printed (one JSON object per line)."""
    records = []
    for line in output.splitlines():
        if line.startswith('{"results"'):
            records.append(json.loads(line))
    return records


def test_metrics_of_a_pretrained_pickle_are_printed(setup):
    result = run('--network', setup.network, '--metrics', 'fid50k_full,kid50k_full', '--data', setup.data,
                 '--detector', setup.detector, '--verbose', 'false', '--device', 'cpu')
    assert result.exit_code == 0, result.output
    records = json_lines(result.output)
    assert [r['metric'] for r in records] == ['fid50k_full', 'kid50k_full']
    assert records[0]['results']['fid50k_full'] > 0 and records[0]['snapshot_pkl'] == setup.network
    assert not any(name.startswith('metric-') for name in os.listdir(setup.tmp))  # Not a run folder: printed only.
    assert len(os.listdir(setup.tmp / 'cache' / 'gan-metrics')) == 2  # Dataset features cached per metric.


def test_a_training_snapshot_reports_into_its_run_folder(setup, monkeypatch):
    run_dir = setup.tmp / 'run'
    run_dir.mkdir()
    (run_dir / 'training_options.json').write_text('{}')
    snapshot = run_dir / 'network-snapshot-000010.pkl'
    kwargs = dataset_kwargs(setup.data)
    del kwargs['square']  # As an upstream pickle stores them; the network's shape decides.
    legacy.save_network_pkl({'G_ema': tiny_generator(), 'training_set_kwargs': dict(kwargs)}, snapshot)
    vgg = setup.tmp / 'standin-vgg16.pt'
    write_torchscript_archive(StandInDetector(seed=3).state_dict(), vgg)
    monkeypatch.setenv('METRICS_VGG16_FILE', str(vgg))
    result = run('--network', snapshot, '--metrics', 'pr50k3_full,ppl2_wend', '--device', 'cpu')  # verbose
    assert result.exit_code == 0, result.output
    assert 'Dataset options:' in result.output and 'Calculating pr50k3_full...' in result.output
    for metric in ('pr50k3_full', 'ppl2_wend'):
        lines = (run_dir / f'metric-{metric}.jsonl').read_text().splitlines()
        assert len(lines) == 1
        record = json.loads(lines[0])
        assert record['snapshot_pkl'] == 'network-snapshot-000010.pkl' and record['metric'] == metric
    record = json.loads((run_dir / 'metric-pr50k3_full.jsonl').read_text())
    assert 0 <= record['results']['pr50k3_full_precision'] <= 1


def test_bf16_metrics_are_computed_in_bf16_and_say_so(setup, monkeypatch):
    monkeypatch.setattr(precision, 'native_bf16', lambda device: True)   # whatever CPU runs the tests
    common = ('--network', setup.network, '--metrics', 'fid50k_full', '--data', setup.data,
              '--detector', setup.detector, '--verbose', 'false', '--device', 'cpu')
    fp32, bf16 = (run(*common, '--precision', name) for name in ('fp32', 'bf16'))
    assert fp32.exit_code == 0 and bf16.exit_code == 0, fp32.output + bf16.output
    (fp32_record,), (bf16_record,) = json_lines(fp32.output), json_lines(bf16.output)
    assert 'precision' not in fp32_record                    # upstream's record, unchanged
    assert bf16_record['precision'] == 'bf16'
    # The generated images differ a little, so the distance does too.
    assert bf16_record['results']['fid50k_full'] != fp32_record['results']['fid50k_full']
    assert bf16_record['results']['fid50k_full'] == pytest.approx(fp32_record['results']['fid50k_full'], rel=0.2)


def test_bf16_without_native_support_is_one_line_and_auto_keeps_fp32(setup, monkeypatch):
    monkeypatch.setattr(precision, 'native_bf16', lambda device: False)
    common = ('--network', setup.network, '--metrics', 'fid50k_full', '--data', setup.data,
              '--detector', setup.detector, '--verbose', 'false', '--device', 'cpu')
    one_line_failure(run(*common, '--precision', 'bf16'), 'bf16', 'fp32')
    auto = run(*common, '--precision', 'auto')
    assert auto.exit_code == 0, auto.output
    assert 'precision' not in json_lines(auto.output)[0] and 'computing in fp32' in auto.output


def test_mirror_and_metric_none(setup):
    result = run('--network', setup.network, '--metrics', 'none', '--data', setup.data, '--mirror', '1',
                 '--device', 'cpu')
    assert result.exit_code == 0, result.output
    assert '"xflip": true' in result.output and json_lines(result.output) == []


@pytest.mark.parametrize('case', ['metric', 'network', 'data', 'data_size', 'detector', 'offline', 'gpus',
                                  'no_data'])
def test_bad_inputs_give_one_line_and_exit_code_1(setup, monkeypatch, case):
    good = dict(network=setup.network, metrics='fid50k_full', data=setup.data, detector=setup.detector)
    needles = ()
    if case == 'metric':
        good['metrics'] = 'fid50k_full,fid5k'
        needles = ("unknown metric 'fid5k'", 'fid50k_full')
    elif case == 'network':
        good['network'] = setup.tmp / 'missing.pkl'
        needles = ('missing.pkl', 'not found')
    elif case == 'data':
        good['data'] = setup.tmp / 'no-such-folder'
        needles = ('--data', 'no-such-folder')
    elif case == 'data_size':
        other = write_dataset(setup.tmp / 'other', num_images=2)
        from PIL import Image
        for name in os.listdir(other):
            path = os.path.join(other, name)
            Image.open(path).resize((HEIGHT, HEIGHT * 2)).save(path)
        good['data'] = other
        needles = ('--data', 'resolution=32')
    elif case == 'detector':
        good['detector'] = setup.tmp / 'nope.pt'
        needles = ('--detector', 'nope.pt')
    elif case == 'offline':
        del good['detector']

        def offline(url, **_kwargs):
            raise dnnlib.util.DownloadError(url, 'no network (cannot resolve host)')
        monkeypatch.setattr(dnnlib.util, 'open_url', offline)
        needles = ('inception-2015-12-05', 'https://', '--detector PATH', 'METRICS_INCEPTION_FILE')
    elif case == 'gpus':
        good['gpus'] = 0
        needles = ('--gpus',)
    elif case == 'no_data':
        del good['data']
        needles = ('--data',)
    args = []
    for key, value in good.items():
        args += [f'--{key}', value]
    one_line_failure(run(*args, '--verbose', 'false', '--device', 'cpu'), *needles)


def test_the_script_itself_exits_1_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'calc_metrics.py'), '--network', tmp_path / 'x.pkl',
                           '--metrics', 'fid50k'], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('Error:') and 'x.pkl' in lines[0], proc.stderr
