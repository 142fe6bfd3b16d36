"""Every image the kind suite's cluster needs, built on this machine with no container registry.

Usage (from the repository root)::

    python -m e2e.kind.images build        # build what is missing; print KIND=... KUBECTL=... NODE_IMAGE=... lines
    python -m e2e.kind.images path NAME    # the path of a built tool: kind, kubectl (does not build)

Sources: Go modules at the versions pinned in e2e/versions.toml (built by :mod:`e2e.components`), Debian packages
(``debootstrap``), and kind's own base-image files, taken from the sigs.k8s.io/kind module at build time:

- ``tideover-kind/rootfs``: Debian bookworm (minbase plus what kind's base image installs), ``docker import``-ed;
- ``tideover-kind/python``: Debian bookworm with python3 and venv: the Dockerfile's ``PYTHON_IMAGE``;
- ``tideover-kind/base``: kind's base image, rebuilt from that rootfs with containerd 2.x, crictl and the CNI plugins,
  and containerd's ``restrict_oom_score_adj = true`` (runc cannot lower oom_score_adj without CAP_SYS_RESOURCE);
- ``tideover-kind/node``: ``kind build node-image --type file`` of a hand-made kubernetes-server tarball: kubeadm,
  kubelet, kubectl, and image tars of kube-apiserver, kube-controller-manager, kube-scheduler and kube-proxy.
  kind imports only those four tars, so ``kube-proxy.tar`` also carries pause, etcd, coredns, a kindnetd stand-in
  (images/kindnetd.sh), local-path-provisioner and its helper, virtual-kubelet and kwok: nothing is ever pulled.

Each image's tag is a hash of what it is made of (versions, this file, e2e/kind/images/*, its base's tag), so a
second run finds everything and builds nothing. ``TIDEOVER_KIND_IMAGES=upstream`` uses kind's own node image
(kindest/node, pulled by kind from a registry) and the python:3.11-slim base instead: the normal path for machines
that can pull; virtual-kubelet and kwok images are still built here (up.sh loads them with ``kind load``).
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
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from e2e import components

HERE = Path(__file__).resolve().parent
FILES = HERE / "images"
TOOLS = ("kind", "node-binaries", "containerd", "cri-tools", "cni-plugins", "coredns", "local-path-provisioner")
# kind's base image packages (its images/base/Dockerfile), as Debian bookworm names; runc from Debian.
NODE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "conntrack", "iptables", "nftables", "iproute2", "ethtool", "util-linux",
    "mount", "kmod", "libseccomp2", "pigz", "e2fsprogs", "bash", "ca-certificates", "curl", "jq", "procps", "runc",
    "findutils",
)
PYTHON_PACKAGES = ("python3", "python3-venv", "ca-certificates")
MIRROR = "http://deb.debian.org/debian"
# Bump when the debootstrap steps of rootfs_image change (its tag hashes this, the suite, mirror and packages).
ROOTFS_RECIPE = "1"
SUITE = "bookworm"
# Image names kind v0.33.0 expects (pkg/build/nodeimage/const_cni.go, const_storage.go); checked at build time.
KIND_IMAGE_CONSTANTS = {
    "kindnetd": ("pkg/build/nodeimage/const_cni.go", "kindnetdImage"),
    "local-path-provisioner": ("pkg/build/nodeimage/const_storage.go", "storageProvisionerImage"),
    "local-path-helper": ("pkg/build/nodeimage/const_storage.go", "storageHelperImage"),
}
UPSTREAM_NODE_IMAGE = "kindest/node:{version}"
# On the images whose names are fixed by manifests (virtual-kubelet, kwok): the hash of what made them.
RECIPE_LABEL = "io.tideover.recipe"


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
        pairs = {
            "KIND": self.kind, "KUBECTL": self.kubectl, "NODE_IMAGE": self.node_image,
            "PYTHON_IMAGE": self.python_image, "VIRTUAL_KUBELET_IMAGE": self.virtual_kubelet_image,
            "KWOK_IMAGE": self.kwok_image, "KWOK_MANIFESTS": self.kwok_manifests,
        }
        return "\n".join(f"{key}={json.dumps(str(value))}" for key, value in pairs.items())


# ------------------------------------------------------------------------------------------------ small helpers


def _log(message: str) -> None:
    print(f"[e2e.kind.images] {message}", file=sys.stderr, flush=True)


def digest(*parts: object) -> str:
    """A short, stable hash of ``parts`` (strings, bytes, paths: a path counts by its content)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.read_bytes() if isinstance(part, Path) else part if isinstance(part, bytes) else str(part).encode()
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()[:16]


