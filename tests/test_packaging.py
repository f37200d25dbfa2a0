"""The install story: one dependency list, a lock that covers it, conda kept in step."""

from __future__ import annotations

import re
import tomllib

import yaml

from revmodel import config

#: conda-forge names for pip requirements whose names differ.
CONDA_NAMES = {
    "dask[distributed]": ["dask", "distributed"],
    "netcdf4": ["netcdf4"],
    "psycopg[binary]": ["psycopg"],
}


def _name(req: str) -> str:
    return re.split(r"[<>=!~ ;]", req, maxsplit=1)[0].strip().lower()


def _pyproject() -> dict:
    return tomllib.loads((config.ROOT / "pyproject.toml").read_text())


def _conda_specs() -> tuple[dict[str, str], list]:
    env = yaml.safe_load((config.ROOT / "environment.yml").read_text())
    specs: dict[str, str] = {}
    pip_section: list = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section = dep["pip"]
        else:
            specs[_name(dep)] = dep
    return specs, pip_section


def test_environment_yml_pins_python_on_conda_forge_and_installs_the_package():
    env = yaml.safe_load((config.ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    assert "python=3.11" in env["dependencies"]
    assert isinstance(env["dependencies"][-1], dict), "the pip section comes last"
    assert env["dependencies"][-1]["pip"] == ["-e ."]


def test_environment_yml_agrees_with_pyproject():
    project = _pyproject()["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    specs, _ = _conda_specs()
    missing, mismatched = [], []
    for req in wanted:
        name = _name(req)
        bound = req[len(name) :].strip() if "[" not in req else req[req.index("]") + 1 :].strip()
        for conda_name in CONDA_NAMES.get(name, [name]):
            if conda_name not in specs:
                missing.append(conda_name)
            elif bound and not specs[conda_name].endswith(bound):
                mismatched.append(f"{specs[conda_name]} vs {req}")
    assert missing == []
    assert mismatched == []
    extra = (
        set(specs)
        - {n for r in wanted for n in CONDA_NAMES.get(_name(r), [_name(r)])}
        - {"python", "pip"}
    )
    assert extra == set()


def test_lock_pins_every_dependency_with_hashes():
    lock = (config.ROOT / "requirements.lock").read_text()
    pinned = {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==", lock, re.M)}
    project = _pyproject()["project"]
    every = project["dependencies"] + [
        r for extra in project["optional-dependencies"].values() for r in extra
    ]
    names = {_name(r).split("[")[0].replace("_", "-") for r in every}
    assert names - {p.replace("_", "-") for p in pinned} == set()
    assert lock.count("--hash=sha256:") > len(pinned)


def test_console_script_points_at_the_cli():
    assert _pyproject()["project"]["scripts"] == {"revmodel": "revmodel.cli:main"}
