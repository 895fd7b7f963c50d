# Copyright: ailab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubectl double: ``python3 -m kubesim.kubectl`` (installed as /usr/bin/kubectl).

What the roles and the scenario's checks call, through the API server double over HTTPS with the
kubeconfig's credentials: get --raw=PATH, get nodes|node NAME|configmap|secret [-n NS] [-o name|json|
jsonpath=...], version [-o json], config view [-o jsonpath=...] (local, as kubectl's), cordon/uncordon,
delete node NAME, auth can-i VERB RESOURCE. Global flags: --kubeconfig, --request-timeout, -n/--namespace.
"""

import json
import os
import re
import sys

import yaml

from . import client, versions

_KINDS = {"node": "nodes", "nodes": "nodes", "no": "nodes", "namespace": "namespaces", "namespaces": "namespaces",
          "ns": "namespaces", "configmap": "configmaps", "configmaps": "configmaps", "cm": "configmaps",
          "secret": "secrets", "secrets": "secrets", "pod": "pods", "pods": "pods", "po": "pods"}
_NAMESPACED = {"configmaps", "secrets", "pods"}


def jsonpath(obj, expression):
    """The subset of kubectl's JSONPath the roles use: {.a.b[0].c} and {range .items[*]}...{end} is not needed."""
    out = []
    for template in re.findall(r"\{([^}]*)\}|([^{]+)", expression):
        path, literal = template
        if literal:
            out.append(literal)
            continue
        value = obj
        for part in re.findall(r"\.([^.\[]+)|\[(\d+|\*)\]", path):
            key, index = part
            if value is None:
                break
            if key:
                value = value.get(key) if isinstance(value, dict) else None
            elif index == "*":
                pass
            else:
                value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
        if value is None:
            continue
        out.append(value if isinstance(value, str) else json.dumps(value))
    return "".join(out)


def parse(argv):
    options = {"kubeconfig": os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config"),
               "timeout": 30, "namespace": "default", "output": None, "raw": None}
    words = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("--kubeconfig", "-n", "--namespace", "-o", "--output", "--request-timeout"):
            value = args.pop(0)
        elif "=" in arg and arg.startswith("-"):
            arg, value = arg.split("=", 1)
        else:
            words.append(arg)
            continue
        if arg == "--kubeconfig":
            options["kubeconfig"] = value
        elif arg in ("-n", "--namespace"):
            options["namespace"] = value
        elif arg in ("-o", "--output"):
            options["output"] = value
        elif arg == "--request-timeout":
            options["timeout"] = int(re.sub(r"s$", "", value) or 30)
        elif arg == "--raw":
            options["raw"] = value
    return words, options


def show(obj, output):
    if output is None or output == "wide":
        items = obj.get("items", [obj])
        print("NAME")
        for item in items:
            print(item["metadata"]["name"])
    elif output == "name":
        for item in obj.get("items", [obj]):
            print(f"{item['kind'].lower()}/{item['metadata']['name']}")
    elif output == "json":
        print(json.dumps(obj, indent=4))
    elif output == "yaml":
        print(yaml.safe_dump(obj))
    elif output.startswith("jsonpath="):
        sys.stdout.write(jsonpath(obj, output.split("=", 1)[1]))
    else:
        raise SystemExit(f"error: unable to match a printer suitable for the output format \"{output}\"")


def main(argv=None):
    words, options = parse(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["version"] and "--client" in (argv or sys.argv):
        words = ["version-client"]
    if words[:2] == ["config", "view"]:
        try:
            config = client.load_kubeconfig(options["kubeconfig"])
        except OSError:
            config = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
        show(config, options["output"] or "yaml")
        return 0
    try:
        config = client.load_kubeconfig(options["kubeconfig"])
    except OSError as e:
        print(f"error: stat {options['kubeconfig']}: {e.strerror}", file=sys.stderr)
        return 1

    def call(method, path, body=None, **kw):
        return client.request(method, path, body=body, kubeconfig=config, timeout=options["timeout"], **kw)

    server = client.server_of(config)
    try:
        if words[:1] == ["version"]:
            mine = versions.installed("kubectl")
            answer = {"clientVersion": {"major": "1", "minor": mine.split(".")[1], "gitVersion": mine},
                      "kustomizeVersion": "v5.7.1", "serverVersion": call("GET", "/version")}
            if options["output"] == "json":
                print(json.dumps(answer, indent=2))
            else:
                print(f"Client Version: {mine}\nServer Version: {answer['serverVersion']['gitVersion']}")
            return 0
        if words[:1] == ["get"] and options["raw"]:
            answer = call("GET", options["raw"])
            print(answer if isinstance(answer, str) else json.dumps(answer))
            return 0
        if words[:2] == ["auth", "can-i"] and len(words) >= 4:
            answer = call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
                "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"verb": words[2], "resource": words[3],
                                                "namespace": options["namespace"] if words[3] != "*" else ""}}})
            allowed = answer["status"]["allowed"]
            print("yes" if allowed else "no")
            return 0 if allowed else 1
        if words[:1] in (["cordon"], ["uncordon"]):
            call("PATCH", f"/api/v1/nodes/{words[1]}", {"spec": {"unschedulable": words[0] == "cordon" or None}},
                 content_type="application/merge-patch+json")
            print(f"node/{words[1]} {words[0]}ed")
            return 0
        if words[:1] in (["get"], ["delete"]) and len(words) >= 2:
            resource = _KINDS.get(words[1].lower())
            if resource is None:
                print(f'error: the server doesn\'t have a resource type "{words[1]}"', file=sys.stderr)
                return 1
            base = "/api/v1" + (f"/namespaces/{options['namespace']}" if resource in _NAMESPACED else "")
            path = f"{base}/{resource}" + (f"/{words[2]}" if len(words) > 2 else "")
            if words[0] == "delete":
                call("DELETE", path)
                print(f"{resource[:-1]} \"{words[2]}\" deleted")
                return 0
            show(call("GET", path), options["output"])
            return 0
    except client.ApiError as e:
        reason = {401: "You must be logged in to the server (Unauthorized)", 404: f"Error from server (NotFound): {e}",
                  403: f"Error from server (Forbidden): {e}"}.get(e.code, f"Error from server: {e}")
        print(f"error: {reason}" if e.code == 401 else reason, file=sys.stderr)
        return 1
    except OSError as e:
        print(f"The connection to the server {server.replace('https://', '')} was refused - did you specify the right "
              f"host or port? ({e})", file=sys.stderr)
        return 1
    print(f"kubesim kubectl: unsupported command {words}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
