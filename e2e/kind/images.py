"""Every image the kind suite's cluster needs, built on this machine with no container registry.

Usage (from the repository root)::

    python -m e2e.kind.images build              # build what is missing; print KIND=... NODE_IMAGE=... lines
    python -m e2e.kind.images path NAME          # the path of a built tool: kind, kubectl (does not build)
    python -m e2e.kind.images prune [--dry-run]  # remove tideover-kind/* images the current recipes do not name

``build`` prints shell lines (``eval "$(python -m e2e.kind.images build)"``) and logs each stage with its duration
to stderr; each stage's build log is ``<cache>/build/logs/kind-images/<stage>.log`` (on failure: its path and tail).

Sources: Go modules at the versions pinned in e2e/versions.toml (built by :mod:`e2e.harness.components`), Debian
packages (``debootstrap``), and files of upstream modules read from the Go module cache at build time (kind's base-image
files, kubernetes' pause.c, kwok's kustomize), never copied into this repository:

- ``tideover-kind/rootfs``: Debian bookworm with kind's base packages (images/rootfs.sh), ``docker import``-ed;
- ``tideover-kind/python``: Debian bookworm with python3 (3.11) and python3-venv: the Dockerfile's ``PYTHON_IMAGE``;
- ``tideover-kind/base``: kind's base image (images/base.Dockerfile) with containerd 2.x, crictl, the CNI plugins;
- ``tideover-kind/node``: ``kind build node-image --type file`` of a hand-made kubernetes-server tarball. kind imports
  only the image tars of kube-apiserver, kube-controller-manager, kube-scheduler and kube-proxy, so ``kube-proxy.tar``
  also carries pause, etcd, coredns, the kindnetd stand-in (images/kindnetd.sh), local-path-provisioner and its
  helper, virtual-kubelet and kwok, under the names kubeadm and kind expect ([images] in versions.toml, checked
  against ``kubeadm config images list`` and kind's source): nothing is ever pulled;
- ``tideover-kind/virtual-kubelet:<version>`` and ``registry.k8s.io/kwok/kwok:<version>``: FROM scratch images of
  the binaries e2e/harness/components.py builds (also inside the node image); kwok's manifests, from
  ``kubectl kustomize``.

Cache: every image carries the label ``io.tideover.recipe``, a hash of the versions it is made of and of the
recipe files that make it (this module, images/*); an image whose label matches is not rebuilt, so a second run
builds nothing. Each build goes to a temporary name (``tideover-kind/tmp``) and directory, renamed on success;
kind's ``kind-build-*`` container and the intermediate images of a failed ``docker build`` are removed.

Users who can pull images: ``TIDEOVER_KIND_IMAGES=upstream`` skips the offline node and Python images and prints
kind's own ``kindest/node:<Kubernetes version>`` and ``python:3.11-slim`` (pulled by kind and docker);
``TIDEOVER_KIND_NODE_IMAGE=<image>`` names the node image to use instead, in either mode (use it with
``TIDEOVER_KIND_IMAGES=upstream`` for a node image without virtual-kubelet and kwok: up.sh then loads them).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.harness import components

Versions = dict[str, dict[str, object]]

HERE = Path(__file__).resolve().parent
RECIPES = HERE / "images"
ROOTFS_SCRIPT = RECIPES / "rootfs.sh"
BASE_DOCKERFILE = RECIPES / "base.Dockerfile"
KINDNETD_SCRIPT = RECIPES / "kindnetd.sh"

# versions.toml sections built with components.build_tool (a `binaries` table each).
TOOLS = ("kind", "node-binaries", "containerd", "cri-tools", "cni-plugins", "coredns", "local-path-provisioner")
UPSTREAM_TOOLS = ("kind", "node-binaries")  # kind and kubectl, needed in every mode
# e2e/harness/components.py's components that go into images.
IMAGE_COMPONENTS = (*components.KUBERNETES_BINARIES, "etcd", "virtual-kubelet", "kwok")
# kind's base image packages (its images/base/Dockerfile), as Debian bookworm names; runc from Debian.
NODE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "conntrack", "iptables", "nftables", "iproute2", "ethtool", "util-linux",
    "mount", "kmod", "libseccomp2", "pigz", "e2fsprogs", "bash", "ca-certificates", "curl", "jq", "procps", "runc",
    "findutils",
)
PYTHON_PACKAGES = ("python3", "python3-venv", "ca-certificates")
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# [images] keys whose value must equal a constant of the pinned kind module's source: key -> (file, constant).
KIND_CONSTANTS = {
    "kindnetd": ("pkg/build/nodeimage/const_cni.go", "kindnetdImage"),
    "local-path-provisioner": ("pkg/build/nodeimage/const_storage.go", "storageProvisionerImage"),
    "local-path-helper": ("pkg/build/nodeimage/const_storage.go", "storageHelperImage"),
}
KIND_CONTAINERD_CONFIG = "images/base/files/etc/containerd/config.toml"  # names the sandbox (pause) image
KIND_BASE_FILES = "images/base/files"
KWOK_KUSTOMIZATIONS = ("kustomize/kwok", "kustomize/stage/fast")
SERVER_TARS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")

KEY_LABEL = "io.tideover.recipe"  # the cache key of every image this module builds
REPO = "tideover-kind"
TEMP_REPO = f"{REPO}/tmp"  # images being built; renamed when complete
STAGE_REPO = f"{REPO}/stage"  # images that go into the node image, under the names kind wants only in its tarball
ENV_MODE = "TIDEOVER_KIND_IMAGES"
ENV_NODE_IMAGE = "TIDEOVER_KIND_NODE_IMAGE"
UPSTREAM_NODE_IMAGE = "kindest/node:{version}"
UPSTREAM_PYTHON_IMAGE = "python:3.11-slim"


class ImageError(RuntimeError):
    """An image could not be built."""


@dataclass(frozen=True)
class Built:
    """What up.sh needs, as shell variables."""

    kind: Path
    kubectl: Path
    node_image: str
    python_image: str
    virtual_kubelet_image: str
    kwok_image: str
    kwok_manifests: Path

    def shell(self) -> str:
        """``NAME="value"`` lines for a shell's eval."""
        pairs = {
            "KIND": self.kind, "KUBECTL": self.kubectl, "NODE_IMAGE": self.node_image,
            "PYTHON_IMAGE": self.python_image, "VIRTUAL_KUBELET_IMAGE": self.virtual_kubelet_image,
            "KWOK_IMAGE": self.kwok_image, "KWOK_MANIFESTS": self.kwok_manifests,
        }
        return "\n".join(f"{key}={json.dumps(str(value))}" for key, value in pairs.items())


