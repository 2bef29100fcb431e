"""Deployment manifests (Compose, Swarm, Kubernetes, Prometheus, Fluent Bit): every file parses, every
environment variable is one Count reads, and every node they describe would start with a valid configuration
(Settings.from_env) and find its peers under the names they give."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from countdb.config import ENVIRONMENT, Settings
from countdb.obs.logging import JsonFormatter

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "docker-compose.yml"
STACK = DEPLOY / "docker-stack.yml"
OVERLAYS = [DEPLOY / "docker-compose.hardened.yml", DEPLOY / "docker-compose.multi-az.yml"]
SWARM_FILES = [COMPOSE, STACK, *OVERLAYS]
COMPOSE_NODES = ["count-node-1", "count-node-2", "count-node-3"]
TEST_SECRET = "0123456789abcdef0123456789abcdef"
DEFAULTS = Settings()
# Compose interpolation: $$, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}.
INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def interpolate(value, env: dict):
    """Compose-style interpolation of one string (other values pass through); KeyError on a missing ${VAR:?}."""
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        present = env.get(name) not in (None, "") if op and op.startswith(":") else name in env
        if present:
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return INTERPOLATION.sub(replace, value)


def environment_of(service: dict) -> dict:
    """A service's environment as a dict (Compose accepts a mapping or a list of KEY=VALUE)."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(number) * units[unit] for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration))


def dockerfile_healthcheck() -> list[str]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", text, re.MULTILINE)
    return ["CMD", *json.loads(match.group(1))]


def dockerfile_user() -> str:
    return re.findall(r"^USER (\S+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE)[-1]


def nginx_upstream_servers() -> list[str]:
    text = (REPO / "nginx" / "nginx.conf").read_text()
    block = re.search(r"upstream count_cluster \{(.*?)\}", text, re.DOTALL).group(1)
    return re.findall(r"^\s*server (\S+)", block, re.MULTILINE)


def cluster_hosts(settings: Settings) -> set[str]:
    return {node.rpartition(":")[0] for node in settings.cluster_nodes}


# ---- every file ------------------------------------------------------------------------------------------------

YAML_FILES = sorted([*DEPLOY.rglob("*.y*ml"), KUBERNETES / "secret.yaml.example"])


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path):
    documents = list(yaml.safe_load_all(path.read_text()))
    assert documents and all(isinstance(document, dict) for document in documents)


def swarm_and_compose_services() -> list:
    return [pytest.param(path, name, service, id=f"{path.name}:{name}")
            for path in SWARM_FILES for name, service in load(path)["services"].items()]


@pytest.mark.parametrize("path, name, service", swarm_and_compose_services())
def test_compose_and_stack_set_only_variables_count_reads(path, name, service):
    if name == "nginx":
        assert not environment_of(service)
        return
    unknown = set(environment_of(service)) - set(ENVIRONMENT)
    assert not unknown, f"{path.name}:{name} sets variables Count does not read: {sorted(unknown)}"


# ---- docker-compose.yml ----------------------------------------------------------------------------------------

def compose_node_environment(name: str) -> dict:
    service = load(COMPOSE)["services"][name]
    return {key: interpolate(value, {"COUNT_CLUSTER_SECRET": TEST_SECRET})
            for key, value in environment_of(service).items()}


@pytest.mark.parametrize("name", COMPOSE_NODES)
def test_each_compose_node_starts_as_a_member_of_the_three_node_cluster(name):
    settings = Settings.from_env(compose_node_environment(name))
    assert settings.cluster_enabled and settings.replication_factor == 2
    assert settings.cluster_secret == TEST_SECRET
    assert cluster_hosts(settings) == set(COMPOSE_NODES)
    assert {node.rpartition(":")[2] for node in settings.cluster_nodes} == {str(settings.bind_port)}
    assert settings.bind_host == "0.0.0.0" and str(settings.data_dir) == "/data"
    assert settings.workers == 2  # not one per host CPU for each of three nodes on one host
    assert settings.cluster_nodes[settings.node_index] == f"{name}:8080"  # NODE_ID resolves to its own entry