def scripts_digest() -> str:
    """This module and e2e/kind/images/*: a change to how images are made changes every tag."""
    return digest(Path(__file__), *sorted(p for p in FILES.iterdir() if p.is_file()))


def _logs_dir() -> Path:
    path = components.cache_root() / "build" / "logs" / "kind-images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(args: Sequence[str | Path], log: Path, *, cwd: Path | None = None, stdin: bytes | None = None) -> None:
    """Run a command with its output appended to ``log``; on failure, an error with the log's tail."""
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(map(str, args))}\n".encode())
        out.flush()
        rc = subprocess.run(list(map(str, args)), cwd=cwd, input=stdin, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise ImageError(f"`{' '.join(map(str, args))}` failed ({rc}); log {log}:\n{tail}")


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


@contextlib.contextmanager
def _stage(what: str) -> Iterator[None]:
    start = time.monotonic()
    _log(f"{what}: building")
    yield
    _log(f"{what}: built in {time.monotonic() - start:.0f}s")


def docker_build(tag: str, dockerfile: str, context: Path, log: Path, build_args: dict[str, str] | None = None) -> None:
    """``docker build`` of ``dockerfile`` (text) in ``context``, tagged ``tag``; intermediate containers removed."""
    (context / "Dockerfile").write_text(dockerfile)
    args: list[str | Path] = ["docker", "build", "--rm", "--force-rm", "-q", "-t", tag]
    for key, value in (build_args or {}).items():
        args += ["--build-arg", f"{key}={value}"]
    run([*args, context], log)


# ------------------------------------------------------------------------------------------------ the images


def rootfs_image(name: str, packages: Sequence[str]) -> str:
    """Debian bookworm minbase with ``packages``, made by debootstrap and imported: ``tideover-kind/<name>:<hash>``."""
    tag = f"tideover-kind/{name}:{digest(SUITE, MIRROR, *packages, ROOTFS_RECIPE)}"
    if image_exists(tag):
        return tag
    if shutil.which("debootstrap") is None:
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"], _logs_dir() / "apt.log")
    log = _logs_dir() / f"rootfs-{name}.log"
    with _stage(f"{name} rootfs (debootstrap {SUITE})"), tempfile.TemporaryDirectory(prefix="tideover-rootfs-") as tmp:
        root = Path(tmp) / "root"
        run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE, root, MIRROR], log)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        with log.open("ab") as out:
            rc = subprocess.run(["docker", "import", "-", tag], stdin=tar.stdout, stdout=out, stderr=out).returncode
        tar.wait()
        if rc != 0 or tar.returncode != 0:
            raise ImageError(f"docker import of the {name} rootfs failed; log {log}")
    return tag


def _module_dir(module: str, version: str) -> Path:
    work = components.cache_root() / "build"
    info = components._download_json(f"{module}@{version}", cwd=work, env=components._go_env(mod_mode=False),
                                      log_file=_logs_dir() / "modules.log")
    return Path(info["Dir"])


def kind_module(versions: dict[str, dict[str, object]]) -> Path:
    section = versions["kind"]
    return _module_dir(str(section["module"]), str(section["version"]))


