"""The comparison's outputs: a Markdown table, PNG plots (matplotlib, Agg backend: no display needed), one
self-contained HTML report (the PNGs embedded as base64), and JSON."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extender.simulate.results import PolicyResult
from extender.simulate.trace import Trace

PLOTS = ("placements", "cost", "waits")


@dataclass
class Comparison:
    trace: Trace
    seed: int
    results: list[PolicyResult]
    seconds: float  # wall time of the simulations

    def by_key(self, key: str) -> PolicyResult | None:
        return next((r for r in self.results if r.key == key), None)

    def as_json(self, series: bool = True) -> dict[str, Any]:
        static = self.by_key("static")
        out: dict[str, Any] = {
            "scenario": self.trace.name, "description": self.trace.description, "seed": self.seed,
            "durationSeconds": self.trace.duration, "simulationSeconds": round(self.seconds, 3),
            "policies": [r.as_json(series) for r in self.results],
        }
        if static is not None and static.aci_pod_seconds > 0:
            out["aciPodSecondsVersusStatic"] = {
                r.key: round(r.aci_pod_seconds / static.aci_pod_seconds, 4) for r in self.results
            }
        return out


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table(comparison: Comparison) -> str:
    """One row per policy, Markdown."""
    head = ("| policy | ACI pod-s | ACI $ | VM node-h | VM $ | total $ | wait p50 s | wait p95 s | wait max s "
            "| on ACI at end |")
    lines = [head, "|" + "---|" * 10]
    for r in comparison.results:
        lines.append(
            f"| {r.title} | {r.aci_pod_seconds:,.0f} | {r.aci_dollars:.3f} | {r.vm_node_hours:.2f} | "
            f"{r.vm_dollars:.3f} | {r.total_dollars:.3f} | {_seconds(r.wait_p50)} | {_seconds(r.wait_p95)} | "
            f"{_seconds(r.wait_max)} | {r.virtual_at_end} |"
        )
    notes = [r for r in comparison.results if r.never_ran or r.pending_at_end]
    for r in notes:
        lines.append(f"\n{r.title}: {r.never_ran} pod(s) deleted before they ran, "
                     f"{r.pending_at_end} pending at the end.")
    return "\n".join(lines)


def summary_lines(comparison: Comparison) -> list[str]:
    static = comparison.by_key("static")
    out = [f"scenario {comparison.trace.name} (seed {comparison.seed}): {comparison.trace.description}",
           f"{len(comparison.results)} policies simulated in {comparison.seconds:.2f}s"]
    if static is not None and static.aci_pod_seconds > 0:
        for r in comparison.results:
            if r.key.startswith("tideover"):
                out.append(f"{r.title}: ACI pod-seconds {r.aci_pod_seconds / static.aci_pod_seconds:.1%} of the "
                           f"static recipe's")
    return out


# ---------------------------------------------------------------------------------------------- plots


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError(
            "plots need matplotlib: pip install 'tideover[simulate]' (the table and --json work without it)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


STYLES = ("-", "--", "-.", ":")


def _style(index: int) -> dict[str, Any]:
    """Policies that behave alike draw the same curve: each gets its own dash and a thinner line than the one
    before, so every curve stays visible."""
    return {"linestyle": STYLES[index % len(STYLES)], "linewidth": max(0.8, 3.0 - 0.4 * index)}


def _minutes(values: Sequence[float]) -> list[float]:
    return [v / 60.0 for v in values]


def plot_placements(comparison: Comparison) -> bytes:
    plt = _pyplot()
    results = comparison.results
    fig, axes = plt.subplots(len(results), 1, figsize=(9, 1.7 * len(results) + 0.6), sharex=True, squeeze=False)
    for ax, r in zip(axes[:, 0], results, strict=True):
        s = r.series
        ax.stackplot(_minutes(s.at), s.vm, s.virtual, s.pending, step="post",
                     labels=["on VMs", "on the virtual node (ACI)", "pending"],
                     colors=["#4c72b0", "#dd8452", "#c0c0c0"])
        ax.step(_minutes(s.at), s.vm_nodes, where="post", color="black", linewidth=0.8,
                label="VM nodes (booting included)")
        ax.set_ylabel("pods")
        ax.set_title(r.title, fontsize=9, loc="left")
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=4)
    axes[-1, 0].set_xlabel("minutes")
    fig.suptitle(f"{comparison.trace.name}: pods by placement over time", fontsize=10)
    return _png(fig)


def plot_cost(comparison: Comparison) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    for index, r in enumerate(comparison.results):
        ax.step(_minutes(r.series.at), r.series.cost, where="post", label=f"{r.title} (${r.total_dollars:.2f})",
                **_style(index))
    ax.set_xlabel("minutes")
    ax.set_ylabel("cumulative USD (ACI + VMs)")
    ax.set_title(f"{comparison.trace.name}: cumulative cost", fontsize=10)
    ax.legend(fontsize=7)
    return _png(fig)


def plot_waits(comparison: Comparison) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    for index, r in enumerate(comparison.results):
        waits = sorted(max(w, 0.1) for w in r.waits)
        if waits:
            ax.step(waits, [(i + 1) / len(waits) for i in range(len(waits))], where="post",
                    label=f"{r.title} (p95 {_seconds(r.wait_p95)} s)", **_style(index))
    ax.set_xscale("log")
    ax.set_xlabel("seconds from creation to Running (log)")
    ax.set_ylabel("share of pods")
    ax.set_title(f"{comparison.trace.name}: time to Running", fontsize=10)
    ax.legend(fontsize=7)
    return _png(fig)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def plots(comparison: Comparison) -> dict[str, bytes]:
    return {"placements": plot_placements(comparison), "cost": plot_cost(comparison), "waits": plot_waits(comparison)}


# ---------------------------------------------------------------------------------------------- files


def html_report(comparison: Comparison, images: dict[str, bytes]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r.title)}</td><td>{r.aci_pod_seconds:,.0f}</td><td>{r.aci_dollars:.3f}</td>"
        f"<td>{r.vm_node_hours:.2f}</td><td>{r.vm_dollars:.3f}</td><td>{r.total_dollars:.3f}</td>"
        f"<td>{_seconds(r.wait_p50)}</td><td>{_seconds(r.wait_p95)}</td><td>{_seconds(r.wait_max)}</td>"
        f"<td>{r.virtual_at_end}</td><td>{html.escape(r.description)}</td></tr>"
        for r in comparison.results
    )
    figures = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}"></figure>'
        for name, data in images.items()
    )
    notes = "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines(comparison))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tideover simulate: {html.escape(comparison.trace.name)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,td:last-child{{text-align:left}}
img{{max-width:100%}}</style></head><body>
<h1>tideover simulate: {html.escape(comparison.trace.name)}</h1>
<p>{html.escape(comparison.trace.description)}; seed {comparison.seed}.</p><ul>{notes}</ul>
<table><tr><th>policy</th><th>ACI pod-s</th><th>ACI $</th><th>VM node-h</th><th>VM $</th><th>total $</th>
<th>wait p50 s</th><th>wait p95 s</th><th>wait max s</th><th>on ACI at end</th><th>rule</th></tr>{rows}</table>
{figures}
<p>Placements are decided by tideover's own filter, capacity signal, guards and return planner on simulated
snapshots; see docs/simulate.md for the model and the sources of its defaults.</p>
</body></html>
"""


def write_report(comparison: Comparison, directory: Path) -> list[Path]:
    """table.md, results.json, a PNG per plot and report.html (self-contained) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    images = plots(comparison)
    written = []
    for name, data in images.items():
        path = directory / f"{name}.png"
        path.write_bytes(data)
        written.append(path)
    (directory / "table.md").write_text(table(comparison) + "\n")
    (directory / "results.json").write_text(json.dumps(comparison.as_json(), indent=1) + "\n")
    (directory / "report.html").write_text(html_report(comparison, images))
    written += [directory / "table.md", directory / "results.json", directory / "report.html"]
    return written