def test_compose_nodes_have_distinct_ids_ports_and_volumes():
    compose = load(COMPOSE)
    services = compose["services"]
    assert sorted(services) == COMPOSE_NODES
    ids = [Settings.from_env(compose_node_environment(name)).node_id for name in COMPOSE_NODES]
    assert ids == ["1", "2", "3"]
    assert [services[name]["ports"] for name in COMPOSE_NODES] == [["8081:8080"], ["8082:8080"], ["8083:8080"]]
    volumes = [services[name]["volumes"] for name in COMPOSE_NODES]
    assert volumes == [[f"count-data-{n}:/data"] for n in (1, 2, 3)]
    assert set(compose["volumes"]) == {f"count-data-{n}" for n in (1, 2, 3)}


def test_compose_refuses_to_start_without_the_cluster_secret():
    raw = environment_of(load(COMPOSE)["services"]["count-node-1"])["CLUSTER_SECRET"]
    with pytest.raises(KeyError, match="COUNT_CLUSTER_SECRET"):
        interpolate(raw, {})
    # docker stack (docker/cli) reads a `-` anywhere in ${VAR:?message} as ${VAR-default}: the secret would
    # silently become part of the message. Keep such messages free of dashes.
    for path in SWARM_FILES:
        for message in re.findall(r"\$\{\w+:\?([^}]*)\}", path.read_text()):
            assert "-" not in message, f"{path.name}: {message!r}"


@pytest.mark.parametrize("path, name, service", swarm_and_compose_services())
def test_every_count_node_is_healthchecked_like_the_image_and_given_time_to_flush(path, name, service):
    if name == "nginx" or path in OVERLAYS:
        return
    assert service["healthcheck"]["test"] == dockerfile_healthcheck()
    # SIGTERM drains and flushes within SHUTDOWN_GRACE_SECONDS; Docker must not SIGKILL before that.
    assert seconds(service["stop_grace_period"]) >= DEFAULTS.shutdown_grace_seconds + 5


def test_hardened_overlay_applies_every_rule_to_every_node():
    services = load(DEPLOY / "docker-compose.hardened.yml")["services"]
    assert sorted(services) == COMPOSE_NODES
    for service in services.values():
        assert service["user"] == dockerfile_user()
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert any(mount.split(":")[0] == "/tmp" for mount in service["tmpfs"])
        assert Settings.from_env(environment_of(service)).auth_required


def test_multi_az_overlay_pins_each_node_to_its_own_zone():
    services = load(DEPLOY / "docker-compose.multi-az.yml")["services"]
    assert sorted(services) == COMPOSE_NODES
    zones = []
    for service in services.values():
        deploy = service["deploy"]
        assert deploy["replicas"] == 1 and deploy["update_config"]["parallelism"] == 1
        (constraint,) = deploy["placement"]["constraints"]
        label, _, zone = interpolate(constraint, {}).partition(" == ")
        assert label == "node.labels.zone"
        zones.append(zone)
    assert len(set(zones)) == 3


# ---- docker-stack.yml ------------------------------------------------------------------------------------------

def swarm_task_environment(slot: int) -> tuple[str, dict]:
    """The hostname and environment Swarm gives task `slot` of the count service."""
    service = load(STACK)["services"]["count"]

    def render(value: str) -> str:
        return interpolate(value, {"COUNT_CLUSTER_SECRET": TEST_SECRET}).replace("{{.Task.Slot}}", str(slot))

    return render(service["hostname"]), {key: render(value) for key, value in environment_of(service).items()}