def base_image(rootfs: str, versions: dict[str, dict[str, object]], tools: dict[str, Path]) -> str:
    """kind's base image, from its own files (images/base/files of the pinned kind module) and our binaries."""
    pins = [versions[n]["version"] for n in ("kind", "containerd", "cri-tools", "cni-plugins")]
    tag = f"tideover-kind/base:{digest(rootfs, *pins, BASE_DOCKERFILE)}"
    if image_exists(tag):
        return tag
    log = _logs_dir() / "base.log"
    with _stage("kind base image"), tempfile.TemporaryDirectory(prefix="tideover-base-") as tmp:
        context = Path(tmp)
        shutil.copytree(kind_module(versions) / "images" / "base" / "files", context / "files")
        (context / "bin").mkdir()
        for name in ("containerd", "ctr", "containerd-shim-runc-v2"):
            shutil.copy(tools["containerd"] / name, context / "bin")
        shutil.copy(tools["cri-tools"] / "crictl", context / "bin")
        shutil.copytree(tools["cni-plugins"], context / "cni", ignore=shutil.ignore_patterns("*.json"))
        run(["chmod", "-R", "u+w", context], log)  # module-cache files are read-only
        docker_build(tag, BASE_DOCKERFILE, context, log, {"ROOTFS": rootfs})
    return tag


# kind's images/base/Dockerfile, for the legacy builder (no COPY --chmod) and binaries built outside.
BASE_DOCKERFILE = """\
ARG ROOTFS
FROM ${ROOTFS}
COPY files/usr/local/bin/ /usr/local/bin/
COPY files/kind/ /kind/
COPY files/etc/ /etc/
COPY bin/ /usr/local/bin/
COPY cni/ /opt/cni/bin/
RUN chmod 0755 /usr/local/bin/* /kind /kind/bin /kind/bin/* /opt/cni/bin/* \\
 && find /etc/systemd/system /etc/containerd /etc/default /etc/sysctl.d /etc/crictl.yaml -type f \\
      -exec chmod 0644 {} + \\
 && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \\
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
      /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \\
      /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \\
 && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \\
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \\
 && systemctl mask systemd-binfmt.service \\
 && mkdir -p /etc/kubernetes/manifests \\
 && sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml \\
 && grep -q 'restrict_oom_score_adj = true' /etc/containerd/config.toml \\
 && ctr oci spec \\
    | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \\
    | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \\
 && containerd --version && crictl --version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
"""


def kind_image_names(versions: dict[str, dict[str, object]]) -> dict[str, str]:
    """The image names kind's node-image build and manifests use, read from the pinned kind module's source."""
    module = kind_module(versions)
    names: dict[str, str] = {}
    for key, (relpath, constant) in KIND_IMAGE_CONSTANTS.items():
        for line in (module / relpath).read_text().splitlines():
            if line.strip().startswith(f"const {constant} ="):
                names[key] = line.split("=", 1)[1].strip().strip('"')
        if key not in names:
            raise ImageError(f"kind {versions['kind']['version']}: no constant {constant} in {relpath}")
    return names


