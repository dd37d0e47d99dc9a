"""Jobs: their Pods run to completion at once (or after ``kubesim.io/ready-after``).

A Job gets ``completions`` Succeeded Pods and the ``SuccessCriteriaMet`` and ``Complete``
conditions (what helm's hook watcher and ``--wait-for-jobs`` look for). With
``kubesim.io/fail: "true"`` its Pods fail ``backoffLimit + 1`` times and it gets ``Failed``;
with ``kubesim.io/never-ready: "true"`` its Pods keep running and it never finishes.
``ttlSecondsAfterFinished`` deletes finished Jobs, as the TTL controller does.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ..objects import Obj, now_rfc3339
from .base import Controller, Key, Router, owner_key, self_key
from .common import (
    FAIL_ANNOTATION,
    NEVER_READY_ANNOTATION,
    as_int,
    condition,
    condition_true,
    flag,
    get_condition,
    is_deleting,
    merge_conditions,
    name_of,
    namespace_of,
    ready_after,
    spec_of,
    status_of,
    uid_of,
)
from .pods import (
    PodState,
    build_pod,
    create_pod,
    free_pod_name,
    is_pod_active,
    pod_state,
    set_pod_state,
)

_MAX_PODS = 50


def _job_condition(ctype: str, reason: str, message: str) -> dict[str, Any]:
    return condition(ctype, "True", reason, message, probe_time=True)


def _parse_time(text: object) -> float | None:
    if not text:
        return None
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


class JobController(Controller):
    """Runs Job Pods to completion and reports Job status and conditions."""

    name = "job"

    def routes(self) -> dict[tuple[str, str], Router]:
        return {
            self.ctx.rt["Job"].key: self_key,
            self.ctx.rt["Pod"].key: owner_key("Job"),
        }

    def resync(self) -> Iterable[Key]:
        return [(namespace_of(o), name_of(o)) for o in self.ctx.iter_stored("Job")]

    def reconcile(self, key: Key) -> None:
        ns, name = key
        job = self.ctx.get("Job", ns, name)
        if job is None or is_deleting(job):
            return
        if condition_true(job, "Complete") or condition_true(job, "Failed"):
            self._expire(job)
            return
        spec = spec_of(job)
        template = spec.get("template") or {}
        pods = [p for p in self.ctx.owned("Pod", uid_of(job)) if not is_deleting(p)]
        if spec.get("suspend"):
            for pod in pods:
                if is_pod_active(pod):
                    self.ctx.delete("Pod", ns, name_of(pod))
            self._write_status(job, [], suspended=True)
            return
        fail = flag([job, template], FAIL_ANNOTATION)
        never = flag([job, template], NEVER_READY_ANNOTATION)
        delay = ready_after([job, template])
        parallelism = as_int(spec.get("parallelism"), 1)
        completions = spec.get("completions")
        wanted = as_int(completions, max(1, parallelism))
        if fail:
            wanted = min(as_int(spec.get("backoffLimit"), 6) + 1, _MAX_PODS)
        wanted = min(wanted, _MAX_PODS)

        wait = 0.0
        for pod in pods:
            if not is_pod_active(pod):
                continue
            left = 0.0 if never else self.ctx.manager.remaining(uid_of(pod), delay)
            if never or left > 0:
                target: PodState = "unready" if never else "ready"
                wait = max(wait, left)
            else:
                target = "failed" if fail else "succeeded"
            set_pod_state(self.ctx, pod, target)
        seed = f"{uid_of(job)}/{self.store.resource_version}"
        for i in range(max(0, wanted - len(pods))):
            pod_name = free_pod_name(self.ctx, ns, name, f"{seed}/{i}")
            labels = {
                "batch.kubernetes.io/controller-uid": uid_of(job),
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid_of(job),
                "job-name": name,
            }
            pod = build_pod(self.ctx, job, template, pod_name, labels=labels)
            if never:
                state: PodState = "unready"
            elif delay > 0:
                state, wait = "ready", max(wait, delay)
            else:
                state = "failed" if fail else "succeeded"
            create_pod(self.ctx, pod, state)
        if wait > 0:
            self.ctx.requeue_after(self.name, key, wait)
        pods = [p for p in self.ctx.owned("Pod", uid_of(job)) if not is_deleting(p)]
        self._write_status(job, pods)

    def _write_status(self, job: Obj, pods: list[Obj], suspended: bool = False) -> None:
        spec = spec_of(job)
        old = status_of(job)
        states = [pod_state(p) for p in pods]
        active = sum(1 for s in states if s in ("ready", "unready", "pending"))
        ready = sum(1 for s in states if s == "ready")
        succeeded = states.count("succeeded")
        failed = states.count("failed")
        status: dict[str, Any] = {}
        conditions: list[dict[str, Any]] = []
        if suspended:
            conditions.append(_job_condition("Suspended", "JobSuspended", "Job suspended"))
        else:
            status["startTime"] = old.get("startTime") or now_rfc3339()
        if active:
            status["active"] = active
        if succeeded:
            status["succeeded"] = succeeded
        if failed:
            status["failed"] = failed
        status["terminating"] = 0
        status["ready"] = ready
        status["uncountedTerminatedPods"] = {}
        backoff = as_int(spec.get("backoffLimit"), 6)
        wanted = as_int(spec.get("completions"), max(1, as_int(spec.get("parallelism"), 1)))
        if not suspended and failed > backoff:
            msg = "Job has reached the specified backoff limit"
            conditions += [_job_condition("FailureTarget", "BackoffLimitExceeded", msg),
                           _job_condition("Failed", "BackoffLimitExceeded", msg)]
        elif not suspended and active == 0 and succeeded >= min(wanted, _MAX_PODS):
            msg = "Reached expected number of succeeded pods"
            conditions += [_job_condition("SuccessCriteriaMet", "CompletionsReached", msg),
                           _job_condition("Complete", "CompletionsReached", msg)]
            status["completionTime"] = old.get("completionTime") or now_rfc3339()
        if conditions:
            status["conditions"] = merge_conditions(old.get("conditions"), conditions)
        self.ctx.set_status("Job", job, status)
        if status.get("conditions") and not suspended:
            fresh = self.ctx.get("Job", namespace_of(job), name_of(job))
            if fresh is not None:
                self._expire(fresh)

    def _expire(self, job: Obj) -> None:
        """Delete a finished Job once ``ttlSecondsAfterFinished`` has passed."""
        ttl = spec_of(job).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        finished = _parse_time(status_of(job).get("completionTime"))
        if finished is None:
            cond = get_condition(job, "Failed")
            finished = _parse_time(cond.get("lastTransitionTime") if cond else None)
        if finished is None:
            return
        left = finished + float(ttl) - datetime.now(UTC).timestamp()
        if left <= 0:
            self.ctx.delete("Job", namespace_of(job), name_of(job))
        else:
            self.ctx.requeue_after(self.name, (namespace_of(job), name_of(job)), left)