@pytest.mark.parametrize("slot", [1, 2, 3])
def test_each_swarm_task_starts_as_a_member_and_is_reachable_under_a_listed_name(slot):
    hostname, environment = swarm_task_environment(slot)
    settings = Settings.from_env(environment)
    assert settings.node_id == str(slot) and settings.cluster_enabled
    all_hostnames = {swarm_task_environment(n)[0] for n in (1, 2, 3)}
    assert hostname in cluster_hosts(settings) == all_hostnames
    assert settings.cluster_nodes[settings.node_index].rpartition(":")[0] == hostname  # NODE_ID is its own entry
    assert settings.memory_buffer_size == 25000 and settings.flush_interval_seconds == 300
    cpus = float(load(STACK)["services"]["count"]["deploy"]["resources"]["limits"]["cpus"])
    assert settings.workers == math.ceil(cpus)


def test_swarm_service_rolls_one_node_at_a_time_one_per_host():
    stack = load(STACK)
    deploy = stack["services"]["count"]["deploy"]
    assert deploy["replicas"] == 3
    assert deploy["placement"]["max_replicas_per_node"] == 1
    assert deploy["update_config"]["parallelism"] == 1
    assert deploy["restart_policy"]["condition"] in ("on-failure", "any")
    assert stack["networks"]["count-net"]["driver"] == "overlay"
    assert "{{.Task.Slot}}" in stack["volumes"]["count-data"]["name"]


def test_swarm_nginx_runs_the_repository_config_against_the_swarm_nodes():
    stack = load(STACK)
    nginx = stack["services"]["nginx"]
    (config,) = nginx["configs"]
    assert config["target"] == "/etc/nginx/nginx.conf"
    assert (STACK.parent / stack["configs"][config["source"]]["file"]).resolve() == REPO / "nginx" / "nginx.conf"
    nginx_conf = (REPO / "nginx" / "nginx.conf").read_text()
    for secret in nginx["secrets"]:
        assert re.search(rf"ssl_certificate(_key)?\s+{re.escape(secret['target'])};", nginx_conf), secret
    _, environment = swarm_task_environment(1)
    assert tuple(nginx_upstream_servers()) == Settings.from_env(environment).cluster_nodes


@pytest.mark.parametrize("files", [[COMPOSE], [COMPOSE, OVERLAYS[0]], [COMPOSE, OVERLAYS[1]], [STACK]],
                         ids=["compose", "compose+hardened", "compose+multi-az", "stack"])
def test_docker_accepts_the_files(files, tmp_path):
    """docker's own schema check and merge (`docker stack config` needs no daemon); optional tool."""
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "stack", "config", "--help"], capture_output=True).returncode:
        pytest.skip("no docker CLI with `stack config` here")
    cert = tmp_path / "tls"
    cert.write_text("")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COUNT_CLUSTER_SECRET": TEST_SECRET,
           "COUNT_TLS_CERT": str(cert), "COUNT_TLS_KEY": str(cert)}
    arguments = [argument for path in files for argument in ("-c", str(path))]
    result = subprocess.run([docker, "stack", "config", *arguments], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)
    assert TEST_SECRET in result.stdout
    assert all(service.get("image") for service in merged["services"].values())


# ---- Kubernetes ------------------------------------------------------------------------------------------------

def kubernetes_objects() -> dict[tuple[str, str], dict]:
    """Every object in deploy/kubernetes, the Secret template included."""
    objects = {}
    for path in sorted([*KUBERNETES.glob("*.yaml"), KUBERNETES / "secret.yaml.example"]):
        for document in yaml.safe_load_all(path.read_text()):
            objects[(document["kind"], document["metadata"]["name"])] = document
    return objects


def statefulset() -> dict:
    return kubernetes_objects()[("StatefulSet", "count")]


def count_container() -> dict:
    (container,) = statefulset()["spec"]["template"]["spec"]["containers"]
    return container


def whole_cpus(quantity: str) -> int:
    """A CPU quantity ("2", "1500m") as resourceFieldRef with divisor 1 reports it: rounded up."""
    millis = int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)
    return math.ceil(millis / 1000)


