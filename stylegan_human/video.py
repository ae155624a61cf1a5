"""Animated output (GIF, MP4) written atomically: the file appears whole or not at all.

MP4 frames stream to ffmpeg (bundled with imageio-ffmpeg) as they come, so memory
does not grow with the length of the video; GIF frames are kept until the end.
"""

import os
import tempfile

import numpy as np
import PIL.Image

from dnnlib.atomic import default_permissions

FORMATS = ('.gif', '.mp4')


class FrameWriter:
    """``with FrameWriter('out.mp4', fps=15) as w: w.append(frame_uint8_hwc)``."""

    def __init__(self, path, fps):
        self.path = os.fspath(path)
        self.ext = os.path.splitext(self.path)[1].lower()
        if self.ext not in FORMATS:
            raise ValueError(f'{self.path}: unsupported video format; use .gif or .mp4')
        if not fps > 0:
            raise ValueError(f'fps must be positive, got {fps}')
        self.fps = fps
        self.frames = []
        self.count = 0
        self._writer = None
        self._tmp = None

    def __enter__(self):
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix='.' + os.path.basename(self.path) + '.', suffix=self.ext, dir=folder)
        os.close(fd)
        default_permissions(self._tmp)
        if self.ext == '.mp4':
            import imageio.v2 as imageio
            self._writer = imageio.get_writer(self._tmp, format='FFMPEG', mode='I', fps=self.fps, codec='libx264',
                                              quality=8, macro_block_size=2, ffmpeg_log_level='error')
        return self

    def append(self, frame):
        frame = np.asarray(frame, dtype=np.uint8)
        if self._writer is not None:
            self._writer.append_data(frame)
        else:
            self.frames.append(PIL.Image.fromarray(frame))
        self.count += 1

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._finish()
                os.replace(self._tmp, self.path)
        finally:
            if self._writer is not None and exc_type is not None:
                try:
                    self._writer.close()
                except Exception:  # Already failing; the original error matters more.
                    pass
            if os.path.exists(self._tmp):
                os.remove(self._tmp)
        return False

    def _finish(self):
        if self.count == 0:
            raise ValueError(f'{self.path}: no frames to write')
        if self._writer is not None:
            self._writer.close()
        else:
            self.frames[0].save(self._tmp, format='GIF', save_all=True, append_images=self.frames[1:],
                                duration=1000 / self.fps, loop=0)
