"""Reading Pods and Nodes in their JSON shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from extender.model.objects import ObjectError, node_facts, normalise_image, parse_go_time, pod_facts
from tests.support.factories import pod, vm_node

GI = 2**30


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.27", "docker.io/library/nginx:1.27"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("myacr.azurecr.io/app/web:2", "myacr.azurecr.io/app/web:2"),
        ("localhost:5000/web", "localhost:5000/web:latest"),
        ("mcr.microsoft.com/azuredocs/aci-helloworld", "mcr.microsoft.com/azuredocs/aci-helloworld:latest"),
        ("nginx@sha256:abc", "docker.io/library/nginx@sha256:abc"),
    ],
)
def test_normalise_image(image: str, expected: str) -> None:
    assert normalise_image(image) == expected


def test_pod_requests_sum_containers_max_init_plus_overhead() -> None:
    obj = pod(cpu="500m", memory="1Gi")
    obj["spec"]["containers"].append({"name": "side", "image": "envoy", "resources": {"requests": {"cpu": "250m"}}})
    obj["spec"]["initContainers"] = [{"name": "init", "image": "busybox", "resources": {"requests": {"cpu": "2"}}}]
    obj["spec"]["overhead"] = {"cpu": "100m", "memory": "64Mi"}
    facts = pod_facts(obj)
    assert facts.cpu == pytest.approx(2.1)  # init container's 2 > 0.75, plus 0.1 overhead
    assert facts.memory == pytest.approx(GI + 64 * 2**20)
    assert facts.images == (
        "docker.io/library/nginx:1.27", "docker.io/library/envoy:latest", "docker.io/library/busybox:latest"
    )
    assert (facts.owner_kind, facts.owner_name) == ("ReplicaSet", "web-5d8f")


def test_limits_stand_in_for_missing_requests() -> None:
    obj = pod(cpu=None, memory=None)
    obj["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1", "memory": "2Gi"}}
    facts = pod_facts(obj)
    assert (facts.cpu, facts.memory) == (1.0, 2 * GI)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(lambda p: p["spec"]["containers"][0]["resources"]["requests"].update(cpu="abc"),
                     "Pod.spec.containers[0].resources.requests.cpu", id="bad-quantity"),
        pytest.param(lambda p: p["spec"].update(containers="x"), "Pod.spec.containers", id="containers-not-list"),
        pytest.param(lambda p: p["metadata"].update(annotations={"a": 1}), "Pod.metadata.annotations.a",
                     id="annotation-not-string"),
        pytest.param(lambda p: p["spec"].update(tolerations=["x"]), "Pod.spec.tolerations[0]",
                     id="toleration-not-object"),
        pytest.param(lambda p: p.update(spec=[]), "Pod.spec", id="spec-not-object"),
    ],
)
def test_pod_errors_name_the_field(mutate: Any, field: str) -> None:
    obj = pod()
    mutate(obj)
    with pytest.raises(ObjectError) as caught:
        pod_facts(obj)
    assert caught.value.field == field


def test_node_facts() -> None:
    facts = node_facts(vm_node("n1", cpu="1900m", memory="7Gi", images=[("nginx:1.27", 123)]))
    assert facts.allocatable_cpu == pytest.approx(1.9)
    assert facts.allocatable_memory == 7 * GI
    assert facts.allocatable_pods == 110
    assert facts.ready
    assert facts.images == {"docker.io/library/nginx:1.27": 123.0}
    assert facts.labels["kubernetes.azure.com/agentpool"] == "nodepool1"


def test_node_without_name_is_an_error() -> None:
    with pytest.raises(ObjectError, match=r"Node\.metadata\.name: is required"):
        node_facts({"metadata": {}})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22 10:00:01.5 +0000 UTC", datetime(2026, 11, 22, 10, 0, 1, 500000, tzinfo=UTC)),
        ("2026-11-22 11:00:01.123456789 +0100 CET", datetime(2026, 11, 22, 10, 0, 1, 123456, tzinfo=UTC)),
        ("2026-11-22 10:00:01 +0000 UTC m=+12.3", datetime(2026, 11, 22, 10, 0, 1, tzinfo=UTC)),
        ("garbage", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_go_time(text: str | None, expected: datetime | None) -> None:
    assert parse_go_time(text) == expected