def pod_environment(ordinal: int) -> dict:
    """What pod count-<ordinal> gets: the ConfigMap, then its own env (fieldRef, Secret, resourceFieldRef)."""
    objects = kubernetes_objects()
    container = count_container()
    environment = {}
    for source in container["envFrom"]:
        environment.update(objects[("ConfigMap", source["configMapRef"]["name"])]["data"])
    for variable in container["env"]:
        reference = variable.get("valueFrom", {})
        if "fieldRef" in reference:
            assert reference["fieldRef"]["fieldPath"] == "metadata.name"
            value = f"{statefulset()['metadata']['name']}-{ordinal}"
        elif "secretKeyRef" in reference:
            secret = objects[("Secret", reference["secretKeyRef"]["name"])]
            assert reference["secretKeyRef"]["key"] in secret["stringData"]
            value = TEST_SECRET  # the operator's value (the committed Secret is empty on purpose)
        elif "resourceFieldRef" in reference:
            assert reference["resourceFieldRef"]["resource"] == "limits.cpu"
            value = str(whole_cpus(container["resources"]["limits"]["cpu"]))
        else:
            value = variable["value"]
        environment[variable["name"]] = value
    return environment


def test_kubernetes_objects_live_in_one_namespace():
    objects = kubernetes_objects()
    namespace = objects[("Namespace", "count-system")]["metadata"]["name"]
    for (kind, name), document in objects.items():
        if kind != "Namespace":
            assert document["metadata"]["namespace"] == namespace, (kind, name)
    assert ("ServiceAccount", statefulset()["spec"]["template"]["spec"]["serviceAccountName"]) in objects


def test_kubernetes_sets_only_variables_count_reads():
    container = count_container()
    config_maps = [document for (kind, _), document in kubernetes_objects().items() if kind == "ConfigMap"]
    names = {variable["name"] for variable in container["env"]} | {key for cm in config_maps for key in cm["data"]}
    assert not names - set(ENVIRONMENT), sorted(names - set(ENVIRONMENT))


def test_configmap_holds_the_shared_settings():
    data = kubernetes_objects()[("ConfigMap", "count-config")]["data"]
    assert data == {"CLUSTER_ENABLED": "true", "REPLICATION_FACTOR": "2", "BIND_ADDRESS": "0.0.0.0:8080",
                    "DATA_DIR": "/data", "MEMORY_BUFFER_SIZE": "25000", "FLUSH_INTERVAL_SECONDS": "300",
                    "LOG_LEVEL": "info", "AUTH_REQUIRED": "true", "METRICS_AUTH": "false"}
    settings = Settings.from_env({**data, "CLUSTER_ENABLED": "false"})
    assert settings.auth_required and not settings.metrics_auth


def test_no_cluster_secret_is_committed_or_applied_with_the_directory():
    secret = kubernetes_objects()[("Secret", "count-cluster")]
    assert secret["stringData"] == {"CLUSTER_SECRET": ""} and "data" not in secret
    # `kubectl apply -f deploy/kubernetes/` must never reset the operator's real Secret.
    applied = [yaml.safe_load_all(path.read_text()) for path in KUBERNETES.iterdir()
               if path.suffix in (".yaml", ".yml", ".json")]
    assert not [doc for docs in applied for doc in docs if doc["kind"] == "Secret"]


@pytest.mark.parametrize("ordinal", [0, 1, 2])
def test_each_pod_starts_as_itself_in_the_cluster(ordinal):
    sts = statefulset()
    settings = Settings.from_env(pod_environment(ordinal))
    pod = f"{sts['metadata']['name']}-{ordinal}"
    assert settings.node_id == pod  # NODE_ID comes from the pod name
    assert settings.workers == 2  # from the CPU limit, not the host's CPU count
    headless = f"{sts['spec']['serviceName']}.{sts['metadata']['namespace']}.svc.cluster.local"
    expected = tuple(f"{sts['metadata']['name']}-{n}.{headless}:{settings.bind_port}"
                     for n in range(sts["spec"]["replicas"]))
    assert settings.cluster_nodes == expected
    assert settings.cluster_nodes[settings.node_index] == f"{pod}.{headless}:{settings.bind_port}"  # itself
    assert settings.replication_factor < len(settings.cluster_nodes)


