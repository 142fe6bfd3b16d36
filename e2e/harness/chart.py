"""tideover's Helm chart (charts/tideover): its generated files, and rendering it with the pinned helm.

Usage (from the repository root)::

    python -m e2e.harness.chart generate   # values.schema.json (from extender/model/config.py) and config/'s manifests
    python -m e2e.harness.chart check      # exit 1 when either differs from what generate would write

One source of truth for the deployment: the chart. ``config/{rbac,configmap,deployment,service}.yaml`` (what
``kubectl apply -k config/`` applies) are ``helm template`` of the chart with its default values, split by
template; tests/test_chart.py fails when the committed files differ. The ``config`` part of values.schema.json is
the JSON schema of :class:`extender.model.config.TideoverConfig` (pydantic), so ``helm install`` refuses a configuration
``tideover check-config`` would refuse, and the rest of the schema is :func:`chart_schema` here.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from e2e.harness import components

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tideover"
SCHEMA_FILE = CHART / "values.schema.json"
EXAMPLES = CHART / "ci"  # every *-values.yaml here is linted and rendered by tests/test_chart.py
CONFIG_DIR = ROOT / "config"
RELEASE = "tideover"
NAMESPACE = "kube-system"
# config/ file -> the chart templates it is made of, in order.
CONFIG_FILES: dict[str, tuple[str, ...]] = {
    "rbac.yaml": ("serviceaccount.yaml", "rbac.yaml"),
    "configmap.yaml": ("configmap.yaml",),
    "deployment.yaml": ("deployment.yaml", "pdb.yaml"),
    "service.yaml": ("service.yaml",),
}
HEADER = (
    "# GENERATED from charts/tideover (helm template, default values) by `python -m e2e.harness.chart generate`:\n"
    "# do not edit; change the chart. tests/test_chart.py checks that this file matches the chart.\n"
)
_SOURCE = re.compile(r"^---\n# Source: [^/\n]+/templates/(\S+)\n", re.M)


class ChartError(RuntimeError):
    """helm refused the chart or its values."""


def helm_binary() -> Path:
    """The pinned helm (e2e/versions.toml [helm]), built on first use and cached."""
    return components.build_tool("helm") / "helm"


def helm(*args: str) -> str:
    proc = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ChartError(f"helm {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def template(values: Sequence[Path] = (), sets: Mapping[str, str] | None = None,
             files: Mapping[str, Path] | None = None, namespace: str = NAMESPACE, release: str = RELEASE) -> str:
    """``helm template`` of the chart with these values files, --set values and --set-file values."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    for path in values:
        args += ["--values", str(path)]
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    for key, path in (files or {}).items():
        args += ["--set-file", f"{key}={path}"]
    return helm(*args)


def by_template(rendered: str) -> dict[str, str]:
    """The rendering split by template file name (``# Source:`` comments), each without its separator line."""
    parts: dict[str, str] = {}
    matches = list(_SOURCE.finditer(rendered))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(rendered)
        name = match.group(1)
        body = rendered[match.end():end]
        parts[name] = f"{parts[name]}---\n{body}" if name in parts else body
    return parts


def config_files() -> dict[str, str]:
    """config/'s manifests as the chart renders them with its defaults: file name -> text."""
    parts = by_template(template())
    out: dict[str, str] = {}
    for name, sources in CONFIG_FILES.items():
        missing = [s for s in sources if s not in parts]
        if missing:
            raise ChartError(f"the chart rendered no {missing} with its default values")
        out[name] = HEADER + "---\n".join(parts[s] for s in sources)
    return out


def _config_schema() -> dict[str, Any]:
    from extender.model.config import TideoverConfig

    schema: dict[str, Any] = TideoverConfig.model_json_schema(by_alias=True)
    schema["description"] = "tideover's configuration (tideover.yaml); see config/tideover.yaml"
    return schema