# ------------------------------------------------------------------------------------------------ pins and keys


def pinned(versions: Versions, section: str, key: str = "version") -> str:
    """versions.toml's ``[section] key``, a non-empty string; an :class:`ImageError` naming it when missing."""
    value = versions.get(section, {}).get(key)
    if not isinstance(value, str) or not value:
        raise ImageError(f"{components.VERSIONS_FILE.name}: [{section}] has no {key!r} string: pin it there")
    return value


def pinned_images(versions: Versions, key: str) -> list[str]:
    """``[images] key``: one image name or a list of them."""
    value = versions.get("images", {}).get(key)
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ImageError(f"{components.VERSIONS_FILE.name}: [images] has no {key!r} image name: pin it there")
    return [str(name) for name in names]


def digest(*parts: object) -> str:
    """A short, stable hash of ``parts`` (a :class:`Path` counts by its content, anything else by ``str``)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.read_bytes() if isinstance(part, Path) else str(part).encode()
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()[:16]


def recipe_key(*parts: object) -> str:
    """:func:`digest` of ``parts`` and of this module's own source (it is the recipe of every image it builds)."""
    return digest(Path(__file__), *parts)


def rootfs_tag(name: str, packages: Sequence[str]) -> str:
    """The name of a debootstrap rootfs image: its recipe is images/rootfs.sh and its arguments only."""
    return f"{REPO}/{name}:{digest(ROOTFS_SCRIPT, SUITE, MIRROR, *packages)}"


def base_tag(versions: Versions, rootfs: str) -> str:
    """The name of the kind base image made FROM ``rootfs``."""
    pins = [pinned(versions, name) for name in ("kind", "containerd", "cri-tools", "cni-plugins")]
    return f"{REPO}/base:{recipe_key(rootfs, BASE_DOCKERFILE, *pins)}"


def node_tag(versions: Versions, base: str, rootfs: str) -> str:
    """The name of the node image: everything inside it (the base, every version, every image name) is in it."""
    pins = [pinned(versions, name) for name in ("kubernetes", "etcd", "coredns", "local-path-provisioner",
                                                "virtual-kubelet", "kwok")]
    images = sorted((key, tuple(pinned_images(versions, key))) for key in versions.get("images", {}))
    kubernetes = pinned(versions, "kubernetes")
    return f"{REPO}/node:{kubernetes}-{recipe_key(base, rootfs, KINDNETD_SCRIPT, *pins, images)}"


def cluster_image_names(versions: Versions) -> dict[str, str]:
    """virtual-kubelet's and kwok's image names (kwok's manifests name registry.k8s.io/kwok/kwok:<version>)."""
    return {
        "virtual-kubelet": f"{REPO}/virtual-kubelet:{pinned(versions, 'virtual-kubelet')}",
        "kwok": f"registry.k8s.io/kwok/kwok:{pinned(versions, 'kwok')}",
    }


def split_name(name: str) -> tuple[str, str]:
    """``repository:tag`` -> (repository, tag); the tag is after the last ``:`` that follows the last ``/``."""
    repository, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        raise ImageError(f"image name {name!r} has no tag")
    return repository, tag


