"""The lock files (requirements/, made by scripts/lock.sh) agree with pyproject.toml and drive every install: each
dependency pyproject.toml names is pinned with hashes at a version its specifier allows, runtime.txt is a subset of
dev.txt at the same versions, and bootstrap.sh, the Dockerfile and e2e/kind/up.sh install from them with
--require-hashes. The image's slimming removes kubernetes/aio, so the code must not import it."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "requirements" / "runtime.txt"
DEV = ROOT / "requirements" / "dev.txt"
_PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+) \\$", re.M)


def _pins(path: Path) -> dict[str, str]:
    text = path.read_text()
    pins = {canonicalize_name(name.split("[")[0]): version for name, version in _PIN.findall(text)}
    blocks = [b for b in re.split(r"\n(?=\S)", text) if "==" in b and not b.startswith("#")]
    assert len(blocks) == len(pins), f"{path.name}: a package is pinned twice, or a line is not `name==version \\`"
    assert all("--hash=sha256:" in block for block in blocks), f"{path.name}: every pin needs its hashes"
    return pins


def _project() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def _check(requirements: list[str], pins: dict[str, str]) -> list[str]:
    problems = []
    for line in requirements:
        requirement = Requirement(line)
        version = pins.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name} is not pinned")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}=={version} does not satisfy {requirement.specifier}")
    return problems


def test_runtime_lock_pins_every_dependency() -> None:
    dependencies = _project()["dependencies"]
    assert isinstance(dependencies, list)
    assert _check(dependencies, _pins(RUNTIME)) == [], "run bash scripts/lock.sh"


def test_dev_lock_pins_runtime_and_dev_dependencies_at_the_same_versions() -> None:
    extras, dependencies = _project()["optional-dependencies"], _project()["dependencies"]
    assert isinstance(extras, dict) and isinstance(dependencies, list)
    dev, runtime = _pins(DEV), _pins(RUNTIME)
    assert _check([*dependencies, *extras["dev"]], dev) == [], "run bash scripts/lock.sh"
    assert {name: dev.get(name) for name in runtime} == runtime, "runtime.txt and dev.txt differ: bash scripts/lock.sh"


def test_every_install_uses_the_lock() -> None:
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert "--require-hashes -r requirements/dev.txt" in bootstrap and "--no-deps -e ." in bootstrap
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.count("--require-hashes -r requirements/runtime.txt") == 2  # online and offline
    assert "pip install --no-deps" in dockerfile and "--no-index --no-deps" in dockerfile
    up = (ROOT / "e2e" / "kind" / "up.sh").read_text()
    assert '--require-hashes --wheel-dir "${deps_dir}" -r "${ROOT}/requirements/runtime.txt"' in up
    assert "!requirements/runtime.txt" in (ROOT / ".dockerignore").read_text()


def test_code_does_not_import_what_the_image_removes() -> None:
    removed = ("kubernetes.aio", "pip", "setuptools", "pkg_resources")
    found = []
    for path in sorted([*(ROOT / "extender").rglob("*.py"), *(ROOT / "scoring").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith(removed)]
    assert not found, found
