"""Weight files of the perceptual and encoder networks, by name: where they come from, where they live.

Nothing is downloaded unless asked: ``resolve(name_or_path)`` returns a local
file (a path, or a name already in the download cache) and otherwise raises
:class:`WeightsMissing` saying which file and how to get it; ``check_present`` names every
missing file of a run in one message. Download by name::

    python -m pti.weight_files                 # the table
    python -m pti.weight_files download lpips_alex_lin
"""

import dataclasses
import os
import sys
from typing import Optional, Sequence, Tuple

from dnnlib import util
from dnnlib.errors import MissingFileError


class WeightsMissing(MissingFileError):
    """A weight file is not here; the message says which, from where, and how to fetch it."""


@dataclasses.dataclass(frozen=True)
class WeightFile:
    name: str
    url: str
    what: str


_LPIPS_BASE = 'https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1'
FILES = {f.name: f for f in [
    WeightFile('vgg16_nvidia', 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt',
               "NVIDIA's VGG16 feature network (TorchScript), used by the W projection"),
    WeightFile('lpips_alex_lin', f'{_LPIPS_BASE}/alex.pth', 'LPIPS v0.1 linear layers for AlexNet'),
    WeightFile('lpips_vgg_lin', f'{_LPIPS_BASE}/vgg.pth', 'LPIPS v0.1 linear layers for VGG16'),
    WeightFile('alexnet_torchvision', 'https://download.pytorch.org/models/alexnet-owt-7be5be79.pth',
               "torchvision's ImageNet AlexNet (LPIPS 'alex' backbone)"),
    WeightFile('vgg16_torchvision', 'https://download.pytorch.org/models/vgg16-397923af.pth',
               "torchvision's ImageNet VGG16 (LPIPS 'vgg' backbone)"),
]}


def resolve(name_or_path: str, option: Optional[str] = None, download: bool = False) -> str:
    """A local file for a path or a known name; WeightsMissing (one line) when it is not here."""
    if os.path.isfile(name_or_path):
        return name_or_path
    entry = FILES.get(name_or_path)
    if entry is None:
        known = ', '.join(FILES)
        raise WeightsMissing(f'{name_or_path}: no such file, and not a known weight name ({known})')
    if download:
        return util.open_url(entry.url, return_filename=True)
    cached = util.find_cached(entry.url)
    if cached is None:
        how = f' or pass a file with {option}' if option else ''
        raise WeightsMissing(f'{entry.what} ({entry.name}) is not downloaded: run '
                             f'"python -m pti.weight_files download {entry.name}" (from {entry.url}){how}')
    return cached


def check_present(wanted: Sequence[Tuple[str, Optional[str]]], other_problems: Sequence[str] = ()) -> None:
    """Raise one WeightsMissing naming every file of ``wanted`` that is not here, each with its download command.

    wanted: (name or path, the option that takes a file instead); other_problems: lines for
    files that have no download name (e.g. the e4e encoder), put in the same message.
    Nothing is downloaded."""
    problems, to_download = [], []
    for name_or_path, option in wanted:
        if os.path.isfile(name_or_path):
            continue
        entry = FILES.get(name_or_path)
        if entry is None:
            given = f'{option} ' if option else ''
            problems.append(f'{given}{name_or_path}: no such file, and not a known weight name '
                            f'(python -m pti.weight_files lists them)')
        elif util.find_cached(entry.url) is None and entry.name not in to_download:
            to_download.append(entry.name)
            how = f', or pass a file with {option}' if option else ''
            problems.append(f'{entry.name} ({entry.what}): python -m pti.weight_files download {entry.name}{how}')
    problems += list(other_problems)
    if not problems:
        return
    message = f'{len(problems)} weight file(s) missing: ' + '; '.join(problems)
    if len(to_download) > 1:
        message += f'. To download these at once: python -m pti.weight_files download {" ".join(to_download)}'
    raise WeightsMissing(message)


def main(argv: Sequence[str]) -> int:
    """``download NAME...`` fetches each file (a failure is one line; the others still go); else the table."""
    if len(argv) >= 2 and argv[0] == 'download':
        unknown = [name for name in argv[1:] if name not in FILES]
        if unknown:
            print(f'Error: unknown name {unknown[0]!r}; known: {", ".join(FILES)}', file=sys.stderr)
            return 1
        status = 0
        for name in argv[1:]:
            try:
                print(util.open_url(FILES[name].url, return_filename=True))
            except util.DownloadError as err:
                print(f'Error: {name}: {err}', file=sys.stderr)
                status = 1
        return status
    for entry in FILES.values():
        state = 'cached' if util.find_cached(entry.url) else 'not downloaded'
        print(f'{entry.name:22s} {state:15s} {entry.what}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