def qualified(name: str) -> str:
    """``name`` with docker.io/ in front when it names no registry (what ``docker save`` drops)."""
    first = name.split("/", 1)[0]
    has_registry = "/" in name and ("." in first or ":" in first or first == "localhost")
    return name if has_registry else f"docker.io/{name}"


# ------------------------------------------------------------------------------------------------ upstream checks


def kind_constant(module: Path, relpath: str, constant: str) -> str:
    """The string value of ``const <constant> = "..."`` in a Go file of the kind module."""
    match = re.search(rf'^const {re.escape(constant)} = "([^"]+)"', (module / relpath).read_text(), re.M)
    if match is None:
        raise ImageError(f"{module}/{relpath}: no const {constant}")
    return match.group(1)


def sandbox_image(containerd_config: str) -> str:
    """The ``sandbox_image`` (or ``sandbox``) a containerd config.toml names."""
    match = re.search(r'^\s*sandbox(?:_image)?\s*=\s*"([^"]+)"', containerd_config, re.M)
    if match is None:
        raise ImageError("kind's containerd config names no sandbox image")
    return match.group(1)


def missing_pins(expected: Sequence[str], pinned_names: Sequence[str]) -> list[str]:
    """The names in ``expected`` (by kubeadm or kind) that no pinned name matches (docker.io/ optional)."""
    have = {qualified(name) for name in pinned_names}
    return [name for name in expected if qualified(name) not in have]


