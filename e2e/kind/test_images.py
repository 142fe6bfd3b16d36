"""Unit tests of e2e/kind/images.py's pure parts (no Docker): cache keys, pins, image names, the saved-tar rewrite."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from e2e.harness import components
from e2e.kind import images

VERSIONS = components.load_versions()


def _versions(**changes: dict[str, object]) -> images.Versions:
    """The pinned versions with some sections' keys changed."""
    versions = copy.deepcopy(VERSIONS)
    for section, values in changes.items():
        versions[section].update(values)
    return versions


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------------ cache keys


def test_digest_changes_with_any_part_and_counts_paths_by_content(tmp_path: Path) -> None:
    script = _write(tmp_path / "recipe.sh", "echo one\n")
    first = images.digest("v1.36.3", script)
    assert images.digest("v1.36.3", script) == first
    assert images.digest("v1.36.4", script) != first
    script.write_text("echo two\n")
    assert images.digest("v1.36.3", script) != first
    assert images.digest("ab", "c") != images.digest("a", "bc")  # parts are delimited


def test_rootfs_key_follows_its_script_and_packages_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "ROOTFS_SCRIPT", _write(tmp_path / "rootfs.sh", "debootstrap one\n"))
    first = images.rootfs_tag("rootfs", ["bash"])
    assert first.startswith("tideover-kind/rootfs:")
    assert images.rootfs_tag("rootfs", ["bash"]) == first
    assert images.rootfs_tag("rootfs", ["bash", "jq"]) != first
    monkeypatch.setattr(images, "__file__", str(_write(tmp_path / "images.py", "another module\n")))
    assert images.rootfs_tag("rootfs", ["bash"]) == first  # images.py is not its recipe: no debootstrap re-run
    images.ROOTFS_SCRIPT.write_text("debootstrap two\n")
    assert images.rootfs_tag("rootfs", ["bash"]) != first


def test_base_key_changes_with_a_version_the_dockerfile_the_module_or_the_rootfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "BASE_DOCKERFILE", _write(tmp_path / "base.Dockerfile", "FROM one\n"))
    first = images.base_tag(VERSIONS, "tideover-kind/rootfs:a")
    assert images.base_tag(VERSIONS, "tideover-kind/rootfs:a") == first
    assert images.base_tag(VERSIONS, "tideover-kind/rootfs:b") != first
    assert images.base_tag(_versions(containerd={"version": "v2.3.5"}), "tideover-kind/rootfs:a") != first
    assert images.base_tag(_versions(kind={"version": "v0.34.0"}), "tideover-kind/rootfs:a") != first
    images.BASE_DOCKERFILE.write_text("FROM two\n")
    second = images.base_tag(VERSIONS, "tideover-kind/rootfs:a")
    assert second != first
    monkeypatch.setattr(images, "__file__", str(_write(tmp_path / "images.py", "another module\n")))
    assert images.base_tag(VERSIONS, "tideover-kind/rootfs:a") != second


def test_node_key_changes_with_every_version_and_image_pin_and_the_kindnetd_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "KINDNETD_SCRIPT", _write(tmp_path / "kindnetd.sh", "one\n"))
    first = images.node_tag(VERSIONS, "base:a", "rootfs:a")
    assert first.startswith(f"tideover-kind/node:{VERSIONS['kubernetes']['version']}-")
    assert images.node_tag(VERSIONS, "base:a", "rootfs:a") == first
    changed = [
        images.node_tag(VERSIONS, "base:b", "rootfs:a"),
        images.node_tag(_versions(kubernetes={"version": "v1.36.4"}), "base:a", "rootfs:a"),
        images.node_tag(_versions(etcd={"version": "v3.6.17"}), "base:a", "rootfs:a"),
        images.node_tag(_versions(kwok={"version": "v0.8.1"}), "base:a", "rootfs:a"),
        images.node_tag(_versions(images={"etcd": "registry.k8s.io/etcd:3.6.9-0"}), "base:a", "rootfs:a"),
    ]
    assert first not in changed and len(set(changed)) == len(changed)
    images.KINDNETD_SCRIPT.write_text("two\n")
    assert images.node_tag(VERSIONS, "base:a", "rootfs:a") != first


