"""Build the real Kubernetes components the end-to-end tests run, from Go modules, cached by version.

Usage (from the repository root)::

    python -m e2e.harness.components build [--only NAME ...]
    python -m e2e.harness.components path NAME
    python -m e2e.harness.components proto-path

Every version is pinned in ``e2e/versions.toml``. Binaries land in
``${TIDEOVER_CACHE_DIR:-$HOME/.cache/tideover}/bin/<component>/<version>/``. A component whose
directory exists is cached and is not rebuilt. Each build goes into a temporary directory that is
renamed into place only when it succeeded, so an interrupted build is never taken as cached.

Every component is built from a small Go module generated inside the cache's build directory
(never committed): it requires the pinned upstream module and, where upstream's own ``go.mod`` has
``replace`` directives (which Go ignores in a dependency: k8s.io/kubernetes, cluster-autoscaler),
repeats them. ``go install pkg@version`` is not used: it also fetches the module's version list to
look for deprecations, which this environment's module proxy refuses for virtual-kubelet. The Go
module and build caches stay at their defaults, so a warm machine rebuilds quickly.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

VERSIONS_FILE = Path(__file__).resolve().parents[1] / "versions.toml"

KUBERNETES_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
COMPONENTS: tuple[str, ...] = (
    *KUBERNETES_BINARIES,
    "etcd",
    "virtual-kubelet",
    "kwok",
    "cluster-autoscaler",
)

# kwok stage files copied next to the kwok binary at build time (paths inside the kwok module).
# These are the stages kwokctl itself loads by default (pkg/kwokctl/runtime/cluster.go):
# node initialisation, node heartbeat with leases, and the fast pod lifecycle.
KWOK_STAGE_FILES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)
KWOK_STAGES_DIR = "stages"
BUILD_INFO = "build-info.json"
CA_PROTO_RELPATH = "cloudprovider/externalgrpc/protos/externalgrpc.proto"

_STAGING_REPLACE = re.compile(r"^\s*(?:replace\s+)?(k8s\.io/[A-Za-z0-9._-]+)\s+=>\s+\./staging/", re.M)
_REPLACE_LINE = re.compile(r"^\s*(?:replace\s+)?(\S+)(?:\s+(v\S+))?\s+=>\s+(\S+)(?:\s+(v\S+))?\s*$")


class BuildError(RuntimeError):
    """A component could not be built."""


def cache_root() -> Path:
    base = os.environ.get("TIDEOVER_CACHE_DIR")
    return Path(base) if base else Path.home() / ".cache" / "tideover"


def load_versions(path: Path = VERSIONS_FILE) -> dict[str, dict[str, object]]:
    with path.open("rb") as f:
        return tomllib.load(f)


def _section(versions: dict[str, dict[str, object]], component: str) -> dict[str, object]:
    key = "kubernetes" if component in KUBERNETES_BINARIES else component
    try:
        return versions[key]
    except KeyError as exc:
        raise BuildError(f"{VERSIONS_FILE} has no [{key}] section") from exc


def _str(section: dict[str, object], key: str) -> str:
    value = section.get(key)
    if not isinstance(value, str) or not value:
        raise BuildError(f"versions.toml: missing string {key!r} in {section}")
    return value


def component_version(component: str, versions: dict[str, dict[str, object]] | None = None) -> str:
    return _str(_section(versions or load_versions(), component), "version")


def install_dir(component: str, versions: dict[str, dict[str, object]] | None = None) -> Path:
    return cache_root() / "bin" / component / component_version(component, versions)


def binary_path(component: str, versions: dict[str, dict[str, object]] | None = None) -> Path:
    if component not in COMPONENTS:
        raise BuildError(f"unknown component {component!r}; known: {', '.join(COMPONENTS)}")
    return install_dir(component, versions) / component


def kwok_stages_dir(versions: dict[str, dict[str, object]] | None = None) -> Path:
    """Directory holding the kwok Stage YAML files copied from the kwok module at build time."""
    return install_dir("kwok", versions) / KWOK_STAGES_DIR


def is_cached(component: str, versions: dict[str, dict[str, object]] | None = None) -> bool:
    return binary_path(component, versions).is_file()


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<cache>/build/locks/<name>.lock`` (serialises builds across processes)."""
    lock_dir = cache_root() / "build" / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(lock, fcntl.LOCK_UN)


