"""StyleGAN-Human's published direction files, fetched by attribute name like the model zoo's networks.

``direction_root(attr, folder)`` returns a folder in upstream's ``latent_direction/``
layout holding the files for ``attr``: ``folder`` itself when it has files for
``attr`` (your own directions), else a copy in the download cache, fetched once from the upstream repository (or from
``$STYLEGAN_HUMAN_DIRECTIONS_URL_BASE``, a mirror of that folder).
"""

import os
import shutil
from typing import List, Optional

from dnnlib import util

from .edit_config import KNOWN_ATTRIBUTES, attr_dict

ENV_URL_BASE = 'STYLEGAN_HUMAN_DIRECTIONS_URL_BASE'
UPSTREAM_URL_BASE = 'https://raw.githubusercontent.com/stylegan-human/StyleGAN-Human/main/latent_direction'
PUBLISHED_S_LAYERS = 16        # style_vect_mean_0.pkl ... style_vect_mean_15.pkl


def files_for(attr: str) -> List[str]:
    """Relative paths (upstream layout) of the published files for ``attr``."""
    layer = attr_dict['stylespace'][attr][0]
    return ([f'ss/{attr}/style_vect_mean_{i}.pkl' for i in range(PUBLISHED_S_LAYERS)]
            + [f'ss_statics/{attr}_statis/{layer}/statis.csv', f'sefa/{attr}.pt'])


def check_attribute(attr: str) -> None:
    if attr not in KNOWN_ATTRIBUTES:
        raise ValueError(f'unknown attribute {attr!r}; known: {", ".join(KNOWN_ATTRIBUTES)}')


def direction_root(attr: str, folder: Optional[str] = 'latent_direction') -> str:
    """A folder with ``attr``'s direction files: ``folder`` if it has any for ``attr``, else the downloaded copy."""
    check_attribute(attr)
    if folder and (os.path.isdir(os.path.join(folder, 'ss', attr))
                   or os.path.isfile(os.path.join(folder, 'sefa', f'{attr}.pt'))):
        return folder
    wanted = files_for(attr)
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
