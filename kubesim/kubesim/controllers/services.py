"""Services and Endpoints: cluster IPs, node ports, load-balancer addresses, ready addresses.

Cluster IPs come from 10.96.0.0/12 (10.96.0.1 and .10 stay reserved, as for the
``kubernetes`` and DNS Services of a real cluster), node ports from 30000-32767 and
load-balancer ingress addresses from 172.18.255.0/24. Headless (``clusterIP: None``) and
ExternalName Services get none. Endpoints list the ready (and not-ready) Pods a selector picks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..objects import Obj, clone, now_rfc3339
from ..store import Event
from .base import Controller, Key, Router, selecting, self_key
from .common import (
    annotations_of,
    is_deleting,
    labels_of,
    name_of,
    namespace_of,
    spec_of,
    status_of,
    uid_of,
)
from .pods import is_pod_active, pod_state

TRIGGER_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
HEADLESS_LABEL = "service.kubernetes.io/headless"


def _svc_key(svc: Mapping[str, Any]) -> str:
    return f"{namespace_of(svc)}/{name_of(svc)}"


def _selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if not selector:
        return False
    return all(labels.get(str(k)) == str(v) for k, v in selector.items())


class ServiceController(Controller):
    """Allocates cluster IPs and node ports, and reports load-balancer status."""

    name = "service"

    def routes(self) -> dict[tuple[str, str], Router]:
        def route(event: Event) -> list[Key]:
            if event.type == "DELETED":
                self._release(event.object)
                return []
            return [(event.namespace, event.name)]

        return {self.ctx.rt["Service"].key: route}

    def on_start(self) -> None:
        for svc in self.ctx.iter_stored("Service"):
            spec = spec_of(svc)
            owner = _svc_key(svc)
            for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
                if ip and ip != "None":
                    self.ctx.service_ips.mark(str(ip), owner)
            for port in spec.get("ports") or []:
                if isinstance(port, dict) and port.get("nodePort"):
                    self.ctx.node_ports.mark(int(port["nodePort"]), owner)
            for ing in (status_of(svc).get("loadBalancer") or {}).get("ingress") or []:
                if isinstance(ing, dict) and ing.get("ip"):
                    self.ctx.lb_ips.mark(str(ing["ip"]), owner)

    def resync(self) -> Iterable[Key]:
        return [(namespace_of(s), name_of(s)) for s in self.ctx.iter_stored("Service")]

    def _release(self, svc: Mapping[str, Any]) -> None:
        owner = _svc_key(svc)
        spec = spec_of(svc)
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            if ip and ip != "None":
                self.ctx.service_ips.release(str(ip), owner)
        self.ctx.node_ports.release_owner(owner)
        for ing in (status_of(svc).get("loadBalancer") or {}).get("ingress") or []:
            if isinstance(ing, dict) and ing.get("ip"):
                self.ctx.lb_ips.release(str(ing["ip"]), owner)

    def reconcile(self, key: Key) -> None:
        ns, name = key
        svc = self.ctx.get("Service", ns, name)
        if svc is None or is_deleting(svc):
            return
        spec = self._desired_spec(svc)
        if spec != spec_of(svc):
            def put(current: Obj) -> None:
                current["spec"] = spec

            svc = self.ctx.modify("Service", ns, name, put)
            if svc is None:
                return
        status: dict[str, Any] = {"loadBalancer": {}}
        if spec.get("type") == "LoadBalancer":
            old = (status_of(svc).get("loadBalancer") or {}).get("ingress") or []
            ip = next((str(i["ip"]) for i in old if isinstance(i, dict) and i.get("ip")), None)
            if ip is None:
                ip = self.ctx.lb_ips.allocate(_svc_key(svc))
            status["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"}]}
        self.ctx.set_status("Service", svc, status)

    def _desired_spec(self, svc: Obj) -> dict[str, Any]:
        spec = clone(spec_of(svc))
        owner = _svc_key(svc)
        stype = spec.setdefault("type", "ClusterIP")
        if stype == "ExternalName":
            return spec
        ip = spec.get("clusterIP")
        if not ip:
            ip = self.ctx.service_ips.allocate(owner)
            spec["clusterIP"] = ip
        elif ip != "None":
            self.ctx.service_ips.mark(str(ip), owner)
        if not spec.get("clusterIPs") or spec["clusterIPs"][0] != ip:
            spec["clusterIPs"] = [ip]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if stype in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
            for port in spec.get("ports") or []:
                if not isinstance(port, dict):
                    continue
                if port.get("nodePort"):
                    self.ctx.node_ports.mark(int(port["nodePort"]), owner)
                else:
                    port["nodePort"] = self.ctx.node_ports.allocate(
                        owner, f"{owner}/{port.get('name', '')}/{port.get('port')}"
                    )
        if stype == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        return spec


class EndpointsController(Controller):
    """Keeps an Endpoints object per Service with a selector, listing the Pods it selects."""

    name = "endpoints"

    def routes(self) -> dict[tuple[str, str], Router]:
        def matcher(svc: Obj) -> Callable[[Mapping[str, str]], bool]:
            return functools.partial(_selector_matches, spec_of(svc).get("selector"))

        return {
            self.ctx.rt["Service"].key: self_key,
            self.ctx.rt["Endpoints"].key: self_key,
            self.ctx.rt["Pod"].key: selecting(self.ctx, "Service", matcher),
        }

    def resync(self) -> Iterable[Key]:
        return [(namespace_of(s), name_of(s)) for s in self.ctx.iter_stored("Service")]

    def reconcile(self, key: Key) -> None:
        ns, name = key
        svc = self.ctx.get("Service", ns, name)
        current = self.ctx.get("Endpoints", ns, name)
        spec = spec_of(svc) if svc is not None else {}
        selector = spec.get("selector")
        if svc is None or is_deleting(svc) or not selector or spec.get("type") == "ExternalName":
            # Endpoints we made for a Service that is gone (or lost its selector) go too;
            # Endpoints a user made for a selector-less Service stay.
            if current is not None and TRIGGER_ANNOTATION in annotations_of(current) and (
                svc is None or not selector
            ):
                self.ctx.delete("Endpoints", ns, name)
            return
        subsets = self._subsets(svc, selector)
        labels = labels_of(svc)
        if spec.get("clusterIP") == "None":
            labels[HEADLESS_LABEL] = ""
        meta: dict[str, Any] = {"name": name, "namespace": ns}
        if labels:
            meta["labels"] = labels
        if current is not None and current.get("subsets", []) == subsets and labels_of(
            current
        ) == labels and TRIGGER_ANNOTATION in annotations_of(current):
            return
        if current is None:
            ep: Obj = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {**meta, "annotations": {TRIGGER_ANNOTATION: now_rfc3339()}},
            }
            if subsets:
                ep["subsets"] = subsets
            self.ctx.create("Endpoints", ep)
            return

        def put(obj: Obj) -> None:
            if labels:
                obj["metadata"]["labels"] = labels
            else:
                obj["metadata"].pop("labels", None)
            obj["metadata"].setdefault("annotations", {})[TRIGGER_ANNOTATION] = now_rfc3339()
            if subsets:
                obj["subsets"] = subsets
            else:
                obj.pop("subsets", None)

        self.ctx.modify("Endpoints", ns, name, put)

    def _subsets(self, svc: Obj, selector: Mapping[str, Any]) -> list[dict[str, Any]]:
        spec = spec_of(svc)
        publish_all = bool(spec.get("publishNotReadyAddresses"))
        ready: list[dict[str, Any]] = []
        not_ready: list[dict[str, Any]] = []
        first_pod: Obj | None = None
        for pod in self.ctx.iter_stored("Pod", namespace_of(svc)):
            if not _selector_matches(selector, labels_of(pod)) or not is_pod_active(pod):
                continue
            ip = status_of(pod).get("podIP")
            if not ip:
                continue
            first_pod = first_pod or pod
            addr: dict[str, Any] = {"ip": ip}
            pspec = spec_of(pod)
            if pspec.get("hostname") and pspec.get("subdomain") == name_of(svc):
                addr["hostname"] = pspec["hostname"]
            addr["nodeName"] = pspec.get("nodeName", self.ctx.node_name)
            addr["targetRef"] = {"kind": "Pod", "namespace": namespace_of(pod),
                                 "name": name_of(pod), "uid": uid_of(pod)}
            (ready if publish_all or pod_state(pod) == "ready" else not_ready).append(addr)
        if not ready and not not_ready:
            return []
        ports = []
        for port in spec.get("ports") or []:
            if not isinstance(port, dict):
                continue
            target = port.get("targetPort", port.get("port"))
            number = _resolve_port(first_pod, target) if first_pod is not None else None
            if number is None:
                continue
            entry: dict[str, Any] = {"port": number, "protocol": port.get("protocol", "TCP")}
            if port.get("name"):
                entry = {"name": port["name"], **entry}
            if port.get("appProtocol"):
                entry["appProtocol"] = port["appProtocol"]
            ports.append(entry)
        subset: dict[str, Any] = {}
        if ready:
            subset["addresses"] = sorted(ready, key=lambda a: str(a["ip"]))
        if not_ready:
            subset["notReadyAddresses"] = sorted(not_ready, key=lambda a: str(a["ip"]))
        if ports:
            subset["ports"] = ports
        return [subset]


def _resolve_port(pod: Mapping[str, Any], target: Any) -> int | None:
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    text = str(target)
    if text.isdigit():
        return int(text)
    for container in spec_of(pod).get("containers") or []:
        for port in (container or {}).get("ports") or []:
            if isinstance(port, dict) and port.get("name") == text and port.get("containerPort"):
                return int(port["containerPort"])
    return None
