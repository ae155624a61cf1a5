"""stylegan_human.request_limits: counts are checked from the text, before any list is made."""

import numpy as np
import pytest

from dnnlib.errors import InputError
from stylegan_human import request_limits
from stylegan_human.request_limits import RequestLimits


@pytest.mark.parametrize('text, size', [('0-3,7', 5), ('1-100000', 100000), ('5', 1), (' 2 - 4 , ', 3),
                                        ('0-10000000000', 10000000001), ('3-1', 0), ('x', None), ('', 0)])
def test_range_size_counts_without_expanding(text, size):
    assert request_limits.range_size(text) == size


def test_mix_request_limits_each_list():
    limits = RequestLimits(mix_rows=16, mix_cols=2)
    assert limits.mix_request('1,3-4', '7', '0-2') == ([1, 3, 4], [7], [0, 1, 2])
    assert limits.mix_request([1, 3], (7,), [0]) == ([1, 3], [7], [0])      # already parsed: checked again
    with pytest.raises(InputError, match=r'^Style mixing: at most 16 row seeds \(got 100000\)$'):
        limits.mix_request('1-100000', '1', '0')
    with pytest.raises(InputError, match=r'^Style mixing: at most 2 column seeds \(got 3\)$'):
        limits.mix_request('1', [1, 2, 3], '0')
    with pytest.raises(InputError, match='range .3-1. ends before it starts'):
        limits.mix_request('3-1', '1', '0')
    with pytest.raises(InputError, match='not -5'):
        limits.mix_request('-5', '1', '0')


def test_steps_seeds_and_photos():
    limits = RequestLimits(interp_steps=10, photo_megapixels=1)
    assert limits.check_interp_steps(10.0) == 10 and limits.check_interp_steps('3') == 3
    with pytest.raises(InputError, match=r'^Interpolate: at most 10 steps \(got 11\)$'):
        limits.check_interp_steps(11)
    for bad in (None, 'ten', 1.5, float('nan'), float('inf')):
        with pytest.raises(InputError, match='whole number'):
            limits.check_interp_steps(bad)
    assert request_limits.check_seed(2 ** 32 - 1, 'Generate') == 2 ** 32 - 1
    with pytest.raises(InputError, match=r'^Generate: seed must be between 0 and 4294967295, not 4294967296$'):
        request_limits.check_seed(2 ** 32, 'Generate')
    limits.check_photo(np.zeros((1000, 1000, 3), np.uint8))
    with pytest.raises(InputError, match='at most 1 megapixels'):
        limits.check_photo(np.zeros((1000, 1001, 3), np.uint8))


def test_limits_must_be_positive():
    with pytest.raises(InputError, match='mix_rows'):
        RequestLimits(mix_rows=0)
