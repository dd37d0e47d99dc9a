"""The controller interface, the context controllers share, and the simulated IP address pools."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import AlreadyExists, Conflict, NotFound
from ..objects import Obj
from ..resources import ResourceType
from ..store import Event, Store
from .common import (
    NODE_IP,
    NODE_NAME,
    controller_ref,
    fnv32a,
    is_controlled_by,
    labels_of,
    name_of,
    namespace_of,
)

if TYPE_CHECKING:
    from .manager import ControllerManager

log = logging.getLogger("kubesim.controllers")

#: ``(namespace, name)`` of an object a controller reconciles ("" namespace: cluster-scoped).
Key = tuple[str, str]
#: Maps an event to the keys one controller must reconcile.
Router = Callable[[Event], Iterable[Key]]
#: A route key that receives the events of every resource.
ANY_RESOURCE: tuple[str, str] = ("*", "*")

#: Resource references used by the controllers (resolved once per manager).
RESOURCES: dict[str, str] = {
    "Pod": "pods",
    "Service": "services",
    "Endpoints": "endpoints",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "PersistentVolume": "persistentvolumes",
    "Node": "nodes",
    "Namespace": "namespaces",
    "Deployment": "deployments.apps",
    "ReplicaSet": "replicasets.apps",
    "StatefulSet": "statefulsets.apps",
    "DaemonSet": "daemonsets.apps",
    "ControllerRevision": "controllerrevisions.apps",
    "Job": "jobs.batch",
    "PodDisruptionBudget": "poddisruptionbudgets.policy",
}


class AddressPool:
    """Deterministic address allocation from a CIDR: a hash of the owner's key, then probing.

    The same ``namespace/name`` gets the same address while it is free, so runs are
    reproducible regardless of the order objects are created in.
    """

    def __init__(self, cidr: str, reserved: Iterable[str] = ()) -> None:
        self.network = ipaddress.ip_network(cidr)
        self._base = int(self.network.network_address)
        self._size = self.network.num_addresses
        self._used: dict[str, str] = {}  # ip -> owner key
        self._by_owner: dict[str, str] = {}  # owner key -> ip
        self._reserved = set(reserved)
        self._reserved.add(str(self.network.network_address))
        self._reserved.add(str(self.network.broadcast_address))

    def contains(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.network
        except ValueError:
            return False

    def allocate(self, owner: str) -> str:
        """The owner's address: the one it has, else a free one (hash of ``owner``, probing)."""
        ip = self._by_owner.get(owner)
        if ip is not None:
            return ip
        start = fnv32a(owner.encode()) % self._size
        for step in range(self._size):
            ip = str(ipaddress.ip_address(self._base + (start + step) % self._size))
            if ip not in self._used and ip not in self._reserved:
                self._used[ip] = owner
                self._by_owner[owner] = ip
                return ip
        raise RuntimeError(f"address pool {self.network} is exhausted")

    def mark(self, ip: str, owner: str) -> None:
        """Record an address already in use (found in the store, or chosen by a user)."""
        if self.contains(ip) and ip not in self._used:
            self._used[ip] = owner
            self._by_owner.setdefault(owner, ip)

    def release(self, ip: str, owner: str | None = None) -> None:
        who = self._used.get(ip)
        if who is not None and (owner is None or who == owner):
            del self._used[ip]
            if self._by_owner.get(who) == ip:
                del self._by_owner[who]

    def owner(self, ip: str) -> str | None:
        return self._used.get(ip)


class PortPool:
    """NodePort allocation (30000-32767), deterministic like `AddressPool`."""

    def __init__(self, low: int = 30000, high: int = 32767) -> None:
        self.low, self.high = low, high
        self._used: dict[int, str] = {}

    def allocate(self, owner: str, seed: str) -> int:
        """A free port for ``owner`` (released together by `release_owner`)."""
        size = self.high - self.low + 1
        start = fnv32a(seed.encode()) % size
        for step in range(size):
            port = self.low + (start + step) % size
            if port not in self._used:
                self._used[port] = owner
                return port
        raise RuntimeError("node port range is exhausted")

    def mark(self, port: int, owner: str) -> None:
        self._used.setdefault(port, owner)

    def release_owner(self, owner: str) -> None:
        for port in [p for p, o in self._used.items() if o == owner]:
            del self._used[port]


