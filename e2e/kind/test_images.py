"""Unit tests of e2e/kind/images.py's pure parts (no Docker): cache keys, image names, the saved-tar rewrite."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from e2e import components
from e2e.kind import images


def test_digest_changes_with_any_part_and_counts_paths_by_content(tmp_path: Path) -> None:
    script = tmp_path / "recipe.sh"
    script.write_text("echo one\n")
    first = images.digest("v1.36.3", script)
    assert images.digest("v1.36.3", script) == first
    assert images.digest("v1.36.4", script) != first
    script.write_text("echo two\n")
    assert images.digest("v1.36.3", script) != first
    assert images.digest("ab", "c") != images.digest("a", "bc")  # parts are delimited


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


def _saved_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, payload in (
            ("abc/layer.tar", b"layer"),
            ("manifest.json", json.dumps([{"RepoTags": ["kindest/kindnetd:v1", "registry.k8s.io/pause:3.10"]}])),
            ("repositories", json.dumps({"kindest/kindnetd": {"v1": "abc"}, "registry.k8s.io/pause": {"3.10": "d"}})),
        ):
            data = payload if isinstance(payload, bytes) else payload.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_rewrite_saved_puts_repositories_first_with_qualified_names() -> None:
    rewritten = images.rewrite_saved(_saved_tar())
    with tarfile.open(fileobj=io.BytesIO(rewritten)) as tar:
        names = tar.getnames()
        assert names[0] == "repositories"
        assert sorted(names) == ["abc/layer.tar", "manifest.json", "repositories"]
        repositories = json.loads(tar.extractfile("repositories").read())  # type: ignore[union-attr]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        layer = tar.extractfile("abc/layer.tar").read()  # type: ignore[union-attr]
    assert set(repositories) == {"docker.io/kindest/kindnetd", "registry.k8s.io/pause"}
    assert manifest[0]["RepoTags"] == ["docker.io/kindest/kindnetd:v1", "registry.k8s.io/pause:3.10"]
    assert layer == b"layer"


def test_every_tool_of_the_node_image_is_pinned_with_its_binaries() -> None:
    versions = components.load_versions()
    for name in images.TOOLS:
        binaries = versions[name]["binaries"]
        assert isinstance(binaries, dict) and binaries, name
    for name in ("kind", "containerd", "cri-tools", "cni-plugins", "coredns", "local-path-provisioner"):
        assert str(versions[name]["version"]).startswith("v"), name


def test_a_section_without_binaries_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(components.BuildError, match=r"\[nothing\] has no binaries table"):
        components._build_tool_binaries("nothing", {"nothing": {"version": "v1"}}, tmp_path, tmp_path / "log")
