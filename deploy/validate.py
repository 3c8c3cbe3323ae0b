#!/usr/bin/env python3
"""Offline checks of the Kubernetes examples in deploy/. Run it through deploy/validate.sh.

1. Every core-kind document (Pod, StatefulSet, ...) against the Kubernetes JSON schemas that the
   PyPI package kubernetes-validate bundles, in their strict form (an unknown field is an error).
2. `Prometheus` and `PrometheusAgent` against the operator CRDs' openAPIV3Schema vendored in
   deploy/schemas/, made strict the way `kubectl apply --validate=strict` is (an unknown field is
   an error), with x-kubernetes-list-type map/set uniqueness checked and metadata checked as
   ObjectMeta. CEL rules (x-kubernetes-validations) are not evaluated: they are counted.
3. Helm values: the initContainers of kube-prometheus-stack (through the Prometheus CRD, as the
   chart renders prometheusSpec into one) and of the prometheus chart, each entry against the
   core Container schema; the prometheus chart's values also against its values.schema.json.
4. Every walfix container: its argv parses against the option table of docs/preflight.md
   (`preflight DATA_DIR [OPTIONS] [-- COMMAND...]`, or the assumed `self-install DEST`), and
   agrees with the pod: same volume and subPath as Prometheus's data dir, --uid/--gid equal to
   Prometheus's user and group, the downward-API variable of --memory-limit, --agent for an
   agent WAL, the binary a wrapper runs installed by an init container, the security context.
5. Self-test: a few deliberate mistakes (a typo in a field name, an unknown option, a wrong
   subPath) made in memory to every example must each be caught.
"""
import copy
import json
import pathlib
import re
import sys

import importlib_resources
import jsonschema
import yaml
from referencing import Registry, Resource

DEPLOY = pathlib.Path(__file__).resolve().parent
ROOT = DEPLOY.parent
PREFLIGHT_DOC = ROOT / "docs" / "preflight.md"
SCHEMAS = DEPLOY / "schemas"

# Oldest and newest Kubernetes minor whose schemas are checked.
K8S_VERSIONS = ("1.30", "1.37")
K8S_DEFS = "https://kubernetes.io/api/_definitions.json"
CONTAINER_REF = K8S_DEFS + "#/$defs/io.k8s.api.core.v1.Container"
OBJECTMETA_REF = K8S_DEFS + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
# The pattern the operator's CRDs give quantities (apimachinery's resource.Quantity syntax).
QUANTITY = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"

CRDS = {
    ("monitoring.coreos.com/v1", "Prometheus"): "monitoring.coreos.com_prometheuses.v1.json",
    ("monitoring.coreos.com/v1alpha1", "PrometheusAgent"): "monitoring.coreos.com_prometheusagents.v1alpha1.json",
}
PROMETHEUS_CHART_SCHEMA = "prometheus-chart.values.schema.json"

WALFIX_IMAGE = "ghcr.io/walfix/walfix"
WALFIX_IMAGE_UID = 65534  # USER of the walfix image (numeric)
PROMETHEUS_IMAGE_UID = 65534  # USER nobody of quay.io/prometheus/prometheus
PROMETHEUS_IMAGE_GID = 65534
SELF_INSTALL = "self-install"  # assumed: `walfix self-install DEST` copies the binary to DEST
FIX_OWNERSHIP_CAPS = {"CHOWN", "FOWNER", "DAC_OVERRIDE"}

# prometheus-operator v0.93.0, pkg/prometheus/common.go: StorageDir, VolumeName, Prefix, SubPathForStorage.
OPERATOR_DATA_DIR = "/prometheus"
OPERATOR_SUBPATH = "prometheus-db"
OPERATOR_PREFIX = {"Prometheus": "prometheus", "PrometheusAgent": "prom-agent"}

# kube-prometheus-stack 88.5.3: prometheusSpec keys this checker maps onto the Prometheus spec, the
# name of the Prometheus resource as a template, and the chart's default securityContext.
KPS_SPEC_KEYS = {
    "initContainers": "initContainers",
    "containers": "containers",
    "securityContext": "securityContext",
    "storageSpec": "storage",
    "resources": "resources",
    "volumes": "volumes",
    "volumeMounts": "volumeMounts",
}
KPS_CRNAME = '{{ template "kube-prometheus-stack.prometheus.crname" . }}'
KPS_DEFAULT_SECURITY_CONTEXT = {"runAsGroup": 2000, "runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 2000,
                                "seccompProfile": {"type": "RuntimeDefault"}}