def _static_dockerfile(binaries: Sequence[str], entrypoint: Sequence[str] | None, base: str | None,
                       recipe: str = "") -> str:
    """An image of static binaries in /usr/local/bin, FROM ``base`` (default: a skeleton with /tmp, /etc/passwd
    and CA certificates, like the distroless images upstream uses)."""
    lines = [f"FROM {base}" if base else "FROM scratch", *([] if base else ["COPY skel/ /"])]
    lines += [f"COPY {b} /usr/local/bin/{b}" for b in binaries]
    lines.append("ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if entrypoint:
        lines.append(f"ENTRYPOINT {json.dumps(list(entrypoint))}")
    if recipe:
        lines.append(f"LABEL {RECIPE_LABEL}={recipe}")
    return "\n".join(lines) + "\n"


def _skeleton(context: Path) -> None:
    skel = context / "skel"
    (skel / "etc" / "ssl" / "certs").mkdir(parents=True)
    (skel / "tmp").mkdir()
    (skel / "tmp").chmod(0o1777)
    (skel / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532::/home:/sbin/nologin\n"
    )
    (skel / "etc" / "group").write_text("root:x:0:\nnonroot:x:65532:\n")
    (skel / "etc" / "nsswitch.conf").write_text("hosts: files dns\n")
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", skel / "etc" / "ssl" / "certs" / "ca-certificates.crt")


def binary_image(tag: str, files: dict[str, Path], entrypoint: Sequence[str] | None, log: Path,
                 base: str | None = None, recipe: str = "") -> None:
    """Build ``tag``: ``files`` (name in /usr/local/bin -> binary) on ``base`` or the skeleton."""
    with tempfile.TemporaryDirectory(prefix="tideover-img-") as tmp:
        context = Path(tmp)
        if base is None:
            _skeleton(context)
        for name, path in files.items():
            shutil.copy(path, context / name)
            (context / name).chmod(0o755)
        docker_build(tag, _static_dockerfile(list(files), entrypoint, base, recipe), context, log)


def pause_binary(versions: dict[str, dict[str, object]], out: Path, log: Path) -> Path:
    """kubernetes' pause (build/pause/linux/pause.c of the pinned module), static, as upstream builds it."""
    source = _module_dir("k8s.io/kubernetes", str(versions["kubernetes"]["version"])) / "build/pause/linux/pause.c"
    run(["gcc", "-Os", "-Wall", "-Werror", "-static", "-DVERSION=v3.10.2", "-o", out, source], log)
    return out


def component_images(versions: dict[str, dict[str, object]], tools: dict[str, Path], rootfs: str,
                     work: Path) -> dict[str, list[str]]:
    """Every image the node carries, built and tagged as kind and kubeadm expect; returns tar name -> image names."""
    log = _logs_dir() / "component-images.log"
    k8s_version = str(versions["kubernetes"]["version"])
    bins = {**{c: components.binary_path(c) for c in components.KUBERNETES_BINARIES},
            "kube-proxy": tools["node-binaries"] / "kube-proxy", "etcd": components.binary_path("etcd")}
    tars: dict[str, list[str]] = {}
    for name in components.KUBERNETES_BINARIES:
        tag = f"registry.k8s.io/{name}:{k8s_version}"
        binary_image(tag, {name: bins[name]}, None, log)
        tars[name] = [tag]
    kind_names = kind_image_names(versions)
    images = versions["images"]
    pause_tags = [str(t) for t in cast(list[object], images["pause"])]
    extra: list[str] = [f"registry.k8s.io/kube-proxy:{k8s_version}", *pause_tags, str(images["etcd"]),
                        str(images["coredns"]), kind_names["kindnetd"], kind_names["local-path-provisioner"],
                        kind_names["local-path-helper"]]
    binary_image(extra[0], {"kube-proxy": bins["kube-proxy"]}, None, log, base=rootfs)
    pause = pause_binary(versions, work / "pause", log)
    for tag in pause_tags:
        binary_image(tag, {"pause": pause}, ["/usr/local/bin/pause"], log)
    binary_image(str(images["etcd"]), {"etcd": bins["etcd"]}, None, log)
    binary_image(str(images["coredns"]), {"coredns": tools["coredns"] / "coredns"}, ["/usr/local/bin/coredns"], log)
    binary_image(kind_names["kindnetd"], {"kindnetd": FILES / "kindnetd.sh"}, ["/usr/local/bin/kindnetd"], log,
                 base=rootfs)
    binary_image(kind_names["local-path-provisioner"],
                 {"local-path-provisioner": tools["local-path-provisioner"] / "local-path-provisioner"}, None, log)
    binary_image(kind_names["local-path-helper"], {}, None, log, base=rootfs)  # sh, mkdir, rm: the rootfs has them
    extra += list(cluster_component_images(versions).values())
    tars["kube-proxy"] = extra
    return tars


def cluster_component_images(versions: dict[str, dict[str, object]]) -> dict[str, str]:
    """virtual-kubelet (the mock provider) and kwok, FROM scratch images of the binaries e2e/components.py builds:
    component -> image name. Built when missing."""
    log = _logs_dir() / "component-images.log"
    names = {
        "virtual-kubelet": f"tideover-kind/virtual-kubelet:{versions['virtual-kubelet']['version']}",
        "kwok": f"registry.k8s.io/kwok/kwok:{versions['kwok']['version']}",
    }
    components.ensure_built(list(names))
    for component, tag in names.items():
        # Their names are fixed (the manifests use them), so the label tells whether this recipe made them.
        recipe = digest(components.binary_path(component), scripts_digest())
        if image_label(tag, RECIPE_LABEL) != recipe:
            entry = [f"/usr/local/bin/{component}"]
            binary_image(tag, {component: components.binary_path(component)}, entry, log, recipe=recipe)
    return names


def image_label(tag: str, label: str) -> str | None:
    """A label of a local image; None when the image or the label is missing."""
    result = subprocess.run(["docker", "image", "inspect", "-f", f'{{{{index .Config.Labels "{label}"}}}}', tag],
                            capture_output=True, text=True)
    value = result.stdout.strip()
    return value if result.returncode == 0 and value and value != "<no value>" else None


# ------------------------------------------------------------------------------------------------ node image


def qualified(name: str) -> str:
    """``name`` with docker.io/ in front when it names no registry (what ``docker save`` drops)."""
    first = name.split("/", 1)[0]
    has_registry = "/" in name and ("." in first or ":" in first or first == "localhost")
    return name if has_registry else f"docker.io/{name}"


def rewrite_saved(source: bytes) -> bytes:
    """A ``docker save`` tar as kind's node-image build reads it: ``repositories`` first (kind takes the names from
    whichever of repositories and manifest.json comes first, and only the first image's from manifest.json), every
    name qualified with its registry (docker.io/ where docker save dropped it), in both files."""
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    with tarfile.open(fileobj=io.BytesIO(source)) as tar:
        for member in tar.getmembers():
            fileobj = tar.extractfile(member) if member.isfile() else None
            members.append((member, fileobj.read() if fileobj else None))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        first = [m for m in members if m[0].name == "repositories"]
        for member, data in first + [m for m in members if m[0].name != "repositories"]:
            if member.name == "repositories" and data is not None:
                repos = json.loads(data)
                data = json.dumps({qualified(name): tags for name, tags in repos.items()}).encode()
            elif member.name == "manifest.json" and data is not None:
                manifest = json.loads(data)
                for entry in manifest:
                    entry["RepoTags"] = [qualified(tag) for tag in entry.get("RepoTags") or []]
                data = json.dumps(manifest).encode()
            if data is not None:
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def server_tarball(versions: dict[str, dict[str, object]], tools: dict[str, Path], tars: dict[str, list[str]],
                   work: Path) -> Path:
    """kubernetes-server-linux-amd64.tar.gz as `kind build node-image --type file` reads it
    (pkg/build/nodeimage/internal/kube/builder_tarball.go): the version, three binaries and four image tars."""
    log = _logs_dir() / "node.log"
    root = work / "kubernetes"
    bin_dir = root / "server" / "bin"
    bin_dir.mkdir(parents=True)
    (root / "version").write_text(f"{versions['kubernetes']['version']}\n")
    for name in ("kubeadm", "kubelet", "kubectl"):
        shutil.copy(tools["node-binaries"] / name, bin_dir / name)
    for name, images in tars.items():
        saved = work / f"{name}.saved.tar"
        run(["docker", "save", "-o", saved, *images], log)
        (bin_dir / f"{name}.tar").write_bytes(rewrite_saved(saved.read_bytes()))
        saved.unlink()
    tarball = work / "kubernetes-server-linux-amd64.tar.gz"
    with gzip.open(tarball, "wb", compresslevel=1) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        tar.add(root, arcname="kubernetes")
    return tarball


def node_image(versions: dict[str, dict[str, object]], tools: dict[str, Path], rootfs: str, base: str) -> str:
    pins = [versions[n]["version"] for n in ("kubernetes", "etcd", "coredns", "local-path-provisioner",
                                             "virtual-kubelet", "kwok")]
    key = digest(base, *pins, versions["images"], scripts_digest())
    tag = f"tideover-kind/node:{versions['kubernetes']['version']}-{key}"
    if image_exists(tag):
        return tag
    log = _logs_dir() / "node.log"
    with _stage(f"node image {tag}"), tempfile.TemporaryDirectory(prefix="tideover-node-") as tmp:
        work = Path(tmp)
        tars = component_images(versions, tools, rootfs, work)
        tarball = server_tarball(versions, tools, tars, work)
        try:
            run([tools["kind"] / "kind", "build", "node-image", "--type", "file", "--base-image", base,
                 "--image", tag, tarball], log)
        finally:
            remove_build_leftovers(log)
            # Inside the node image now; virtual-kubelet's and kwok's stay (upstream mode loads them).
            keep = set(cluster_component_images(versions).values())
            inner = sorted({image for images in tars.values() for image in images} - keep)
            subprocess.run(["docker", "image", "rm", *inner], capture_output=True)
    return tag


def remove_build_leftovers(log: Path) -> None:
    """kind's node-image build containers (kind-build-*), left behind when a build fails."""
    listed = subprocess.run(["docker", "ps", "-aq", "--filter", "name=kind-build-"], capture_output=True, text=True)
    ids = listed.stdout.split()
    if ids:
        run(["docker", "rm", "-f", *ids], log)


# ------------------------------------------------------------------------------------------------ the rest


def kwok_manifests(versions: dict[str, dict[str, object]], kubectl: Path) -> Path:
    """kwok's controller and its fast stages: `kubectl kustomize` of the pinned kwok module's kustomize/kwok and
    kustomize/stage/fast (the files of kwok's GitHub release, made from the same sources)."""
    section = versions["kwok"]
    out = components.cache_root() / "kind" / f"kwok-{section['version']}-{scripts_digest()}.yaml"
    if out.is_file():
        return out
    module = _module_dir(str(section["module"]), str(section["version"]))
    log = _logs_dir() / "kwok-manifests.log"
    docs = []
    for relpath in ("kustomize/kwok", "kustomize/stage/fast"):
        result = subprocess.run([str(kubectl), "kustomize", str(module / relpath)], capture_output=True, text=True)
        if result.returncode != 0:
            log.write_text(result.stderr)
            raise ImageError(f"kubectl kustomize {module / relpath} failed: {result.stderr.strip()}")
        docs.append(result.stdout)
    # kwok's kustomize names its image without a tag (its release sets it): the pinned version, as built here.
    image = f"image: registry.k8s.io/kwok/kwok:{section['version']}"
    docs = [re.sub(r"(?m)image: registry\.k8s\.io/kwok/kwok\s*$", image, doc) for doc in docs]
    if image not in docs[0]:
        raise ImageError(f"kubectl kustomize {module}/kustomize/kwok: no kwok image to pin")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".tmp").write_text("\n---\n".join(docs))
    out.with_suffix(".tmp").replace(out)
    return out