def test_binary_dockerfile_from_scratch_or_a_base() -> None:
    scratch = images.binary_dockerfile({"kwok": Path("/x/kwok")}, ["/usr/local/bin/kwok"], None, None)
    assert scratch.splitlines() == [
        "FROM scratch", "COPY skel/ /", "COPY files/kwok /usr/local/bin/kwok",
        "ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 'ENTRYPOINT ["/usr/local/bin/kwok"]',
    ]
    pause = images.binary_dockerfile({"/pause": Path("/x/pause")}, ["/pause"], None, "65535:65535")
    assert "COPY files/pause /pause" in pause and "USER 65535:65535" in pause
    on_base = images.binary_dockerfile({}, [], "tideover-kind/rootfs:a", None)
    assert on_base.splitlines()[0] == "FROM tideover-kind/rootfs:a" and "skel" not in on_base


# ------------------------------------------------------------------------------------------------ pins


def test_a_missing_version_is_an_error_naming_the_section() -> None:
    versions = _versions()
    del versions["kind"]["version"]
    with pytest.raises(images.ImageError, match=r"\[kind\] has no 'version'"):
        images.pinned(versions, "kind")
    with pytest.raises(images.ImageError, match=r"\[kind\] has no 'version'"):
        images.base_tag(versions, "rootfs:a")
    with pytest.raises(images.ImageError, match=r"\[nothing\] has no 'module'"):
        images.pinned(versions, "nothing", "module")


def test_a_missing_image_pin_is_an_error() -> None:
    versions = _versions()
    del versions["images"]["kindnetd"]
    with pytest.raises(images.ImageError, match=r"\[images\] has no 'kindnetd'"):
        images.pinned_images(versions, "kindnetd")
    assert images.pinned_images(VERSIONS, "pause") == ["registry.k8s.io/pause:3.10.2", "registry.k8s.io/pause:3.10"]


def test_missing_pins_compares_with_the_registry_docker_save_drops() -> None:
    pinned = ["registry.k8s.io/pause:3.10", "kindest/kindnetd:v1"]
    expected = ["registry.k8s.io/pause:3.10", "docker.io/kindest/kindnetd:v1", "registry.k8s.io/etcd:3.6.8-0"]
    assert images.missing_pins(expected, pinned) == ["registry.k8s.io/etcd:3.6.8-0"]


def test_kind_constant_and_sandbox_image_are_read_from_source(tmp_path: Path) -> None:
    _write(tmp_path / "const.go", 'package x\n\nconst kindnetdImage = "docker.io/kindest/kindnetd:v1"\n')
    assert images.kind_constant(tmp_path, "const.go", "kindnetdImage") == "docker.io/kindest/kindnetd:v1"
    with pytest.raises(images.ImageError, match="no const storageHelperImage"):
        images.kind_constant(tmp_path, "const.go", "storageHelperImage")
    config = '[plugins."io.containerd.cri.v1.images".pinned_images]\n  sandbox = "registry.k8s.io/pause:3.10"\n'
    assert images.sandbox_image(config) == "registry.k8s.io/pause:3.10"
    assert images.sandbox_image('  sandbox_image = "registry.k8s.io/pause:3.9"\n') == "registry.k8s.io/pause:3.9"


def test_every_tool_of_the_node_image_is_pinned_with_its_binaries() -> None:
    for name in images.TOOLS:
        binaries = VERSIONS[name]["binaries"]
        assert isinstance(binaries, dict) and binaries, name
    for name in ("kind", "containerd", "cri-tools", "cni-plugins", "coredns", "local-path-provisioner"):
        assert images.pinned(VERSIONS, name).startswith("v"), name
    for key in ("etcd", "pause", "coredns", *images.KIND_CONSTANTS):
        assert images.pinned_images(VERSIONS, key), key


