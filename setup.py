"""Builds the cffi helpers and ships the C runtime sources inside the package, so that
`forkserver build` works from an installed copy as well as from a checkout."""
import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = pathlib.Path(__file__).resolve().parent


class BuildPyWithRuntime(build_py):
    def run(self):
        super().run()
        target = pathlib.Path(self.build_lib) / "forkserver" / "csrc"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(ROOT / "csrc", target, ignore=shutil.ignore_patterns("__pycache__", "*.o"))


setup(
    cffi_modules=["csrc/host/build_native.py:ffibuilder"],
    cmdclass={"build_py": BuildPyWithRuntime},
)
