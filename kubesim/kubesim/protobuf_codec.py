"""Just enough protobuf: decode Kubernetes protobuf bodies, encode the OpenAPI v2 document.

Clients built on client-go send Secrets, ConfigMaps and Namespaces as
``application/vnd.kubernetes.protobuf``: the 4-byte magic ``k8s\\0`` then a
``runtime.Unknown`` message whose ``raw`` field holds the object. This module decodes those
kinds to the JSON form with a hand-written wire-format reader whose field numbers follow
``k8s.io/api/core/v1`` and ``k8s.io/apimachinery/pkg/apis/meta/v1`` (see the schema tables
below). ``/openapi/v2`` must answer a protobuf ``openapi_v2.Document`` (gnostic); we encode a
minimal one.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"
_WIRE_VARINT, _WIRE_64, _WIRE_LEN, _WIRE_32 = 0, 1, 2, 5


class ProtobufError(ValueError):
    """A body that is not the protobuf we understand."""


# ---------------------------------------------------------------- wire format


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ProtobufError("varint too long")


def fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) triples; length-delimited values are bytes."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        value: Any
        if wire == _WIRE_VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _WIRE_LEN:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ProtobufError("truncated field")
            value = buf[pos : pos + length]
            pos += length
        elif wire == _WIRE_64:
            value = buf[pos : pos + 8]
            pos += 8
        elif wire == _WIRE_32:
            value = buf[pos : pos + 4]
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((num, wire, value))
    return out


def _enc_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def enc_field(num: int, value: bytes | str | int | bool) -> bytes:
    """Encode one field: bytes/str as length-delimited, int/bool as varint."""
    if isinstance(value, bool | int):
        return _enc_varint(num << 3 | _WIRE_VARINT) + _enc_varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return _enc_varint(num << 3 | _WIRE_LEN) + _enc_varint(len(data)) + data


# ---------------------------------------------------------------- schema-driven decoding

# A field spec: (json name, kind) where kind is "string", "bytes" (base64 in JSON), "int",
# "bool" (``int*``/``bool*`` for Go pointers, kept even when zero), "int_or_string", "time",
# "map_quantity", "map_ss" (map<string,string>), "map_sb" (map<string,bytes>), "strings"
# (repeated string), or a nested schema (dict) optionally repeated via ("repeated", schema).
Schema = dict[int, tuple[str, Any]]

TIME: Schema = {1: ("seconds", "int"), 2: ("nanos", "int")}
OWNER_REFERENCE: Schema = {
    1: ("kind", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("controller", "bool*"),
    7: ("blockOwnerDeletion", "bool*"),
}
MANAGED_FIELDS_ENTRY: Schema = {
    1: ("manager", "string"),
    2: ("operation", "string"),
    3: ("apiVersion", "string"),
    4: ("time", "time"),
    6: ("fieldsType", "string"),
    8: ("subresource", "string"),
}
OBJECT_META: Schema = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    4: ("selfLink", "string"),
    5: ("uid", "string"),
    6: ("resourceVersion", "string"),
    7: ("generation", "int"),
    8: ("creationTimestamp", "time"),
    9: ("deletionTimestamp", "time"),
    10: ("deletionGracePeriodSeconds", "int*"),
    11: ("labels", "map_ss"),
    12: ("annotations", "map_ss"),
    13: ("ownerReferences", ("repeated", OWNER_REFERENCE)),
    14: ("finalizers", "strings"),
    17: ("managedFields", ("repeated", MANAGED_FIELDS_ENTRY)),
}
SECRET: Schema = {
    1: ("metadata", OBJECT_META),
    2: ("data", "map_sb"),
    3: ("type", "string"),
    4: ("stringData", "map_ss"),
    5: ("immutable", "bool*"),
}
CONFIG_MAP: Schema = {
    1: ("metadata", OBJECT_META),
    2: ("data", "map_ss"),
    3: ("binaryData", "map_sb"),
    4: ("immutable", "bool*"),
}
NAMESPACE_CONDITION: Schema = {
    1: ("type", "string"),
    2: ("status", "string"),
    4: ("lastTransitionTime", "time"),
    5: ("reason", "string"),
    6: ("message", "string"),
}
NAMESPACE: Schema = {
    1: ("metadata", OBJECT_META),
    2: ("spec", {1: ("finalizers", "strings")}),
    3: ("status", {1: ("phase", "string"), 2: ("conditions", ("repeated", NAMESPACE_CONDITION))}),
}
# --- workloads: the fields kubectl's imperative commands (create deployment/job/service, run ...)
# and typical typed clients set. Unknown fields are skipped.
INT_OR_STRING = "int_or_string"
QUANTITY: Schema = {1: ("string", "string")}
LABEL_SELECTOR_REQUIREMENT: Schema = {
    1: ("key", "string"), 2: ("operator", "string"), 3: ("values", "strings"),
}
LABEL_SELECTOR: Schema = {
    1: ("matchLabels", "map_ss"),
    2: ("matchExpressions", ("repeated", LABEL_SELECTOR_REQUIREMENT)),
}
CONTAINER_PORT: Schema = {
    1: ("name", "string"), 2: ("hostPort", "int"), 3: ("containerPort", "int"),
    4: ("protocol", "string"), 5: ("hostIP", "string"),
}
ENV_VAR: Schema = {1: ("name", "string"), 2: ("value", "string")}
VOLUME_MOUNT: Schema = {
    1: ("name", "string"), 2: ("readOnly", "bool"), 3: ("mountPath", "string"),
    4: ("subPath", "string"),
}
RESOURCE_REQUIREMENTS: Schema = {1: ("limits", "map_quantity"), 2: ("requests", "map_quantity")}
CONTAINER: Schema = {
    1: ("name", "string"),
    2: ("image", "string"),
    3: ("command", "strings"),
    4: ("args", "strings"),
    5: ("workingDir", "string"),
    6: ("ports", ("repeated", CONTAINER_PORT)),
    7: ("env", ("repeated", ENV_VAR)),
    8: ("resources", RESOURCE_REQUIREMENTS),
    9: ("volumeMounts", ("repeated", VOLUME_MOUNT)),
    13: ("terminationMessagePath", "string"),
    14: ("imagePullPolicy", "string"),
    16: ("stdin", "bool"),
    17: ("stdinOnce", "bool"),
    18: ("tty", "bool"),
    20: ("terminationMessagePolicy", "string"),
}
LOCAL_OBJECT_REFERENCE: Schema = {1: ("name", "string")}
POD_SPEC: Schema = {
    2: ("containers", ("repeated", CONTAINER)),
    3: ("restartPolicy", "string"),
    4: ("terminationGracePeriodSeconds", "int*"),
    5: ("activeDeadlineSeconds", "int*"),
    6: ("dnsPolicy", "string"),
    7: ("nodeSelector", "map_ss"),
    8: ("serviceAccountName", "string"),
    10: ("nodeName", "string"),
    11: ("hostNetwork", "bool"),
    15: ("imagePullSecrets", ("repeated", LOCAL_OBJECT_REFERENCE)),
    16: ("hostname", "string"),
    17: ("subdomain", "string"),
    19: ("schedulerName", "string"),
    20: ("initContainers", ("repeated", CONTAINER)),
    24: ("priorityClassName", "string"),
}
POD_TEMPLATE_SPEC: Schema = {1: ("metadata", OBJECT_META), 2: ("spec", POD_SPEC)}
POD: Schema = {1: ("metadata", OBJECT_META), 2: ("spec", POD_SPEC)}
DEPLOYMENT: Schema = {
    1: ("metadata", OBJECT_META),
    2: ("spec", {
        1: ("replicas", "int*"),
        2: ("selector", LABEL_SELECTOR),
        3: ("template", POD_TEMPLATE_SPEC),
        4: ("strategy", {1: ("type", "string"), 2: ("rollingUpdate", {
            1: ("maxUnavailable", INT_OR_STRING), 2: ("maxSurge", INT_OR_STRING)})}),
        5: ("minReadySeconds", "int"),
        6: ("revisionHistoryLimit", "int*"),
        7: ("paused", "bool"),
        9: ("progressDeadlineSeconds", "int*"),
    }),
}
SERVICE_PORT: Schema = {
    1: ("name", "string"), 2: ("protocol", "string"), 3: ("port", "int"),
    4: ("targetPort", INT_OR_STRING), 5: ("nodePort", "int"), 6: ("appProtocol", "string"),
}
SERVICE: Schema = {
    1: ("metadata", OBJECT_META),
    2: ("spec", {
        1: ("ports", ("repeated", SERVICE_PORT)),
        2: ("selector", "map_ss"),
        3: ("clusterIP", "string"),
        4: ("type", "string"),
        5: ("externalIPs", "strings"),
        7: ("sessionAffinity", "string"),
        10: ("externalName", "string"),
    }),
}
JOB_SPEC: Schema = {
    1: ("parallelism", "int*"),
    2: ("completions", "int*"),
    3: ("activeDeadlineSeconds", "int*"),
    4: ("selector", LABEL_SELECTOR),
    6: ("template", POD_TEMPLATE_SPEC),
    7: ("backoffLimit", "int*"),
    8: ("ttlSecondsAfterFinished", "int*"),
    9: ("completionMode", "string"),
    10: ("suspend", "bool*"),
}
JOB: Schema = {1: ("metadata", OBJECT_META), 2: ("spec", JOB_SPEC)}
CRON_JOB: Schema = {
    1: ("metadata", OBJECT_META),
    2: ("spec", {
        1: ("schedule", "string"),
        2: ("startingDeadlineSeconds", "int*"),
        3: ("concurrencyPolicy", "string"),
        4: ("suspend", "bool*"),
        5: ("jobTemplate", {1: ("metadata", OBJECT_META), 2: ("spec", JOB_SPEC)}),
        6: ("successfulJobsHistoryLimit", "int*"),
        7: ("failedJobsHistoryLimit", "int*"),
        8: ("timeZone", "string"),
    }),
}
SERVICE_ACCOUNT: Schema = {
    1: ("metadata", OBJECT_META),
    3: ("imagePullSecrets", ("repeated", LOCAL_OBJECT_REFERENCE)),
    4: ("automountServiceAccountToken", "bool*"),
}
POLICY_RULE: Schema = {
    1: ("verbs", "strings"), 2: ("apiGroups", "strings"), 3: ("resources", "strings"),
    4: ("resourceNames", "strings"), 5: ("nonResourceURLs", "strings"),
}
ROLE: Schema = {1: ("metadata", OBJECT_META), 2: ("rules", ("repeated", POLICY_RULE))}
SUBJECT: Schema = {
    1: ("kind", "string"), 2: ("apiGroup", "string"), 3: ("name", "string"),
    4: ("namespace", "string"),
}
ROLE_BINDING: Schema = {
    1: ("metadata", OBJECT_META),
    2: ("subjects", ("repeated", SUBJECT)),
    3: ("roleRef", {1: ("apiGroup", "string"), 2: ("kind", "string"), 3: ("name", "string")}),
}
DELETE_OPTIONS: Schema = {
    1: ("gracePeriodSeconds", "int*"),
    2: ("preconditions", {1: ("uid", "string"), 2: ("resourceVersion", "string")}),
    3: ("orphanDependents", "bool*"),
    4: ("propagationPolicy", "string"),
    5: ("dryRun", "strings"),
}
RESOURCE_ATTRIBUTES: Schema = {
    1: ("namespace", "string"), 2: ("verb", "string"), 3: ("group", "string"),
    4: ("version", "string"), 5: ("resource", "string"), 6: ("subresource", "string"),
    7: ("name", "string"),
}
NON_RESOURCE_ATTRIBUTES: Schema = {1: ("path", "string"), 2: ("verb", "string")}
SELF_SUBJECT_ACCESS_REVIEW: Schema = {
    1: ("metadata", OBJECT_META),
    2: ("spec", {1: ("resourceAttributes", RESOURCE_ATTRIBUTES),
                 2: ("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES)}),
}
SUBJECT_ACCESS_REVIEW: Schema = {  # also LocalSubjectAccessReview (spec.extra is not decoded)
    1: ("metadata", OBJECT_META),
    2: ("spec", {1: ("resourceAttributes", RESOURCE_ATTRIBUTES),
                 2: ("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES),
                 3: ("user", "string"), 4: ("groups", "strings"), 6: ("uid", "string")}),
}
SELF_SUBJECT_RULES_REVIEW: Schema = {
    1: ("metadata", OBJECT_META), 2: ("spec", {1: ("namespace", "string")}),
}
#: Kinds we can decode, by (apiVersion, kind).
SCHEMAS: dict[tuple[str, str], Schema] = {
    ("v1", "Secret"): SECRET,
    ("v1", "ConfigMap"): CONFIG_MAP,
    ("v1", "Namespace"): NAMESPACE,
    ("v1", "DeleteOptions"): DELETE_OPTIONS,
    ("v1", "Pod"): POD,
    ("v1", "Service"): SERVICE,
    ("v1", "ServiceAccount"): SERVICE_ACCOUNT,
    ("apps/v1", "Deployment"): DEPLOYMENT,
    ("batch/v1", "Job"): JOB,
    ("batch/v1", "CronJob"): CRON_JOB,
    ("rbac.authorization.k8s.io/v1", "Role"): ROLE,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ROLE,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ROLE_BINDING,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ROLE_BINDING,
    ("meta.k8s.io/v1", "DeleteOptions"): DELETE_OPTIONS,
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): SELF_SUBJECT_ACCESS_REVIEW,
    ("authorization.k8s.io/v1", "SubjectAccessReview"): SUBJECT_ACCESS_REVIEW,
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): SUBJECT_ACCESS_REVIEW,
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): SELF_SUBJECT_RULES_REVIEW,
    ("authentication.k8s.io/v1", "SelfSubjectReview"): {1: ("metadata", OBJECT_META)},
    ("authentication.k8s.io/v1", "TokenReview"): {
        1: ("metadata", OBJECT_META),
        2: ("spec", {1: ("token", "string"), 2: ("audiences", "strings")})},
}


def _time(buf: bytes) -> str | None:
    seconds = 0
    for num, _, value in fields(buf):
        if num == 1:
            seconds = _signed(value)
    if seconds <= 0:
        return None  # Go's zero time: omitted in JSON
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _map_entry(buf: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for num, _, v in fields(buf):
        if num == 1:
            key = v.decode()
        elif num == 2:
            value = v
    return key, value


def _int_or_string(buf: bytes) -> int | str:
    kind, int_val, str_val = 0, 0, ""
    for num, _, value in fields(buf):
        if num == 1:
            kind = value
        elif num == 2:
            int_val = _signed(value)
        elif num == 3:
            str_val = value.decode()
    return str_val if kind == 1 else int_val


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def decode_message(buf: bytes, schema: Schema) -> dict[str, Any]:
    """Decode a message to its JSON form following ``schema``; unknown fields are skipped.

    Like Go's ``omitempty``, empty strings, zero integers, false and zero times are left out --
    except for pointer fields (kinds ``int*``/``bool*``), which are on the wire only when set.
    """
    out: dict[str, Any] = {}
    for num, wire, value in fields(buf):
        spec = schema.get(num)
        if spec is None:
            continue
        name, kind = spec
        if kind == "string":
            if value:
                out[name] = value.decode()
        elif kind == "bytes":
            out[name] = base64.b64encode(value).decode()
        elif kind in ("int", "int*"):
            number = _signed(value) if wire == _WIRE_VARINT else value
            if number or kind == "int*":
                out[name] = number
        elif kind in ("bool", "bool*"):
            if value or kind == "bool*":
                out[name] = bool(value)
        elif kind == "time":
            moment = _time(value)
            if moment is not None:
                out[name] = moment
        elif kind == "map_ss":
            k, v = _map_entry(value)
            out.setdefault(name, {})[k] = v.decode()
        elif kind == "map_sb":
            k, v = _map_entry(value)
            out.setdefault(name, {})[k] = base64.b64encode(v).decode()
        elif kind == "strings":
            out.setdefault(name, []).append(value.decode())
        elif kind == INT_OR_STRING:
            out[name] = _int_or_string(value)
        elif kind == "map_quantity":
            k, v = _map_entry(value)
            out.setdefault(name, {})[k] = decode_message(v, QUANTITY).get("string", "")
        elif isinstance(kind, tuple) and kind[0] == "repeated":
            out.setdefault(name, []).append(decode_message(value, kind[1]))
        elif isinstance(kind, dict):
            out[name] = decode_message(value, kind)
    return out


def decode_k8s_protobuf(body: bytes) -> dict[str, Any]:
    """The JSON form of a ``k8s\\0``-framed protobuf object (Secret, ConfigMap, Namespace)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    api_version = kind = ""
    raw = b""
    content_encoding = ""
    for num, _, value in fields(body[len(MAGIC) :]):
        if num == 1:
            for tnum, _, tval in fields(value):
                if tnum == 1:
                    api_version = tval.decode()
                elif tnum == 2:
                    kind = tval.decode()
        elif num == 2:
            raw = value
        elif num == 3:
            content_encoding = value.decode()
    if content_encoding:
        raise ProtobufError(f"unsupported content encoding {content_encoding!r}")
    schema = SCHEMAS.get((api_version, kind))
    if schema is None:
        raise ProtobufError(f"protobuf bodies of {api_version}/{kind} are not supported")
    obj = decode_message(raw, schema)
    return {"apiVersion": api_version, "kind": kind, **obj}


