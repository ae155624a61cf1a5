"""python -m training.dropin --into CHECKOUT: StyleGAN-Human's files for NVIDIA's training code.

Writes train.py, training/dataset.py, training/train_config.py and the network files into a
checkout of NVlabs/stylegan2-ada-pytorch or NVlabs/stylegan3 (told by the files there), so
that its own training loop trains 2:1 networks with StyleGAN-Human's command lines.
Each NVIDIA file it replaces is kept beside it as FILE.orig; files from an earlier export
are updated in place.
"""

import click

from stylegan_human import commands
from training.dropin.export import export_dropin
from training.dropin.trees import TREE_NAMES

WHAT = {'add': 'added', 'replace': 'replaced', 'update': 'updated', 'unchanged': 'unchanged'}
EXAMPLES = {
    'stylegan2-ada': 'python train.py --outdir=training_results/sg2/ --data=DATA --gpus=8 --aug=noaug '
                     '--mirror=1 --snap=250 --cfg=shhq --square=False',
    'stylegan3': 'python train.py --outdir=training_results/sg3/ --cfg=stylegan3-r --gpus=8 --batch=32 '
                 '--gamma=12.4 --mirror=1 --aug=noaug --data=DATA --square=False --snap=250',
}


@click.command(cls=commands.Command, help=__doc__)
@click.option('--into', help='Checkout of NVIDIA\'s StyleGAN2-ADA or StyleGAN3', required=True, metavar='DIR')
@click.option('--tree', help='Which code base the checkout must be', default='auto', show_default=True,
              type=click.Choice(('auto',) + TREE_NAMES))
@click.option('-n', '--dry-run', help='Say what would be written, write nothing', is_flag=True)
@commands.user_errors
def main(into: str, tree: str, dry_run: bool) -> None:
    found, steps = export_dropin(into, tree, dry_run=dry_run)
    print(f'{"Would write" if dry_run else "Wrote"} StyleGAN-Human\'s drop-in into {into} '
          f'(NVIDIA {found.title}, {found.repository}):')
    width = max(len(step.dest) for step in steps)
    for step in steps:
        what = WHAT[step.action] if not dry_run or step.action == 'unchanged' else f'would be {WHAT[step.action]}'
        note = f'  (NVIDIA\'s file kept as {step.backup})' if step.backup else ''
        print(f'  {step.dest:<{width}}  {what}{note}')
    if not dry_run:
        print(f'Train there with, e.g.:\n  cd {into} && {EXAMPLES[found.name]}')


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