def check_pins(versions: Versions, kind_module: Path, kubeadm: Path) -> None:
    """Every image kubeadm and kind will look for in the node must be pinned in [images] (or be built here)."""
    for key, (relpath, constant) in KIND_CONSTANTS.items():
        want, have = kind_constant(kind_module, relpath, constant), pinned_images(versions, key)[0]
        if qualified(want) != qualified(have):
            raise ImageError(f"[images] {key} = {have!r}, but kind {pinned(versions, 'kind')} expects {want!r} "
                             f"({relpath}, {constant}): update e2e/versions.toml")
    listed = subprocess.run([str(kubeadm), "config", "images", "list", "--kubernetes-version",
                             pinned(versions, "kubernetes")], capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        raise ImageError(f"kubeadm config images list failed: {listed.stderr.strip()}")
    expected = [*listed.stdout.split(), sandbox_image((kind_module / KIND_CONTAINERD_CONFIG).read_text())]
    expected = [name for name in expected if not re.search(r"/kube-(apiserver|controller-manager|scheduler|proxy):",
                                                           name)]
    pins = [name for key in versions.get("images", {}) for name in pinned_images(versions, key)]
    missing = missing_pins(expected, pins)
    if missing:
        raise ImageError(f"kubeadm/kind expect {', '.join(missing)}, which [images] in e2e/versions.toml does not "
                         "pin: add them (nothing can be pulled)")


# ------------------------------------------------------------------------------------------------ docker helpers


def _log(message: str) -> None:
    print(f"[e2e.kind.images] {message}", file=sys.stderr, flush=True)


def logs_dir() -> Path:
    """Where each stage's build log goes."""
    path = components.cache_root() / "build" / "logs" / "kind-images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(args: Sequence[str | Path], log: Path, *, env: Mapping[str, str] | None = None) -> str:
    """Run a command (in ``env``: the environment) with its output appended to ``log``; return that output, or raise
    with the log's tail."""
    start = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(map(str, args))}\n".encode())
        out.flush()
        rc = subprocess.run(list(map(str, args)), env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    with log.open("rb") as f:
        f.seek(start)
        output = f.read().decode(errors="replace")
    if rc != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise ImageError(f"`{' '.join(map(str, args))}` failed ({rc}); log {log}:\n{tail}")
    return output


def _inspect(name: str, template: str) -> str | None:
    """``docker image inspect --format template name``, or None when there is no such image."""
    proc = subprocess.run(["docker", "image", "inspect", "--format", template, name], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def image_key(name: str) -> str | None:
    """The cache-key label of image ``name`` (None: no image, or made by something else)."""
    value = _inspect(name, f'{{{{index .Config.Labels "{KEY_LABEL}"}}}}')
    return None if value in (None, "", "<no value>") else value


def image_id(name: str) -> str | None:
    """The ID of image ``name``, or None."""
    return _inspect(name, "{{.Id}}")


def untag(name: str) -> None:
    """Remove the name ``name``. An image left with no name goes, with the unnamed parents only it used (the steps
    of its build); an image that has other names, children or containers stays."""
    subprocess.run(["docker", "image", "rm", name], capture_output=True)


def rename_image(temp: str, final: str, log: Path) -> None:
    """Name ``temp``'s image ``final`` and drop ``temp``. The image ``final`` named before goes too when this builder
    made it (it carries :data:`KEY_LABEL`) and nothing else uses it (``docker image rm`` refuses otherwise)."""
    old_id = image_id(final) if image_key(final) else None
    run(["docker", "tag", temp, final], log)
    untag(temp)
    if old_id and old_id != image_id(final):
        subprocess.run(["docker", "image", "rm", old_id], capture_output=True)


def remove_failed_build_images(output: str) -> None:
    """The intermediate images a failed legacy ``docker build`` left (its `` ---> <id>`` lines), newest first; an
    image that has children or a name stays (``docker image rm`` without force refuses)."""
    ids = re.findall(r"^ ---> ([0-9a-f]{12})$", output, re.M)
    for image in reversed(ids):
        subprocess.run(["docker", "image", "rm", "--no-prune", image], capture_output=True)


def docker_build(tag: str, dockerfile: str, context: Path, log: Path, key: str,
                 build_args: Mapping[str, str] | None = None) -> None:
    """``docker build`` of ``dockerfile`` (text) in ``context`` as ``tag``, labelled with ``key``."""
    (context / "Dockerfile").write_text(dockerfile)
    args: list[str | Path] = ["docker", "build", "--rm", "--force-rm", "--label", f"{KEY_LABEL}={key}", "-t", tag]
    for name, value in (build_args or {}).items():
        args += ["--build-arg", f"{name}={value}"]
    start = log.stat().st_size if log.exists() else 0
    try:
        run([*args, context], log)
    except ImageError:
        remove_failed_build_images(log.read_bytes()[start:].decode(errors="replace"))
        raise


def remove_kind_build_container(output: str, log: Path) -> None:
    """kind's build container (``Building in container: kind-build-...``), when kind left it (e.g. killed)."""
    for name in re.findall(r"Building in container: (kind-build-[0-9-]+)", output):
        listed = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^/{name}$"], capture_output=True, text=True)
        if listed.stdout.strip():
            run(["docker", "rm", "-f", "-v", name], log)


# ------------------------------------------------------------------------------------------------ saved-image tars


def _rename_repositories(repositories: dict[str, dict[str, str]], names: Mapping[str, Sequence[str]]
                         ) -> dict[str, dict[str, str]]:
    """A ``repositories`` file's content with every ``repo:tag`` replaced by its names in ``names``, qualified."""
    out: dict[str, dict[str, str]] = {}
    for repository, tags in repositories.items():
        for tag, layer in tags.items():
            for name in names.get(f"{repository}:{tag}", [f"{repository}:{tag}"]):
                final_repository, final_tag = split_name(qualified(name))
                out.setdefault(final_repository, {})[final_tag] = layer
    return out


def _rename_manifest(manifest: list[dict[str, object]], names: Mapping[str, Sequence[str]]) -> list[dict[str, object]]:
    """A ``manifest.json``'s entries with their RepoTags replaced by their names in ``names``, qualified."""
    for entry in manifest:
        tags = entry.get("RepoTags") or []
        assert isinstance(tags, list)
        entry["RepoTags"] = [qualified(name) for tag in tags for name in names.get(str(tag), [str(tag)])]
    return manifest


def rewrite_saved(source: Path, target: Path, names: Mapping[str, Sequence[str]]) -> None:
    """Write ``source`` (a ``docker save`` tar) to ``target`` as kind's node-image build reads it: ``repositories``
    first, then ``manifest.json`` (kind takes the names from whichever comes first, and from manifest.json only the
    first image's), every ``repo:tag`` renamed as ``names`` says (a saved name -> the names it gets) and qualified
    with its registry (docker.io/ where ``docker save`` dropped it), in both files. Layers are streamed."""
    with tarfile.open(source) as src, tarfile.open(target, "w") as dst:
        repositories = _rename_repositories(_read_json(src, "repositories", source), names)
        manifest = _rename_manifest(_read_json(src, "manifest.json", source), names)
        for name, content in (("repositories", repositories), ("manifest.json", manifest)):
            member = src.getmember(name)
            data = json.dumps(content).encode()
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
        for member in src.getmembers():
            if member.name not in ("repositories", "manifest.json"):
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)


def _read_json(tar: tarfile.TarFile, name: str, source: Path) -> Any:
    """The JSON file ``name`` of a ``docker save`` tar (opened from ``source``)."""
    try:
        raw = tar.extractfile(name)
    except KeyError:
        raw = None
    if raw is None:
        raise ImageError(f"{source}: no {name} (not a docker save archive?)")
    return json.load(raw)


# ------------------------------------------------------------------------------------------------ the builder


@dataclass
class Builder:
    """Builds the images of one run, timing every stage; ``work`` is a temporary directory removed afterwards."""

    versions: Versions
    work: Path
    timings: list[tuple[str, float, str]] = field(default_factory=list)

    def record(self, what: str, start: float, outcome: str) -> None:
        """Log and keep a stage's outcome (cached or built) and its duration since ``start``."""
        seconds = time.monotonic() - start
        self.timings.append((what, seconds, outcome))
        _log(f"{what}: {outcome} in {seconds:.1f}s")

    def cached(self, name: str, tag: str, key: str) -> bool:
        """Whether an image ``tag`` carries ``key`` (then the stage is recorded as cached)."""
        start = time.monotonic()
        if image_key(tag) != key:
            return False
        self.record(f"image {name}", start, "cached")
        return True

    def image(self, name: str, tag: str, key: str, make: Callable[[str, Path], None]) -> str:
        """``tag``, made by ``make(temporary name, log)`` and renamed, unless an image ``tag`` carries ``key``.
        ``name`` names the stage in the log and its log file (``<logs>/<name>.log``, rewritten at each build)."""
        if self.cached(name, tag, key):
            return tag
        start, what = time.monotonic(), f"image {name}"
        log = logs_dir() / f"{name}.log"
        log.write_text(f"# {tag} (key {key})\n")
        _log(f"{what}: building {tag} (log {log})")
        temp = f"{TEMP_REPO}:{name}-{os.getpid()}"
        try:
            make(temp, log)
            rename_image(temp, tag, log)
        finally:
            untag(temp)
        self.record(what, start, "built")
        return tag

    def tool(self, name: str) -> Path:
        """A versions.toml ``binaries`` section, built by e2e/harness/components.py unless cached; its directory."""
        start = time.monotonic()
        cached = (components.tool_dir(name, self.versions) / components.BUILD_INFO).is_file()
        path = components.build_tool(name, self.versions)
        self.record(f"go {name}", start, "cached" if cached else "built")
        return path

    def component(self, name: str) -> Path:
        """One of e2e/harness/components.py's components (built unless cached); its binary."""
        start = time.monotonic()
        cached = components.is_cached(name, self.versions)
        path = components.build_component(name, self.versions)
        self.record(f"go {name}", start, "cached" if cached else "built")
        return path

    def module(self, section: str) -> Path:
        """The pinned module of ``[section]`` in the Go module cache."""
        module = pinned(self.versions, section, "module")
        return components.module_dir(module, pinned(self.versions, section), logs_dir() / "modules.log")

    def summary(self) -> str:
        """One line per stage: what, outcome, seconds."""
        return "\n".join(f"  {what:<40} {outcome:<7} {seconds:7.1f}s" for what, seconds, outcome in self.timings)

    # -------------------------------------------------------------------------------------------- debootstrap

    def rootfs(self, name: str, packages: Sequence[str]) -> str:
        """Debian ``SUITE`` minbase with ``packages``: images/rootfs.sh (debootstrap, then ``docker import``)."""
        tag = rootfs_tag(name, packages)
        key = split_name(tag)[1]

        def make(temp: str, log: Path) -> None:
            if shutil.which("debootstrap") is None:
                run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"], log)
            with tempfile.TemporaryDirectory(prefix="rootfs-", dir=self.work) as tmp:
                run(["bash", ROOTFS_SCRIPT, temp, f"{KEY_LABEL}={key}", SUITE, MIRROR, ",".join(packages), tmp], log)

        return self.image(name, tag, key, make)

    # -------------------------------------------------------------------------------------------- kind's base

    def base(self, rootfs: str, tools: Mapping[str, Path]) -> str:
        """kind's base image from its own files (images/base/files of the pinned kind module) and our binaries."""
        tag = base_tag(self.versions, rootfs)
        key = split_name(tag)[1]

        def make(temp: str, log: Path) -> None:
            with tempfile.TemporaryDirectory(prefix="base-", dir=self.work) as tmp:
                context = Path(tmp)
                shutil.copytree(self.module("kind") / KIND_BASE_FILES, context / "files")
                (context / "bin").mkdir()
                for name in ("containerd", "ctr", "containerd-shim-runc-v2"):
                    shutil.copy(tools["containerd"] / name, context / "bin")
                shutil.copy(tools["cri-tools"] / "crictl", context / "bin")
                shutil.copytree(tools["cni-plugins"], context / "cni", ignore=shutil.ignore_patterns("*.json"))
                run(["chmod", "-R", "u+w", context], log)  # module-cache files are read-only
                docker_build(temp, BASE_DOCKERFILE.read_text(), context, log, key, {"ROOTFS": rootfs})

        return self.image("base", tag, key, make)

    # -------------------------------------------------------------------------------------------- small images

    def binary_image(self, name: str, tag: str, files: Mapping[str, Path], *, entrypoint: Sequence[str] = (),
                     base: str | None = None, user: str | None = None) -> str:
        """``tag``: ``files`` (name in /usr/local/bin, or an absolute path -> file) on ``base``, or FROM scratch with
        a skeleton (/tmp, /etc/passwd, /etc/group, CA certificates) like the distroless images upstream uses."""
        dockerfile = binary_dockerfile(files, entrypoint, base, user)
        key = recipe_key(dockerfile, *files.values())  # the Dockerfile names the base; files count by content

        def make(temp: str, log: Path) -> None:
            with tempfile.TemporaryDirectory(prefix="img-", dir=self.work) as tmp:
                context = Path(tmp)
                if base is None:
                    write_skeleton(context / "skel")
                (context / "files").mkdir()
                for target, path in files.items():
                    copy = context / "files" / Path(target).name
                    shutil.copy(path, copy)
                    copy.chmod(0o755)
                docker_build(temp, dockerfile, context, log, key)

        return self.image(name, tag, key, make)

    def cluster_images(self, binaries: Mapping[str, Path]) -> dict[str, str]:
        """virtual-kubelet (mock provider) and kwok, FROM scratch: component -> image name."""
        names = cluster_image_names(self.versions)
        for component, tag in names.items():
            self.binary_image(component, tag, {component: binaries[component]},
                              entrypoint=[f"/usr/local/bin/{component}"])
        return names

    def pause_binary(self, log: Path) -> Path:
        """kubernetes' pause (build/pause/linux/pause.c of the pinned module), static, as its Makefile builds it."""
        source = self.module("kubernetes") / "build" / "pause" / "linux" / "pause.c"
        tag = split_name(pinned_images(self.versions, "pause")[0])[1]
        out = self.work / "pause"
        run(["gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{tag}", "-o", out, source], log)
        return out

    # -------------------------------------------------------------------------------------------- node image

    def stage_images(self, tools: Mapping[str, Path], binaries: Mapping[str, Path], rootfs: str,
                     cluster: Mapping[str, str]) -> dict[str, dict[str, list[str]]]:
        """Every image the node carries, under private names (``cluster``: virtual-kubelet's and kwok's, built):
        server tar -> {built name: its names in the node}."""
        versions, kubernetes = self.versions, pinned(self.versions, "kubernetes")
        tars: dict[str, dict[str, list[str]]] = {name: {} for name in SERVER_TARS}

        def stage(tar: str, name: str, final: Sequence[str], files: Mapping[str, Path], entrypoint: Sequence[str] = (),
                  base: str | None = None, user: str | None = None) -> None:
            built = self.binary_image(f"stage-{name}", f"{STAGE_REPO}:{name}-{kubernetes}", files,
                                      entrypoint=entrypoint, base=base, user=user)
            tars[tar][built] = list(final)

        for name in components.KUBERNETES_BINARIES:
            stage(name, name, [f"registry.k8s.io/{name}:{kubernetes}"], {name: binaries[name]})
        proxy, lpp, bin_dir = "kube-proxy", "local-path-provisioner", "/usr/local/bin"
        stage(proxy, proxy, [f"registry.k8s.io/{proxy}:{kubernetes}"], {proxy: tools["node-binaries"] / proxy},
              base=rootfs)  # iptables
        stage(proxy, "pause", pinned_images(versions, "pause"), {"/pause": self.pause_binary(logs_dir() / "pause.log")},
              entrypoint=["/pause"], user="65535:65535")
        stage(proxy, "etcd", pinned_images(versions, "etcd"), {"etcd": binaries["etcd"]})
        stage(proxy, "coredns", pinned_images(versions, "coredns"), {"coredns": tools["coredns"] / "coredns"},
              entrypoint=[f"{bin_dir}/coredns"])
        stage(proxy, "kindnetd", pinned_images(versions, "kindnetd"), {"kindnetd": KINDNETD_SCRIPT},
              entrypoint=[f"{bin_dir}/kindnetd"], base=rootfs)  # bash, curl, jq, iproute2, iptables
        stage(proxy, lpp, pinned_images(versions, lpp), {lpp: tools[lpp] / lpp})
        # The helper runs sh, mkdir and rm (kind's storage manifest): the rootfs has them.
        stage(proxy, "local-path-helper", pinned_images(versions, "local-path-helper"), {}, base=rootfs)
        for name in cluster.values():
            tars[proxy][name] = [name]
        return tars

    def server_tarball(self, tools: Mapping[str, Path], tars: Mapping[str, Mapping[str, Sequence[str]]],
                       log: Path) -> Path:
        """kubernetes-server-linux-amd64.tar.gz as ``kind build node-image --type file`` reads it
        (pkg/build/nodeimage/internal/kube/builder_tarball.go): the version, three binaries, four image tars."""
        root = self.work / "kubernetes"
        bin_dir = root / "server" / "bin"
        bin_dir.mkdir(parents=True)
        (root / "version").write_text(f"{pinned(self.versions, 'kubernetes')}\n")
        for name in ("kubeadm", "kubelet", "kubectl"):
            shutil.copy(tools["node-binaries"] / name, bin_dir / name)
        for name, images in tars.items():
            saved = self.work / f"{name}.saved.tar"
            run(["docker", "save", "-o", saved, *images], log)
            rewrite_saved(saved, bin_dir / f"{name}.tar", images)
            saved.unlink()
        tarball = self.work / "kubernetes-server-linux-amd64.tar.gz"
        with gzip.open(tarball, "wb", compresslevel=1) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
            tar.add(root, arcname="kubernetes")
        shutil.rmtree(root)
        return tarball

    def node(self, tools: Mapping[str, Path], binaries: Mapping[str, Path], rootfs: str, base: str,
             cluster: Mapping[str, str]) -> str:
        """The node image: ``kind build node-image --type file`` of :meth:`server_tarball`, then labelled."""
        tag = node_tag(self.versions, base, rootfs)
        key = split_name(tag)[1]
        if self.cached("node", tag, key):
            return tag
        check_pins(self.versions, self.module("kind"), tools["node-binaries"] / "kubeadm")
        tars = self.stage_images(tools, binaries, rootfs, cluster)

        def make(temp: str, log: Path) -> None:
            tarball = self.server_tarball(tools, tars, log)
            kind_build(tools["kind"] / "kind", base, f"{temp}-unlabelled", tarball, log)
            try:
                with tempfile.TemporaryDirectory(prefix="label-", dir=self.work) as tmp:
                    docker_build(temp, f"FROM {temp}-unlabelled\n", Path(tmp), log, key)
            finally:
                untag(f"{temp}-unlabelled")

        self.image("node", tag, key, make)
        # Inside the node image now; virtual-kubelet's and kwok's images stay (upstream mode loads them).
        for built in {name for images in tars.values() for name in images if name.startswith(f"{STAGE_REPO}:")}:
            untag(built)
        return tag


def kind_build(kind: Path, base: str, image: str, tarball: Path, log: Path) -> None:
    """``kind build node-image --type file``; its build container is removed even when kind fails. kind extracts
    the tarball into $TMPDIR and leaves it there (about 1 GB): $TMPDIR is the tarball's directory, removed with it."""
    start = log.stat().st_size if log.exists() else 0
    args: list[str | Path] = [kind, "build", "node-image", "--type", "file", "--base-image", base, "--image", image,
                              tarball]
    try:
        run(args, log, env={**os.environ, "TMPDIR": str(tarball.parent)})
    finally:
        remove_kind_build_container(log.read_bytes()[start:].decode(errors="replace"), log)


def binary_dockerfile(files: Mapping[str, Path], entrypoint: Sequence[str], base: str | None,
                      user: str | None) -> str:
    """The Dockerfile of :meth:`Builder.binary_image` (files are in the context's files/ directory)."""
    lines = [f"FROM {base}" if base else "FROM scratch", *([] if base else ["COPY skel/ /"])]
    for name in files:
        target = name if name.startswith("/") else f"/usr/local/bin/{name}"
        lines.append(f"COPY files/{Path(name).name} {target}")
    lines.append("ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    lines += [f"USER {user}"] if user else []
    lines += [f"ENTRYPOINT {json.dumps(list(entrypoint))}"] if entrypoint else []
    return "\n".join(lines) + "\n"


def write_skeleton(skel: Path) -> None:
    """/tmp, /etc/passwd, /etc/group, nsswitch.conf and the host's CA bundle, for FROM scratch images."""
    (skel / "etc" / "ssl" / "certs").mkdir(parents=True)
    (skel / "tmp").mkdir()
    (skel / "tmp").chmod(0o1777)
    (skel / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532::/home:/sbin/nologin\n"
    )
    (skel / "etc" / "group").write_text("root:x:0:\nnonroot:x:65532:\n")
    (skel / "etc" / "nsswitch.conf").write_text("hosts: files dns\n")
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", skel / "etc" / "ssl" / "certs" / "ca-certificates.crt")


# ------------------------------------------------------------------------------------------------ kwok manifests


def kwok_manifests(builder: Builder, kubectl: Path) -> Path:
    """kwok's controller and its fast stages: ``kubectl kustomize`` of the pinned kwok module's kustomize/kwok and
    kustomize/stage/fast (what kwok's release files are made from), its image pinned to the version built here."""
    version = pinned(builder.versions, "kwok")
    out = components.cache_root() / "kind" / f"kwok-{version}-{recipe_key(version)}.yaml"
    start = time.monotonic()
    if out.is_file():
        builder.record("kwok manifests", start, "cached")
        return out
    module = builder.module("kwok")
    docs = [_kustomize(kubectl, module / relpath) for relpath in KWOK_KUSTOMIZATIONS]
    image = f"image: {cluster_image_names(builder.versions)['kwok']}"
    # kwok's kustomize names its image without a tag (its release sets it).
    docs = [re.sub(r"(?m)image: registry\.k8s\.io/kwok/kwok\s*$", image, doc) for doc in docs]
    if image not in docs[0]:
        raise ImageError(f"kubectl kustomize {module}/{KWOK_KUSTOMIZATIONS[0]}: no kwok image to pin")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".tmp").write_text("\n---\n".join(docs))
    out.with_suffix(".tmp").replace(out)
    builder.record("kwok manifests", start, "built")
    return out


def _kustomize(kubectl: Path, directory: Path) -> str:
    result = subprocess.run([str(kubectl), "kustomize", str(directory)], capture_output=True, text=True)
    if result.returncode != 0:
        raise ImageError(f"kubectl kustomize {directory} failed: {result.stderr.strip()}")
    return result.stdout


# ------------------------------------------------------------------------------------------------ build, prune


def upstream_mode() -> bool:
    """True when the user chose kind's own node image (``TIDEOVER_KIND_IMAGES=upstream``)."""
    return os.environ.get(ENV_MODE, "offline") == "upstream"


def planned_tags(versions: Versions) -> set[str]:
    """The names the current recipes give this builder's images (what ``prune`` keeps)."""
    rootfs = rootfs_tag("rootfs", NODE_PACKAGES)
    base = base_tag(versions, rootfs)
    return {rootfs, rootfs_tag("python", PYTHON_PACKAGES), base, node_tag(versions, base, rootfs),
            *cluster_image_names(versions).values()}


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A temporary directory under the cache (removed afterwards, and at the next run if a kill left it)."""
    parent = components.cache_root() / "build" / "tmp"
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob("kind-images-*"):  # we hold the build lock: no other run uses them
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="kind-images-", dir=parent) as tmp:
        yield Path(tmp)


def build_all(builder: Builder) -> Built:
    """Build (or find) everything; upstream mode builds only kind, kubectl, virtual-kubelet and kwok."""
    upstream = upstream_mode()
    tools = {name: builder.tool(name) for name in (UPSTREAM_TOOLS if upstream else TOOLS)}
    binaries = {name: builder.component(name) for name in IMAGE_COMPONENTS
                if not upstream or name in ("virtual-kubelet", "kwok")}
    kubectl = tools["node-binaries"] / "kubectl"
    cluster = builder.cluster_images(binaries)
    manifests = kwok_manifests(builder, kubectl)
    chosen = os.environ.get(ENV_NODE_IMAGE)  # in either mode, e.g. a kindest/node tag or digest
    if upstream:
        node = chosen or UPSTREAM_NODE_IMAGE.format(version=pinned(builder.versions, "kubernetes"))
        python = UPSTREAM_PYTHON_IMAGE
    else:
        rootfs = builder.rootfs("rootfs", NODE_PACKAGES)
        python = builder.rootfs("python", PYTHON_PACKAGES)
        node = chosen or builder.node(tools, binaries, rootfs, builder.base(rootfs, tools), cluster)
    return Built(tools["kind"] / "kind", kubectl, node, python, cluster["virtual-kubelet"], cluster["kwok"], manifests)


def build() -> Built:
    """Everything the kind suite needs, built once per recipe: see the module's docstring."""
    versions = components.load_versions()
    start = time.monotonic()
    with components.file_lock("kind-images"), workdir() as work:
        builder = Builder(versions, work)
        built = build_all(builder)
    _log(f"stages:\n{builder.summary()}")
    _log(f"all images ready in {time.monotonic() - start:.1f}s")
    superseded = sorted(set(own_images()) - planned_tags(versions))
    if superseded:
        _log(f"{len(superseded)} image(s) of older recipes remain: python -m e2e.kind.images prune removes them")
    return built


def own_images() -> list[str]:
    """The names of this builder's images in Docker (``tideover-kind/*``)."""
    listed = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True,
                            text=True).stdout.split()
    return [name for name in listed if name.startswith(f"{REPO}/")]


