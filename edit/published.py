"""StyleGAN-Human's published direction files, fetched by attribute name like the model zoo's networks.

``direction_root(attr, folder, methods)`` returns a folder in upstream's ``latent_direction/``
layout holding the files the chosen methods need for ``attr``: ``folder`` itself when it has
such files for ``attr`` (your own directions), else a copy in the download cache, fetched
once from the upstream repository (or from ``$STYLEGAN_HUMAN_DIRECTIONS_URL_BASE``, a
mirror of that folder). Only the chosen methods' files are fetched.
"""

import os
import shutil
from typing import List, Optional, Sequence

from dnnlib import util

from .edit_config import KNOWN_ATTRIBUTES, attr_dict

ENV_URL_BASE = 'STYLEGAN_HUMAN_DIRECTIONS_URL_BASE'
UPSTREAM_URL_BASE = 'https://raw.githubusercontent.com/stylegan-human/StyleGAN-Human/main/latent_direction'
PUBLISHED_S_LAYERS = 16        # style_vect_mean_0.pkl ... style_vect_mean_15.pkl
ALL_METHODS = ('interfacegan', 'stylespace', 'sefa')


def files_for(attr: str, methods: Sequence[str] = ALL_METHODS) -> List[str]:
    """Relative paths (upstream layout) of the published files that ``methods`` need for ``attr``."""
    unknown = [m for m in methods if m not in ALL_METHODS]
    if unknown:
        raise ValueError(f'unknown editing method {unknown[0]!r}; known: {", ".join(ALL_METHODS)}')
    layer = attr_dict['stylespace'][attr][0]
    files = []
    if 'interfacegan' in methods:      # a vector for every S layer
        files += [f'ss/{attr}/style_vect_mean_{i}.pkl' for i in range(PUBLISHED_S_LAYERS)]
    if 'stylespace' in methods:        # one layer's vector and its channel statistics
        files += [f'ss/{attr}/style_vect_mean_{layer}.pkl', f'ss_statics/{attr}_statis/{layer}/statis.csv']
    if 'sefa' in methods:
        files.append(f'sefa/{attr}.pt')
    return list(dict.fromkeys(files))


def check_attribute(attr: str) -> None:
    if attr not in KNOWN_ATTRIBUTES:
        raise ValueError(f'unknown attribute {attr!r}; known: {", ".join(KNOWN_ATTRIBUTES)}')


def _holds(folder: str, attr: str, methods: Sequence[str]) -> bool:
    """Whether ``folder`` has its own files for ``attr`` and one of ``methods`` (then they are used as they are)."""
    has_ss = os.path.isdir(os.path.join(folder, 'ss', attr))
    has_sefa = os.path.isfile(os.path.join(folder, 'sefa', f'{attr}.pt'))
    return (has_ss and ('interfacegan' in methods or 'stylespace' in methods)) or (has_sefa and 'sefa' in methods)


def direction_root(attr: str, folder: Optional[str] = 'latent_direction',
                   methods: Sequence[str] = ALL_METHODS) -> str:
    """A folder with ``attr``'s files for ``methods``: ``folder`` if it has its own, else the downloaded copy."""
    check_attribute(attr)
    if folder and _holds(folder, attr, methods):
        return folder
    wanted = files_for(attr, methods)
    cache = util.make_cache_dir_path('latent_direction')
    missing = [rel for rel in wanted if not os.path.isfile(os.path.join(cache, rel))]
    base = os.environ.get(ENV_URL_BASE, UPSTREAM_URL_BASE).rstrip('/')
    for rel in missing:
        url = f'{base}/{rel}' if '://' in base else os.path.join(base, rel)
        source = util.open_url(url, return_filename=True, verbose=False)
        target = os.path.join(cache, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = target + '.tmp'
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    return cache
