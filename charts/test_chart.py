"""Tests of the Switchyard Helm chart (and the image contract in Dockerfile).

Run: pip install -r charts/requirements-test.txt
     python -m pytest -q charts/test_chart.py

Helm itself comes from helm-python-sdk, which binds the Helm v4 Go SDK as a
shared library: `helm_python.lint(...)` and `Chart.load(...).render(...)` work
offline with no helm binary and no cluster.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART_DIR = REPO / "charts" / "switchyard"
ROOT_CRDS_DIR = REPO / "crds"
RELEASE = "switchyard"
NAMESPACE = "switchyard-system"
KEEP = "helm.sh/resource-policy"

EXPECTED_CRD_NAMES = {
    "mysqlclusters.switchyard.io",
    "onlineddls.switchyard.io",
    "migrations.switchyard.io",
    "shardsplits.switchyard.io",
}

# The operator's exact permissions today. Adding a rule to the templates means
# adding it here too, on purpose.
EXPECTED_CLUSTER_RULES = [
    {
        "apiGroups": ["switchyard.io"],
        "resources": ["mysqlclusters", "onlineddls", "migrations", "shardsplits"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        "apiGroups": ["switchyard.io"],
        "resources": [
            "mysqlclusters/status",
            "onlineddls/status",
            "migrations/status",
            "shardsplits/status",
        ],
        "verbs": ["get", "patch", "update"],
    },
    {
        "apiGroups": ["events.k8s.io"],
        "resources": ["events"],
        "verbs": ["create", "patch"],
    },
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "patch"]},
    {"apiGroups": [""], "resources": ["configmaps", "services"], "verbs": ["create", "patch"]},
    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["create", "patch"]},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "patch"]},
    {"apiGroups": ["switchyard.io"], "resources": ["mysqlclusters/finalizers"], "verbs": ["update"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["create", "patch"]},
]


def expected_role_rules(lease_name: str) -> list[dict[str, Any]]:
    return [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [lease_name],
            "verbs": ["get", "update", "patch"],
        },
    ]


# --------------------------------------------------------------------------
# helpers


class Rendered:
    """The manifests of one render, parsed, plus NOTES.txt."""

    def __init__(self, manifests: dict[str, str]) -> None:
        self.by_template = manifests
        self.notes = ""
        self.docs: list[dict[str, Any]] = []
        for path, text in sorted(manifests.items()):
            if path.endswith("NOTES.txt"):
                self.notes = text
                continue
            for doc in yaml.safe_load_all(text):
                if doc is not None:
                    self.docs.append(doc)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d.get("kind") == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected exactly one {kind}, got {len(found)}"
        return found[0]


def render(values: dict[str, Any] | None = None, chart_dir: Path = CHART_DIR) -> Rendered:
    with helm.Chart.load(chart_dir) as chart:
        return Rendered(chart.render(values=values, name=RELEASE, namespace=NAMESPACE))


def container(rendered: Rendered) -> dict[str, Any]:
    containers = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def arg_value(args: list[str], flag: str) -> str:
    """Value of `--flag=value` or `--flag value` in a container's args."""
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1 :]
        if arg == flag:
            return args[i + 1]
    raise AssertionError(f"{flag} not in args {args}")


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def strip_keep(crd: dict[str, Any]) -> dict[str, Any]:
    """The CRD without the keep annotation (and without an annotations map
    left empty by removing it)."""
    crd = copy.deepcopy(crd)
    annotations = crd["metadata"].get("annotations") or {}
    annotations.pop(KEEP, None)
    if not annotations:
        crd["metadata"].pop("annotations", None)
    return crd


def root_crd_files() -> list[Path]:
    return sorted(ROOT_CRDS_DIR.glob("*.yaml"))


