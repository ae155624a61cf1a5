"""Drag points of a generated or inverted person to new places (DragGAN on 2:1 and square networks).

\b
Examples:
# pixels (x,y): move what is at 130,260 to 160,240 on seed 7's person
python drag.py --network stylegan_human_v2_512 --seed 7 --handle 130,260 --target 160,240 --outdir out/drag
# body joints, found by the alignment pose backend on the image: raise the right wrist
python drag.py --network stylegan_human_v2_512 --seed 7 --move right_wrist:+40,-60 --mask-around 60
# a real photo: PTI's tuned network and its pivot
python drag.py --network outputs/pti/checkpoints/model_me.pkl --projected-w outputs/pti/embeddings/me/PTI/me/0.pt \\
    --move left_ankle:-30,0

Motion supervision on an intermediate feature map (--feature; StyleGAN2's 128 block by
default), point tracking by nearest neighbour in that feature space, Adam on the first
--edit-layers w+ layers. It stops when every handle is within --stop-distance pixels of
its target, or after --steps. --mask (white = may change) or --mask-around R (pixels within
R of each handle's path) holds the rest of the image. Joints (--move NAME:DX,DY) are the
COCO-18 names: nose, neck, right_/left_ shoulder, elbow, wrist, hip, knee, ankle, eye, ear.

\b
Writes to OUTDIR:
  start.png, end.png   the first and the last image
  before_after.png     start with handles (red) and targets (blue) | end with the tracked handles | end
  drag_w.npz           the final w+ (generate.py --projected-w renders it, edit.py --real_w_path edits it)
  points.json          the tracked handles at every step, the targets, how the run ended
  drag.mp4             the optimisation, written frame by frame as it runs (--no-video: none)
Ctrl-C stops after the step in hand and still writes every file.
"""

import os

import click
from tqdm import tqdm

from dnnlib.atomic import save_image
from dnnlib.errors import InputError, ToolkitError
from aligner.people import POSE_BACKENDS
from edit import drag as dragging
from edit import drag_handles, drag_outputs
import legacy
from stylegan_human import commands, runtime
from stylegan_human.latent_files import load_latent
from stylegan_human.sampling import map_seeds
from stylegan_human.video import FrameWriter

POINT = commands.ParsedType('x,y', drag_handles.parse_point)
MOVE = commands.ParsedType('joint:dx,dy', drag_handles.parse_move)


@click.command(cls=commands.Command, help=__doc__)
@click.option('--network', 'network_pkl', required=True, help='Network pickle path, URL or zoo name (StyleGAN2/3)')
@click.option('--seed', type=int, default=0, show_default=True, help='The person to drag (unless --projected-w)')
@click.option('--trunc', 'truncation_psi', type=float, default=0.7, show_default=True, help='Truncation psi (seed)')
@click.option('--projected-w', '--w', 'projected_w', default=None, metavar='FILE',
              help="Start from this code instead: a PTI pivot 0.pt, projector.py's projected_w.npz, a latents.npz")
@click.option('--handle', 'handles', type=POINT, multiple=True, metavar='X,Y', help='A point to move (repeatable)')
@click.option('--target', 'targets', type=POINT, multiple=True, metavar='X,Y', help="Where it goes (one per --handle)")
@click.option('--move', 'moves', type=MOVE, multiple=True, metavar='JOINT:DX,DY',
              help='Move a body joint by pixels, e.g. right_wrist:+40,-30 (repeatable)')
@click.option('--pose', type=click.Choice(POSE_BACKENDS), default='mediapipe', show_default=True,
              help='Pose backend that finds the joints for --move')
@click.option('--openpose-weights', default=None, metavar='FILE', help='body_pose_model.pth for --pose openpose')
@click.option('--steps', type=click.IntRange(min=0), default=300, show_default=True, help='At most this many updates')
@click.option('--lr', type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True)
@click.option('--edit-layers', type=click.IntRange(min=1), default=6, show_default=True,
              help='Optimise the first N w+ layers')
@click.option('--feature', default=None, metavar='NAME',
              help='Synthesis block (b128) or StyleGAN3 layer whose features are tracked (default: b128, or as near)')
@click.option('--r1', type=click.FloatRange(min=0, min_open=True), default=None,
              help='Motion supervision radius in pixels (default 3 per 512 of image height, at least 2)')
@click.option('--r2', type=click.FloatRange(min=0, min_open=True), default=None,
              help='Tracking search radius in pixels (default 12 per 512 of image height, at least 3)')
@click.option('--stop-distance', type=click.FloatRange(min=0), default=None,
              help='Done when every handle is this close to its target, px (default 2 per 512 of height, at least 2)')
@click.option('--mask', 'mask_path', default=None, metavar='PNG', help='Region allowed to change (white), any size')
@click.option('--mask-around', type=click.FloatRange(min=0, min_open=True), default=None, metavar='PX',
              help='Allow changes only within PX pixels of each handle-to-target path')
@click.option('--mask-weight', type=click.FloatRange(min=0), default=10.0, show_default=True,
              help='Weight of the term holding the features outside the mask')
