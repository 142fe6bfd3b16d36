"""The stacks the scenarios run on, started and stopped for pytest's fixtures (e2e/conftest.py):

- the *extender* stack: a cluster whose kube-scheduler calls tideover (the project's scheduler config), and
  tideover itself: local processes, or the kind cluster of e2e/kind/up.sh;
- the *autoscaled* stack: the same plus a simulated VMSS and the real cluster-autoscaler (pools per test),
  configured by the scenario module's ``AUTOSCALED_STACK`` (keyword arguments of ``make_autoscaled_stack``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest

from e2e.harness.autoscaled import AutoscaledStack
from e2e.harness.cluster import VIRTUAL_NODE_NAME, LocalCluster, free_port
from e2e.harness.tideover import TideoverProcess, scheduler_config
from e2e.harness.workloads import Namespace
from e2e.kind.target import kind_stack, make_autoscaled_stack

ExtenderStack = tuple[LocalCluster, TideoverProcess]


def extender_stack(
    work: Path, request: pytest.FixtureRequest, target: str, *, config: Mapping[str, Any] | None = None,
    before_tideover: Callable[[LocalCluster], None] | None = None,
) -> Iterator[ExtenderStack]:
    """``config``: tideover's configuration (None: DEFAULT_CONFIG); ``before_tideover``: what to add to the cluster
    before tideover starts (local processes only)."""
    if target == "kind":  # the running kind cluster of e2e/kind/up.sh instead of local processes
        yield from kind_stack(work, request)
        return
    port = free_port()  # the scheduler needs tideover's URL before tideover (which needs the API) starts
    cluster = LocalCluster(scheduler_config=scheduler_config(f"http://127.0.0.1:{port}", work / "scheduler.yaml"))
    tideover = TideoverProcess(cluster.kubeconfig, work, dict(config) if config is not None else None, port=port)
    failed = True
    try:
        cluster.start()
        if before_tideover is not None:
            before_tideover(cluster)
        tideover.start()
        print(f"\n[e2e] cluster + tideover up; tideover log {tideover.log_path}")
        yield cluster, tideover
        failed = request.session.testsfailed > 0
    finally:
        tideover.stop()
        cluster.stop(failed=failed)
        if failed:
            print(f"[e2e] tideover log kept: {tideover.log_path}")


def autoscaled_stack(
    request: pytest.FixtureRequest, target: str, options: Mapping[str, Any]
) -> Iterator[AutoscaledStack]:
    # Not under pytest's basetemp, which keeps only the last 3 runs: the logs of a failure must survive.
    work = Path(tempfile.mkdtemp(prefix="tideover-autoscaled-"))
    started = time.monotonic()
    stack = make_autoscaled_stack(work, target=target, **options)
    failed = True
    try:
        stack.start()
        print(f"\n[e2e] cluster + tideover up in {time.monotonic() - started:.1f}s; work dir {work}")
        yield stack
        failed = request.session.testsfailed > 0
    finally:
        end_stack(stack, work, failed)


def end_stack(stack: AutoscaledStack, work: Path, failed: bool, kept: str = "") -> None:
    """Stop the stack; keep its work directory (its logs, and ``kept`` names what else) after a failure, else remove
    it."""
    stack.stop(failed=failed)
    if failed:
        print(f"[e2e] logs kept under {work}{kept}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def _new_namespace(cluster: LocalCluster) -> Namespace:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.core_v1().create_namespace(cast(Any, {"metadata": {"name": name}}))
    return Namespace(cluster, name)


def extender_namespace(stack: ExtenderStack) -> Iterator[Namespace]:
    """A fresh namespace; afterwards its pods are gone and the VM nodes a test added are deleted."""
    cluster, tideover = stack
    if not tideover.running:
        tideover.start()
    namespace = _new_namespace(cluster)
    yield namespace
    namespace.delete()
    cluster.wait_for(lambda: not namespace.pods(), 60, f"pods of {namespace.name} to go")
    for node in cluster.core_v1().list_node().items:
        name = node.metadata.name if node.metadata else None
        if name and name != VIRTUAL_NODE_NAME:
            cluster.delete_node(name)


def autoscaled_namespace(stack: AutoscaledStack) -> Iterator[Namespace]:
    """A fresh namespace; afterwards the extra tideover replicas, its pods and the test's pool are gone."""
    if not stack.tideover.running:
        stack.tideover.start()
    namespace = _new_namespace(stack.cluster)
    try:
        yield namespace
    finally:
        if stack.pool is not None:
            tideovers = [str(p) for n, p in stack.log_paths().items() if n.startswith("tideover")]
            print(f"[e2e] logs: cluster-autoscaler {stack.pool.autoscaler.log_path}, vmss {stack.pool.vmss_log}, "
                  f"tideover {tideovers}")
        stack.stop_replicas()
        namespace.delete()
        stack.cluster.wait_for(lambda: not stack.core.list_namespaced_pod(namespace.name).items, 60,
                               f"the pods of {namespace.name} to go")
        stack.stop_pool()
