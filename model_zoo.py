"""The model zoo on the command line: ``python model_zoo.py`` prints the table of published
networks, ``python model_zoo.py download NAME...`` fetches them and prints their paths.

The zoo itself (names, sources, download) is :mod:`stylegan_human.zoo`; its names are
re-exported here for code written against this module.
"""

import sys

from dnnlib import util
from stylegan_human.zoo import *  # noqa: F401,F403 - the public names of this module before it moved
from stylegan_human.zoo import ENV_URL_BASE, MODELS, describe_models, resolve_network  # noqa: F401


def main(argv=None) -> int:
    """``python model_zoo.py`` prints the table; ``python model_zoo.py download NAME...`` fetches."""
    import argparse
    parser = argparse.ArgumentParser(description='StyleGAN-Human model zoo')
    sub = parser.add_subparsers(dest='command')
    sub.add_parser('list', help='print the table of models (the default)')
    get = sub.add_parser('download', help='download models and print their paths')
    get.add_argument('names', nargs='+', metavar='NAME')
    get.add_argument('--cache-dir', default=None, help='download cache folder')
    args = parser.parse_args(argv)
    if args.command != 'download':
        print(describe_models())
        return 0
    status = 0
    for name in args.names:
        try:
            print(resolve_network(name, cache_dir=args.cache_dir))
        except util.DownloadError as err:
            print(f'Error: {err}', file=sys.stderr)
            status = 1
    return status


if __name__ == '__main__':
    sys.exit(main())
