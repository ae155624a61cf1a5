"""Values derived from a tensor (a transformed weight, a filter's taps), computed once per
version of the tensor and dropped with it.

The layers pass the same weights and filter buffers on every call, and deriving from them
costs as much as the small layers' work. An in-place update bumps the tensor's version and
so makes a new value. Only for tensors that need no gradient: a value keeps no graph.
"""

import weakref

# Keyed by id: tensors compare elementwise, so they cannot be dictionary keys themselves.
_table = {}


def derived(tensor, key, compute):
    """``compute()``, made once per (``tensor``'s current version, ``key``)."""
    entry = _table.get(id(tensor))
    if entry is None or entry[0]() is not tensor or entry[1] != tensor._version:
        # The table is bound now: at interpreter exit the module's globals may already be gone.
        forget = lambda _, key=id(tensor), table=_table: table.pop(key, None)  # noqa: E731
        entry = (weakref.ref(tensor, forget), tensor._version, {})
        _table[id(tensor)] = entry
    values = entry[2]
    if key not in values:
        values[key] = compute()
    return values[key]