def test_a_section_without_binaries_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(components.BuildError, match=r"\[nothing\] has no binaries table"):
        components._build_tool_binaries("nothing", {"nothing": {"version": "v1"}}, tmp_path, tmp_path / "log")


# ------------------------------------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("kindest/kindnetd:v1", "docker.io/kindest/kindnetd:v1"),
        ("tideover-kind/virtual-kubelet:v1.13.0", "docker.io/tideover-kind/virtual-kubelet:v1.13.0"),
        ("busybox:1", "docker.io/busybox:1"),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ("localhost/x:1", "localhost/x:1"),
        ("localhost:5000/x:1", "localhost:5000/x:1"),
        ("docker.io/kindest/node:v1", "docker.io/kindest/node:v1"),
    ],
)
def test_qualified_adds_the_registry_docker_save_drops(name: str, expected: str) -> None:
    assert images.qualified(name) == expected


def test_split_name_takes_the_tag_after_the_last_slash() -> None:
    assert images.split_name("localhost:5000/x:1") == ("localhost:5000/x", "1")
    assert images.split_name("registry.k8s.io/etcd:3.6.8-0") == ("registry.k8s.io/etcd", "3.6.8-0")
    with pytest.raises(images.ImageError, match="no tag"):
        images.split_name("localhost:5000/x")


def test_built_prints_shell_lines_a_shell_can_eval(tmp_path: Path) -> None:
    built = images.Built(tmp_path / "kind dir" / "kind", Path("/k/kubectl"), "tideover-kind/node:v1-a",
                         "tideover-kind/python:b", "tideover-kind/virtual-kubelet:v1.13.0",
                         "registry.k8s.io/kwok/kwok:v0.8.0", Path("/c/kwok.yaml"))
    script = f'{built.shell()}\nprintf "%s|" "$KIND" "$NODE_IMAGE" "$KWOK_MANIFESTS"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == f"{tmp_path}/kind dir/kind|tideover-kind/node:v1-a|/c/kwok.yaml|"


# ------------------------------------------------------------------------------------------------ saved tars


def _saved_tar(path: Path) -> Path:
    """A tar shaped like `docker save` of two private names (manifest.json and repositories last, as docker writes)."""
    with tarfile.open(path, "w") as tar:
        for name, payload in (
            ("abc/layer.tar", b"layer"),
            ("def/layer.tar", b"other"),
            ("manifest.json", json.dumps([{"Config": "c1.json", "RepoTags": ["tideover-kind/stage:pause-v1"]},
                                          {"Config": "c2.json", "RepoTags": ["registry.k8s.io/kwok/kwok:v0.8.0"]}])),
            ("repositories", json.dumps({"tideover-kind/stage": {"pause-v1": "abc"},
                                         "registry.k8s.io/kwok/kwok": {"v0.8.0": "def"}})),
        ):
            data = payload if isinstance(payload, bytes) else payload.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    file = tar.extractfile(name)
    assert file is not None
    return file.read()


def test_rewrite_saved_puts_repositories_first_with_the_names_kind_expects(tmp_path: Path) -> None:
    names = {"tideover-kind/stage:pause-v1": ["registry.k8s.io/pause:3.10.2", "registry.k8s.io/pause:3.10"],
             "registry.k8s.io/kwok/kwok:v0.8.0": ["registry.k8s.io/kwok/kwok:v0.8.0"]}
    target = tmp_path / "kube-proxy.tar"
    images.rewrite_saved(_saved_tar(tmp_path / "saved.tar"), target, names)
    with tarfile.open(target) as tar:
        assert tar.getnames()[:2] == ["repositories", "manifest.json"]
        assert sorted(tar.getnames()) == ["abc/layer.tar", "def/layer.tar", "manifest.json", "repositories"]
        repositories = json.loads(_member(tar, "repositories"))
        manifest = json.loads(_member(tar, "manifest.json"))
        assert (_member(tar, "abc/layer.tar"), _member(tar, "def/layer.tar")) == (b"layer", b"other")
    assert repositories == {"registry.k8s.io/pause": {"3.10.2": "abc", "3.10": "abc"},
                            "registry.k8s.io/kwok/kwok": {"v0.8.0": "def"}}
    assert [entry["RepoTags"] for entry in manifest] == [
        ["registry.k8s.io/pause:3.10.2", "registry.k8s.io/pause:3.10"], ["registry.k8s.io/kwok/kwok:v0.8.0"]]
    assert [entry["Config"] for entry in manifest] == ["c1.json", "c2.json"]


