"""Miscellaneous helpers: attribute dictionaries, objects by name, time formatting, cache paths.

URL opening and downloads live in :mod:`dnnlib.downloads`; their public names are re-exported here
(NVIDIA's code calls ``dnnlib.util.open_url``).
"""

# Downloads have a module of their own; their public names, and the cache folder, are dnnlib.util's too.
from dnnlib.downloads import (DownloadError, OfflineError, find_cached, is_url, make_cache_dir_path,  # noqa: F401
                              open_url)


class EasyDict(dict):
    """A dict whose keys can also be read and written as attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        del self[name]


def get_obj_by_name(name):
    """The object a dotted name like ``training.dataset.ImageFolderDataset`` refers to.

    The longest importable module prefix is imported and the rest are attributes.
    """
    import importlib
    parts = name.split('.')
    for split in range(len(parts) - 1, 0, -1):
        module_name = '.'.join(parts[:split])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name is not None and not module_name.startswith(err.name):
                raise  # the module exists, one of its own imports is missing
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            continue
        return obj
    raise ValueError(f'cannot find {name!r}: no such module or attribute')


def construct_class_by_name(*args, class_name, **kwargs):
    """``get_obj_by_name(class_name)(*args, **kwargs)``: how configs name the classes to build."""
    return get_obj_by_name(class_name)(*args, **kwargs)


def format_time(seconds):
    """Compact duration: '42s', '3m 07s', '2h 05m 09s', '4d 03h 12m'."""
    s = int(round(seconds))
    if s < 60:
        return f'{s}s'
    if s < 60 * 60:
        return f'{s // 60}m {s % 60:02d}s'
    if s < 24 * 60 * 60:
        return f'{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s'
    return f'{s // 86400}d {(s // 3600) % 24:02d}h {(s // 60) % 60:02d}m'
