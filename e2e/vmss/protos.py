"""Python stubs for cluster-autoscaler's externalgrpc protocol, generated at run time with grpcio-tools.

Nothing generated is committed. The sources are read from the Go module cache:

* ``externalgrpc.proto`` of the cluster-autoscaler version pinned in ``e2e/versions.toml``
  (path from :func:`e2e.harness.components.ca_proto_path`);
* the ``k8s.io/api`` and ``k8s.io/apimachinery`` ``generated.proto`` files it imports (transitively), at
  the versions that cluster-autoscaler's own ``go.mod`` requires (``go mod download`` fetches them if
  they are missing).

The module cache lays them out as ``k8s.io/api@v0.33.1/...``, while the imports say
``k8s.io/api/...``, so a temporary include tree of symlinks maps one onto the other.

Output goes to ``e2e/_generated/externalgrpc-<key>/`` (gitignored), where ``<key>`` hashes every input
proto, the module versions and the grpcio-tools version: a changed pin regenerates, an unchanged one
reuses. Each generation is written to a temporary directory and renamed into place, so a half-written
directory is never taken as the cache.

protoc names the modules after the proto paths: ``externalgrpc_pb2``, ``externalgrpc_pb2_grpc`` and
``k8s.io.api.core.v1.generated_pb2`` (directories ``k8s/io/...``). They are top-level modules, so
:func:`load` puts the output directory on ``sys.path``.

CLI: ``python -m e2e.vmss.protos`` generates (if needed) and prints the output directory.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from e2e.harness import components

GENERATED_ROOT = Path(__file__).resolve().parent.parent / "_generated"
K8S_MODULES = ("k8s.io/api", "k8s.io/apimachinery")
_IMPORT = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.M)
_lock = threading.Lock()
_loaded: Stubs | None = None


class ProtoError(RuntimeError):
    """The stubs could not be generated."""


@dataclass(frozen=True)
class Stubs:
    """The generated modules the simulator and its tests use."""

    directory: Path
    pb2: ModuleType  # externalgrpc_pb2
    pb2_grpc: ModuleType  # externalgrpc_pb2_grpc
    core_v1: ModuleType  # k8s.io/api/core/v1/generated_pb2
    meta_v1: ModuleType  # k8s.io/apimachinery/pkg/apis/meta/v1/generated_pb2


@dataclass(frozen=True)
class ProtoSources:
    ca_proto: Path
    module_dirs: dict[str, Path]  # "k8s.io/api" -> $GOMODCACHE/k8s.io/api@v0.33.1
    module_versions: dict[str, str]


def _required_version(gomod: str, module: str) -> str:
    m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", gomod, re.M)
    if not m:
        raise ProtoError(f"cluster-autoscaler's go.mod does not require {module}")
    return m.group(1)


def _go_module_dir(module: str, version: str) -> Path:
    """Directory of ``module@version`` in the Go module cache, downloading it if needed."""
    env = dict(os.environ)
    env["GOFLAGS"] = ""  # -mod=mod and friends are errors outside a module
    env.setdefault("GOTOOLCHAIN", "local")
    with tempfile.TemporaryDirectory(prefix="tideover-gomod-") as cwd:
        proc = subprocess.run(
            ["go", "mod", "download", "-json", f"{module}@{version}"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise ProtoError(f"go mod download {module}@{version} failed: {proc.stderr.strip()}") from exc
    if proc.returncode != 0 or info.get("Error") or not info.get("Dir"):
        raise ProtoError(f"go mod download {module}@{version} failed: {info.get('Error') or proc.stderr.strip()}")
    return Path(info["Dir"])


def find_sources() -> ProtoSources:
    """Locate the pinned externalgrpc.proto and the k8s.io modules it imports."""
    try:
        ca_proto = components.ca_proto_path()
    except components.BuildError as exc:
        raise ProtoError(str(exc)) from exc
    # <ca module>/cloudprovider/externalgrpc/protos/externalgrpc.proto
    ca_module = ca_proto.parents[3]
    gomod = (ca_module / "go.mod").read_text()
    versions = {m: _required_version(gomod, m) for m in K8S_MODULES}
    dirs: dict[str, Path] = {}
    for module, version in versions.items():
        # Fast path: already in the module cache next to the CA module (no `go` call needed).
        gomodcache = ca_module.parents[2]  # $GOMODCACHE/k8s.io/autoscaler/cluster-autoscaler@v...
        candidate = gomodcache / f"{module}@{version}"
        dirs[module] = candidate if (candidate / "go.mod").is_file() else _go_module_dir(module, version)
    return ProtoSources(ca_proto, dirs, versions)


def _include_tree(sources: ProtoSources, root: Path) -> Path:
    """Symlink tree so that ``k8s.io/api/...`` imports resolve into the module cache."""
    for module, directory in sources.module_dirs.items():
        link = root / module
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(directory, target_is_directory=True)
    return root


def _closure(sources: ProtoSources, include: Path) -> list[str]:
    """The k8s.io protos the CA proto imports, transitively (google/protobuf ones ship with grpcio-tools)."""
    seen: list[str] = []
    todo = list(_IMPORT.findall(sources.ca_proto.read_text()))
    while todo:
        name = todo.pop()
        if name in seen or name.startswith("google/protobuf/"):
            continue
        path = include / name
        if not path.is_file():
            raise ProtoError(f"imported proto {name} not found under {include}")
        seen.append(name)
        todo.extend(_IMPORT.findall(path.read_text()))
    return sorted(seen)


def _grpc_tools_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("grpcio-tools")
    except PackageNotFoundError as exc:
        raise ProtoError("grpcio-tools is not installed (pip install -e '.[dev]')") from exc


def cache_key(sources: ProtoSources, include: Path, deps: list[str]) -> str:
    h = hashlib.sha256()
    h.update(f"grpcio-tools {_grpc_tools_version()}\n".encode())
    for module, ver in sorted(sources.module_versions.items()):
        h.update(f"{module} {ver}\n".encode())
    h.update(b"externalgrpc.proto\n" + sources.ca_proto.read_bytes())
    for name in deps:
        h.update(f"\n{name}\n".encode() + (include / name).read_bytes())
    return h.hexdigest()[:16]


def _protoc(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ProtoError(f"protoc {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")


def generate(output_root: Path = GENERATED_ROOT) -> Path:
    """Generate the stubs unless a directory for the same inputs exists; return that directory."""
    sources = find_sources()
    with tempfile.TemporaryDirectory(prefix="tideover-protos-") as tmp:
        include = _include_tree(sources, Path(tmp) / "include")
        deps = _closure(sources, include)
        final = output_root / f"externalgrpc-{cache_key(sources, include, deps)}"
        if (final / "externalgrpc_pb2_grpc.py").is_file():
            return final
        output_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp.", dir=output_root))
        try:
            ca_dir = str(sources.ca_proto.parent)
            # Messages for everything; the service stubs only for the CA proto.
            _protoc([f"-I{include}", f"-I{ca_dir}", f"--python_out={work}", "externalgrpc.proto", *deps])
            _protoc([f"-I{include}", f"-I{ca_dir}", f"--grpc_python_out={work}", "externalgrpc.proto"])
            (work / "SOURCES.json").write_text(
                json.dumps(
                    {
                        "ca_proto": str(sources.ca_proto),
                        "modules": {m: str(d) for m, d in sources.module_dirs.items()},
                        "imports": deps,
                        "grpcio_tools": _grpc_tools_version(),
                    },
                    indent=2,
                )
                + "\n"
            )
            if final.exists():  # another process won the race
                shutil.rmtree(work, ignore_errors=True)
            else:
                os.replace(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return final


def load(output_root: Path = GENERATED_ROOT) -> Stubs:
    """Generate if needed, put the stubs on ``sys.path`` and import them (once per process)."""
    global _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        directory = generate(output_root)
        if str(directory) not in sys.path:
            sys.path.insert(0, str(directory))
        _loaded = Stubs(
            directory=directory,
            pb2=importlib.import_module("externalgrpc_pb2"),
            pb2_grpc=importlib.import_module("externalgrpc_pb2_grpc"),
            core_v1=importlib.import_module("k8s.io.api.core.v1.generated_pb2"),
            meta_v1=importlib.import_module("k8s.io.apimachinery.pkg.apis.meta.v1.generated_pb2"),
        )
        return _loaded


def main() -> int:
    try:
        print(generate())
    except ProtoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