def test_rewrite_saved_prefixes_docker_io_on_names_without_a_registry(tmp_path: Path) -> None:
    names = {"tideover-kind/stage:pause-v1": ["kindest/kindnetd:v1"]}  # kwok's name is not in the map: kept
    target = tmp_path / "out.tar"
    images.rewrite_saved(_saved_tar(tmp_path / "saved.tar"), target, names)
    with tarfile.open(target) as tar:
        repositories = json.loads(_member(tar, "repositories"))
        manifest = json.loads(_member(tar, "manifest.json"))
    assert set(repositories) == {"docker.io/kindest/kindnetd", "registry.k8s.io/kwok/kwok"}
    assert manifest[0]["RepoTags"] == ["docker.io/kindest/kindnetd:v1"]


def test_rewrite_saved_refuses_a_tar_without_image_metadata(tmp_path: Path) -> None:
    source = tmp_path / "empty.tar"
    with tarfile.open(source, "w"):
        pass
    with pytest.raises(images.ImageError, match="no repositories"):
        images.rewrite_saved(source, tmp_path / "out.tar", {})


# ------------------------------------------------------------------------------------------------ modes


class _FakeBuilder(images.Builder):
    """Records which images would be built, and builds none."""

    def tool(self, name: str) -> Path:
        return Path("/bin") / name

    def component(self, name: str) -> Path:
        return Path("/bin") / name

    def cluster_images(self, binaries: object) -> dict[str, str]:
        return images.cluster_image_names(self.versions)

    def rootfs(self, name: str, packages: object) -> str:
        self.timings.append((f"rootfs {name}", 0.0, "built"))
        return f"rootfs:{name}"

    def base(self, rootfs: str, tools: object) -> str:
        return "base:x"

    def node(self, *args: object) -> str:
        self.timings.append(("node", 0.0, "built"))
        return "tideover-kind/node:built"


@pytest.mark.parametrize(
    ("mode", "chosen", "node", "python", "built"),
    [
        ("", "", "tideover-kind/node:built", "rootfs:python", ["rootfs rootfs", "rootfs python", "node"]),
        ("", "my/node:v1", "my/node:v1", "rootfs:python", ["rootfs rootfs", "rootfs python"]),
        ("upstream", "", "kindest/node:v1.36.3", "python:3.11-slim", []),
        ("upstream", "kindest/node:v1.36.3@sha256:ab", "kindest/node:v1.36.3@sha256:ab", "python:3.11-slim", []),
    ],
)
def test_the_registry_switches_skip_the_offline_images(
    mode: str, chosen: str, node: str, python: str, built: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(images.ENV_MODE, mode)
    monkeypatch.setenv(images.ENV_NODE_IMAGE, chosen)
    monkeypatch.setattr(images, "kwok_manifests", lambda builder, kubectl: tmp_path / "kwok.yaml")
    builder = _FakeBuilder(_versions(kubernetes={"version": "v1.36.3"}), tmp_path)
    result = images.build_all(builder)
    assert (result.node_image, result.python_image) == (node, python)
    assert result.kwok_image == f"registry.k8s.io/kwok/kwok:{VERSIONS['kwok']['version']}"
    assert result.kubectl == Path("/bin/node-binaries/kubectl")
    assert [what for what, _, _ in builder.timings] == built