def rules_missing_comments(template: str) -> tuple[int, list[str]]:
    """Check a Role/ClusterRole template's source: every item of its `rules:`
    list must be directly preceded by a comment (a `#` line, or the closing
    line of a `{{/* ... */}}` block). Returns (rules seen, offending rules).
    """
    lines = template.splitlines()
    rules_at = [i for i, line in enumerate(lines) if re.match(r"^rules:\s*$", line)]
    assert len(rules_at) == 1, "expected one top-level `rules:` key"
    seen, bad = 0, []
    item_indent = None
    previous = ""
    for line in lines[rules_at[0] + 1 :]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0 and not line.lstrip().startswith(("#", "{{")):
            break  # next top-level key: end of the rules list
        stripped = line.strip()
        if stripped.startswith("- "):
            if item_indent is None:
                item_indent = indent
            if indent == item_indent:
                seen += 1
                is_comment = previous.startswith("#") or (
                    previous.startswith("{{") and previous.rstrip("-} ").endswith("*/")
                )
                if not is_comment:
                    bad.append(stripped)
        previous = stripped
    return seen, bad


def leaf_paths(values: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the values; free-form maps (empty ones and resources)
    count as one leaf."""
    if isinstance(values, dict) and values and prefix != "resources":
        out = []
        for key, val in values.items():
            out += leaf_paths(val, f"{prefix}.{key}" if prefix else key)
        return out
    return [prefix]


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def defaults() -> Rendered:
    return render()


@pytest.fixture(scope="module")
def chart_meta() -> dict[str, Any]:
    with helm.Chart.load(CHART_DIR) as chart:
        return chart.metadata


@pytest.fixture()
def chart_with_crds(tmp_path: Path) -> Path:
    """A copy of the chart whose files/crds/ holds synthetic CRDs, so the CRD
    template is exercised whether or not the generator has run yet."""
    dst = tmp_path / "switchyard"
    shutil.copytree(CHART_DIR, dst)
    crds = dst / "files" / "crds"
    shutil.rmtree(crds, ignore_errors=True)
    crds.mkdir(parents=True)
    for plural, kind in [("mysqlclusters", "MySQLCluster"), ("shardsplits", "ShardSplit")]:
        crd = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.switchyard.io"},
            "spec": {
                "group": "switchyard.io",
                "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                "scope": "Namespaced",
                "versions": [
                    {
                        "name": "v1alpha1",
                        "served": True,
                        "storage": True,
                        "subresources": {"status": {}},
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "properties": {
                                            "replicas": {
                                                "type": "integer",
                                                "format": "uint32",
                                                "minimum": 0,
                                                "default": 3,
                                            },
                                            "ratio": {"type": "number", "default": 0.5},
                                            "note": {
                                                "type": "string",
                                                "description": "two\nlines: with a colon",
                                                "pattern": r"^\d+$",
                                            },
                                        },
                                    }
                                },
                            }
                        },
                    }
                ],
            },
        }
        if plural == "shardsplits":
            crd["metadata"]["annotations"] = {"example.com/owner": "dba"}
        # The generator's shape: a comment, a document marker, the document.
        text = "# generated by switchyard crd\n---\n" + yaml.safe_dump(crd, sort_keys=False)
        (crds / f"{plural}.switchyard.io.yaml").write_text(text)
    return dst


def synthetic_crds(chart_dir: Path) -> dict[str, dict[str, Any]]:
    return {
        p.name: next(d for d in yaml.safe_load_all(p.read_text()) if d)
        for p in sorted((chart_dir / "files" / "crds").glob("*.yaml"))
    }


# --------------------------------------------------------------------------
# lint and metadata


def test_lint_strict_has_no_errors_or_warnings() -> None:
    report = helm.lint(CHART_DIR, strict=True, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == [], report
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == [], problems


def test_lint_with_custom_values_has_no_errors() -> None:
    values = {
        "replicaCount": 2,
        "metrics": {"serviceMonitor": {"enabled": True}},
        "serviceAccount": {"create": False, "name": "existing"},
        "crds": {"install": False},
    }
    report = helm.lint(CHART_DIR, values, strict=True, namespace=NAMESPACE)
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_metadata(chart_meta: dict[str, Any]) -> None:
    assert chart_meta["apiVersion"] == "v2"
    assert chart_meta["name"] == "switchyard"
    assert chart_meta["appVersion"] == "0.1.0"


def test_chart_has_no_crds_directory() -> None:
    # Helm never upgrades files in a chart's crds/ directory; the CRDs must be
    # templates instead.
    assert not (CHART_DIR / "crds").exists()
    with helm.Chart.load(CHART_DIR) as chart:
        assert chart.crds == []


def test_every_value_is_commented() -> None:
    """Each leaf in values.yaml has a comment directly above it or above one
    of its parent keys."""
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    key_re = re.compile(r"^(\s*)([A-Za-z][\w.-]*):(.*)$")
    stack: list[tuple[int, bool]] = []  # (indent, documented) of open parents
    undocumented = []
    previous = ""
    for n, line in enumerate(lines):
        m = key_re.match(line)
        if not m:
            if line.strip():
                previous = line.strip()
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = previous.startswith("#") or any(doc for _, doc in stack)
        rest = m.group(3).split("#")[0].strip()
        nxt = next((x for x in lines[n + 1 :] if x.strip()), "")
        has_children = rest == "" and (len(nxt) - len(nxt.lstrip(" "))) > indent
        if has_children:
            stack.append((indent, documented))
        elif not documented:
            undocumented.append(m.group(2))
        previous = line.strip()
    assert undocumented == []


def test_readme_documents_every_value() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    assert "\n## Values\n" in readme
    table = readme.split("\n## Values\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.M))
    with helm.Chart.load(CHART_DIR) as chart:
        leaves = set(leaf_paths(chart.values))
    assert leaves - documented == set(), "values missing from README's values table"
    assert documented - leaves == set(), "README documents values that do not exist"


# --------------------------------------------------------------------------
# Deployment with default values


def test_deployment_runs_as_non_root_and_locked_down(defaults: Rendered) -> None:
    pod = defaults.one("Deployment")["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == 65532
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(defaults)
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"]
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is True
    # Enough time to release the Lease after SIGTERM.
    assert pod["terminationGracePeriodSeconds"] >= 30


def test_deployment_probes_on_metrics_port(defaults: Rendered) -> None:
    c = container(defaults)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8080}
    live, ready = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
    assert live["path"] == "/healthz"
    assert ready["path"] == "/readyz"
    assert live["port"] in ("metrics", 8080)
    assert ready["port"] in ("metrics", 8080)
    assert arg_value(c["args"], "--metrics-addr") == "0.0.0.0:8080"


def test_deployment_image_defaults_to_app_version(
    defaults: Rendered, chart_meta: dict[str, Any]
) -> None:
    c = container(defaults)
    assert c["image"] == f"ghcr.io/switchyard-io/switchyard:{chart_meta['appVersion']}"
    assert c["imagePullPolicy"] == "IfNotPresent"
    overridden = container(render({"image": {"tag": "sha-abc123", "pullPolicy": "Always"}}))
    assert overridden["image"] == "ghcr.io/switchyard-io/switchyard:sha-abc123"
    assert overridden["imagePullPolicy"] == "Always"


def test_deployment_command_and_env(defaults: Rendered) -> None:
    deployment = defaults.one("Deployment")
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert deployment["spec"]["replicas"] == 1
    c = container(defaults)
    assert c["args"][0] == "run"
    assert arg_value(c["args"], "--log-format") == "json"
    env = env_of(c)
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["RUST_LOG"]["value"] == "info"
    assert arg_value(c["args"], "--lease-namespace") == "$(POD_NAMESPACE)"
    assert arg_value(c["args"], "--lease-name") == "switchyard-leader"


def test_deployment_resources_fit_the_memory_target(defaults: Rendered) -> None:
    res = container(defaults)["resources"]
    assert set(res) == {"requests", "limits"}
    assert res["requests"]["memory"] == "128Mi"
    assert res["limits"]["memory"] == "256Mi"
    assert {"cpu", "memory"} <= set(res["requests"])


def test_deployment_selector_matches_pod_labels(defaults: Rendered) -> None:
    deployment = defaults.one("Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    service = defaults.one("Service")
    assert service["spec"]["selector"] == selector


def test_pod_scheduling_values_pass_through() -> None:
    values = {
        "podAnnotations": {"a.example/x": "1"},
        "podLabels": {"team": "dba"},
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
        "imagePullSecrets": [{"name": "regcred"}],
        "logLevel": "info,switchyard=debug",
        "terminationGracePeriodSeconds": 90,
    }
    r = render(values)
    tpl = r.one("Deployment")["spec"]["template"]
    assert tpl["metadata"]["annotations"]["a.example/x"] == "1"
    assert tpl["metadata"]["labels"]["team"] == "dba"
    spec = tpl["spec"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["nodeSelector"] == values["nodeSelector"]
    assert spec["tolerations"] == values["tolerations"]
    assert spec["affinity"] == values["affinity"]
    assert spec["imagePullSecrets"] == values["imagePullSecrets"]
    assert spec["terminationGracePeriodSeconds"] == 90
    assert env_of(spec["containers"][0])["RUST_LOG"]["value"] == "info,switchyard=debug"


def test_default_has_no_optional_scheduling_fields(defaults: Rendered) -> None:
    spec = defaults.one("Deployment")["spec"]["template"]["spec"]
    for key in ("priorityClassName", "nodeSelector", "tolerations", "affinity", "imagePullSecrets"):
        assert key not in spec


# --------------------------------------------------------------------------
# RBAC


@pytest.mark.parametrize("template", ["clusterrole.yaml", "role.yaml"])
def test_every_rbac_rule_is_preceded_by_a_comment(template: str) -> None:
    source = (CHART_DIR / "templates" / template).read_text()
    seen, bad = rules_missing_comments(source)
    assert seen >= 1, f"no rules found in {template}"
    assert bad == [], f"rules without a comment saying why in {template}"


def test_rule_comment_checker_catches_a_bare_rule() -> None:
    source = (
        "kind: ClusterRole\nrules:\n  # why\n  - apiGroups: [a]\n    verbs: [get]\n"
        "  - apiGroups: [b]\n    verbs: [get]\n"
    )
    assert rules_missing_comments(source) == (2, ["- apiGroups: [b]"])


def test_cluster_role_is_least_privilege(defaults: Rendered) -> None:
    role = defaults.one("ClusterRole")
    assert role["rules"] == EXPECTED_CLUSTER_RULES
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field]
    binding = defaults.one("ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "switchyard", "namespace": NAMESPACE}
    ]


def test_lease_role_in_release_namespace(defaults: Rendered) -> None:
    role = defaults.one("Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    lease = arg_value(container(defaults)["args"], "--lease-name")
    assert role["rules"] == expected_role_rules(lease)
    binding = defaults.one("RoleBinding")
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"]["kind"] == "Role"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "switchyard", "namespace": NAMESPACE}
    ]


def test_custom_lease_name_reaches_args_and_role() -> None:
    r = render({"leaderElection": {"leaseName": "sy-lock"}})
    assert arg_value(container(r)["args"], "--lease-name") == "sy-lock"
    assert r.one("Role")["rules"] == expected_role_rules("sy-lock")


def test_service_account_created_by_default(defaults: Rendered) -> None:
    sa = defaults.one("ServiceAccount")
    assert sa["metadata"]["name"] == "switchyard"
    assert sa["metadata"]["namespace"] == NAMESPACE
    pod = defaults.one("Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "switchyard"
    annotated = render({"serviceAccount": {"annotations": {"iam.example/role": "r"}}})
    assert annotated.one("ServiceAccount")["metadata"]["annotations"] == {"iam.example/role": "r"}


# --------------------------------------------------------------------------
# metrics


def test_metrics_service_by_default(defaults: Rendered) -> None:
    svc = defaults.one("Service")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert defaults.of_kind("ServiceMonitor") == []


def test_service_monitor_when_enabled() -> None:
    r = render({"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}})
    sm = r.one("ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert sm["spec"]["selector"]["matchLabels"] == r.one("Service")["spec"]["selector"]
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_custom_metrics_port() -> None:
    r = render({"metrics": {"port": 9090}})
    c = container(r)
    assert arg_value(c["args"], "--metrics-addr") == "0.0.0.0:9090"
    assert c["ports"][0]["containerPort"] == 9090
    assert r.one("Service")["spec"]["ports"][0]["port"] == 9090


# --------------------------------------------------------------------------
# custom values


def test_custom_values_change_what_they_should(defaults: Rendered) -> None:
    r = render(
        {
            "replicaCount": 2,
            "logFormat": "text",
            "metrics": {"enabled": False, "serviceMonitor": {"enabled": True}},
            "serviceAccount": {"create": False, "name": "existing-sa"},
        }
    )
    deployment = r.one("Deployment")
    assert deployment["spec"]["replicas"] == 2
    c = container(r)
    assert arg_value(c["args"], "--log-format") == "text"
    # metrics disabled: no Service and no ServiceMonitor, even if asked for...
    assert r.of_kind("Service") == []
    assert r.of_kind("ServiceMonitor") == []
    # ...but the HTTP server still runs for the probes.
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # serviceAccount.create=false: none rendered, the named one is used and bound.
    assert r.of_kind("ServiceAccount") == []
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "existing-sa"
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        assert r.one(kind)["subjects"] == [
            {"kind": "ServiceAccount", "name": "existing-sa", "namespace": NAMESPACE}
        ]
    # Everything else stays as it was.
    assert r.one("ClusterRole")["rules"] == defaults.one("ClusterRole")["rules"]
    assert c["securityContext"] == container(defaults)["securityContext"]


def test_fullname_override_names_everything() -> None:
    r = render({"fullnameOverride": "sy"})
    assert r.one("Deployment")["metadata"]["name"] == "sy"
    assert r.one("ClusterRole")["metadata"]["name"] == "sy"
    assert r.one("ClusterRoleBinding")["roleRef"]["name"] == "sy"
    assert r.one("ServiceAccount")["metadata"]["name"] == "sy"
    assert arg_value(container(r)["args"], "--lease-name") == "sy-leader"


def test_all_namespaced_objects_in_release_namespace(defaults: Rendered) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
    for doc in defaults.docs:
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["kind"]


# --------------------------------------------------------------------------
# CRDs


def test_rendered_crds_equal_repo_crds(defaults: Rendered) -> None:
    files = root_crd_files()
    if not files:
        pytest.skip(
            "crds/ at the repository root has no CRD files yet "
            "(written by `switchyard crd --out-dir crds`, which also fills "
            "charts/switchyard/files/crds/)"
        )
    rendered = {c["metadata"]["name"]: c for c in defaults.of_kind("CustomResourceDefinition")}
    expected = {}
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert len(docs) == 1, f"{path.name}: expected exactly one CRD per file"
        crd = docs[0]
        assert crd["kind"] == "CustomResourceDefinition"
        assert path.name == f"{crd['metadata']['name']}.yaml"
        expected[crd["metadata"]["name"]] = crd
    assert EXPECTED_CRD_NAMES <= set(expected)
    assert sorted(rendered) == sorted(expected), (
        "the chart's CRDs differ from crds/: regenerate both with the CRD generator"
    )
    for name, crd in expected.items():
        got = rendered[name]
        assert got["metadata"]["annotations"][KEEP] == "keep", name
        assert strip_keep(got) == strip_keep(crd), f"{name} differs from crds/{name}.yaml"


def test_no_crds_when_install_false() -> None:
    r = render({"crds": {"install": False}})
    assert r.of_kind("CustomResourceDefinition") == []
    assert "kubectl apply --server-side -f crds/" in r.notes


def test_crd_template_renders_every_file_with_keep(chart_with_crds: Path) -> None:
    sources = synthetic_crds(chart_with_crds)
    r = render(chart_dir=chart_with_crds)
    crds = r.of_kind("CustomResourceDefinition")
    assert len(crds) == len(sources) == 2
    by_name = {c["metadata"]["name"]: c for c in crds}
    for source in sources.values():
        got = by_name[source["metadata"]["name"]]
        assert got["metadata"]["annotations"][KEEP] == "keep"
        # The template only adds the annotation: the rest survives the
        # YAML round trip unchanged (integers, floats, multi-line strings).
        assert strip_keep(got) == strip_keep(source)
    # Existing annotations are kept next to the keep annotation.
    assert by_name["shardsplits.switchyard.io"]["metadata"]["annotations"] == {
        "example.com/owner": "dba",
        KEEP: "keep",
    }


def test_crd_template_without_keep(chart_with_crds: Path) -> None:
    sources = synthetic_crds(chart_with_crds)
    crds = render({"crds": {"keep": False}}, chart_dir=chart_with_crds).of_kind(
        "CustomResourceDefinition"
    )
    assert len(crds) == 2
    for got in crds:
        assert KEEP not in (got["metadata"].get("annotations") or {})
    by_name = {c["metadata"]["name"]: c for c in crds}
    for source in sources.values():
        assert by_name[source["metadata"]["name"]] == strip_keep(source)


def test_crd_template_honours_install_false(chart_with_crds: Path) -> None:
    r = render({"crds": {"install": False}}, chart_dir=chart_with_crds)
    assert r.of_kind("CustomResourceDefinition") == []
    assert len(r.of_kind("Deployment")) == 1


def test_crd_template_rejects_non_crd_documents(chart_with_crds: Path) -> None:
    (chart_with_crds / "files" / "crds" / "zz.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nope\n"
    )
    with pytest.raises(helm.HelmError, match="CustomResourceDefinition"):
        render(chart_dir=chart_with_crds)


def test_crd_template_lints_clean(chart_with_crds: Path) -> None:
    report = helm.lint(chart_with_crds, strict=True, namespace=NAMESPACE)
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


# --------------------------------------------------------------------------
# NOTES.txt


def test_notes_explain_how_to_check_and_apply(defaults: Rendered) -> None:
    notes = defaults.notes
    assert f"kubectl -n {NAMESPACE} rollout status deployment/switchyard" in notes
    assert "get lease switchyard-leader" in notes
    assert "kubectl apply" in notes and "examples/" in notes
    assert "mysqlclusters.switchyard.io" in notes


# --------------------------------------------------------------------------
# Dockerfile (cannot be built here: no Docker engine; check its contract)


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_final_stage_contract() -> None:
    instructions = dockerfile_instructions()
    stages = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    assert len(stages) >= 2, "expected a multi-stage build"
    final = instructions[stages[-1] :]
    assert final[0][1].startswith("gcr.io/distroless/static-debian12:nonroot")
    assert ("USER", "65532:65532") in final
    assert ("ENTRYPOINT", '["/usr/local/bin/switchyard"]') in final
    assert ("CMD", '["run"]') in final
    copies = [rest for word, rest in final if word == "COPY"]
    assert any(rest.endswith("/usr/local/bin/switchyard") for rest in copies)


def test_dockerfile_builds_static_musl_release() -> None:
    runs = [rest for word, rest in dockerfile_instructions() if word == "RUN"]
    text = "\n".join(runs)
    assert "musl-tools" in text
    assert "rustup target add x86_64-unknown-linux-musl" in text
    builds = [r for r in runs if "cargo build" in r or "cargo chef cook" in r]
    assert len(builds) == 2, "expected a dependency build and a crate build"
    for build in builds:
        build = " ".join(build.split())
        for flag in ("--release", "--locked", "--target x86_64-unknown-linux-musl", "-p switchyard"):
            assert flag in build, f"{flag!r} missing from {build!r}"


def test_dockerignore_excludes_build_output() -> None:
    patterns = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"target", ".git"} <= {p.strip("/").removeprefix("**/") for p in patterns}