class Context:
    """What every controller gets: the store, resolved resource types and the address pools."""

    def __init__(
        self, store: Store, manager: ControllerManager, node_name: str = NODE_NAME
    ) -> None:
        self.store = store
        self.manager = manager
        self.node_name = node_name
        self.node_ip = NODE_IP
        self.rt: dict[str, ResourceType] = {k: store.resolve(v) for k, v in RESOURCES.items()}
        self.service_ips = AddressPool("10.96.0.0/12", reserved=("10.96.0.1", "10.96.0.10"))
        self.pod_ips = AddressPool("10.244.0.0/16", reserved=("10.244.0.1",))
        self.lb_ips = AddressPool("172.18.255.0/24")
        self.node_ports = PortPool()

    # ------------------------------------------------------------------ store shortcuts

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.store.try_get(self.rt[kind], name, namespace or None)

    def iter_stored(self, kind: str, namespace: str | None = None) -> Iterator[Obj]:
        """Committed objects without copying: read them, never mutate them."""
        items, _ = self.store.list_stored(self.rt[kind], namespace)
        for stored in items:
            yield stored.obj

    def owned(self, kind: str, owner_uid: str) -> list[Obj]:
        """Objects of ``kind`` whose controller reference is ``owner_uid`` (sorted by name)."""
        out = []
        for rt, obj in self.store.dependents(owner_uid):
            if rt.kind == kind and rt.group == self.rt[kind].group and is_controlled_by(
                obj, owner_uid
            ):
                out.append(obj)
        out.sort(key=name_of)
        return out

    def create(self, kind: str, obj: Obj) -> Obj:
        return self.store.create(self.rt[kind], obj, namespace_of(obj) or None)

    def delete(self, kind: str, namespace: str, name: str, policy: str = "Background") -> None:
        with contextlib.suppress(NotFound):
            self.store.delete(self.rt[kind], name, namespace or None, propagation_policy=policy)

    def modify(
        self,
        kind: str,
        namespace: str,
        name: str,
        fn: Callable[[Obj], Any],
        *,
        status: bool = False,
    ) -> Obj | None:
        """Read-modify-write; None if the object is gone."""
        try:
            return self.store.modify(self.rt[kind], name, fn, namespace or None, status=status)
        except NotFound:
            return None

    def set_status(self, kind: str, obj: Obj, status: dict[str, Any]) -> None:
        """Write ``status`` unless the stored object already has exactly that status."""
        if obj.get("status") == status:
            return

        def put(current: Obj) -> None:
            current["status"] = status

        self.modify(kind, namespace_of(obj), name_of(obj), put, status=True)

    def requeue_after(self, controller: str, key: Key, delay: float) -> None:
        self.manager.requeue_after(controller, key, delay)


class Controller:
    """One simulated controller. Subclasses set `name` and implement `routes` and `reconcile`.

    ``reconcile`` is level-based: it reads the current state from the store and writes only
    what differs, so running it twice in a row writes nothing the second time.
    """

    name: ClassVar[str] = ""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.store

    def routes(self) -> dict[tuple[str, str], Router]:
        """For each resource key ``(group, plural)``, which of our keys an event concerns."""
        return {}

    def resync(self) -> Iterable[Key]:
        """Keys to reconcile when the controllers start (or after a snapshot restore)."""
        return ()

    def reconcile(self, key: Key) -> None:
        raise NotImplementedError

    def on_start(self) -> None:
        """Rebuild in-memory state (address pools) from the store before the first resync."""


# ---------------------------------------------------------------------- common routers


def self_key(event: Event) -> Iterable[Key]:
    """The object of the event itself."""
    return [(event.namespace, event.name)]


def owner_key(kind: str) -> Router:
    """The controlling owner of the event's object, if it is a ``kind``."""

    def route(event: Event) -> Iterable[Key]:
        ref = controller_ref(event.object)
        if ref is None and event.old_object is not None:
            ref = controller_ref(event.old_object)
        if ref is not None and ref.get("kind") == kind:
            return [(event.namespace, str(ref.get("name", "")))]
        return []

    return route


def selecting(
    ctx: Context,
    kind: str,
    matcher: Callable[[Obj], Callable[[Mapping[str, str]], bool] | None],
) -> Router:
    """The ``kind`` objects in a Pod event's namespace whose selector picks the Pod (old or new).

    ``matcher(obj)`` gives the predicate on pod labels of ``obj``'s selector, or None when
    ``obj`` selects nothing.
    """

    def route(event: Event) -> Iterable[Key]:
        labels = [labels_of(event.object)]
        if event.old_object is not None:
            labels.append(labels_of(event.old_object))
        out = []
        for obj in ctx.iter_stored(kind, event.namespace):
            matches = matcher(obj)
            if matches is not None and any(matches(lab) for lab in labels):
                out.append((event.namespace, name_of(obj)))
        return out

    return route


def retriable(exc: BaseException) -> bool:
    """Errors that a later reconcile resolves by itself (races with other writers)."""
    return isinstance(exc, Conflict | AlreadyExists | NotFound)
