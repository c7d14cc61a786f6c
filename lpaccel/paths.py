"""Where lpaccel keeps its files: the one place these paths are defined.

``ROOT`` is the folder that holds the ``lpaccel``, ``rtl``, ``sim`` and
``boards`` packages: the repository root in a development checkout (the
editable install that ``make`` creates). ``BUILD`` is where every generated
artefact goes (simulation builds, bitstreams, LiteDRAM cores, reports):
``ROOT/build``, unless the ``LPACCEL_BUILD_DIR`` environment variable names
another folder.

The YoWASP tools (Yosys, nextpnr) run in a sandbox with a private ``/tmp``:
they cannot see files under ``/tmp`` of the host. A checkout under ``/tmp``
therefore builds in ``~/.cache/lpaccel/build-<hash of ROOT>`` instead of its
own ``build/`` (one folder per checkout), so that it works without a
setting; :func:`check_toolchain_visible` refuses a ``LPACCEL_BUILD_DIR`` that
points into ``/tmp``.
"""

import hashlib
import os
from pathlib import Path

__all__ = ["ROOT", "BUILD", "BUILD_ENV", "build_dir", "check_toolchain_visible"]

#: The folder holding the project's packages (the repository root when editable).
ROOT = Path(__file__).resolve().parent.parent

#: Environment variable that moves :data:`BUILD`.
BUILD_ENV = "LPACCEL_BUILD_DIR"


def build_dir(*parts):
    """A folder (or file) under the build directory; nothing is created.

    Parameters
    ----------
    *parts : str
        Path components below the build directory (``"sim"``, ``"ulx3s-85f"``).

    Returns
    -------
    pathlib.Path
    """
    base = os.environ.get(BUILD_ENV)
    if base:
        root = Path(base).expanduser().resolve()
    elif _under_tmp(ROOT):
        digest = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
        root = Path.home() / ".cache" / "lpaccel" / f"build-{digest}"
    else:
        root = ROOT / "build"
    return root.joinpath(*parts)


def _under_tmp(path):
    path = Path(path).resolve()
    return path == Path("/tmp") or Path("/tmp") in path.parents


#: The build directory as configured when this module was imported.
BUILD = build_dir()


def check_toolchain_visible(path):
    """Refuse a build folder the YoWASP tools cannot see.

    Parameters
    ----------
    path : str or pathlib.Path
        The folder a Yosys or nextpnr run will read and write.

    Raises
    ------
    ValueError
        If ``path`` lies under ``/tmp``: YoWASP's sandbox has a private
        ``/tmp``, so the tools would not find the files. The message names
        the path and the fix.
    """
    resolved = Path(path).resolve()
    if _under_tmp(resolved):
        raise ValueError(
            f"build folder {resolved}: the YoWASP tools (Yosys, nextpnr) run with a private "
            f"/tmp and cannot see files under /tmp; set {BUILD_ENV} to a folder outside /tmp "
            f"(for example {BUILD_ENV}=$HOME/lpaccel-build) or clone the repository elsewhere")
    return resolved
