"""The configuration reference, generated from the model: every setting's path, default, the AKS offering it is for
(:data:`AKS_OFFERINGS`) and description (its unit and the reason for its default). ``tideover config-reference``
prints it; the README's table is this output, and a test keeps the two equal."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from extender.model.config import TideoverConfig

# AKS's offerings a setting concerns: virtual nodes (the legacy add-on, or v2, the Helm-based "virtual nodes on ACI")
# and capacity (cluster-autoscaler on VMSS node pools, or Node Auto Provisioning, AKS's managed Karpenter).
ANY: Final = "any"
CA = "cluster autoscaler"
NAP = "Node Auto Provisioning (Karpenter)"
V2 = "virtual nodes v2"
_BOTH = f"{CA}; {NAP}"
# A setting's path, or a prefix of paths (the longest wins) -> the offering it is for. Any other setting: ANY.
AKS_OFFERINGS: Final[Mapping[str, str]] = {
    "virtualNodes.selector": f"{ANY} (add virtualization=virtualnode2 to select only the {V2} nodes)",
    "virtualNodes.pricing.sidecarCpu": f"{V2} (legacy add-on: 0)",
    "virtualNodes.pricing.sidecarMemoryGib": f"{V2} (legacy add-on: 0)",
    "virtualNodes.maxPodsPerNode": f"{V2}: 200 (legacy add-on: unset)",
    "virtualNodes.gateTaint": _BOTH,
    "vmPools.poolLabel": f"{CA}: kubernetes.azure.com/agentpool; {NAP}: karpenter.sh/nodepool",
    "vmPools.pools[].name": f"{CA}: the agent pool; {NAP}: the NodePool",
    "vmPools.pools[].nodeGroup": CA,
    "vmPools.pools[].provisioningSeconds": _BOTH,
    "vmPools.provisioningSeconds": _BOTH,
    "autoscaler": _BOTH,
    "autoscaler.capacitySignal": f"{CA}: cluster-autoscaler; {NAP}: karpenter",
    "autoscaler.statusNamespace": CA,
    "autoscaler.statusConfigMap": CA,
    "autoscaler.statusMaxAgeSeconds": CA,
}


def aks_offering(path: str) -> str:
    """The AKS offering the setting at ``path`` is for (:data:`AKS_OFFERINGS`)."""
    matches = [key for key in AKS_OFFERINGS if path == key or path.startswith(key + ".")]
    return AKS_OFFERINGS[max(matches, key=len)] if matches else ANY


@dataclass(frozen=True, slots=True)
class Setting:
    path: str  # camelCase, as written in the file: virtualNodes.pricing.vcpuPerSecond
    default: str
    description: str

    @property
    def offering(self) -> str:
        return aks_offering(self.path)


_REQUIRED = object()


def _default(field: FieldInfo) -> Any:
    if field.is_required():
        return _REQUIRED
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return None if field.default is PydanticUndefined else field.default


def _shown(value: Any) -> str:
    if value is _REQUIRED:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return f"`{text}`"


def _model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _entries(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """For a list or a map of settings (pools, profiles): the suffix that names an entry, and the entry's model."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list and args and _model(args[0]):
        return "[]", args[0]
    if origin is dict and len(args) == 2 and _model(args[1]):
        return ".<name>", args[1]
    return None


def settings(model: type[BaseModel] = TideoverConfig, prefix: str = "") -> Iterator[Setting]:
    """Every setting under ``model``, depth first, in the model's order. A list or a map of settings (pools,
    profiles) is a row, followed by its entries' keys (``vmPools.pools[].name``)."""
    for name, field in model.model_fields.items():
        alias = field.alias or name
        if prefix == "" and alias in ("apiVersion", "kind"):
            continue
        path = f"{prefix}.{alias}" if prefix else alias
        section = _model(field.annotation)
        if section is not None:
            yield from settings(section, path)
            continue
        yield Setting(path, _shown(_default(field)), field.description or "")
        entries = _entries(field.annotation)
        if entries is not None:
            yield from settings(entries[1], path + entries[0])


def missing_descriptions(model: type[BaseModel] = TideoverConfig) -> list[str]:
    """Paths of settings without a description (a test keeps this empty)."""
    return [setting.path for setting in settings(model) if not setting.description]


def markdown() -> str:
    """The reference as a Markdown table."""
    rows = ["| setting | default | AKS offering | meaning, unit, and why this default |", "|---|---|---|---|"]
    for setting in settings():
        default, offering, description = (
            text.replace("|", "\\|") for text in (setting.default, setting.offering, setting.description)
        )
        rows.append(f"| `{setting.path}` | {default} | {offering} | {description} |")
    return "\n".join(rows) + "\n"