def module_dir(module: str, version: str, log_file: Path) -> Path:
    """The directory of ``module@version`` in the Go module cache (downloaded from the proxy if missing)."""
    work = cache_root() / "build"
    work.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    info = _download_json(f"{module}@{version}", cwd=work, env=_go_env(mod_mode=False), log_file=log_file)
    return Path(info["Dir"])


# --------------------------------------------------------------------------------------------
# go invocation helpers


def _log(msg: str) -> None:
    print(f"[e2e.harness.components] {msg}", flush=True)


def _go_env(extra: dict[str, str] | None = None, mod_mode: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "0"
    env.setdefault("GOTOOLCHAIN", "local")
    # GOFLAGS in the environment replaces the go env file's value; keep -buildvcs=false.
    flags = ["-buildvcs=false", "-trimpath"]
    if mod_mode:
        flags.append("-mod=mod")
    env["GOFLAGS"] = " ".join(flags)
    if extra:
        env.update(extra)
    return env


def _run_go(
    args: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log_file: Path,
    label: str,
) -> None:
    """Run a go command with its output in ``log_file``, printing elapsed time while it runs."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(30):
            _log(f"  ... {label}: still running, {time.monotonic() - start:.0f}s (log: {log_file})")

    ticker = threading.Thread(target=heartbeat, daemon=True)
    with log_file.open("a") as log:
        log.write(f"\n$ (cd {cwd} && {' '.join(args)})\n")
        log.flush()
        ticker.start()
        try:
            rc = subprocess.run(list(args), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        finally:
            done.set()
            ticker.join()
    if rc != 0:
        tail = "".join(log_file.read_text(errors="replace").splitlines(keepends=True)[-40:])
        raise BuildError(f"{label}: `{' '.join(args)}` failed with exit code {rc}; log {log_file}:\n{tail}")


def _download_json(module_at_version: str, *, cwd: Path, env: dict[str, str], log_file: Path) -> dict[str, str]:
    cmd = ["go", "mod", "download", "-json", module_at_version]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    with log_file.open("a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise BuildError(f"go mod download {module_at_version} failed: {proc.stderr.strip()}") from exc
    if proc.returncode != 0 or info.get("Error"):
        raise BuildError(f"go mod download {module_at_version} failed: {info.get('Error') or proc.stderr}")
    return {k: v for k, v in info.items() if isinstance(v, str)}


def _go_version() -> str:
    out = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout
    return out.strip()


def _parse_replaces(gomod: str) -> list[tuple[str, str | None, str, str | None]]:
    """Return (old, old_version, new, new_version) for every replace directive in a go.mod text."""
    out: list[tuple[str, str | None, str, str | None]] = []
    in_block = False
    for raw in gomod.splitlines():
        line = raw.split("//", 1)[0].rstrip()
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("replace ("):
            in_block = True
            continue
        if in_block and stripped == ")":
            in_block = False
            continue
        if in_block or stripped.startswith("replace "):
            m = _REPLACE_LINE.match(stripped)
            if m:
                out.append((m.group(1), m.group(2), m.group(3), m.group(4)))
    return out


def _required_version(gomod: str, module: str) -> str | None:
    m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", gomod, re.M)
    return m.group(1) if m else None


def _staging_replaces(kubernetes_gomod: str, kubernetes_version: str) -> dict[str, str]:
    """Map every staging module of a k8s.io/kubernetes go.mod to the matching v0.<minor>.<patch>."""
    staging_version = "v0." + kubernetes_version.removeprefix("v").split(".", 1)[1]
    names = sorted(set(_STAGING_REPLACE.findall(kubernetes_gomod)))
    if not names:
        raise BuildError("no staging replace directives found in k8s.io/kubernetes go.mod")
    return {name: f"{name} {staging_version}" for name in names}


def _write_wrapper_module(
    build_dir: Path, name: str, requires: dict[str, str], replaces: dict[str, str], note: str
) -> None:
    go_minor = ".".join(_go_version().removeprefix("go").split(".")[:2])
    lines = [
        f"// Generated by e2e/harness/components.py: {note}",
        f"module tideover.local/e2e-build/{name}",
        "",
        f"go {go_minor}",
        "",
        "require (",
        *(f"\t{mod} {ver}" for mod, ver in sorted(requires.items())),
        ")",
        "",
        "replace (",
        *(f"\t{old} => {new}" for old, new in sorted(replaces.items())),
        ")",
        "",
    ]
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / "go.mod").write_text("\n".join(lines))


# --------------------------------------------------------------------------------------------
# per-component recipes: each writes the binary (and any extra files) into a temp dir


@dataclass(frozen=True)
class _Ctx:
    component: str
    version: str
    section: dict[str, object]
    out_dir: Path  # temporary install dir, renamed into place on success
    build_root: Path  # cache/build
    log_file: Path


def _kubernetes_ldflags(version: str) -> str:
    major, minor = version.removeprefix("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def _prepare_kubernetes_module(ctx: _Ctx) -> Path:
    module = _str(ctx.section, "module")
    build_dir = ctx.build_root / "kubernetes" / ctx.version
    gomod_file = build_dir / "go.mod"
    if gomod_file.is_file():
        return build_dir
    tmp = build_dir.with_name(f".{ctx.version}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    info = _download_json(f"{module}@{ctx.version}", cwd=tmp, env=_go_env(mod_mode=False), log_file=ctx.log_file)
    replaces = _staging_replaces(Path(info["GoMod"]).read_text(), ctx.version)
    _write_wrapper_module(
        tmp,
        "kubernetes",
        {module: ctx.version},
        replaces,
        f"builds {module} {ctx.version}; staging replaces copied from its go.mod",
    )
    shutil.rmtree(build_dir, ignore_errors=True)
    os.replace(tmp, build_dir)
    return build_dir


def _build_kubernetes(ctx: _Ctx) -> None:
    build_dir = _prepare_kubernetes_module(ctx)
    module = _str(ctx.section, "module")
    _run_go(
        [
            "go",
            "build",
            "-ldflags",
            _kubernetes_ldflags(ctx.version),
            "-o",
            str(ctx.out_dir / ctx.component),
            f"{module}/cmd/{ctx.component}",
        ],
        cwd=build_dir,
        env=_go_env(),
        log_file=ctx.log_file,
        label=ctx.component,
    )


def _build_via_wrapper(ctx: _Ctx, package: str, ldflags: str, note: str) -> None:
    """Build ``package`` from a generated module that requires the pinned upstream module.

    Used instead of ``go install pkg@version`` because that also fetches the module's version list
    (to look for deprecations), which some Go module proxies refuse, and because it refuses
    modules with replace directives (etcd's server module has some, pointing into its own repo).
    """
    module = _str(ctx.section, "module")
    build_dir = ctx.build_root / ctx.component / ctx.version
    _write_wrapper_module(build_dir, ctx.component, {module: ctx.version}, {}, f"builds {module} {ctx.version}; {note}")
    _run_go(
        ["go", "build", "-ldflags", ldflags, "-o", str(ctx.out_dir / ctx.component), package],
        cwd=build_dir,
        env=_go_env(),
        log_file=ctx.log_file,
        label=ctx.component,
    )


def _build_etcd(ctx: _Ctx) -> None:
    # server/v3's main package is the module root (server/main.go).
    _build_via_wrapper(
        ctx, _str(ctx.section, "module"), "-s -w", "its own replace directives only point into its repository"
    )


def _build_virtual_kubelet(ctx: _Ctx) -> None:
    _build_via_wrapper(
        ctx, _str(ctx.section, "package"), f"-s -w -X main.buildVersion={ctx.version}", "no replace directives"
    )


def _build_kwok(ctx: _Ctx) -> None:
    version_flag = f"-X sigs.k8s.io/kwok/pkg/consts.Version={ctx.version.removeprefix('v')}"
    _build_via_wrapper(ctx, _str(ctx.section, "package"), f"-s -w {version_flag}", "no replace directives")
    module = _str(ctx.section, "module")
    info = _download_json(
        f"{module}@{ctx.version}", cwd=ctx.out_dir, env=_go_env(mod_mode=False), log_file=ctx.log_file
    )
    stages = ctx.out_dir / KWOK_STAGES_DIR
    stages.mkdir()
    for rel in KWOK_STAGE_FILES:
        src = Path(info["Dir"]) / rel
        if not src.is_file():
            raise BuildError(f"kwok {ctx.version}: stage file {rel} not found in {info['Dir']}")
        shutil.copyfile(src, stages / src.name)


def _ca_env(section: dict[str, object], mod_mode: bool = True) -> dict[str, str]:
    nosumdb = section.get("nosumdb") or []
    extra: dict[str, str] = {}
    if isinstance(nosumdb, list) and nosumdb:
        existing = os.environ.get("GONOSUMDB", "")
        extra["GONOSUMDB"] = ",".join([p for p in [existing, *map(str, nosumdb)] if p])
    return _go_env(extra, mod_mode=mod_mode)


def _ca_module_dir(section: dict[str, object], cwd: Path, log_file: Path) -> Path:
    module = _str(section, "module")
    version = _str(section, "version")
    info = _download_json(f"{module}@{version}", cwd=cwd, env=_ca_env(section, mod_mode=False), log_file=log_file)
    return Path(info["Dir"])


def _build_cluster_autoscaler(ctx: _Ctx) -> None:
    module = _str(ctx.section, "module")
    build_dir = ctx.build_root / "cluster-autoscaler" / ctx.version
    build_dir.mkdir(parents=True, exist_ok=True)
    env = _ca_env(ctx.section)
    ca_info = _download_json(
        f"{module}@{ctx.version}", cwd=build_dir, env=_ca_env(ctx.section, False), log_file=ctx.log_file
    )
    ca_gomod = Path(ca_info["GoMod"]).read_text()

    replaces: dict[str, str] = {}
    # 1. Every staging module of the k8s.io/kubernetes version CA requires, at the matching v0.x.y
    #    (k8s.io/kubernetes requires them at v0.0.0).
    k8s_version = _required_version(ca_gomod, "k8s.io/kubernetes")
    if k8s_version is None:
        raise BuildError(f"{module}@{ctx.version}: go.mod does not require k8s.io/kubernetes")
    k8s_info = _download_json(
        f"k8s.io/kubernetes@{k8s_version}",
        cwd=build_dir,
        env=_ca_env(ctx.section, False),
        log_file=ctx.log_file,
    )
    replaces.update(_staging_replaces(Path(k8s_info["GoMod"]).read_text(), k8s_version))
    # 2. CA's own replace list (wins over 1); local-path replaces are mapped to module versions.
    local_map = {_str(ctx.section, "apis_module"): _str(ctx.section, "apis_version")}
    for old, old_ver, new, new_ver in _parse_replaces(ca_gomod):
        lhs = f"{old} {old_ver}" if old_ver else old
        if new.startswith("."):
            if old not in local_map:
                raise BuildError(f"CA go.mod replaces {old} with local path {new}; add it to versions.toml")
            replaces[lhs] = f"{old} {local_map[old]}"
        else:
            replaces[lhs] = f"{new} {new_ver}" if new_ver else new
    requires = {module: ctx.version, **local_map}
    _write_wrapper_module(
        build_dir,
        "cluster-autoscaler",
        requires,
        replaces,
        f"builds {module} {ctx.version}; replace list copied from its go.mod",
    )
    tags = ctx.section.get("build_tags") or []
    tag_args = ["-tags", ",".join(map(str, tags))] if isinstance(tags, list) and tags else []
    _run_go(
        [
            "go",
            "build",
            *tag_args,
            "-ldflags",
            "-s -w",
            "-o",
            str(ctx.out_dir / "cluster-autoscaler"),
            _str(ctx.section, "package"),
        ],
        cwd=build_dir,
        env=env,
        log_file=ctx.log_file,
        label="cluster-autoscaler",
    )


_RECIPES: dict[str, Callable[[_Ctx], None]] = {
    **{name: _build_kubernetes for name in KUBERNETES_BINARIES},
    "etcd": _build_etcd,
    "virtual-kubelet": _build_virtual_kubelet,
    "kwok": _build_kwok,
    "cluster-autoscaler": _build_cluster_autoscaler,
}


# --------------------------------------------------------------------------------------------
# public API


def build_component(component: str, versions: dict[str, dict[str, object]] | None = None) -> Path:
    """Build one component unless cached; return its binary path."""
    versions = versions or load_versions()
    version = component_version(component, versions)
    final = install_dir(component, versions)
    binary = final / component
    if binary.is_file():
        _log(f"{component} {version}: cached ({binary})")
        return binary
    # Serialise concurrent builds of one component (e.g. parallel test workers).
    with file_lock(component):
        if binary.is_file():
            _log(f"{component} {version}: cached ({binary}, built by another process)")
            return binary
        return _build_locked(component, version, versions, final, cache_root())


def _build_locked(
    component: str, version: str, versions: dict[str, dict[str, object]], final: Path, root: Path
) -> Path:
    binary = final / component
    log_file = root / "build" / "logs" / f"{component}-{version}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp.*"):  # left by killed builds (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.with_name(f".{final.name}.tmp.{os.getpid()}")
    tmp.mkdir()
    _log(f"{component} {version}: building (log: {log_file})")
    start = time.monotonic()
    try:
        ctx = _Ctx(component, version, _section(versions, component), tmp, root / "build", log_file)
        _RECIPES[component](ctx)
        if not (tmp / component).is_file():
            raise BuildError(f"{component}: build finished but {tmp / component} is missing")
        elapsed = time.monotonic() - start
        (tmp / BUILD_INFO).write_text(
            json.dumps(
                {
                    "component": component,
                    "version": version,
                    "go": _go_version(),
                    "seconds": round(elapsed, 1),
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
                indent=2,
            )
            + "\n"
        )
        shutil.rmtree(final, ignore_errors=True)  # a leftover without its binary
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _log(f"{component} {version}: built in {elapsed:.0f}s -> {binary}")
    return binary


def ensure_built(names: Iterable[str] | None = None) -> dict[str, Path]:
    """Build (or reuse cached) components; return component name -> binary path."""
    wanted = list(names) if names is not None else list(COMPONENTS)
    unknown = [n for n in wanted if n not in COMPONENTS]
    if unknown:
        raise BuildError(f"unknown component(s) {unknown}; known: {', '.join(COMPONENTS)}")
    versions = load_versions()
    # Build in the canonical order (kubernetes first: the longest, and shared by three binaries).
    ordered = [c for c in COMPONENTS if c in wanted]
    return {c: build_component(c, versions) for c in ordered}


def tool_dir(name: str, versions: dict[str, dict[str, object]] | None = None) -> Path:
    """Where the binaries of a ``binaries`` section of versions.toml (the kind suite's tools) are installed."""
    versions = versions or load_versions()
    version = component_version("kube-apiserver" if name == "node-binaries" else name, versions)
    return cache_root() / "bin" / name / version


def build_tool(name: str, versions: dict[str, dict[str, object]] | None = None) -> Path:
    """Build every binary of the versions.toml section ``name`` (its ``binaries`` table: output name -> package)
    unless cached; return their directory. ``node-binaries`` are built from the [kubernetes] module's wrapper."""
    versions = versions or load_versions()
    final = tool_dir(name, versions)
    if (final / BUILD_INFO).is_file():
        return final
    with file_lock(name):
        if (final / BUILD_INFO).is_file():
            return final
        tmp = final.with_name(f".{final.name}.tmp.{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log_file = cache_root() / "build" / "logs" / f"{name}-{final.name}.log"
        _log(f"{name} {final.name}: building (log: {log_file})")
        start = time.monotonic()
        try:
            _build_tool_binaries(name, versions, tmp, log_file)
            info = {"component": name, "version": final.name, "go": _go_version(),
                    "seconds": round(time.monotonic() - start, 1)}
            (tmp / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _log(f"{name} {final.name}: built in {time.monotonic() - start:.0f}s -> {final}")
        return final


def _build_tool_binaries(name: str, versions: dict[str, dict[str, object]], out: Path, log_file: Path) -> None:
    section = versions.get(name) or {}
    binaries = section.get("binaries")
    if not isinstance(binaries, dict) or not binaries:
        raise BuildError(f"versions.toml: [{name}] has no binaries table")
    build_root = cache_root() / "build"
    if name == "node-binaries":
        kubernetes = versions["kubernetes"]
        version = _str(kubernetes, "version")
        ctx = _Ctx(name, version, kubernetes, out, build_root, log_file)
        build_dir, ldflags = _prepare_kubernetes_module(ctx), _kubernetes_ldflags(version)
    else:
        build_dir, ldflags = _tool_module(name, section, build_root, log_file), "-s -w"
        extra = section.get("ldflags")
        if isinstance(extra, str) and extra:
            ldflags = f"{ldflags} {extra}"
    tags = section.get("tags") or []
    tag_args = ["-tags", ",".join(map(str, tags))] if isinstance(tags, list) and tags else []
    for binary, package in sorted(binaries.items()):
        _run_go(["go", "build", *tag_args, "-ldflags", ldflags, "-o", str(out / binary), str(package)],
                cwd=build_dir, env=_go_env(), log_file=log_file, label=f"{name}/{binary}")


def _tool_module(name: str, section: dict[str, object], build_root: Path, log_file: Path) -> Path:
    """A wrapper module requiring the section's module, with the module's own (non-local) replace directives."""
    module, version = _str(section, "module"), _str(section, "version")
    build_dir = build_root / name / version
    build_dir.mkdir(parents=True, exist_ok=True)
    info = _download_json(f"{module}@{version}", cwd=build_dir, env=_go_env(mod_mode=False), log_file=log_file)
    replaces: dict[str, str] = {}
    for old, old_ver, new, new_ver in _parse_replaces(Path(info["GoMod"]).read_text()):
        if new.startswith("."):
            raise BuildError(f"{module} {version}: go.mod replaces {old} with local path {new}")
        replaces[f"{old} {old_ver}" if old_ver else old] = f"{new} {new_ver}" if new_ver else new
    _write_wrapper_module(build_dir, name, {module: version}, replaces, f"builds {module} {version}")
    return build_dir


def ca_proto_path() -> Path:
    """Path of cluster-autoscaler's externalgrpc.proto inside the Go module cache (downloads it if needed)."""
    section = _section(load_versions(), "cluster-autoscaler")
    work = cache_root() / "build"
    work.mkdir(parents=True, exist_ok=True)
    proto = _ca_module_dir(section, work, work / "logs" / "proto-path.log") / CA_PROTO_RELPATH
    if not proto.is_file():
        raise BuildError(f"{proto} does not exist")
    return proto


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.harness.components", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build all (or some) components, reusing cached ones")
    b.add_argument("--only", nargs="+", choices=COMPONENTS, metavar="NAME", help=f"subset of {COMPONENTS}")
    p = sub.add_parser("path", help="print a component's binary path (does not build)")
    p.add_argument("name", choices=COMPONENTS)
    sub.add_parser("proto-path", help="print the path of cluster-autoscaler's externalgrpc.proto")
    sub.add_parser("versions", help="print the pinned versions")
    args = parser.parse_args(argv)

    def on_sigterm(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds: the running go command is killed, temp dirs removed

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        if args.cmd == "build":
            start = time.monotonic()
            paths = ensure_built(args.only)
            _log(f"done: {len(paths)} component(s) in {time.monotonic() - start:.1f}s")
        elif args.cmd == "path":
            print(binary_path(args.name))
        elif args.cmd == "proto-path":
            print(ca_proto_path())
        elif args.cmd == "versions":
            versions = load_versions()
            for c in COMPONENTS:
                print(f"{c} {component_version(c, versions)}")
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