# prometheus chart 29.27.0: templates/deploy.yaml and values.yaml defaults.
PROM_CHART_DEFAULT_SECURITY_CONTEXT = {"runAsUser": 65534, "runAsNonRoot": True, "runAsGroup": 65534, "fsGroup": 65534}


class Report:
    def __init__(self, quiet=False):
        self.ok = []
        self.failures = []
        self.quiet = quiet

    def passed(self, what):
        self.ok.append(what)
        if not self.quiet:
            print("  ok    " + what)

    def fail(self, what):
        self.failures.append(what)
        if not self.quiet:
            print("  FAIL  " + what)

    def check(self, cond, what, why=""):
        if cond:
            self.passed(what)
        else:
            self.fail(what + (": " + why if why else ""))
        return cond


# ---------------------------------------------------------------- JSON schema machinery


def list_type(validator, value, instance, schema):
    """x-kubernetes-list-type: `set` items are unique, `map` items are unique by their map keys."""
    if not validator.is_type(instance, "array"):
        return
    seen = {}
    for index, item in enumerate(instance):
        if value == "set":
            key = json.dumps(item, sort_keys=True)
        elif value == "map" and isinstance(item, dict):
            key = json.dumps([item.get(k) for k in schema.get("x-kubernetes-list-map-keys", [])])
        else:
            continue
        if key in seen:
            yield jsonschema.ValidationError(
                "items %d and %d have the same %s (x-kubernetes-list-type: %s)"
                % (seen[key], index, key, value))
        seen[key] = index


FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("int32")
def _int32(value):
    return not isinstance(value, int) or -(2 ** 31) <= value < 2 ** 31


@FORMATS.checks("int64")
def _int64(value):
    return not isinstance(value, int) or -(2 ** 63) <= value < 2 ** 63


Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"x-kubernetes-list-type": list_type})


def k8s_schema_dir(version):
    return (importlib_resources.files("kubernetes_validate")
            / "kubernetes-json-schema" / ("v%s.0-local-strict" % version))


_registries = {}


def k8s_registry(version):
    if version not in _registries:
        defs = json.loads(k8s_schema_dir(version).joinpath("_definitions.json").read_text())
        # The bundled schemas take any string as a quantity ("4Gx"); the API server does not.
        defs["$defs"]["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {
            "oneOf": [{"type": "string", "pattern": QUANTITY}, {"type": "number"}]}
        _registries[version] = Resource.from_contents(defs) @ Registry()
    return _registries[version]


def k8s_kind_schema(version, api_version, kind):
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = k8s_schema_dir(version).joinpath("%s-%s.json" % (kind.lower(), group_version))
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def errors(schema, instance, registry):
    validator = Validator(schema, registry=registry, format_checker=FORMATS)
    out = []
    for err in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        # oneOf/anyOf errors are long: keep the leaf the instance failed on.
        leaf = jsonschema.exceptions.best_match([err])
        where = "/".join(str(p) for p in leaf.absolute_path) or "(top)"
        out.append("%s: %s" % (where, leaf.message[:300]))
    return out


def strictify(node):
    """Unknown fields are errors: additionalProperties false wherever properties are listed."""
    if not isinstance(node, dict):
        return node
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        node["additionalProperties"] = False
    for key in ("properties", "patternProperties"):
        for sub in node.get(key, {}).values():
            strictify(sub)
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in node.get(key, []):
            strictify(sub)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            strictify(node[key])
    return node


def count_cel(node):
    if not isinstance(node, dict):
        return 0
    n = len(node.get("x-kubernetes-validations", []))
    for key in ("properties", "patternProperties"):
        n += sum(count_cel(sub) for sub in node.get(key, {}).values())
    for key in ("items", "additionalProperties"):
        n += count_cel(node.get(key))
    return n


_crds = {}


def crd_schema(api_version, kind):
    if (api_version, kind) not in _crds:
        raw = json.loads((SCHEMAS / CRDS[(api_version, kind)]).read_text())
        origin = raw.pop("x-walfix-origin")
        raw.pop("$comment", None)
        cel = count_cel(raw)
        schema = strictify(raw)
        schema["properties"]["apiVersion"] = {"enum": [api_version]}
        schema["properties"]["kind"] = {"enum": [kind]}
        schema["properties"]["metadata"] = {"$ref": OBJECTMETA_REF}
        schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
        _crds[(api_version, kind)] = (schema, origin, cel)
    return _crds[(api_version, kind)]


# ---------------------------------------------------------------- docs/preflight.md options

