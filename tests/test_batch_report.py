"""stylegan_human.batch_report: a batch goes on past bad items and stops cleanly when asked."""

import pytest

from dnnlib.errors import FileFormatError, InputError, UnavailableError
from stylegan_human.batch_report import BatchReport, run_batch


def test_bad_items_are_reported_and_the_rest_go_on(capsys):
    def process(path, name):
        if name == 'b':
            raise FileFormatError('not an image')
        if name == 'c':
            raise InputError('no person found')
    report = run_batch(['a', 'b', 'c', 'd'], '.', process, desc='x', progress=False)
    assert report.done == 2 and report.failures == [('b', 'not an image'), ('c', 'no person found')]
    with pytest.raises(SystemExit) as info:
        report.finish('aligned')
    assert info.value.code == 1
    assert 'aligned 2 of 4 image(s); 2 failed:' in capsys.readouterr().out


def test_a_missing_backend_stops_the_batch_instead():
    def process(path, name):
        raise UnavailableError('MediaPipe is not installed')
    with pytest.raises(UnavailableError):
        run_batch(['a', 'b'], '.', process, desc='x', progress=False)


def test_stop_finishes_the_item_in_hand_and_leaves_the_rest(capsys):
    seen = []
    report = run_batch(['a', 'b', 'c', 'd', 'e'], '.', lambda path, name: seen.append(name), desc='x',
                       progress=False, stop=lambda: len(seen) >= 2)
    assert seen == ['a', 'b'] and report.done == 2 and report.left == 3
    with pytest.raises(SystemExit) as info:
        report.finish('whitened', 'out')
    assert info.value.code == 130
    assert 'Interrupted: 3 image(s) not reached' in capsys.readouterr().out
