"""`onemodel-launch --k8s`: the Service and indexed Job it prints are valid Kubernetes
objects (checked against the official client's models, generated from the Kubernetes
OpenAPI schema: unknown fields, missing required fields and wrong types are errors), and
what each pod gets once Kubernetes has filled in its index is the cluster every worker
agrees on."""

import copy
import json
import re

import kubernetes.client as client
import pytest

from conftest import cli, one_line_error
from onemodel import k8s


def _validate(docs):
  service, job = docs
  assert (service["kind"], job["kind"]) == ("Service", "Job")
  client.V1Service.model_validate(service)
  client.V1Job.model_validate(job)


def _pod_env(job, index):
  """The container's environment as the kubelet makes it for pod `index`: the downward
  API's annotation, then `$(VAR)` references to variables defined before."""
  annotations = {k8s.INDEX_ANNOTATION: str(index)}
  env = {}
  for var in job["spec"]["template"]["spec"]["containers"][0]["env"]:
    if "valueFrom" in var:
      path = var["valueFrom"]["fieldRef"]["fieldPath"]
      key = re.fullmatch(r"metadata\.annotations\['(.+)'\]", path).group(1)
      env[var["name"]] = annotations[key]
    else:
      env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], var["value"])
  return env


@pytest.mark.parametrize("claim", ["", "onemodel-shared"])
def test_manifests_are_valid_kubernetes_objects(claim):
  docs = k8s.manifests(3, ["--gin_file=gin/experiments/mnist.gin", "--output_dir=/s/r"],
                       "example.com/onemodel:1", volume_claim=claim)
  _validate(docs)
  # The validator is strict: a misspelt field, a missing name, a string port all fail.
  for path, change in [(("spec",), lambda s: s.update(completionsMode="Indexed")),
                       (("spec", "template", "spec", "containers", 0),
                        lambda c: c.pop("name")),
                       (("spec", "template", "spec", "containers", 0, "ports", 0),
                        lambda p: p.update(containerPort="2222"))]:
    job = copy.deepcopy(docs[1])
    node = job
    for key in path:
      node = node[key]
    change(node)
    with pytest.raises(Exception, match="validation error for V1Job"):
      client.V1Job.model_validate(job)
  pod = docs[1]["spec"]["template"]["spec"]
  assert ("volumes" in pod) == bool(claim)


def test_every_pod_gets_its_own_task_in_one_cluster():
  service, job = k8s.manifests(3, ["--output_dir=/s/r"], "img", name="mnist-run")
  pod = job["spec"]["template"]["spec"]
  container = pod["containers"][0]
  assert container["command"] == ["onemodel-train", "--strategy=multi_worker",
                                  "--output_dir=/s/r"]
  assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3
  assert job["spec"]["completionMode"] == "Indexed"
  # Pod i of an indexed Job is named JOB-i; with the headless Service as its subdomain
  # it resolves as JOB-i.SERVICE, on the port the Service and the container open.
  assert pod["subdomain"] == service["metadata"]["name"] == "mnist-run"
  assert service["spec"]["selector"] == {"job-name": job["metadata"]["name"]}
  assert service["spec"]["clusterIP"] == "None"
  port = service["spec"]["ports"][0]["port"]
  assert container["ports"][0]["containerPort"] == port
  configs = [json.loads(_pod_env(job, i)["TF_CONFIG"]) for i in range(3)]
  for i, config in enumerate(configs):
    assert config["task"] == {"type": "worker", "index": i}
    assert config["cluster"] == {"worker": [f"mnist-run-{j}.mnist-run:{port}"
                                            for j in range(3)]}
  # A preempted worker's pod (and every worker's exit 143 after the save) does not
  # count as a failure: the Job replaces the pods and they resume.
  rules = job["spec"]["podFailurePolicy"]["rules"]
  assert {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [143]}} in rules
  assert pod["restartPolicy"] == "Never"  # a pod failure policy requires it
  assert pod["terminationGracePeriodSeconds"] >= 60


def test_launch_prints_the_manifests():
  rc, so, se = cli("onemodel-launch", "--k8s", "--num_workers=2", "--image=img",
                   "--volume_claim=shared", "--", "--output_dir=/shared/runs/a b")
  assert rc == 0, se[-2000:]
  docs = [json.loads(d) for d in so.split("---\n")]
  _validate(docs)
  assert docs == k8s.manifests(2, ["--output_dir=/shared/runs/a b"], "img",
                               volume_claim="shared")
  rc, so, se = cli("onemodel-launch", "--k8s", "--", "--output_dir=x")
  one_line_error(rc, se, "--k8s needs --image")
  rc, so, se = cli("onemodel-launch", "--k8s", "--image=i", "--job_name=My_Run", "--",
                   "--output_dir=x")
  one_line_error(rc, se, "--job_name='My_Run'")
