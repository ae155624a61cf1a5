"""The project's one error hierarchy: every error a user can cause or fix derives from ToolkitError.

Library code raises these with a one-line message that names the bad value (a path, a
number, a seed) in its text, and, where the value came in through a function argument,
that argument's name as ``param``. Command lines print the message as one line led by the
option the user typed (``stylegan_human.commands.user_errors`` maps ``param`` to the click
option of the same name: ``--class: ...``); the web app shows the message as it is. Each class also
derives from the built-in exception that fits, so ``except ValueError`` keeps working.
"""

from typing import Optional


class ToolkitError(Exception):
    """Base class: a problem the user can fix; ``str(err)`` is one line for them."""

    param: Optional[str] = None

    def __init__(self, message: str, param: Optional[str] = None):
        super().__init__(message)
        self.param = param   # the library argument that held the bad value, when there is one


class InputError(ToolkitError, ValueError):
    """A value passed in that cannot be used: out of range, wrong shape, unknown name."""


class FileFormatError(ToolkitError, ValueError):
    """A file that exists but cannot be used: wrong format, corrupt, refused as unsafe."""


class MissingFileError(ToolkitError, FileNotFoundError):
    """A file the work needs (weights, a model) that is not where it was looked for."""


class UnavailableError(ToolkitError, RuntimeError):
    """Something this machine lacks: an optional package, a device, enough memory."""


class DownloadError(ToolkitError):
    """A download that failed (no connection, bad checksum, unknown model name)."""


def load_failure(err: BaseException) -> str:
    """A short reason why ``torch.load(..., weights_only=True)`` failed, for a one-line message.

    torch's refusal of a file holding more than tensors and plain data opens with advice to
    retry with ``weights_only=False``, which would run the file's code: that advice is
    dropped, and only the refusal's reason is kept.
    """
    text = str(err).strip()
    if 'Weights only load failed' in text:
        reason = text.split('WeightsUnpickler error:', 1)[-1].split('Check the documentation', 1)[0]
        reason = ' '.join(reason.split()) or 'an object that is not a tensor or plain data'
        return f'refused: it holds more than tensors and plain data ({reason})'
    return text.splitlines()[0] if text else type(err).__name__
