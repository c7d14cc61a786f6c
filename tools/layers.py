"""Check the dependency rule of ``docs/architecture.md`` with import-linter.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``). The
``lpaccel`` package is spread over several top-level folders (``lpaccel/``,
``rtl/``, ``sim/``, ``boards/``, ``firmware/``) that setuptools maps to
``lpaccel``, ``lpaccel.rtl``, ... ; import-linter (grimp) finds modules by
walking the package's own folder and would not see the mapped ones. So this
script first lays the sources out the way they import, as one tree
(``build/layers/lpaccel/rtl/...``: copies of the ``.py`` files, nothing else),
then runs ``lint-imports`` on that tree.

Run ``python tools/layers.py`` (``make lint`` does); exit status 0 when every
contract is kept.
"""

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from lpaccel.paths import ROOT, build_dir

PYPROJECT = ROOT / "pyproject.toml"


def package_dirs(pyproject=PYPROJECT):
    """``{"lpaccel.rtl": "rtl", ...}``: setuptools' package-dir mapping."""
    table = tomllib.loads(Path(pyproject).read_text())
    return table["tool"]["setuptools"]["package-dir"]


def assemble(out, root=ROOT, pyproject=PYPROJECT):
    """Copy every package's ``.py`` files to ``out`` as they import; return ``out``."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    mapping = package_dirs(pyproject)
    # Longest package names last, so a subpackage's folder wins over its parent's copy.
    for package, folder in sorted(mapping.items(), key=lambda item: item[0].count(".")):
        src = root / folder
        dst = out.joinpath(*package.split("."))
        for path in src.rglob("*.py"):
            rel = path.relative_to(src)
            if any(part in ("__pycache__", "build") for part in rel.parts):
                continue
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return out


def check(tree, pyproject=PYPROJECT):
    """Run ``lint-imports`` on an assembled tree; return ``(ok, output)``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    bin_dir = Path(sys.executable).parent
    result = subprocess.run([str(bin_dir / "lint-imports"), str(pyproject), "--no-cache"],
                            cwd=tree, env=env, capture_output=True, text=True)
    return result.returncode == 0, result.stdout + result.stderr


def main():
    tree = assemble(build_dir("layers"))
    ok, output = check(tree)
    print(output.rstrip())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
