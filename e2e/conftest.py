"""pytest fixtures for the end-to-end tests; they run only with TIDEOVER_E2E=1.

Run: ``TIDEOVER_E2E=1 .venv/bin/python -m pytest e2e -s``. The first run builds the components
(see e2e/harness/components.py); later runs reuse the cached binaries. With ``TIDEOVER_E2E_TARGET=kind`` the scenarios
run against the kind cluster of e2e/kind/up.sh instead (e2e/kind/README.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.harness.cluster import LocalCluster
from e2e.kind.target import skip_local_only

E2E_ENABLED = os.environ.get("TIDEOVER_E2E") == "1"
# "local": local processes (e2e/harness/cluster.py); "kind": the kind cluster of e2e/kind/up.sh (e2e/kind/README.md).
E2E_TARGET = os.environ.get("TIDEOVER_E2E_TARGET") or "local"
_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests that read what the whole suite did (the RBAC audit) run after every other test.
    items.sort(key=lambda item: item.get_closest_marker("run_last") is not None)
    if E2E_ENABLED:
        if E2E_TARGET not in ("local", "kind"):
            raise pytest.UsageError(f"TIDEOVER_E2E_TARGET={E2E_TARGET!r}: expected local (the default) or kind")
        if E2E_TARGET == "kind":
            skip_local_only(i for i in items if _HERE in Path(str(i.path)).parents)
        return
    skip = pytest.mark.skip(reason="end-to-end test: set TIDEOVER_E2E=1 to run")
    for item in items:
        # Only tests marked e2e (pytest also puts the directory name "e2e" among an item's keywords,
        # so the keywords cannot tell): the simulator's unit tests under e2e/vmss always run.
        if item.get_closest_marker("e2e") is not None and _HERE in Path(str(item.path)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """A started LocalCluster without a scheduler extender, shared by a test module."""
    if not E2E_ENABLED:
        pytest.skip("end-to-end test: set TIDEOVER_E2E=1 to run")
    c = LocalCluster(keep_work_dir=os.environ.get("TIDEOVER_E2E_KEEP") == "1")
    t0 = time.monotonic()
    c.start()
    print(f"\n[e2e] cluster started in {time.monotonic() - t0:.1f}s (work dir {c.work_dir})")
    try:
        yield c
    finally:
        c.stop(failed=request.session.testsfailed > 0)
