"""Process-wide tuning for a script run from the shell, in one place, done only when asked.

Libraries, tests and notebooks never call this: it changes how the whole process
allocates and collects memory, which is right for a command that runs and exits and
wrong for a long-lived interpreter shared with other code.
"""

import atexit
import gc

from torch_utils import allocator


def start_script() -> None:
    """Tune this process for a command-line run: call first thing under ``if __name__ == '__main__'``.

    - Freed memory is kept for reuse (``allocator.reuse_freed_memory``): generation allocates
      and frees large tensors in every layer, and fresh pages cost as much as some convolutions.
    - Everything imported so far (torch alone creates over 10^5 objects that live until exit) is
      exempted from the cyclic garbage collector, now and again at exit, which saves each full
      collection, and the final one, from walking them (about half a second on a 2-core CPU).
    """
    allocator.reuse_freed_memory()
    gc.freeze()
    atexit.register(gc.freeze)