def test_headless_service_resolves_every_pod_even_before_it_is_ready():
    sts = statefulset()
    service = kubernetes_objects()[("Service", sts["spec"]["serviceName"])]["spec"]
    assert service["clusterIP"] == "None" and service["publishNotReadyAddresses"] is True
    assert service["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    assert sts["spec"]["replicas"] == 3


def test_statefulset_probes_use_health_and_ready_on_the_bound_port():
    container = count_container()
    port = Settings.from_env(pod_environment(0)).bind_port
    ports = {entry["name"]: entry["containerPort"] for entry in container["ports"]}
    assert ports == {"http": port}
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/health"
    assert probes["startupProbe"]["path"] == "/health"
    assert probes["readinessProbe"]["path"] == "/ready"
    assert all(ports.get(probe["port"], probe["port"]) == port for probe in probes.values())


def test_statefulset_runs_hardened_with_only_data_and_tmp_writable():
    sts = statefulset()
    pod = sts["spec"]["template"]["spec"]
    container = count_container()
    uid, gid = (int(part) for part in dockerfile_user().split(":"))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
    assert pod["securityContext"]["fsGroup"] == gid
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert set(mounts) == {str(Settings.from_env(pod_environment(0)).data_dir), "/tmp"}
    assert {volume["name"]: volume for volume in pod["volumes"]}[mounts["/tmp"]]["emptyDir"] is not None
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == mounts["/data"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    # SIGTERM drains and flushes within SHUTDOWN_GRACE_SECONDS; Kubernetes must not SIGKILL before that.
    assert pod["terminationGracePeriodSeconds"] == 30 > DEFAULTS.shutdown_grace_seconds


def test_ingress_terminates_tls_and_routes_only_the_public_api():
    objects = kubernetes_objects()
    ingress = objects[("Ingress", "count-ingress")]["spec"]
    (tls,) = ingress["tls"]
    (rule,) = ingress["rules"]
    assert rule["host"] in tls["hosts"] and tls["secretName"]
    paths = {entry["path"] for entry in rule["http"]["paths"]}
    assert {"/insert", "/write", "/api/v2/write", "/api/v3/write_lp", "/api/v1/write", "/query", "/health"} <= paths
    assert not {path for path in paths if re.match(r"/(cluster|replicate|metrics)", path)}
    for entry in rule["http"]["paths"]:
        service = objects[("Service", entry["backend"]["service"]["name"])]["spec"]
        assert entry["backend"]["service"]["port"]["name"] in {port["name"] for port in service["ports"]}
    annotations = objects[("Ingress", "count-ingress")]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "16m"
    assert DEFAULTS.max_body_bytes == 16 * 1024 * 1024


def test_load_balancer_service_reaches_the_pods():
    objects = kubernetes_objects()
    service = objects[("Service", "count-external")]["spec"]
    assert service["type"] == "LoadBalancer"
    assert service["selector"].items() <= statefulset()["spec"]["template"]["metadata"]["labels"].items()
    assert {port["targetPort"] for port in service["ports"]} == {"http"}


# ---- Prometheus and Fluent Bit ---------------------------------------------------------------------------------

def test_prometheus_scrapes_every_compose_node():
    config = load(DEPLOY / "prometheus.yml")
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (static,) = job["static_configs"]
    assert static["targets"] == [f"{name}:8080" for name in COMPOSE_NODES]


def test_promtool_accepts_the_prometheus_config():
    promtool = shutil.which("promtool")
    if promtool is None:
        # .ci/install-system-packages.sh installs it, so in CI its absence is a failure.
        (pytest.fail if os.environ.get("CI", "").lower() == "true" else pytest.skip)(
            "promtool is not installed (Debian package prometheus)")
    result = subprocess.run([promtool, "check", "config", str(DEPLOY / "prometheus.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def fluent_bit_sections(path: Path) -> list[tuple[str, dict]]:
    """Fluent Bit's classic format: [SECTION] headers, then `Key  value` lines (keys case-insensitive)."""
    sections = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            sections.append((line.strip("[]").upper(), {}))
        else:
            key, _, value = line.partition(" ")
            sections[-1][1][key.lower()] = value.strip()
    return sections


def test_fluent_bit_parses_count_log_lines_as_json():
    sections = fluent_bit_sections(DEPLOY / "fluent-bit.conf")
    (service,) = [body for name, body in sections if name == "SERVICE"]
    parsers = {body["name"]: body for name, body in fluent_bit_sections(DEPLOY / service["parsers_file"])
               if name == "PARSER"}
    (tail,) = [body for name, body in sections if name == "INPUT"]
    assert tail["name"] == "tail" and "docker" in tail["multiline.parser"] and "cri" in tail["multiline.parser"]
    (parser_filter,) = [body for name, body in sections if name == "FILTER" and body["name"] == "parser"]
    assert parser_filter["key_name"] == "log"
    parser = parsers[parser_filter["parser"]]
    assert parser["format"] == "json"
    # The parser's time format must read the timestamps Count actually writes.
    line = JsonFormatter().format(logging.LogRecord("countdb", logging.INFO, __file__, 1, "hello", None, None))
    record = json.loads(line)
    python_format = parser["time_format"].replace("%L", "%f")
    assert datetime.strptime(record[parser["time_key"]], python_format)


# ---- every shipped deployment forms one cluster ----------------------------------------------------------------

def deployment_nodes(deployment: str) -> list[tuple[str, Settings]]:
    """(the name the other nodes reach it by, its settings) for every node a deployment file starts."""
    if deployment == "compose":
        return [(name, Settings.from_env(compose_node_environment(name))) for name in COMPOSE_NODES]
    if deployment == "stack":
        replicas = load(STACK)["services"]["count"]["deploy"]["replicas"]
        return [(hostname, Settings.from_env(environment))
                for hostname, environment in map(swarm_task_environment, range(1, replicas + 1))]
    sts = statefulset()
    headless = f"{sts['spec']['serviceName']}.{sts['metadata']['namespace']}.svc.cluster.local"
    return [(f"{sts['metadata']['name']}-{ordinal}.{headless}", Settings.from_env(pod_environment(ordinal)))
            for ordinal in range(sts["spec"]["replicas"])]


@pytest.mark.parametrize("deployment", ["compose", "stack", "kubernetes"])
def test_every_node_of_a_deployment_lists_the_same_cluster_with_itself_in_it_once(deployment):
    """NODE_ID=N picks the N-th entry, so the order must be the same on every node too, not only the members."""
    nodes = deployment_nodes(deployment)
    lists = {settings.cluster_nodes for _, settings in nodes}
    assert len(lists) == 1, f"{deployment}: nodes disagree on CLUSTER_NODES: {lists}"
    (cluster_nodes,) = lists
    assert len(cluster_nodes) == len(nodes) == 3
    assert sorted(f"{name}:{settings.bind_port}" for name, settings in nodes) == sorted(cluster_nodes)
    for _, settings in nodes:
        assert settings.cluster_enabled and settings.cluster_secret
        assert 2 <= settings.replication_factor <= len(cluster_nodes)
    assert len({settings.cluster_secret for _, settings in nodes}) == 1
    assert len({settings.node_id for _, settings in nodes}) == len(nodes)


def test_pod_disruption_budget_takes_one_node_at_a_time_which_keeps_a_majority_and_a_replica():
    objects = kubernetes_objects()
    (budget,) = [document for (kind, _), document in objects.items() if kind == "PodDisruptionBudget"]
    assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= \
        statefulset()["spec"]["template"]["metadata"]["labels"].items()
    replicas = statefulset()["spec"]["replicas"]
    settings = Settings.from_env(pod_environment(0))
    assert replicas - 1 > replicas / 2  # the nodes left still form a majority and accept writes
    assert settings.replication_factor - 1 >= 1  # every series keeps a copy on a node that is up
