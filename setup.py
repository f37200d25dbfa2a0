"""Ship the repository's top-level ``notebooks/`` and ``parameters/`` inside the wheel.

They stay at the top of the repository (where analysts and CI open them) and are
copied into ``revmodel/_shipped/`` of the built package, so an installed revmodel
finds its planning notebooks, app notebooks and the sample company's parameters
without a checkout (:func:`revmodel.config._shipped`). Everything else is in
pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = {"notebooks": ("*.ipynb", "apps/*.ipynb"), "parameters": ("*.yaml", "*/*.yaml")}


class BuildWithProjectFiles(build_py):
    """``build_py`` that also copies the shipped notebooks and parameters into the package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads them from the checkout
            return
        for folder, patterns in SHIPPED.items():
            for pattern in patterns:
                for src in sorted((HERE / folder).glob(pattern)):
                    dest = Path(self.build_lib) / "revmodel" / "_shipped" / src.relative_to(HERE)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dest)


setup(cmdclass={"build_py": BuildWithProjectFiles})
