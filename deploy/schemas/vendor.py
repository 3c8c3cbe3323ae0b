#!/usr/bin/env python3
"""Turn a prometheus-operator CRD (YAML on stdin) into the JSON schema vendored here.

    git -C OPERATOR_GIT_DIR show v0.93.0:example/prometheus-operator-crd/monitoring.coreos.com_prometheuses.yaml \
      | python3 deploy/schemas/vendor.py v0.93.0 COMMIT example/prometheus-operator-crd/monitoring.coreos.com_prometheuses.yaml \
      > deploy/schemas/monitoring.coreos.com_prometheuses.v1.json

Keeps the openAPIV3Schema of the one served storage version unchanged except that every
`description` keyword is dropped (size: the descriptions are most of the bytes). Nothing else is
touched: strictness (no unknown fields) is added at validation time by deploy/validate.py.
"""
import hashlib
import json
import sys

import yaml

SUBSCHEMA_MAPS = ("properties", "patternProperties", "definitions", "$defs")
SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "additionalItems")


def strip(schema):
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "description":
            continue
        if key in SUBSCHEMA_MAPS:
            out[key] = {name: strip(sub) for name, sub in value.items()}
        elif key in SUBSCHEMA_LISTS:
            out[key] = [strip(sub) for sub in value]
        elif key in SUBSCHEMA_ONE:
            out[key] = [strip(s) for s in value] if isinstance(value, list) else strip(value)
        else:
            out[key] = value
    return out


def main():
    tag, commit, path = sys.argv[1:4]
    raw = sys.stdin.buffer.read()
    crd = yaml.safe_load(raw)
    versions = [v for v in crd["spec"]["versions"] if v.get("served") and v.get("storage")]
    if len(versions) != 1:
        sys.exit("expected exactly one served storage version")
    version = versions[0]
    schema = strip(version["schema"]["openAPIV3Schema"])
    doc = {
        "$comment": (
            "openAPIV3Schema of %s %s/%s from github.com/prometheus-operator/prometheus-operator "
            "%s (commit %s), file %s (sha256 %s); description keywords removed by deploy/schemas/vendor.py"
            % (crd["spec"]["names"]["kind"], crd["spec"]["group"], version["name"], tag, commit, path,
               hashlib.sha256(raw).hexdigest())
        ),
        "x-walfix-origin": {
            "repository": "https://github.com/prometheus-operator/prometheus-operator",
            "tag": tag,
            "commit": commit,
            "path": path,
            "sha256": hashlib.sha256(raw).hexdigest(),
            "group": crd["spec"]["group"],
            "version": version["name"],
            "kind": crd["spec"]["names"]["kind"],
        },
    }
    doc.update(schema)
    json.dump(doc, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
