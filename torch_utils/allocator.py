"""Keep freed memory for reuse instead of handing it back to the system (glibc only).

Generation allocates and frees tensors of tens to hundreds of MB in every
layer. glibc serves such blocks with mmap and unmaps them on free, so the next
layer's tensor comes back as fresh pages that the kernel must fault in and zero:
on CPU that costs as much as some of the convolutions. Raising the mmap and trim
thresholds makes freed blocks reusable; the price is that the process keeps its
peak memory until it exits. The same effect, for any program, from the shell:

    export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=17179869184
"""

import ctypes
import ctypes.util
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1 << 30        # blocks below 1 GiB come from the reusable heap
_TRIM_THRESHOLD = (1 << 31) - 1  # never give free heap back while running


def reuse_freed_memory():
    """Set the thresholds in this process; True when they took effect (False off glibc)."""
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and \
            bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    except (OSError, AttributeError):
        return False
