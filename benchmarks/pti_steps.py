"""The wall time of each step of one PTI phase, run by the code of any checkout of this project.

\b
python benchmarks/pti_steps.py TREE tune 6          # JSON list of 5 step times (seconds)
python benchmarks/pti_steps.py TREE project 6 --resolution 1024

``bench_pti.py --against REV`` runs this on REV's files and on this tree's, in turns, each in a
fresh process, to compare the code itself. Only what every version of PTI here has is used
(the generator's constructor, LPIPS-AlexNet, NVIDIA's VGG16, and a callback after every step:
``project_w``'s ``on_step``, ``tune_generator``'s ``progress``), so both sides run the same
steps on the same random weights, with their own defaults (ops, number format, allocator).
The first step (setup, copies, first-call costs) has no time of its own: the list starts at
the second.
"""

import argparse
import json
import os
import sys
import time


def published_generator(networks_stylegan2, resolution):
    """The published models' generator configuration at ``resolution`` (random weights)."""
    return networks_stylegan2.Generator(
        z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3, square=False,
        mapping_kwargs=dict(num_layers=8),
        synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256)).eval()


def step_times(phase, steps, resolution):
    """Seconds of steps 2..``steps`` of ``phase`` ('project' or 'tune'), with whatever code is on sys.path."""
    import torch
    from pti.projector import ProjectionConfig, project_w
    from pti.tuning import TuningConfig, tune_generator
    from stylegan_human.features.lpips import LPIPS
    from stylegan_human.features.vgg16_nvidia import VGG16Features
    from torch_utils import allocator
    from training import networks_stylegan2

    allocator.reuse_freed_memory()   # as run_pti.py runs
    torch.manual_seed(0)
    G = published_generator(networks_stylegan2, resolution)
    with torch.no_grad():
        pivot = G.mapping(torch.randn(1, G.z_dim), None)
        target = G.synthesis(G.mapping(torch.randn(1, G.z_dim), None), noise_mode='const', force_fp32=True)
    stamps = []

    def stamp(*_):
        stamps.append(time.perf_counter())
    if phase == 'project':
        vgg = VGG16Features().eval().requires_grad_(False)
        project_w(G, target, lambda images: vgg(images, return_lpips=True),
                  ProjectionConfig(steps=steps, w_avg_samples=600), on_step=stamp)
    else:
        lpips = LPIPS('alex').eval().requires_grad_(False)
        tune_generator(G, [pivot], [target], lpips, TuningConfig(steps=steps, lpips_threshold=-1, check_every=1),
                       progress=stamp)
    return [b - a for a, b in zip(stamps, stamps[1:])]


def use_tree(tree):
    """Imports this project's packages from ``tree``. An editable install maps them to its own
    checkout ahead of sys.path (a finder on sys.meta_path): that mapping is dropped here."""
    tree = os.path.abspath(tree)
    sys.meta_path[:] = [finder for finder in sys.meta_path   # (the finder may be a class or an instance)
                        if not getattr(finder, '__module__', '').startswith('__editable__')]
    sys.path.insert(0, tree)
    import pti
    if not os.path.abspath(pti.__file__).startswith(tree + os.sep):
        raise SystemExit(f'pti_steps.py: {tree} is not the code imported ({pti.__file__} is)')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('tree', help='a checkout (or exported tree) of this project')
    parser.add_argument('phase', choices=['project', 'tune'])
    parser.add_argument('steps', type=int, help='steps to run (at least 2)')
    parser.add_argument('--resolution', type=int, default=512)
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error('steps: at least 2 (the first one is not timed)')
    use_tree(args.tree)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    print(json.dumps(step_times(args.phase, args.steps, args.resolution)))


if __name__ == '__main__':
    main()
