"""The built-in API resources of Kubernetes 1.34 that kubesim serves, as discovery lists them.

Scope, short names, categories, verbs and subresources are those of a default kube-apiserver
1.34 (GA groups only: beta APIs are off by default). ``name_rule`` is the name validation the
real API server applies to the kind (`kubesim.names`). Everything here gets generic CRUD,
watch and patch from the store; kinds whose API-server behaviour matters to clients get it
elsewhere (CRDs in `crds`, APIService status in `admission`, ...).
"""

from __future__ import annotations

from .names import DNS1035, LABEL, PATH_SEGMENT, SUBDOMAIN
from .resources import STANDARD_VERBS, ResourceType

_NAMESPACE_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")

ALL = ("all",)
API_EXTENSIONS = ("api-extensions",)
_STATUS = ("status",)
_SCALE = ("status", "scale")


def _r(
    gv: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    sub: tuple[str, ...] = (),
    cats: tuple[str, ...] = (),
    *,
    verbs: tuple[str, ...] = STANDARD_VERBS,
    gen: bool = False,
    names: str = SUBDOMAIN,
    storage: str = "",
    preferred: bool = True,
) -> ResourceType:
    group, _, version = gv.rpartition("/")
    return ResourceType(
        group, version, plural, kind, namespaced, kind.lower(), short, verbs, cats, sub, gen,
        storage_version=storage, preferred=preferred, name_rule=names,
    )


_CORE = "v1"
_ADMISSION = "admissionregistration.k8s.io/v1"
_NET = "networking.k8s.io/v1"
_RBAC = "rbac.authorization.k8s.io/v1"
_STORAGE = "storage.k8s.io/v1"
_RESOURCE = "resource.k8s.io/v1"
_FLOW = "flowcontrol.apiserver.k8s.io/v1"

BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    # core/v1 (bindings are never stored: `bindings`; componentstatuses are seeded, read-only)
    _r(_CORE, "bindings", "Binding", verbs=("create",)),
    _r(_CORE, "componentstatuses", "ComponentStatus", False, ("cs",), verbs=("get", "list")),
    _r(_CORE, "configmaps", "ConfigMap", short=("cm",)),
    _r(_CORE, "endpoints", "Endpoints", short=("ep",)),
    _r(_CORE, "events", "Event", short=("ev",)),
    _r(_CORE, "limitranges", "LimitRange", short=("limits",)),
    _r(_CORE, "namespaces", "Namespace", False, ("ns",), _STATUS, verbs=_NAMESPACE_VERBS,
       names=LABEL),
    _r(_CORE, "nodes", "Node", False, ("no",), _STATUS),
    _r(_CORE, "persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",), sub=_STATUS),
    _r(_CORE, "persistentvolumes", "PersistentVolume", False, ("pv",), _STATUS),
    _r(_CORE, "pods", "Pod", short=("po",), sub=_STATUS, cats=ALL),
    _r(_CORE, "podtemplates", "PodTemplate"),
    _r(_CORE, "replicationcontrollers", "ReplicationController", short=("rc",), sub=_SCALE,
       cats=ALL, gen=True),
    _r(_CORE, "resourcequotas", "ResourceQuota", short=("quota",), sub=_STATUS),
    _r(_CORE, "secrets", "Secret"),
    _r(_CORE, "serviceaccounts", "ServiceAccount", short=("sa",)),
    _r(_CORE, "services", "Service", short=("svc",), sub=_STATUS, cats=ALL, names=DNS1035),
    # admissionregistration.k8s.io/v1: stored only (no webhook is called, no policy evaluated)
    _r(_ADMISSION, "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False,
       cats=API_EXTENSIONS, gen=True),
    _r(_ADMISSION, "validatingadmissionpolicies", "ValidatingAdmissionPolicy", False,
       sub=_STATUS, cats=API_EXTENSIONS, gen=True),
    _r(_ADMISSION, "validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding",
       False, cats=API_EXTENSIONS, gen=True),
    _r(_ADMISSION, "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False,
       cats=API_EXTENSIONS, gen=True),
    # apiextensions.k8s.io/v1 (custom resources: `crds`, `resources.resource_types_from_crd`)
    _r("apiextensions.k8s.io/v1", "customresourcedefinitions", "CustomResourceDefinition",
       False, ("crd", "crds"), _STATUS, API_EXTENSIONS, gen=True),
    # apiregistration.k8s.io/v1: stored, reported Available, never proxied
    _r("apiregistration.k8s.io/v1", "apiservices", "APIService", False, sub=_STATUS,
       cats=API_EXTENSIONS),
    # authentication.k8s.io/v1, authorization.k8s.io/v1: create-only reviews, never stored
    # (answered by `kubesim.reviews` before routing)
    _r("authentication.k8s.io/v1", "selfsubjectreviews", "SelfSubjectReview", False,
       verbs=("create",)),
    _r("authentication.k8s.io/v1", "tokenreviews", "TokenReview", False, verbs=("create",)),
    _r("authorization.k8s.io/v1", "localsubjectaccessreviews", "LocalSubjectAccessReview",
       verbs=("create",)),
    _r("authorization.k8s.io/v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False,
       verbs=("create",)),
    _r("authorization.k8s.io/v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False,
       verbs=("create",)),
    _r("authorization.k8s.io/v1", "subjectaccessreviews", "SubjectAccessReview", False,
       verbs=("create",)),
    # apps/v1
    _r("apps/v1", "controllerrevisions", "ControllerRevision"),
    _r("apps/v1", "daemonsets", "DaemonSet", short=("ds",), sub=_STATUS, cats=ALL, gen=True),
    _r("apps/v1", "deployments", "Deployment", short=("deploy",), sub=_SCALE, cats=ALL,
       gen=True),
    _r("apps/v1", "replicasets", "ReplicaSet", short=("rs",), sub=_SCALE, cats=ALL, gen=True),
    _r("apps/v1", "statefulsets", "StatefulSet", short=("sts",), sub=_SCALE, cats=ALL,
       gen=True),
    # autoscaling: v2 is stored and preferred; v1 serves the same objects
    _r("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
       short=("hpa",), sub=_STATUS, cats=ALL, gen=True, storage="v2"),
    _r("autoscaling/v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
       short=("hpa",), sub=_STATUS, cats=ALL, gen=True, storage="v2", preferred=False),
    # batch/v1
    _r("batch/v1", "cronjobs", "CronJob", short=("cj",), sub=_STATUS, cats=ALL, gen=True),
    _r("batch/v1", "jobs", "Job", sub=_STATUS, cats=ALL, gen=True),
    # certificates.k8s.io/v1
    _r("certificates.k8s.io/v1", "certificatesigningrequests", "CertificateSigningRequest",
       False, ("csr",), _STATUS),
    # coordination.k8s.io/v1
    _r("coordination.k8s.io/v1", "leases", "Lease"),
    # discovery.k8s.io/v1
    _r("discovery.k8s.io/v1", "endpointslices", "EndpointSlice"),
    # events.k8s.io/v1 (its own objects here; the real server shares them with core events)
    _r("events.k8s.io/v1", "events", "Event", short=("ev",)),
    # flowcontrol.apiserver.k8s.io/v1 (stored only: no priority and fairness)
    _r(_FLOW, "flowschemas", "FlowSchema", False, sub=_STATUS, gen=True),
    _r(_FLOW, "prioritylevelconfigurations", "PriorityLevelConfiguration", False, sub=_STATUS,
       gen=True),
    # networking.k8s.io/v1
    _r(_NET, "ingressclasses", "IngressClass", False),
    _r(_NET, "ingresses", "Ingress", short=("ing",), sub=_STATUS, gen=True),
    _r(_NET, "ipaddresses", "IPAddress", False, ("ip",)),
    _r(_NET, "networkpolicies", "NetworkPolicy", short=("netpol",), gen=True),
    _r(_NET, "servicecidrs", "ServiceCIDR", False, sub=_STATUS),
    # node.k8s.io/v1
    _r("node.k8s.io/v1", "runtimeclasses", "RuntimeClass", False),
    # policy/v1
    _r("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), sub=_STATUS,
       gen=True),
    # rbac.authorization.k8s.io/v1: names are path segments (``system:*`` is allowed)
    _r(_RBAC, "clusterrolebindings", "ClusterRoleBinding", False, names=PATH_SEGMENT),
    _r(_RBAC, "clusterroles", "ClusterRole", False, names=PATH_SEGMENT),
    _r(_RBAC, "rolebindings", "RoleBinding", names=PATH_SEGMENT),
    _r(_RBAC, "roles", "Role", names=PATH_SEGMENT),
    # resource.k8s.io/v1 (dynamic resource allocation, GA in 1.34; stored only)
    _r(_RESOURCE, "deviceclasses", "DeviceClass", False, gen=True),
    _r(_RESOURCE, "resourceclaims", "ResourceClaim", sub=_STATUS),
    _r(_RESOURCE, "resourceclaimtemplates", "ResourceClaimTemplate"),
    _r(_RESOURCE, "resourceslices", "ResourceSlice", False),
    # scheduling.k8s.io/v1
    _r("scheduling.k8s.io/v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    # storage.k8s.io/v1
    _r(_STORAGE, "csidrivers", "CSIDriver", False),
    _r(_STORAGE, "csinodes", "CSINode", False),
    _r(_STORAGE, "csistoragecapacities", "CSIStorageCapacity"),
    _r(_STORAGE, "storageclasses", "StorageClass", False, ("sc",)),
    _r(_STORAGE, "volumeattachments", "VolumeAttachment", False, sub=_STATUS),
    _r(_STORAGE, "volumeattributesclasses", "VolumeAttributesClass", False, ("vac",)),
)

#: The order of groups in ``/apis`` (kube-apiserver's group priority; the core group is /api).
GROUP_ORDER: tuple[str, ...] = (
    "apiregistration.k8s.io",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "resource.k8s.io",
)
