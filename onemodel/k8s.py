"""Kubernetes: an indexed Job and a headless Service that run synchronous multi-worker
training, one worker per pod, as `onemodel-launch --k8s` prints them.

An Indexed Job gives pod i the hostname JOB-i and the annotation
`batch.kubernetes.io/job-completion-index` = i; with `subdomain` set to a headless
Service of the same name, JOB-i.JOB resolves to that pod
(https://kubernetes.io/docs/concepts/workloads/controllers/job/#completion-mode). Each
pod reads its index through the downward API and composes TF_CONFIG from it with
Kubernetes' own `$(VAR)` expansion, so the container runs `onemodel-train` directly, no
shell. Worker 0 is the chief.

Preemption: Kubernetes sends SIGTERM and waits `terminationGracePeriodSeconds` (30 s by
default) before SIGKILL; onemodel-train saves on SIGTERM, so the grace period is raised
for the save. A pod evicted or preempted gets the `DisruptionTarget` condition; the pod
failure policy ignores those failures and exit 143 (onemodel-train's exit after a
preemption save: every worker saves at one step and exits so, not only the evicted one);
they do not count against `backoffLimit`
(https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy), and
the Job's replacement pods, with the same names, resume from the checkpoint."""

import json

from onemodel.errors import SIGNAL_EXIT

PORT = 2222
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"


def tf_config_template(name: str, num_workers: int, index_var: str = "INDEX") -> str:
  """TF_CONFIG with the task index left as Kubernetes' `$(INDEX_VAR)` reference."""
  workers = [f"{name}-{i}.{name}:{PORT}" for i in range(num_workers)]
  cluster = json.dumps({"worker": workers})
  return f'{{"cluster": {cluster}, "task": {{"type": "worker", "index": $({index_var})}}}}'


def manifests(num_workers: int, train_args, image: str, name: str = "onemodel",
              volume_claim: str = "", mount_path: str = "/shared",
              grace_period_s: int = 120, max_restarts: int = 0) -> list:
  """[Service, Job] as dicts (the API objects' JSON form). `volume_claim`: a
  PersistentVolumeClaim mounted at `mount_path` on every pod, for the shared
  --output_dir and --data_dir that multi-worker training needs."""
  service = {
      "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
      "spec": {
          "clusterIP": "None",  # headless: DNS names for the pods, no load balancing
          "selector": {"job-name": name},
          # Workers look each other up while they start, before any is Ready.
          "publishNotReadyAddresses": True,
          "ports": [{"name": "grpc", "port": PORT}]}}
  container = {
      "name": "train",
      "image": image,
      "command": ["onemodel-train", "--strategy=multi_worker", *train_args],
      "env": [
          {"name": "INDEX", "valueFrom": {"fieldRef": {
              "fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}},
          {"name": "TF_CONFIG", "value": tf_config_template(name, num_workers)}],
      "ports": [{"containerPort": PORT, "name": "grpc"}]}
  pod = {"subdomain": name, "restartPolicy": "Never",
         "terminationGracePeriodSeconds": grace_period_s, "containers": [container]}
  if volume_claim:
    container["volumeMounts"] = [{"name": "shared", "mountPath": mount_path}]
    pod["volumes"] = [{"name": "shared",
                       "persistentVolumeClaim": {"claimName": volume_claim}}]
  job = {
      "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
      "spec": {
          "completions": num_workers, "parallelism": num_workers,
          "completionMode": "Indexed",
          "backoffLimit": max_restarts,
          "podFailurePolicy": {"rules": [
              {"action": "Ignore",
               "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
              {"action": "Ignore",
               "onExitCodes": {"operator": "In",
                               "values": [SIGNAL_EXIT["SIGTERM"]]}}]},
          "template": {"spec": pod}}}
  return [service, job]


def to_yaml(docs) -> str:
  """Documents for `kubectl apply -f -`: each in JSON (a subset of YAML), separated by
  `---`; no YAML library needed."""
  return "---\n".join(json.dumps(d, indent=2) + "\n" for d in docs)
