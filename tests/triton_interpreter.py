"""Run the Triton kernels on CPU tensors in tests (Triton's interpreter).

Triton chooses between compiling and interpreting once per process, when it is imported;
importing this module (test modules do it at collection, before any test runs) chooses the
interpreter for the pytest process, leaving the environment of child processes untouched.
If Triton was imported before in compiled mode, the kernel tests cannot run here: each
kernel test module then runs itself in a fresh process instead (``fresh_process_test``).
"""

import importlib.util
import os
import subprocess
import sys

import pytest

from torch_utils.ops import triton_ops

INSTALLED = importlib.util.find_spec('triton') is not None
ACTIVE = INSTALLED and triton_ops.enable_interpreter()

# For a test module: skipped without Triton; in-process tests skipped (and the module run in a
# fresh process by ``fresh_process_test``) when Triton was imported compiled before.
module_marks = [pytest.mark.skipif(not INSTALLED, reason="triton is not installed (pip install -e '.[test]' on Linux)")]


@pytest.fixture
def interpreter():
    """Use in every in-process kernel test: skips it when the interpreter could not be chosen here."""
    if not ACTIVE:
        pytest.skip('Triton was imported in compiled mode before this module: see test_in_a_fresh_process')


@pytest.fixture
def kernels(interpreter):
    """The ops' default dispatch with the Triton kernels taking CPU tensors; counts the kernel launches."""
    from torch_utils.ops.triton_ops import bias_act as kernel_bias_act
    from torch_utils.ops.triton_ops import resample
    launches = {'bias_act': 0, 'resample': 0}
    original_launch, original_run = kernel_bias_act._launch, resample.TritonExecutor.run

    def count_launch(*args, **kwargs):
        launches['bias_act'] += 1
        return original_launch(*args, **kwargs)

    def count_run(*args, **kwargs):
        launches['resample'] += 1
        return original_run(*args, **kwargs)
    kernel_bias_act._launch = count_launch
    resample.TritonExecutor.run = staticmethod(count_run)
    try:
        with triton_ops.triton_kernels():
            yield launches
    finally:
        kernel_bias_act._launch, resample.TritonExecutor.run = original_launch, staticmethod(original_run)


def fresh_process_test(path):
    """A test running the module at ``path`` in a fresh process, for when this process cannot interpret."""
    @pytest.mark.skipif(ACTIVE, reason='the kernel tests run in this process')
    def test_in_a_fresh_process():
        env = dict(os.environ, TRITON_INTERPRET='1')
        done = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', str(path)], env=env,
                              capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(path)))
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return test_in_a_fresh_process