def chart_schema() -> dict[str, Any]:
    """values.schema.json: the chart's own values, and ``config`` as TideoverConfig's schema."""
    config = _config_schema()
    defs = config.pop("$defs", {})
    string = {"type": "string"}
    obj = {"type": "object"}
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tideover chart values",
        "type": "object",
        "additionalProperties": False,
        "required": ["image", "replicas", "service", "tls", "config"],
        "properties": {
            "fullnameOverride": string,
            "configFile": string,
            "commonLabels": string_map,
            "image": {"type": "object", "additionalProperties": False, "required": ["repository"], "properties": {
                "repository": {"type": "string", "minLength": 1}, "tag": string,
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            }},
            "replicas": {"type": "integer", "minimum": 0,
                         "description": "2 or more in production (one serves while another restarts)"},
            "podDisruptionBudget": {"type": "object", "additionalProperties": False, "properties": {
                "minAvailable": {"type": ["integer", "string"]}}},
            "priorityClassName": string,
            "nodeSelector": string_map,
            "tolerations": {"type": "array", "items": obj},
            "podAnnotations": string_map,
            "resources": obj,
            "service": {"type": "object", "additionalProperties": False, "required": ["type", "port"], "properties": {
                "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "nodePort": {"type": ["integer", "null"], "minimum": 30000, "maximum": 32767},
            }},
            "tls": {"type": "object", "additionalProperties": False, "properties": {
                "enabled": {"type": "boolean"}, "secretName": {"type": "string", "minLength": 1},
                "certificate": string, "key": string,
                "certManager": {"type": "object", "additionalProperties": False, "properties": {
                    "enabled": {"type": "boolean"}, "issuerRef": obj, "duration": string, "renewBefore": string,
                }},
                "clientAuth": {"type": "object", "additionalProperties": False, "properties": {
                    "enabled": {"type": "boolean"}, "caSecretName": string,
                    "clientSecretName": {"type": "string", "minLength": 1}, "clientNamespace": string,
                    "commonName": {"type": "string", "minLength": 1},
                }},
            }},
            "networkPolicy": {"type": "object", "additionalProperties": False, "properties": {
                "enabled": {"type": "boolean"},
                "scheduler": {"type": "object", "additionalProperties": False, "properties": {
                    "namespaceSelector": string_map, "podSelector": string_map,
                    "ipBlocks": {"type": "array", "items": {"type": "string", "minLength": 1}},
                }},
                "metrics": {"type": "object", "additionalProperties": False, "properties": {
                    "namespaceSelector": string_map}},
            }},
            "serviceMonitor": {"type": "object", "additionalProperties": False, "properties": {
                "enabled": {"type": "boolean"}, "interval": string, "labels": string_map, "tlsConfig": obj,
            }},
            "prometheusRule": {"type": "object", "additionalProperties": False, "properties": {
                "enabled": {"type": "boolean"}, "labels": string_map,
            }},
            "grafanaDashboard": {"type": "object", "additionalProperties": False, "properties": {
                "enabled": {"type": "boolean"}, "labels": string_map, "annotations": string_map,
            }},
            "config": config,
        },
        "$defs": defs,
    }


def schema_text() -> str:
    return json.dumps(chart_schema(), indent=2, sort_keys=True) + "\n"



def stale() -> list[Path]:
    """Generated files whose committed text differs from what generate writes."""
    wanted = {SCHEMA_FILE: schema_text(), **{CONFIG_DIR / k: v for k, v in config_files().items()}}
    return [path for path, text in wanted.items() if not path.is_file() or path.read_text() != text]


def generate() -> list[Path]:
    SCHEMA_FILE.write_text(schema_text())
    written = [SCHEMA_FILE]
    for name, text in config_files().items():
        (CONFIG_DIR / name).write_text(text)
        written.append(CONFIG_DIR / name)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.harness.chart", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["generate", "check"])
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            for path in generate():
                print(f"wrote {path.relative_to(ROOT)}")
            return 0
        problems = stale()
    except (ChartError, components.BuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in problems:
        print(f"{path.relative_to(ROOT)} differs from the chart: python -m e2e.harness.chart generate", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