def prune(dry_run: bool = False) -> list[str]:
    """Remove this builder's images that the current recipes do not name (older recipes' images, leftovers of
    killed builds); return their names. Images in use by a container stay (``docker image rm`` refuses)."""
    keep = planned_tags(components.load_versions())
    removed = []
    with components.file_lock("kind-images"):
        for name in sorted(set(own_images()) - keep):
            if dry_run or subprocess.run(["docker", "image", "rm", name], capture_output=True).returncode == 0:
                removed.append(name)
    return removed


def tool_path(name: str) -> Path:
    """A built tool's path (kind, kubectl), without building."""
    section = {"kind": "kind", "kubectl": "node-binaries"}[name]
    return components.tool_dir(section) / name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.kind.images", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build what is missing; print the shell variables up.sh reads")
    path = sub.add_parser("path", help="print a built tool's path (does not build)")
    path.add_argument("name", choices=("kind", "kubectl"))
    prune_cmd = sub.add_parser("prune", help="remove tideover-kind/* images that the current recipes do not name")
    prune_cmd.add_argument("--dry-run", action="store_true", help="only print their names")
    args = parser.parse_args(argv)
    if args.cmd == "path":
        print(tool_path(args.name))
        return 0
    signal.signal(signal.SIGTERM, _exit_on_signal)  # unwinds: temporary names and directories are removed
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the variables (up.sh evaluates it)
            result = build().shell() if args.cmd == "build" else "\n".join(prune(args.dry_run))
    except (ImageError, components.BuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result)
    return 0


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    raise SystemExit(main())
