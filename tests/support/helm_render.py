#!/usr/bin/env python3
"""Render and lint the slatefs Helm chart with a real Helm engine.

The engine is Helm's own Go library (Helm v4 SDK), reached through PyPI's
`helm-python-sdk` (import name `helm_python`), which bundles it as a shared
library: no `helm` binary, no network, no cluster.

    pip install helm-python-sdk==0.2.2

Commands (all print JSON on stdout, except `manifests`):

    render    --chart DIR [--values-json JSON] [--name N] [--namespace NS]
              -> {"documents": [{"source": path, "yaml": text}, ...],
                  "notes": text}
    lint      --chart DIR [--values-json JSON] [--namespace NS]
              -> Helm's lint report {"messages": [...], "errors": [...]}
    manifests --chart DIR
              -> the plain-YAML install file (manifests/slatefs.yaml) on stdout
    batch     --chart DIR < [{"op": "render"|"lint"|"manifests", "values": {...},
                              "name": N, "namespace": NS,
                              "api_versions": [...]  (render: API groups the cluster serves)}, ...]
              -> one result per request, in order (one process, one engine load)

Documents are split on YAML document separators, empty ones dropped, and
ordered the way `helm install` orders them (by kind; then by source file and
position), so a `kubectl apply -f` of the concatenation creates
ServiceAccounts before the workloads that use them and CRDs before objects of
their kinds.

Exit status 3 with a message on stderr when the Helm engine is not installed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

# The release the plain manifests are rendered as: `helm template slatefs
# charts/slatefs --namespace kube-system` with the chart's default values but
# one: the servers' cluster secret is a Secret the user creates, since a
# random one drawn at render time would be published in this file.
MANIFEST_RELEASE = "slatefs"
MANIFEST_NAMESPACE = "kube-system"
MANIFEST_CLUSTER_SECRET = "slatefs-cluster-secret"
MANIFEST_VALUES = {"cluster": {"existingSecret": MANIFEST_CLUSTER_SECRET}}

MANIFEST_HEADER = """\
# slatefs: plain Kubernetes manifests for `kubectl apply -f manifests/slatefs.yaml`.
#
# GENERATED, DO NOT EDIT. This file is the Helm chart in charts/slatefs rendered
# with its default values as release "{release}" in namespace "{namespace}",
# except cluster.existingSecret={secret}. Create that Secret first, with a
# random value of your own (docs/kubernetes.md):
#     kubectl -n {namespace} create secret generic {secret} \\
#       --from-literal=secret="$(head -c 36 /dev/urandom | base64)"
# Regenerate this file after changing the chart with:
#     python3 tests/support/helm_render.py manifests --chart charts/slatefs > manifests/slatefs.yaml
# (`cargo test --release --test k8s_packaging` fails while the two differ.)
"""

# Helm's install order (pkg/release/util/kind_sorter.go, InstallOrder); kinds
# not listed go last, in the order they were rendered.
INSTALL_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
    "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
    "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
    "APIService", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
]

MISSING_ENGINE = (
    "The Helm engine is not installed for {python}.\n"
    "Install it with:  {python} -m pip install helm-python-sdk==0.2.2\n"
    "(PyPI package `helm-python-sdk`: Helm's Go library as a shared object, no helm binary needed.)"
)


def load_engine():
    try:
        import helm_python  # noqa: PLC0415
    except ImportError:
        print(MISSING_ENGINE.format(python=sys.executable), file=sys.stderr)
        sys.exit(3)
    return helm_python


DOC_SPLIT = re.compile(r"^---[ \t]*(?:#.*)?$", re.MULTILINE)
KIND_LINE = re.compile(r"^kind:[ \t]*[\"']?([A-Za-z0-9]+)", re.MULTILINE)


def is_blank(doc: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in doc.splitlines())


def render(chart_dir: str, values: dict | None, name: str, namespace: str,
           api_versions: list | None = None) -> dict:
    helm = load_engine()
    with helm.Chart.load(chart_dir) as chart:
        if api_versions:
            # What `helm template --api-versions` passes: API groups the cluster serves
            # besides the built-in ones (e.g. monitoring.coreos.com/v1 for ServiceMonitors).
            # The SDK's Chart.render has no parameter for it; its engine call takes the option.
            from helm_python import _native
            opts = {"name": name, "namespace": namespace, "is_install": True, "api_versions": api_versions}
            rendered = json.loads(_native.call_string(
                "helm_render", chart._raw(), json.dumps(values or {}), json.dumps(opts)))
        else:
            rendered = chart.render(values or {}, name=name, namespace=namespace, is_install=True)
        chart_name = chart.name
    notes = ""
    docs = []
    for path in sorted(rendered):
        text = rendered[path]
        base = path.rsplit("/", 1)[-1]
        if base == "NOTES.txt":
            notes = text
            continue
        if base.startswith("_") or not base.endswith((".yaml", ".yml")):
            continue
        for position, doc in enumerate(DOC_SPLIT.split(text)):
            if is_blank(doc):
                continue
            kind = KIND_LINE.search(doc)
            docs.append({
                "source": path,
                "position": position,
                "kind": kind.group(1) if kind else "",
                "yaml": doc.strip("\n") + "\n",
            })
    order = {kind: i for i, kind in enumerate(INSTALL_ORDER)}
    docs.sort(key=lambda d: (order.get(d["kind"], len(order)), d["source"], d["position"]))
    return {"chart": chart_name, "documents": docs, "notes": notes}


def manifests(chart_dir: str) -> str:
    out = render(chart_dir, MANIFEST_VALUES, MANIFEST_RELEASE, MANIFEST_NAMESPACE)
    parts = [MANIFEST_HEADER.format(release=MANIFEST_RELEASE, namespace=MANIFEST_NAMESPACE,
                                    secret=MANIFEST_CLUSTER_SECRET)]
    for doc in out["documents"]:
        parts.append("---\n# Source: " + doc["source"] + "\n" + doc["yaml"])
    return "".join(parts)


def lint(chart_dir: str, values: dict | None, namespace: str) -> dict:
    helm = load_engine()
    return helm.lint(chart_dir, values or {}, strict=True, namespace=namespace)


def run_one(chart_dir: str, request: dict) -> dict:
    """One request of a batch; a Helm error becomes {"error": ...} (a test may expect one)."""
    op = request["op"]
    values = request.get("values") or {}
    name = request.get("name", MANIFEST_RELEASE)
    namespace = request.get("namespace", MANIFEST_NAMESPACE)
    try:
        if op == "render":
            return render(chart_dir, values, name, namespace, request.get("api_versions"))
        if op == "lint":
            return lint(chart_dir, values, namespace)
        if op == "manifests":
            return {"text": manifests(chart_dir)}
        raise ValueError(f"unknown op {op!r}")
    except Exception as exc:  # Helm's errors carry the template and line: pass them on.
        return {"error": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["render", "lint", "manifests", "batch", "version"])
    parser.add_argument("--chart", default="charts/slatefs")
    parser.add_argument("--values-json", default="{}")
    parser.add_argument("--name", default=MANIFEST_RELEASE)
    parser.add_argument("--namespace", default=MANIFEST_NAMESPACE)
    args = parser.parse_args()
    values = json.loads(args.values_json)

    if args.command == "version":
        helm = load_engine()
        json.dump({"helm_c": helm.helm_c_version(), "helm_sdk": helm.helm_sdk_version()}, sys.stdout)
        return
    if args.command == "manifests":
        sys.stdout.write(manifests(args.chart))
        return
    if args.command == "batch":
        load_engine()
        results = []
        for request in json.load(sys.stdin):
            results.append(run_one(args.chart, request))
        json.dump(results, sys.stdout)
        return
    try:
        if args.command == "render":
            result = render(args.chart, values, args.name, args.namespace)
        else:
            result = lint(args.chart, values, args.namespace)
    except Exception as exc:  # Helm's errors carry the template and line: pass them on.
        json.dump({"error": f"{type(exc).__name__}: {exc}"}, sys.stdout)
        sys.exit(2)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