@click.option('--video/--no-video', default=True, show_default=True, help='Write drag.mp4')
@click.option('--fps', type=click.IntRange(min=1), default=15, show_default=True)
@click.option('--outdir', default='outputs/drag', show_default=True, metavar='DIR')
@click.option('--device', default='auto', show_default=True, help=commands.DEVICE_OPTION_HELP)
@commands.precision_option
@commands.user_errors
def main(network_pkl, seed, truncation_psi, projected_w, handles, targets, moves, pose, openpose_weights, steps, lr,
         edit_layers, feature, r1, r2, stop_distance, mask_path, mask_around, mask_weight, video, fps, outdir,
         device):
    if len(handles) != len(targets):
        raise commands.UserError(f'{len(handles)} --handle but {len(targets)} --target: give one target per handle')
    if not handles and not moves:
        raise commands.UserError('nothing to drag: give --handle X,Y --target X,Y, or --move JOINT:DX,DY')
    if mask_path and mask_around:
        raise commands.UserError('give --mask or --mask-around, not both')
    device = commands.choose_device(device)
    G = legacy.load_network(network_pkl)['G_ema'].eval().to(device).float()
    dragging.feature_names(G)   # a StyleGAN1 network stops here, before anything is written
    config = dragging.DragConfig(steps=steps, lr=lr, edit_layers=edit_layers, r1=r1, r2=r2,
                                 stop_distance=stop_distance, mask_weight=mask_weight, feature=feature)
    if feature:
        dragging.FeatureTap(G, feature)
    height, width = dragging.image_size(G)
    handles, targets = [tuple(p) for p in handles], [tuple(p) for p in targets]
    dragging.check_points(handles, height, width, 'handle', 'handles')
    dragging.check_points(targets, height, width, 'target', 'targets')
    w = start_code(G, seed, truncation_psi, projected_w, device)
    if moves:
        joint_handles, joint_targets = joints_to_points(G, w, moves, pose, openpose_weights)
        handles, targets = handles + joint_handles, targets + joint_targets
    mask = None
    if mask_path:
        mask = drag_handles.read_mask(mask_path, height, width)
    elif mask_around:
        mask = drag_handles.region_around(handles, targets, mask_around, height, width)

    os.makedirs(outdir, exist_ok=True)
    result = run(G, w, handles, targets, config, mask, outdir, video, fps)
    if result.reason == 'stopped':
        click.echo(f'Interrupted after {result.steps} step(s); wrote the results so far to {outdir}', err=True)
        raise click.exceptions.Exit(130)


def start_code(G, seed, truncation_psi, projected_w, device):
    if projected_w:
        try:
            return load_latent(projected_w, G, device)
        except ToolkitError as err:
            err.param = 'projected_w'
            raise
    _, w = map_seeds(G, [seed], truncation_psi, device=device)
    return w


def joints_to_points(G, w, moves, pose, openpose_weights):
    """The joints' pixels on the start image and where the moves take them."""
    from aligner.backends import make_backend
    backend = make_backend(pose=pose, openpose_weights=openpose_weights)
    try:
        joints = drag_handles.find_joints(dragging.render(G, w), backend)
    finally:
        backend.close()
    handles, targets = drag_handles.resolve_moves(moves, joints)
    height, width = dragging.image_size(G)
    for move, (hx, hy), (tx, ty) in zip(moves, handles, targets):
        if not (0 <= tx <= width - 1 and 0 <= ty <= height - 1):
            raise InputError(f'{move.joint} at {hx},{hy} moved by {move.dx:g},{move.dy:g} lands at {tx},{ty}, '
                             f'outside the {width}x{height} image', param='moves')
    return handles, targets


def run(G, w, handles, targets, config, mask, outdir, video, fps):
    """The drag, with its progress bar and the video streamed as it goes; then every output file."""
    steps = config.steps
    scale = drag_outputs.figure_scale(dragging.image_size(G)[0], at_least=128)
    with commands.stop_between_items() as interrupt, \
            (FrameWriter(os.path.join(outdir, 'drag.mp4'), fps) if video else _NoVideo()) as frames, \
            tqdm(total=steps + 1, unit='step', desc='Dragging') as bar:
        def on_step(state):
            frames.append(drag_outputs.draw_points(state.image, state.points, state.targets, scale))
            bar.set_postfix_str(f'farthest {max(state.distances):.1f}px', refresh=False)
            bar.update(1)
        result = dragging.drag(G, w, handles, targets, config, mask=mask, on_step=on_step,
                               should_stop=lambda: interrupt.requested)
    save_image(result.start_image, os.path.join(outdir, 'start.png'))
    save_image(result.end_image, os.path.join(outdir, 'end.png'))
    save_image(drag_outputs.before_after(result, handles, targets), os.path.join(outdir, 'before_after.png'))
    drag_outputs.save_w(os.path.join(outdir, 'drag_w.npz'), result.w)
    resolved = config.resolved(G.img_resolution)
    drag_outputs.write_json(os.path.join(outdir, 'points.json'), drag_outputs.points_record(
        result, handles, targets, extra=dict(feature=resolved.feature or dragging.default_feature(G),
                                             r1=resolved.r1, r2=resolved.r2, stop_distance=resolved.stop_distance,
                                             mask=mask is not None)))
    how = {'reached': 'every handle reached its target', 'steps': f'after {result.steps} steps',
           'stopped': 'interrupted'}[result.reason]
    far = ', '.join(f'{d:.1f}' for d in result.distances)
    print(f'Done {how} (distance to target: {far} px); wrote {outdir}')
    return result


class _NoVideo:
    count = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def append(self, frame):
        pass


if __name__ == '__main__':
    runtime.start_script()
    main()  # pylint: disable=no-value-for-parameter
