"""The Kubernetes manifests (deploy/k8s), offline and with the real tools.

``kubectl kustomize`` renders each overlay; ``kubernetes-validate`` checks every built-in
resource strictly against the schemas of two Kubernetes versions; the custom resources it
has no schema for (ServiceMonitor, PrometheusRule, RayJob) are checked here field by
field, their pod templates strictly as PodTemplates. The rest ties the manifests to the
code: probe paths answered by the real server, env names that are real settings, the
port, selectors that select the pods, a PDB that lets a node drain at the HPA minimum,
a grace period that covers the drain, and alerts that promtool parses and unit-tests.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from deploy_files import REPO, dockerfile_instructions, require
from k8s_files import (
    CUSTOM_KINDS,
    EXIT_SECONDS,
    K8S,
    TARGETS,
    TOOLS,
    Doc,
    api_container,
    one,
    pod_templates,
    render,
    selects,
    settings_env,
)
from prometheus_client.parser import text_string_to_metric_families
from promql import SCRAPE_SERIES, metric_names

from batch.cli import build_parser as batch_parser
from service.config import ServiceSettings
from service.metrics import ServiceMetrics

# The oldest and the newest minor version the manifests are meant for: the preStop sleep
# action and matchLabelKeys need 1.30; kubernetes-validate ships schemas up to its own.
KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
ALERTS_TEST = Path(__file__).with_name("k8s_alerts_test.yml")
ADAPTER_RULES = K8S / "monitoring/prometheus-adapter-rules.yaml"
# Series of kube-state-metrics (kube-prometheus-stack installs it) that alerts read.
KUBE_STATE_SERIES = frozenset(
    {"kube_deployment_status_replicas_available", "kube_pod_container_status_restarts_total"}
)


@pytest.fixture(scope="module")
def kubectl() -> str:
    found = require("kubectl", "apt-get install kubernetes-client; .ci/run does")
    # Components, `labels` and `replicas` need kustomize v4+ (kubectl 1.21+, which names
    # its kustomize from 1.24 on); Debian bookworm's kubernetes-client 1.20 is older.
    version = subprocess.run(
        [found, "version", "--client"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    match = re.search(r"Kustomize Version: v(\d+)", version)
    if not match or int(match.group(1)) < 4:
        message = f"kubectl's kustomize is older than v4, so these checks did not run: {version}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def rendered(kubectl: str) -> dict[str, list[Doc]]:
    """Every kustomization rendered, and the plain manifests as they are."""
    docs = {target: render(kubectl, target) for target in TARGETS}
    for tool in TOOLS:
        docs[tool] = [d for d in yaml.safe_load_all((K8S / tool).read_text()) if d]
    return docs


@pytest.fixture(scope="module")
def dev(rendered: dict[str, list[Doc]]) -> list[Doc]:
    return rendered["overlays/dev"]


@pytest.fixture(scope="module")
def prod(rendered: dict[str, list[Doc]]) -> list[Doc]:
    return rendered["overlays/prod"]


@pytest.fixture(scope="module")
def rayjob(rendered: dict[str, list[Doc]]) -> Doc:
    return one(rendered["ray"], "RayJob")


def _all(rendered: dict[str, list[Doc]]) -> list[tuple[str, Doc]]:
    return [(target, doc) for target, docs in rendered.items() for doc in docs]


# --- rendering and schemas -----------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "kinds"),
    [
        ("overlays/dev", {"Namespace", "ConfigMap", "Secret", "Service", "Deployment",
                          "PersistentVolumeClaim"}),
        ("overlays/prod", {"Namespace", "ConfigMap", "Service", "Deployment",
                           "PersistentVolumeClaim", "HorizontalPodAutoscaler",
                           "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule"}),
        ("train", {"Job"}),
        ("ray", {"PersistentVolumeClaim", "RayJob"}),
    ],
)  # fmt: skip
def test_each_target_renders_what_it_should(
    rendered: dict[str, list[Doc]], target: str, kinds: set[str]
) -> None:
    assert {d["kind"] for d in rendered[target]} == kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_builtin_resource_validates_strictly(
    rendered: dict[str, list[Doc]], version: str
) -> None:
    custom = []
    for target, doc in _all(rendered):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            custom.append((doc["apiVersion"], doc["kind"]))
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{target}: {doc['kind']} {doc['metadata']['name']}: {exc}")
    # Only the three known custom resources may lack a schema (a typo in a built-in
    # apiVersion would otherwise pass as "custom").
    assert set(custom) == CUSTOM_KINDS


def test_strict_validation_can_fail(prod: list[Doc]) -> None:
    """The check above is not vacuous: a misspelt field and a bad type are refused."""
    deployment = copy.deepcopy(one(prod, "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    hpa = copy.deepcopy(one(prod, "HorizontalPodAutoscaler"))
    hpa["spec"]["minReplicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, KUBERNETES_VERSIONS[-1], strict=True)


def test_rayjob_pod_templates_validate_strictly(rayjob: Doc) -> None:
    """No schema for RayJob, but its pods are plain pod templates: validate them as such."""
    for where, template in pod_templates(rayjob):
        for version in KUBERNETES_VERSIONS:
            resource = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "mnist-batch"},
                "template": template,
            }
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{where}: {exc}")


def test_rayjob_fields(rayjob: Doc, rendered: dict[str, list[Doc]]) -> None:
    """The KubeRay v1 fields it uses, spelt as the CRD spells them."""
    spec = rayjob["spec"]
    assert set(spec) <= {
        "entrypoint", "submissionMode", "shutdownAfterJobFinishes", "ttlSecondsAfterFinished",
        "activeDeadlineSeconds", "backoffLimit", "runtimeEnvYAML", "rayClusterSpec",
        "submitterPodTemplate",
    }  # fmt: skip
    assert spec["submissionMode"] in {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}
    assert spec["shutdownAfterJobFinishes"] is True
    assert isinstance(yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"], dict)
    cluster = spec["rayClusterSpec"]
    assert set(cluster) <= {"rayVersion", "headGroupSpec", "workerGroupSpecs"}
    assert set(cluster["headGroupSpec"]) == {"rayStartParams", "template"}
    for group in cluster["workerGroupSpecs"]:
        assert set(group) <= {
            "groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template"
        }  # fmt: skip
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for params in [cluster["headGroupSpec"]["rayStartParams"]] + [
        g["rayStartParams"] for g in cluster["workerGroupSpecs"]
    ]:
        assert all(isinstance(v, str) for v in params.values()), "rayStartParams are strings"
    # Ray in the image (the ray extra, pinned) is the Ray the cluster is declared with.
    pins = {
        line.partition("==")[0].lower(): line.partition("==")[2]
        for line in (REPO / "constraints.txt").read_text().splitlines()
    }
    assert cluster["rayVersion"] == pins["ray"]
    claims = {d["metadata"]["name"] for docs in rendered.values() for d in docs
              if d["kind"] == "PersistentVolumeClaim"}  # fmt: skip
    for where, template in pod_templates(rayjob):
        for volume in template["spec"]["volumes"]:
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, where


def test_rayjob_runs_mnist_batch_on_the_ray_engine(rayjob: Doc, prod: list[Doc]) -> None:
    """The entrypoint parses as mnist-batch's own command line, on the model every pod mounts."""
    program, *argv = shlex.split(rayjob["spec"]["entrypoint"])
    assert program == "mnist-batch"
    args = batch_parser().parse_args(argv)
    assert args.engine == "ray"
    assert args.ray_address == "auto"
    model_dir = Path(settings_env(prod)["MNIST_MODEL_DIR"])
    assert args.local == model_dir
    for where, template in pod_templates(rayjob):
        if where == "RayJob submitter":
            continue  # it only submits; the job runs on the head
        (container,) = template["spec"]["containers"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert any(model_dir.is_relative_to(path) for path in mounts), where
    (head,) = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"]
    head_mounts = [m["mountPath"] for m in head["volumeMounts"]]
    for path in (args.input, args.output):
        assert any(Path(path).is_relative_to(m) for m in head_mounts), path


def test_servicemonitor_scrapes_the_service_metrics_port(prod: list[Doc]) -> None:
    monitor = one(prod, "ServiceMonitor")
    service = one(prod, "Service", "mnist")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    # A ServiceMonitor selects Services (not pods), by their labels, and names a port.
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    port_names = {p["name"] for p in service["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
    assert endpoint["port"] in port_names
    assert endpoint["path"] == "/metrics"
    # The alert rules select job="mnist": the job label is the Service's name.
    assert service["metadata"]["name"] == "mnist"


# --- consistency with the code --------------------------------------------------------


def test_probes_use_the_service_routes_and_port(prod: list[Doc], dev: list[Doc]) -> None:
    for docs in (prod, dev):
        container = api_container(docs)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        settings = settings_env(docs)
        assert ports["http"] == int(settings["MNIST_PORT"])
        # Reachable from the kubelet and the Service: not the loopback default.
        assert settings["MNIST_HOST"] == "0.0.0.0"
        probes = {k: container[k]["httpGet"] for k in
                  ("livenessProbe", "readinessProbe", "startupProbe")}  # fmt: skip
        assert probes["livenessProbe"]["path"] == "/livez"
        assert probes["readinessProbe"]["path"] == "/readyz"
        assert probes["startupProbe"]["path"] == "/readyz"
        for probe in probes.values():
            assert ports[probe["port"]] == int(settings["MNIST_PORT"])
        service = one(docs, "Service", "mnist")
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)


def test_probe_paths_answer_on_the_real_server(prod: list[Doc], service_url: str) -> None:
    container = api_container(prod)
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        path = container[key]["httpGet"]["path"]
        assert httpx.get(service_url + path, timeout=5).status_code == 200, path
    assert httpx.get(service_url + "/metrics", timeout=5).status_code == 200


def test_startup_probe_allows_for_the_measured_cold_start(prod: list[Doc]) -> None:
    """The Deployment's comment says 17.5 s at worst; the budget is several times that."""
    probe = api_container(prod)["startupProbe"]
    budget = probe["periodSeconds"] * probe["failureThreshold"]
    assert 60 <= budget <= 300
    text = (K8S / "base/deployment.yaml").read_text()
    assert "load.pod_sizing" in text and "17.5 s" in text


@pytest.mark.parametrize("target", ["overlays/dev", "overlays/prod"])
def test_every_env_name_is_a_real_setting(rendered: dict[str, list[Doc]], target: str) -> None:
    docs = rendered[target]
    fields = set(ServiceSettings.model_fields)
    container = api_container(docs)
    settings = settings_env(docs)
    names = set(settings) | {e["name"] for e in container.get("env", [])}
    for name in names:
        assert name.startswith("MNIST_"), name
        assert name.removeprefix("MNIST_").lower() in fields, f"{name} is not a setting"
    # The values are valid too: the settings class accepts them as they are.
    ServiceSettings(**{k.removeprefix("MNIST_").lower(): v for k, v in settings.items()})
    # Service links would add MNIST_PORT=tcp://... for the Service named mnist.
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_admin_token_comes_from_a_secret(dev: list[Doc], prod: list[Doc]) -> None:
    for docs in (dev, prod):
        assert "MNIST_ADMIN_TOKEN" not in settings_env(docs)
        (env,) = [e for e in api_container(docs)["env"] if e["name"] == "MNIST_ADMIN_TOKEN"]
        ref = env["valueFrom"]["secretKeyRef"]
        assert ref["key"] == "MNIST_ADMIN_TOKEN"
    secret = one(dev, "Secret")
    ref = next(e for e in api_container(dev)["env"] if e["name"] == "MNIST_ADMIN_TOKEN")
    assert ref["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert "MNIST_ADMIN_TOKEN" in secret["data"]
    # Prod keeps no token in git.
    assert not [d for d in prod if d["kind"] == "Secret"]


def test_selectors_select_the_api_pods_and_nothing_else(
    rendered: dict[str, list[Doc]], prod: list[Doc]
) -> None:
    deployment = one(prod, "Deployment", "mnist")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    service = one(prod, "Service", "mnist")["spec"]["selector"]
    pdb = one(prod, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    for selector in (service, pdb):
        assert selects(selector, pod_labels)
    target = one(prod, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"], deployment["kind"], deployment["metadata"]["name"]
    )  # fmt: skip
    for spread in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        assert selects(spread["labelSelector"]["matchLabels"], pod_labels)
    # No other pod (training, batch) is behind the Service or counted by the PDB.
    for _, doc in _all(rendered):
        if doc["kind"] == "Deployment":
            continue
        for where, template in pod_templates(doc):
            labels = template["metadata"]["labels"]
            assert not selects(service, labels), where
            assert not selects(pdb, labels), where


def test_pdb_lets_a_node_drain_at_the_hpa_minimum(prod: list[Doc]) -> None:
    hpa = one(prod, "HorizontalPodAutoscaler")["spec"]
    pdb = one(prod, "PodDisruptionBudget")["spec"]
    replicas = hpa["minReplicas"]
    assert replicas >= 2, "one replica cannot be disrupted without an outage"

    def count(value: int | str) -> int:
        # Kubernetes rounds percentages up for both fields.
        if isinstance(value, str) and value.endswith("%"):
            return -(-replicas * int(value[:-1]) // 100)
        return int(value)

    if "maxUnavailable" in pdb:
        allowed = count(pdb["maxUnavailable"])
    else:
        allowed = replicas - count(pdb["minAvailable"])
    assert allowed >= 1
    assert hpa["maxReplicas"] > replicas
    # The HPA owns the replica count: a replicas field would reset it on every apply.
    assert "replicas" not in one(prod, "Deployment")["spec"]


def test_hpa_scales_on_cpu_and_in_flight_requests(prod: list[Doc]) -> None:
    metrics = one(prod, "HorizontalPodAutoscaler")["spec"]["metrics"]
    kinds = {m["type"]: m for m in metrics}
    assert kinds["Resource"]["resource"]["name"] == "cpu"
    assert api_container(prod)["resources"]["requests"]["cpu"], "utilization needs a request"
    pods_metric = kinds["Pods"]["pods"]["metric"]["name"]
    # The adapter rule serves that name, from a series the service really exposes.
    (rule,) = yaml.safe_load(ADAPTER_RULES.read_text())["rules"]["custom"]
    assert rule["name"]["as"] == pods_metric
    assert "bentoml_service_request_in_progress" in rule["seriesQuery"]
    # Below the point where a pod sheds (each worker at MNIST_MAX_CONCURRENCY).
    settings = ServiceSettings()
    workers = int(settings_env(prod)["MNIST_WORKERS"])
    target = float(kinds["Pods"]["pods"]["target"]["averageValue"])
    assert 0 < target < workers * settings.max_concurrency


def test_grace_period_covers_the_drain(dev: list[Doc], prod: list[Doc]) -> None:
    for docs in (dev, prod):
        pod = one(docs, "Deployment")["spec"]["template"]["spec"]
        settings = settings_env(docs)
        drain = float(settings["MNIST_DRAIN_DELAY_S"])
        grace = float(settings["MNIST_GRACE_S"])
        pre_stop = api_container(docs)["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert drain > 0, "readiness must drop before the listener closes"
        assert pre_stop > 0
        # The kubelet's clock starts with preStop; SIGKILL comes at the end of it.
        assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + grace + EXIT_SECONDS


def test_pods_run_unprivileged_on_a_read_only_root(rendered: dict[str, list[Doc]]) -> None:
    user = next(a for k, a in dockerfile_instructions() if k == "USER")
    uid = int(user.split(":")[0])
    home = next(a for k, a in reversed(dockerfile_instructions()) if k == "WORKDIR")
    checked = 0
    for target, doc in _all(rendered):
        for where, template in pod_templates(doc):
            spec = template["spec"]
            assert spec["securityContext"]["runAsNonRoot"] is True, where
            assert spec["securityContext"]["runAsUser"] == uid, where
            assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
            assert spec["automountServiceAccountToken"] is False, where
            for container in spec["containers"]:
                context = container["securityContext"]
                assert context["readOnlyRootFilesystem"] is True, where
                assert context["allowPrivilegeEscalation"] is False, where
                assert context["capabilities"]["drop"] == ["ALL"], where
                # The places the service (and Ray) write: TMPDIR and HOME, as emptyDirs.
                mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
                volumes = {v["name"]: v for v in spec["volumes"]}
                for path in ("/tmp", home):
                    assert "emptyDir" in volumes[mounts[path]], f"{target} {where}: {path}"
                checked += 1
    assert checked >= 6


def test_the_model_volume_is_written_by_training_and_read_by_the_pods(
    prod: list[Doc], rendered: dict[str, list[Doc]]
) -> None:
    model_dir = Path(settings_env(prod)["MNIST_MODEL_DIR"])
    deployment = one(prod, "Deployment")["spec"]["template"]["spec"]
    (mount,) = [m for m in api_container(prod)["volumeMounts"] if m["name"] == "models"]
    assert mount["readOnly"] is True and model_dir.is_relative_to(mount["mountPath"])
    volume = next(v for v in deployment["volumes"] if v["name"] == "models")
    claim = volume["persistentVolumeClaim"]["claimName"]
    pvc = one(prod, "PersistentVolumeClaim", claim)
    assert "ReadWriteMany" in pvc["spec"]["accessModes"], "pods on several nodes share it"
    job = one(rendered["train"], "Job", "mnist-train")["spec"]["template"]["spec"]
    (train,) = job["containers"]
    command = train["command"]
    assert command[0] == "mnist-train"
    assert Path(command[command.index("--model-dir") + 1]) == model_dir
    (job_mount,) = [m for m in train["volumeMounts"] if m["mountPath"] == mount["mountPath"]]
    job_volume = next(v for v in job["volumes"] if v["name"] == job_mount["name"])
    assert job_volume["persistentVolumeClaim"]["claimName"] == claim
    assert not job_mount.get("readOnly")
    # New versions are followed without a rollout.
    assert float(settings_env(prod)["MNIST_MODEL_POLL_S"]) > 0


def test_dev_is_one_small_replica(dev: list[Doc], prod: list[Doc]) -> None:
    assert one(dev, "Deployment")["spec"]["replicas"] == 1
    assert settings_env(dev)["MNIST_WORKERS"] == "1"
    dev_memory = api_container(dev)["resources"]["requests"]["memory"]
    prod_memory = api_container(prod)["resources"]["requests"]["memory"]
    assert (dev_memory, prod_memory) == ("768Mi", "1Gi")
    assert not [d for d in dev if d["kind"] in ("HorizontalPodAutoscaler", "ServiceMonitor")]
    assert one(dev, "Namespace")["metadata"]["name"] != one(prod, "Namespace")["metadata"]["name"]


# --- alerts ---------------------------------------------------------------------------


def _rule_groups(prod: list[Doc]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = one(prod, "PrometheusRule")["spec"]["groups"]
    return groups


def test_alerts_are_the_five_asked_for(prod: list[Doc]) -> None:
    rules = [r for g in _rule_groups(prod) for r in g["rules"]]
    assert {r["alert"] for r in rules} == {
        "MnistHighErrorRatio", "MnistHighLatencyP99", "MnistNoReadyReplica",
        "MnistModelLoadFailures", "MnistReplicaRestarts",
    }  # fmt: skip
    readme = (REPO / "README.md").read_text()
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"]
        assert rule["alert"] in readme, f"README does not say what {rule['alert']} means"


def _declared_series() -> set[str]:
    """Sample names of every series the service declares (service.metrics).

    A labelled counter appears in a scrape only once something was counted (a load
    failure, say), so the live scrape alone does not list them all.
    """
    names = set()
    metrics = ServiceMetrics(1024, register=False)
    for value in vars(metrics).values():
        for family in getattr(value, "describe", list)():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
            for suffix in suffixes.get(family.type, [""]):
                names.add(family.name + suffix)
    return names


def test_alerts_read_only_series_that_exist(prod: list[Doc], service_url: str) -> None:
    text = httpx.get(f"{service_url}/metrics", timeout=10).text
    exposed = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    declared = _declared_series()
    assert "mnist_model_load_failures_total" in declared
    for group in _rule_groups(prod):
        for rule in group["rules"]:
            names = metric_names(rule["expr"]) - SCRAPE_SERIES - KUBE_STATE_SERIES
            unknown = names - exposed - declared
            assert not unknown, f"{rule['alert']} reads {unknown}"
    # BentoML's series are read as a live server exposes them.
    assert {
        "bentoml_service_request_total",
        "bentoml_service_request_duration_seconds_bucket",
    } <= exposed


@pytest.fixture()
def rules_dir(prod: list[Doc], tmp_path: Path) -> Path:
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": _rule_groups(prod)}))
    shutil.copy(ALERTS_TEST, tmp_path / ALERTS_TEST.name)
    return tmp_path


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_checks_the_rules(promtool: str, rules_dir: Path) -> None:
    result = _promtool(promtool, "check", "rules", "rules.yml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_promtool_unit_tests_the_alerts(promtool: str, rules_dir: Path) -> None:
    result = _promtool(promtool, "test", "rules", ALERTS_TEST.name, cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    tested = {t["alertname"] for test in tests for t in test["alert_rule_test"]}
    assert tested == {r["alert"] for g in yaml.safe_load(
        (rules_dir / "rules.yml").read_text())["groups"] for r in g["rules"]}  # fmt: skip
    # Each alert is seen both firing and quiet.
    for alert in tested:
        cases = [t for test in tests for t in test["alert_rule_test"] if t["alertname"] == alert]
        assert any(c["exp_alerts"] for c in cases) and any(not c["exp_alerts"] for c in cases)


def test_promtool_unit_tests_can_fail(promtool: str, rules_dir: Path) -> None:
    """A threshold moved past the firing series makes the unit tests fail."""
    rules = yaml.safe_load((rules_dir / "rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == "MnistHighErrorRatio":
                rule["expr"] = rule["expr"].replace("> 0.01", "> 0.5")
    (rules_dir / "rules.yml").write_text(yaml.safe_dump(rules))
    result = _promtool(promtool, "test", "rules", ALERTS_TEST.name, cwd=rules_dir)
    assert result.returncode != 0
    assert "MnistHighErrorRatio" in result.stdout + result.stderr


# --- the Ray image --------------------------------------------------------------------


def test_ray_image_dockerfile(hadolint: str, tmp_path: Path) -> None:
    """hadolint passes it, and its install step, run here, lists the ray extra and Ray's
    dashboard (the head's job API, through which KubeRay submits the job)."""
    dockerfile = K8S / "ray/Dockerfile"
    lint = subprocess.run(
        [hadolint, str(dockerfile)], capture_output=True, text=True, timeout=60, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    (run,) = [a for k, a in dockerfile_instructions(dockerfile) if k == "RUN"]
    listing = run.split(" && ")[:2]  # the extra's requirements, then ray[default]
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    script = " && ".join(listing).replace("/tmp/", f"{tmp_path}/")
    script = script.replace("python ", f"{sys.executable} ", 1)
    subprocess.run(["sh", "-c", script], check=True, timeout=30)
    wanted = (tmp_path / "ray.txt").read_text().split()
    assert "ray[default]" in wanted
    assert any(line.startswith("ray[data]") for line in wanted)
