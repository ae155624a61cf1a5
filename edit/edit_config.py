"""Upstream's per-attribute editing defaults, as data (StyleGAN-Human's edit/edit_config.py).

interface_gan: [strength]                   negative = shorter, positive = longer
stylespace:    [S-space layer, strength, channel threshold]
sefa:          [[w+ layers], strength]
"""

from typing import Dict, Optional, Tuple

attr_dict = dict(
    interface_gan={
        'upper_length': [-1],
        'bottom_length': [1],
    },
    stylespace={
        'upper_length': [5, -5, 0.0028],
        'bottom_length': [3, 5, 0.003],
    },
    sefa={
        'upper_length': [[4, 5, 6, 7], 5],
        'bottom_length': [[4, 5, 6, 7], 5],
    },
)

KNOWN_ATTRIBUTES = tuple(sorted(attr_dict['interface_gan']))


def load_config(directions_dir: Optional[str] = None) -> Tuple[Dict[str, Dict[str, list]], Tuple[str, ...]]:
    """(attr_dict merged with DIRECTIONS_DIR/edit_config.json, the known attribute names)."""
    import copy
    import json
    import os
    merged = copy.deepcopy(attr_dict)
    path = os.path.join(directions_dir, 'edit_config.json') if directions_dir else None
    if path and os.path.isfile(path):
        with open(path) as f:
            for method, entries in json.load(f).items():
                merged.setdefault(method, {}).update(entries)
    names = sorted({name for entries in merged.values() for name in entries})
    return merged, tuple(names)
