"""pytest options and the shared fixtures of the end-to-end scenarios (e2e/scenarios/).

The end-to-end tests run with ``--e2e`` (or ``TIDEOVER_E2E=1``), on ``--e2e-target local`` (the default: real
components as local processes, e2e/harness/cluster.py) or ``--e2e-target kind`` (or ``TIDEOVER_E2E_TARGET``: the
kind cluster of e2e/kind/up.sh, e2e/kind/README.md). Without it they are skipped, and the unit tests under e2e/
(the VMSS simulator's, the kind tooling's) still run.

    .venv/bin/python -m pytest e2e --e2e -s

The first run builds the components (e2e/harness/components.py); later runs reuse the cached binaries.

Fixtures: ``cluster`` (a cluster without an extender), ``stack`` and ``ns``. A scenario module gets the extender
stack (kube-scheduler calling tideover) unless it sets ``AUTOSCALED_STACK`` (keyword arguments of
``make_autoscaled_stack``): then the autoscaled stack (plus a simulated VMSS and cluster-autoscaler).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.harness.cluster import LocalCluster
from e2e.harness.stacks import autoscaled_namespace, autoscaled_stack, extender_namespace, extender_stack
from e2e.harness.workloads import Namespace
from e2e.kind.target import skip_local_only

_HERE = Path(__file__).parent
TARGETS = ("local", "kind")


@dataclass(frozen=True)
class E2E:
    enabled: bool
    target: str  # "local" or "kind"


_SETTINGS = pytest.StashKey[E2E]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tideover end-to-end")
    group.addoption("--e2e", action="store_true", default=os.environ.get("TIDEOVER_E2E") == "1",
                    help="run the end-to-end tests on real components (default: TIDEOVER_E2E=1)")
    group.addoption("--e2e-target", default=os.environ.get("TIDEOVER_E2E_TARGET") or "local",
                    help="local (processes; the default) or kind (the cluster of e2e/kind/up.sh); "
                         "default: TIDEOVER_E2E_TARGET")


def pytest_configure(config: pytest.Config) -> None:
    target = config.getoption("--e2e-target", "local")
    if target not in TARGETS:
        raise pytest.UsageError(f"--e2e-target (TIDEOVER_E2E_TARGET) {target!r}: expected local or kind")
    config.stash[_SETTINGS] = E2E(bool(config.getoption("--e2e", False)), target)


def settings(config: pytest.Config) -> E2E:
    return config.stash[_SETTINGS]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests that read what the whole suite did (the RBAC audit) run after every other test.
    items.sort(key=lambda item: item.get_closest_marker("run_last") is not None)
    e2e = settings(config)
    mine = [item for item in items if _HERE in Path(str(item.path)).parents]
    if e2e.enabled:
        if e2e.target == "kind":
            skip_local_only(mine)
        return
    skip = pytest.mark.skip(reason="end-to-end test: run with --e2e (or TIDEOVER_E2E=1)")
    for item in mine:
        # Only tests marked e2e (pytest also puts the directory name "e2e" among an item's keywords,
        # so the keywords cannot tell): the simulator's unit tests under e2e/vmss always run.
        if item.get_closest_marker("e2e") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def e2e(request: pytest.FixtureRequest) -> E2E:
    """The run's end-to-end settings; skips the test when end-to-end tests are off."""
    found = settings(request.config)
    if not found.enabled:
        pytest.skip("end-to-end test: run with --e2e (or TIDEOVER_E2E=1)")
    return found


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest, e2e: E2E) -> Iterator[LocalCluster]:
    """A started LocalCluster without a scheduler extender, shared by a test module."""
    c = LocalCluster(keep_work_dir=os.environ.get("TIDEOVER_E2E_KEEP") == "1")
    t0 = time.monotonic()
    c.start()
    print(f"\n[e2e] cluster started in {time.monotonic() - t0:.1f}s (work dir {c.work_dir})")
    try:
        yield c
    finally:
        c.stop(failed=request.session.testsfailed > 0)


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, e2e: E2E, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The module's stack: ``(LocalCluster, TideoverProcess)``, or an ``AutoscaledStack`` when the module sets
    ``AUTOSCALED_STACK``."""
    options = getattr(request.module, "AUTOSCALED_STACK", None)
    if options is not None:
        yield from autoscaled_stack(request, e2e.target, options)
    else:
        yield from extender_stack(tmp_path_factory.mktemp("tideover"), request, e2e.target)


@pytest.fixture
def ns(stack: Any) -> Iterator[Namespace]:
    """A fresh namespace for one test, cleaned up after it (with what the test added to the stack)."""
    if isinstance(stack, tuple):
        yield from extender_namespace(stack)
    else:
        yield from autoscaled_namespace(stack)