PLACEHOLDERS = {
    "N": r"[0-9]+",
    "N,N...": r"[0-9]+(,[0-9]+)*",
    "FRACTION": r"(0(\.[0-9]+)?|1(\.0+)?|\.[0-9]+)",
    "BYTES": r"[0-9]+",
    "SECONDS": r"[0-9]+(\.[0-9]+)?",
    "NAME": r"[A-Za-z_][A-Za-z0-9_]*",
    "PATH": r"/\S*",
    "DIR": r"/\S*",
    "V": r"[0-9]+(\.[0-9]+)*",
}


def value_regex(alternative):
    """`auto` -> literal; `env:NAME` -> env: + NAME's pattern; `N` -> digits."""
    parts = re.split(r"([A-Z][A-Z_]*(?:,N\.\.\.)?)", alternative)
    regex = ""
    for i, part in enumerate(parts):
        if i % 2 == 0:
            regex += re.escape(part)
        elif part in PLACEHOLDERS:
            regex += PLACEHOLDERS[part]
        else:
            raise SystemExit("docs/preflight.md uses the placeholder %s, unknown to deploy/validate.py" % part)
    return regex


def load_preflight_options():
    text = PREFLIGHT_DOC.read_text()
    section = text.split("\n## Options", 1)[1].split("\n## ", 1)[0]
    options = {}
    for line in section.splitlines():
        if not line.startswith("| `--"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        default = re.findall(r"`([^`]+)`", cells[1])
        for spec in re.findall(r"`([^`]+)`", cells[0]):
            name, _, value = spec.partition(" ")
            alternatives = value.replace("\\|", "|").split("|") if value else []
            options[name] = {
                "value": value.replace("\\|", "|") or None,
                "regex": "^(%s)$" % "|".join(value_regex(a) for a in alternatives) if value else None,
                "default": default[0] if default else None,
            }
    if not options:
        raise SystemExit("no options found in %s" % PREFLIGHT_DOC)
    return options


def parse_walfix(argv, options):
    """argv after the binary. Returns (dict, [problems])."""
    problems = []
    if not argv:
        return None, ["no subcommand"]
    sub = argv[0]
    if sub == SELF_INSTALL:
        if len(argv) != 2 or not argv[1].startswith("/"):
            problems.append("self-install takes exactly one absolute DEST, got %r" % argv[1:])
        return {"sub": sub, "dest": argv[1] if len(argv) > 1 else None}, problems
    if sub != "preflight":
        return None, ["the subcommand is %r, not preflight or %s" % (sub, SELF_INSTALL)]
    if len(argv) < 2 or not argv[1].startswith("/"):
        return None, ["preflight needs an absolute DATA_DIR right after it, got %r" % argv[1:2]]
    parsed = {"sub": sub, "data_dir": argv[1], "opts": {}, "exec": None}
    i = 2
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            parsed["exec"] = argv[i + 1:]
            if not parsed["exec"]:
                problems.append("nothing after --")
            break
        if arg not in options:
            problems.append("%r is not an option in docs/preflight.md" % arg)
            i += 1
            continue
        if arg in parsed["opts"]:
            problems.append("%s given twice" % arg)
        spec = options[arg]
        if spec["value"] is None:
            parsed["opts"][arg] = True
            i += 1
            continue
        if i + 1 >= len(argv):
            problems.append("%s needs a value (%s)" % (arg, spec["value"]))
            break
        value = argv[i + 1]
        if not re.match(spec["regex"], value):
            problems.append("%s %r does not match %s" % (arg, value, spec["value"]))
        parsed["opts"][arg] = value
        i += 2
    return parsed, problems


# ---------------------------------------------------------------- pod model


class PodContext:
    """What a walfix container in a pod must agree with."""

    def __init__(self, where, init_containers, containers, volumes=None, pod_security=None,
                 data_dir=None, data_volume=None, data_subpath="", prometheus_name="prometheus",
                 prometheus_uid=None, prometheus_gid=None, fs_group=None, agent=False,
                 operator_managed=False, downward_containers=None):
        self.where = where
        self.init_containers = init_containers or []
        self.containers = containers or []
        self.volumes = volumes  # name -> volume, or None if not all known
        self.pod_security = pod_security or {}
        self.data_dir = data_dir
        self.data_volume = data_volume
        self.data_subpath = data_subpath if data_subpath is None else data_subpath or ""
        # A one-off Pod whose only container is walfix (no Prometheus in it to compare with).
        self.one_off = False
        self.prometheus_name = prometheus_name
        self.prometheus_uid = prometheus_uid
        self.prometheus_gid = prometheus_gid
        self.fs_group = fs_group
        self.agent = agent
        # The operator generates the prometheus container: spec.containers holds patches of it.
        self.operator_managed = operator_managed
        self.downward_containers = downward_containers


def walfix_argv(container):
    command = container.get("command") or []
    args = container.get("args") or []
    if command:
        return command + args
    if str(container.get("image", "")).startswith(WALFIX_IMAGE):
        return ["/walfix"] + args  # the image's entrypoint
    return None


def is_walfix(container):
    argv = walfix_argv(container)
    return bool(argv) and (argv[0].rsplit("/", 1)[-1] == "walfix")


def security(container, pod_security):
    sc = dict(pod_security)
    sc.update(container.get("securityContext") or {})
    return sc


def mount_at(container, path):
    for mount in container.get("volumeMounts") or []:
        if mount.get("mountPath", "").rstrip("/") == path.rstrip("/"):
            return mount
    return None


def prometheus_flag(argv, flag):
    for arg in argv or []:
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def check_walfix_containers(ctx, options, report):
    pairs = [(c, True) for c in ctx.init_containers] + [(c, False) for c in ctx.containers]
    walfix = [(c, init) for c, init in pairs if is_walfix(c)]
    report.check(bool(walfix), "%s: has a walfix container" % ctx.where)
    installed = {}  # DEST -> volume name, from self-install init containers
    for container, init in walfix:
        name = container.get("name")
        argv = walfix_argv(container)
        parsed, problems = parse_walfix(argv[1:], options)
        label = "%s: %s %r" % (ctx.where, "initContainer" if init else "container", name)
        report.check(not problems, "%s: argv %s parses against docs/preflight.md" % (label, " ".join(argv)),
                     "; ".join(problems))
        if parsed is None:
            continue
        sc = security(container, ctx.pod_security)
        default_uid = WALFIX_IMAGE_UID if str(container.get("image", "")).startswith(WALFIX_IMAGE) else None
        uid = sc.get("runAsUser", default_uid)

        if parsed["sub"] == SELF_INSTALL:
            report.check(init, "%s: self-install runs as an init container" % label)
            dest = parsed.get("dest") or ""
            mount = mount_at(container, dest.rsplit("/", 1)[0] or "/")
            if report.check(mount is not None and not mount.get("readOnly"),
                            "%s: DEST %s is in a writable volume mount" % (label, dest)):
                installed[dest] = mount["name"]
                if ctx.volumes is not None:
                    vol = ctx.volumes.get(mount["name"], {})
                    report.check("emptyDir" in vol, "%s: volume %r is an emptyDir" % (label, mount["name"]))
            check_hardened(label, sc, uid, report)
            continue

        opts = parsed["opts"]
        data_dir = parsed["data_dir"]
        if ctx.data_dir is not None:
            report.check(data_dir == ctx.data_dir, "%s: DATA_DIR %s is Prometheus's data dir" % (label, data_dir),
                         "Prometheus's is %s" % ctx.data_dir)
        report.check(bool(opts.get("--agent")) == ctx.agent,
                     "%s: --agent %s" % (label, "given (an agent WAL)" if ctx.agent else "absent (a server WAL)"))

        # The data volume: the same volume and subPath as Prometheus's own mount.
        wrapped_by_operator = ctx.operator_managed and not init and name == ctx.prometheus_name
        if not wrapped_by_operator:
            mount = mount_at(container, data_dir)
            if report.check(mount is not None, "%s: mounts a volume at %s" % (label, data_dir)):
                if ctx.data_volume is not None:
                    report.check(mount.get("name") == ctx.data_volume,
                                 "%s: mounts the data volume %r" % (label, ctx.data_volume),
                                 "it mounts %r" % mount.get("name"))
                if ctx.data_subpath is not None:
                    report.check((mount.get("subPath") or "") == ctx.data_subpath,
                                 "%s: subPath %r, as Prometheus's mount" % (label, ctx.data_subpath),
                                 "it has %r" % (mount.get("subPath") or ""))
                report.check(not mount.get("readOnly"), "%s: data mount is writable (repair, permission check)" % label)
                if ctx.volumes is not None:
                    report.check(mount.get("name") in ctx.volumes,
                                 "%s: volume %r exists in the pod" % (label, mount.get("name")))

        # Prometheus's user and group.
        want_uid = int(opts.get("--uid", options["--uid"]["default"]))
        want_gid = int(opts.get("--gid", options["--gid"]["default"]))
        groups = {int(g) for g in opts.get("--groups", "").split(",") if g}
        if ctx.prometheus_uid is not None:
            report.check(want_uid == ctx.prometheus_uid, "%s: --uid %d is Prometheus's uid" % (label, want_uid),
                         "Prometheus runs as %s" % ctx.prometheus_uid)
        if ctx.prometheus_gid is not None:
            report.check(want_gid == ctx.prometheus_gid, "%s: --gid %d is Prometheus's gid" % (label, want_gid),
                         "Prometheus's group is %s" % ctx.prometheus_gid)
        if ctx.fs_group is not None:
            report.check(ctx.fs_group == want_gid or ctx.fs_group in groups,
                         "%s: fsGroup %d is --gid or in --groups" % (label, ctx.fs_group))

        # --memory-limit.
        limit = opts.get("--memory-limit")
        if limit and limit.startswith("env:"):
            var = limit[4:]
            env = {e.get("name"): e for e in container.get("env") or []}
            ref = ((env.get(var) or {}).get("valueFrom") or {}).get("resourceFieldRef") or {}
            report.check(ref.get("resource") == "limits.memory",
                         "%s: $%s comes from resourceFieldRef limits.memory" % (label, var))
            target = ref.get("containerName") or name
            report.check(target == ctx.prometheus_name,
                         "%s: $%s is the limit of the %r container" % (label, var, ctx.prometheus_name),
                         "it is that of %r" % target)
            if ctx.downward_containers is not None:
                report.check(target in ctx.downward_containers,
                             "%s: container %r exists in the pod" % (label, target))
        elif limit == "auto":
            report.check(not init and name == ctx.prometheus_name,
                         "%s: --memory-limit auto only inside the prometheus container" % label,
                         "an init container's cgroup is not Prometheus's")

        # Initcontainer or wrapper.
        if parsed["exec"] is None:
            report.check(init or ctx.one_off, "%s: without `-- COMMAND` preflight is an init container (or a one-off Pod)" % label)
        else:
            report.check(not init and name == ctx.prometheus_name,
                         "%s: `-- COMMAND` wraps the %r container" % (label, ctx.prometheus_name))
            report.check(parsed["exec"][0] == "/bin/prometheus",
                         "%s: execs /bin/prometheus" % label, "it execs %r" % parsed["exec"][0])
            if not ctx.operator_managed:
                flag = "--storage.agent.path" if ctx.agent else "--storage.tsdb.path"
                report.check(prometheus_flag(parsed["exec"], flag) == data_dir,
                             "%s: Prometheus's %s is DATA_DIR" % (label, flag))
            binary = argv[0]
            mount = mount_at(container, binary.rsplit("/", 1)[0])
            report.check(binary in installed and mount is not None and mount.get("name") == installed[binary],
                         "%s: %s comes from a self-install init container through volume %r"
                         % (label, binary, mount.get("name") if mount else None))

        # Security context.
        terminated = container.get("terminationMessagePolicy")
        report.check(terminated in (None, "File", "FallbackToLogsOnError"),
                     "%s: terminationMessagePolicy %s" % (label, terminated or "File (default)"))
        if wrapped_by_operator:
            continue  # the operator sets the prometheus container's securityContext
        if opts.get("--fix-ownership"):
            caps = set((sc.get("capabilities") or {}).get("add") or [])
            report.check(uid == 0, "%s: --fix-ownership runs as root" % label, "runAsUser is %s" % uid)
            report.check(FIX_OWNERSHIP_CAPS <= caps, "%s: --fix-ownership has CAP_%s" % (label, ", CAP_".join(sorted(FIX_OWNERSHIP_CAPS))),
                         "adds %s" % sorted(caps))
            report.check(sc.get("runAsNonRoot") is not True, "%s: runAsNonRoot is not true" % label)
            check_hardened(label, sc, uid, report, extra_caps=FIX_OWNERSHIP_CAPS)
        else:
            if init and ctx.prometheus_uid is not None:
                report.check(uid == ctx.prometheus_uid,
                             "%s: runs as Prometheus's uid %s (repaired files stay Prometheus's)" % (label, ctx.prometheus_uid),
                             "runs as %s" % uid)
            check_hardened(label, sc, uid, report)


def check_hardened(label, sc, uid, report, extra_caps=()):
    caps = sc.get("capabilities") or {}
    report.check(sc.get("readOnlyRootFilesystem") is True, "%s: readOnlyRootFilesystem" % label)
    report.check(sc.get("allowPrivilegeEscalation") is False, "%s: allowPrivilegeEscalation false" % label)
    report.check("ALL" in (caps.get("drop") or []), "%s: drops all capabilities" % label)
    added = set(caps.get("add") or []) - set(extra_caps)
    report.check(not added, "%s: adds no other capability" % label, "adds %s" % sorted(added))
    if not extra_caps:
        report.check(uid is not None and uid != 0, "%s: not root (uid %s)" % (label, uid))


# ---------------------------------------------------------------- per kind


def pod_spec_of(doc):
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return spec, []
    if kind in ("StatefulSet", "Deployment", "DaemonSet", "ReplicaSet", "Job"):
        claims = [t.get("metadata", {}).get("name") for t in spec.get("volumeClaimTemplates") or []]
        return ((spec.get("template") or {}).get("spec") or {}), claims
    return None, []


def plain_context(where, doc):
    pod, claims = pod_spec_of(doc)
    if pod is None:
        return None
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    for claim in claims:
        volumes[claim] = {"persistentVolumeClaim": {}}
    init = pod.get("initContainers") or []
    containers = pod.get("containers") or []
    pod_sc = pod.get("securityContext") or {}
    ctx = PodContext(where, init, containers, volumes=volumes, pod_security=pod_sc,
                     fs_group=pod_sc.get("fsGroup"),
                     downward_containers={c.get("name") for c in init + containers})
    prom = [c for c in containers if "prometheus/prometheus" in str(c.get("image", "")) or c.get("name") == "prometheus"]
    if prom:
        prom = prom[0]
        ctx.prometheus_name = prom.get("name")
        argv = (prom.get("command") or []) + (prom.get("args") or [])
        ctx.agent = "--agent" in argv
        ctx.data_dir = prometheus_flag(argv, "--storage.agent.path" if ctx.agent else "--storage.tsdb.path")
        mount = mount_at(prom, ctx.data_dir) if ctx.data_dir else None
        if mount:
            ctx.data_volume, ctx.data_subpath = mount.get("name"), mount.get("subPath") or ""
        sc = security(prom, pod_sc)
        ctx.prometheus_uid = sc.get("runAsUser", PROMETHEUS_IMAGE_UID)
        ctx.prometheus_gid = sc.get("runAsGroup", PROMETHEUS_IMAGE_GID)
    else:
        # A one-off Pod: no Prometheus to compare with.
        ctx.prometheus_name = None
        ctx.data_subpath = None
        ctx.one_off = doc["kind"] == "Pod" and pod.get("restartPolicy") in ("Never", "OnFailure")
    return ctx


def operator_context(where, doc):
    kind = doc["kind"]
    spec = doc.get("spec") or {}
    storage = spec.get("storage")
    volume = "%s-%s-db" % (OPERATOR_PREFIX[kind], doc["metadata"]["name"])
    vct_name = ((storage or {}).get("volumeClaimTemplate") or {}).get("metadata", {}).get("name")
    if vct_name:
        volume = vct_name
    subpath = OPERATOR_SUBPATH if storage and not storage.get("disableMountSubPath") else ""
    pod_sc = spec.get("securityContext") or {}
    patches = spec.get("containers") or []
    prom_patch = next((c for c in patches if c.get("name") == "prometheus"), {})
    sc = security(prom_patch, pod_sc)
    return PodContext(
        where, spec.get("initContainers"), patches,
        volumes={v.get("name"): v for v in spec.get("volumes") or []} | {volume: {"operator": True}},
        pod_security=pod_sc, data_dir=OPERATOR_DATA_DIR, data_volume=volume, data_subpath=subpath,
        prometheus_name="prometheus", prometheus_uid=sc.get("runAsUser", PROMETHEUS_IMAGE_UID),
        prometheus_gid=sc.get("runAsGroup", PROMETHEUS_IMAGE_GID), fs_group=pod_sc.get("fsGroup"),
        agent=(kind == "PrometheusAgent"), operator_managed=True)


def validate_core(where, doc, report):
    for version in K8S_VERSIONS:
        schema = k8s_kind_schema(version, doc.get("apiVersion", ""), doc.get("kind", ""))
        if not report.check(schema is not None, "%s: Kubernetes %s has a schema for %s %s"
                            % (where, version, doc.get("apiVersion"), doc.get("kind"))):
            continue
        errs = errors(schema, doc, k8s_registry(version))
        report.check(not errs, "%s: valid %s against Kubernetes %s schema (strict)" % (where, doc["kind"], version),
                     "; ".join(errs))


def validate_containers(where, entries, report):
    for version in K8S_VERSIONS:
        for i, entry in enumerate(entries or []):
            errs = errors({"$ref": CONTAINER_REF}, entry, k8s_registry(version))
            report.check(not errs, "%s[%d] %r: valid io.k8s.api.core.v1.Container (Kubernetes %s, strict)"
                         % (where, i, (entry or {}).get("name"), version), "; ".join(errs))


def validate_crd(where, doc, report):
    schema, origin, cel = crd_schema(doc["apiVersion"], doc["kind"])
    errs = errors(schema, doc, k8s_registry(K8S_VERSIONS[-1]))
    report.check(not errs, "%s: valid %s against the %s CRD schema of prometheus-operator %s (strict; %d CEL rules not evaluated)"
                 % (where, doc["kind"], origin["version"], origin["tag"], cel), "; ".join(errs))
    if doc["kind"] == "PrometheusAgent":
        report.check((doc.get("spec") or {}).get("mode", "StatefulSet") == "StatefulSet",
                     "%s: StatefulSet mode (a DaemonSet agent has no data volume)" % where)


def check_kube_prometheus_stack(where, values, options, report):
    report.check(set(values) <= {"prometheus"}, "%s: only prometheus.* values (what this checker maps)" % where,
                 "also %s" % sorted(set(values) - {"prometheus"}))
    prometheus = values.get("prometheus") or {}
    report.check(set(prometheus) <= {"prometheusSpec", "agentMode"}, "%s: only prometheus.prometheusSpec values" % where)
    pspec = prometheus.get("prometheusSpec") or {}
    unknown = set(pspec) - set(KPS_SPEC_KEYS)
    report.check(not unknown, "%s: prometheusSpec keys all mapped to the Prometheus spec" % where,
                 "unmapped %s" % sorted(unknown))
    agent = bool(prometheus.get("agentMode"))
    kind = "PrometheusAgent" if agent else "Prometheus"
    api = "monitoring.coreos.com/v1alpha1" if agent else "monitoring.coreos.com/v1"
    spec = {KPS_SPEC_KEYS[k]: copy.deepcopy(v) for k, v in pspec.items() if k in KPS_SPEC_KEYS}
    spec.setdefault("securityContext", KPS_DEFAULT_SECURITY_CONTEXT)
    rendered = {"apiVersion": api, "kind": kind, "metadata": {"name": "kps-values-check"}, "spec": spec}
    validate_crd(where + " as rendered into a " + kind, rendered, report)
    validate_containers(where + " prometheus.prometheusSpec.initContainers", pspec.get("initContainers"), report)
    validate_containers(where + " prometheus.prometheusSpec.containers", pspec.get("containers"), report)
    ctx = operator_context(where, rendered)
    ctx.data_volume = "%s-%s-db" % (OPERATOR_PREFIX[kind], KPS_CRNAME)  # the chart runs initContainers through tpl
    vct_name = ((spec.get("storage") or {}).get("volumeClaimTemplate") or {}).get("metadata", {}).get("name")
    if vct_name:
        ctx.data_volume = vct_name
    ctx.volumes[ctx.data_volume] = {"operator": True}
    check_walfix_containers(ctx, options, report)


def check_prometheus_chart(where, values, options, report):
    schema = json.loads((SCHEMAS / PROMETHEUS_CHART_SCHEMA).read_text())
    errs = [("/".join(str(p) for p in e.absolute_path) or "(top)") + ": " + e.message
            for e in jsonschema.Draft7Validator(schema).iter_errors(values)]
    report.check(not errs, "%s: valid against the prometheus chart's values.schema.json (29.27.0)" % where, "; ".join(errs))
    server = values.get("server") or {}
    validate_containers(where + " server.extraInitContainers", server.get("extraInitContainers"), report)
    pv = server.get("persistentVolume") or {}
    report.check(pv.get("enabled", True) is not False, "%s: server.persistentVolume enabled (an emptyDir starts empty)" % where)
    volume = "storage-volume"
    if (server.get("statefulSet") or {}).get("enabled") and pv.get("statefulSetNameOverride"):
        volume = pv["statefulSetNameOverride"]
    sc = server.get("securityContext") or PROM_CHART_DEFAULT_SECURITY_CONTEXT
    sc = security({"securityContext": server.get("containerSecurityContext") or {}}, sc)
    chart_name = values.get("nameOverride") or "prometheus"
    ctx = PodContext(where, server.get("extraInitContainers"), [], pod_security=server.get("securityContext") or PROM_CHART_DEFAULT_SECURITY_CONTEXT,
                     data_dir=server.get("storagePath") or pv.get("mountPath", "/data"), data_volume=volume,
                     data_subpath=pv.get("subPath", ""), prometheus_name="%s-%s" % (chart_name, server.get("name", "server")),
                     prometheus_uid=sc.get("runAsUser", PROMETHEUS_IMAGE_UID), prometheus_gid=sc.get("runAsGroup", PROMETHEUS_IMAGE_GID),
                     fs_group=sc.get("fsGroup"))
    check_walfix_containers(ctx, options, report)


HELM_VALUES = {
    "kube-prometheus-stack-values.yaml": check_kube_prometheus_stack,
    "prometheus-chart-values.yaml": check_prometheus_chart,
}


def check_docs(path, docs, options, report):
    name = path.name
    if name in HELM_VALUES:
        if report.check(len(docs) == 1 and isinstance(docs[0], dict), "%s: one values document" % name):
            HELM_VALUES[name](name, docs[0], options, report)
        return
    report.check(bool(docs), "%s: has documents" % name)
    for i, doc in enumerate(docs):
        where = "%s#%d %s/%s" % (name, i + 1, (doc or {}).get("kind"), ((doc or {}).get("metadata") or {}).get("name"))
        if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
            report.fail("%s: not a Kubernetes object" % where)
            continue
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            validate_crd(where, doc, report)
            check_walfix_containers(operator_context(where, doc), options, report)
        elif doc["apiVersion"].startswith("monitoring.coreos.com/"):
            report.fail("%s: no vendored schema for %s %s" % (where, doc["apiVersion"], doc["kind"]))
        else:
            validate_core(where, doc, report)
            ctx = plain_context(where, doc)
            if ctx is not None:
                check_walfix_containers(ctx, options, report)


def load(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


# ---------------------------------------------------------------- self-test


def walfix_containers_in(docs):
    """Every walfix container dict in the documents, wherever it sits."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "name" in node and ("image" in node or "command" in node) and is_walfix(node):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(docs)
    return found


def typo_field(c):
    c["volumeMount"] = c.pop("volumeMounts", [])


def typo_unread_field(c):
    c["imagePulPolicy"] = c.pop("imagePullPolicy", "IfNotPresent")


def unknown_option(c):
    for key in ("args", "command"):
        argv = c.get(key) or []
        if "preflight" in argv:
            argv.insert(argv.index("preflight") + 2, "--no-such-option")
            return


def wrong_data_mount(c):
    for m in c.get("volumeMounts") or []:
        if m.get("mountPath") in ("/prometheus", "/data"):
            m["subPath"] = "wrong"


def init_preflight_beside_prometheus(c, docs):
    argv = walfix_argv(c) or []
    one_off = any(d.get("kind") == "Pod" for d in docs)
    return "preflight" in argv and "--" not in argv and not one_off and any(
        m.get("mountPath") in ("/prometheus", "/data") for m in c.get("volumeMounts") or [])


MUTATIONS = [("typo volumeMounts -> volumeMount", typo_field, lambda c, docs: True),
             ("typo imagePullPolicy -> imagePulPolicy (only the schema reads it)", typo_unread_field,
              lambda c, docs: "imagePullPolicy" in c),
             ("unknown preflight option", unknown_option, lambda c, docs: "preflight" in (walfix_argv(c) or [])),
             ("wrong subPath of the data mount", wrong_data_mount, init_preflight_beside_prometheus)]


def self_test(files, options, report):
    for path in files:
        for label, mutate, applies in MUTATIONS:
            docs = load(path)
            targets = [c for c in walfix_containers_in(docs) if applies(c, docs)]
            if not targets:
                continue
            mutate(targets[0])
            quiet = Report(quiet=True)
            check_docs(path, docs, options, quiet)
            report.check(bool(quiet.failures), "self-test %s: %s is caught" % (path.name, label),
                         "the checks passed with the mistake in")


def main():
    options = load_preflight_options()
    report = Report()
    print("walfix preflight options from docs/preflight.md: " + " ".join(sorted(options)))
    files = sorted(p for p in DEPLOY.glob("*.yaml"))
    for path in files:
        print("%s:" % path.relative_to(ROOT))
        check_docs(path, load(path), options, report)
    print("self-test (deliberate mistakes must fail):")
    self_test(files, options, report)
    print()
    if report.failures:
        print("FAILED:")
        for failure in report.failures:
            print("  " + failure)
    print("deploy/validate: %d passed, %d failed" % (len(report.ok), len(report.failures)))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