def build_tools() -> dict[str, Path]:
    return {name: components.build_tool(name) for name in TOOLS}


def build() -> Built:
    """Build (or find) everything; upstream mode skips the node image, base and rootfs."""
    versions = components.load_versions()
    tools = build_tools()
    kubectl = tools["node-binaries"] / "kubectl"
    cluster_images = cluster_component_images(versions)
    manifests = kwok_manifests(versions, kubectl)
    if os.environ.get("TIDEOVER_KIND_IMAGES") == "upstream":
        node, python = UPSTREAM_NODE_IMAGE.format(version=versions["kubernetes"]["version"]), "python:3.11-slim"
    else:
        components.ensure_built()
        rootfs = rootfs_image("rootfs", NODE_PACKAGES)
        python = rootfs_image("python", PYTHON_PACKAGES)
        node = node_image(versions, tools, rootfs, base_image(rootfs, versions, tools))
        remove_superseded({"rootfs": rootfs, "python": python, "base": base_image(rootfs, versions, tools),
                           "node": node})
    return Built(tools["kind"] / "kind", kubectl, node, python, cluster_images["virtual-kubelet"],
                 cluster_images["kwok"], manifests)


def remove_superseded(current: dict[str, str]) -> None:
    """Older tags of this module's own images (tideover-kind/<name>), made by an earlier version of a recipe."""
    for name, tag in current.items():
        listed = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", f"tideover-kind/{name}"],
                                capture_output=True, text=True).stdout.split()
        stale = [t for t in listed if t != tag]
        if stale:
            _log(f"removing superseded images: {', '.join(stale)}")
            subprocess.run(["docker", "image", "rm", *stale], capture_output=True)


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
    args = parser.parse_args(argv)
    if args.cmd == "path":
        print(tool_path(args.name))
        return 0
    start = time.monotonic()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the variables (up.sh evaluates it)
            built = build()
    except (ImageError, components.BuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _log(f"all images ready in {time.monotonic() - start:.0f}s")
    print(built.shell())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
