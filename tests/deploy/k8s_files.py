"""The Kubernetes manifests as ``kubectl kustomize`` renders them, and ways to look into them."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import yaml
from deploy_files import REPO

K8S = REPO / "deploy/k8s"
# Every kustomization a user applies (base is only ever applied through an overlay).
TARGETS = ("overlays/dev", "overlays/prod", "train", "ray")
# Plain manifests applied with `kubectl apply -f`.
TOOLS = ("tools/volume-shell.yaml",)
# Custom resources: kubernetes-validate has no schema for them; the tests check them.
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("ray.io/v1", "RayJob"),
}
# The extra seconds the server takes to exit once the grace time ends or the last request
# is done: workers unload their versions and stop (measured about 3 s).
EXIT_SECONDS = 3

Doc = dict[str, Any]


def render(kubectl: str, target: str) -> list[Doc]:
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {target}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_templates(doc: Doc) -> Iterator[tuple[str, Doc]]:
    """``(where, pod template)`` of every pod a resource makes (RayJob: head and workers)."""
    kind = doc["kind"]
    if kind == "Pod":
        yield kind, {"metadata": doc["metadata"], "spec": doc["spec"]}
    elif kind in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        yield kind, doc["spec"]["template"]
    elif kind == "RayJob":
        cluster = doc["spec"]["rayClusterSpec"]
        yield "RayJob head", cluster["headGroupSpec"]["template"]
        for group in cluster["workerGroupSpecs"]:
            yield f"RayJob worker group {group['groupName']}", group["template"]
        if "submitterPodTemplate" in doc["spec"]:
            yield "RayJob submitter", doc["spec"]["submitterPodTemplate"]


def settings_env(docs: list[Doc]) -> dict[str, str]:
    """The ConfigMap the Deployment takes its environment from."""
    container = api_container(docs)
    (source,) = container["envFrom"]
    name = source["configMapRef"]["name"]
    data: dict[str, str] = one(docs, "ConfigMap", name)["data"]
    return data


def api_container(docs: list[Doc]) -> Doc:
    containers = one(docs, "Deployment", "mnist")["spec"]["template"]["spec"]["containers"]
    (container,) = [c for c in containers if c["name"] == "api"]
    return container


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