# ---------------------------------------------------------------- encoding (tests, OpenAPI)


def encode_message(obj: dict[str, Any], schema: Schema) -> bytes:
    """Inverse of `decode_message` (used by tests to build bodies as client-go does)."""
    out = bytearray()
    by_name = {name: (num, kind) for num, (name, kind) in schema.items()}
    for name, value in obj.items():
        if name not in by_name or value is None:
            continue
        num, kind = by_name[name]
        if kind == "string":
            out += enc_field(num, str(value))
        elif kind == "bytes":
            out += enc_field(num, base64.b64decode(value))
        elif kind in ("int", "int*"):
            out += enc_field(num, int(value))
        elif kind in ("bool", "bool*"):
            out += enc_field(num, bool(value))
        elif kind == "time":
            out += enc_field(num, _enc_time(str(value)))
        elif kind in ("map_ss", "map_sb"):
            for k, v in sorted(value.items()):
                data = base64.b64decode(v) if kind == "map_sb" else str(v).encode()
                out += enc_field(num, enc_field(1, k) + enc_field(2, data))
        elif kind == "strings":
            for item in value:
                out += enc_field(num, str(item))
        elif isinstance(kind, tuple):
            for item in value:
                out += enc_field(num, encode_message(item, kind[1]))
        elif isinstance(kind, dict):
            out += enc_field(num, encode_message(value, kind))
    return bytes(out)


def _enc_time(text: str) -> bytes:
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return enc_field(1, int(moment.timestamp()))


def encode_k8s_protobuf(obj: dict[str, Any]) -> bytes:
    """Frame a Secret/ConfigMap/Namespace the way client-go does (for tests)."""
    api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
    schema = SCHEMAS[(api_version, kind)]
    raw = encode_message({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}, schema)
    type_meta = enc_field(1, api_version) + enc_field(2, kind)
    return MAGIC + enc_field(1, type_meta) + enc_field(2, raw)


def openapi_v2_document(title: str = "Kubernetes", version: str = "v1.34.0") -> bytes:
    """A minimal gnostic ``openapi_v2.Document``: swagger (1) and info (2: title 1, version 2)."""
    info = enc_field(1, title) + enc_field(2, version)
    return enc_field(1, "2.0") + enc_field(2, info)

