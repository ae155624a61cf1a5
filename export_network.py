"""Export one network of a pickle to .safetensors: weights and config, no code.

\b
python export_network.py --network stylegan_human_v2_1024 --out sg2_1024.safetensors
python export_network.py --network network-snapshot-000800.pkl --which D --out d.safetensors
python generate.py --network sg2_1024.safetensors --seeds 0-3

Every script takes the export wherever it takes a pickle. It loads several times
faster (nothing to unpickle, no G and D beside G_ema) and cannot run code. The
config sits in the file's metadata; a readable copy is written next to it as .json.
"""

import os

import click
import torch

import legacy
from stylegan_human import commands, runtime


@click.command(cls=commands.Command, help=__doc__)
@click.option('--network', 'network_pkl', required=True, help='Network pickle path, URL or model-zoo name')
@click.option('--out', 'out_path', required=True, metavar='FILE.safetensors', help='Where to write the export')
@click.option('--which', type=click.Choice(['G_ema', 'G', 'D']), default='G_ema', show_default=True,
              help='Which network of the pickle')
@commands.user_errors
def main(network_pkl, out_path, which):
    if not out_path.endswith('.safetensors'):
        raise commands.UserError(f'--out {out_path}: the file name must end in .safetensors')
    data = legacy.load_network(network_pkl)
    if not isinstance(data.get(which), torch.nn.Module):
        present = [key for key, value in data.items() if isinstance(value, torch.nn.Module)]
        raise commands.UserError(f'{network_pkl} holds no {which} network (it has {", ".join(present)})')
    if os.path.dirname(out_path):
        os.makedirs(os.path.dirname(out_path), exist_ok=True)
    legacy.export_network(data[which], out_path)
    print(f'Wrote {out_path} ({os.path.getsize(out_path) / 2 ** 20:.1f} MB) and its config '
          f'{os.path.splitext(out_path)[0]}.json')


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
