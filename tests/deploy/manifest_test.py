#!/usr/bin/env python3
"""Checks the deployment files against each other and against the real binaries.

deploy/k8s: every document parses; Service selectors, targetPorts, probe ports,
StatefulSet serviceNames, PodDisruptionBudget selectors, ConfigMap/Secret/PVC names
and volume mounts resolve; the flags in the ConfigMap and on the command lines are
flags the binaries accept (their --help, and absl's own parser on the flag files);
the cluster settings agree (shard count, coordinator address, metrics ports, data
directories on persistent volumes, memory budget below the limit, a GPU per worker).
deploy/docker: stages and COPY --from names agree, every binary is a real Bazel target,
the images the manifests name are the Dockerfile's stages, collect_libs.sh stages every
library a binary loads. deploy/systemd: the units' flags and variables exist, they
restart on failure and are hardened; `systemd-analyze verify` when it is installed.
deploy/grafana: the dashboard parses and queries only documented metrics; the shard's
documented metrics are the ones its code registers; what the daemons' /metrics
endpoints serve is documented, with the same type.
"""
import glob
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
import xml.etree.ElementTree as ET

import yaml

WORKSPACE = "ps"
BINARIES = {
    "ps_server": "server/ps_server",
    "ps_coordinator": "server/coordinator/ps_coordinator",
    "ps_worker": "worker/ps_worker",
    "psctl": "client/psctl",
}
TARGETS = {
    "//server:ps_server": "ps_server",
    "//server/coordinator:ps_coordinator": "ps_coordinator",
    "//worker:ps_worker": "ps_worker",
    "//client:psctl": "psctl",
}
# Flags absl handles itself (never listed by --help).
BUILTIN_FLAGS = {"flagfile", "fromenv", "tryfromenv", "undefok"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
FLAG_RE = re.compile(r"--([a-z][a-z0-9_]*)(?:=(\S*))?")


def runfiles_root():
    base = os.environ.get("TEST_SRCDIR") or os.environ.get("RUNFILES_DIR")
    if base:
        return os.path.join(base, WORKSPACE)
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


ROOT = runfiles_root()


def path(rel):
    return os.path.join(ROOT, rel)


def read(rel):
    with open(path(rel)) as f:
        return f.read()


def binary(name):
    p = path(BINARIES[name])
    # Run by hand from the workspace (python3 tests/deploy/manifest_test.py): bazel-bin.
    return p if os.path.exists(p) else path("bazel-bin/" + BINARIES[name])


_help_cache = {}


def help_flags(name):
    """The flags `name --help` lists."""
    if name not in _help_cache:
        r = subprocess.run([binary(name), "--help"], capture_output=True, text=True, timeout=60)
        text = r.stdout + r.stderr
        flags = set(re.findall(r"^\s+--([a-z][a-z0-9_]*) \(", text, re.M))
        if not flags:
            raise AssertionError(f"{name} --help listed no flags:\n{text}")
        _help_cache[name] = flags
    return _help_cache[name]


def flags_in(text):
    """{flag: value} for every --flag[=value] in text (comments removed)."""
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0] if line.lstrip().startswith("#") else line
        for name, value in FLAG_RE.findall(line):
            out[name] = value
    return out


def flagfile_lines(text):
    return [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]


def load_k8s():
    """[(file, doc)] of every YAML document under deploy/k8s except the kustomization."""
    docs = []
    for f in sorted(glob.glob(path("deploy/k8s/*.yaml"))):
        if os.path.basename(f) == "kustomization.yaml":
            continue
        with open(f) as fh:
            for doc in yaml.safe_load_all(fh):
                if doc is not None:
                    docs.append((os.path.basename(f), doc))
    return docs


def subset(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


class K8s:
    def __init__(self, docs):
        self.docs = docs
        self.by_kind = {}
        for _, d in docs:
            self.by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d

    def kind(self, k):
        return self.by_kind.get(k, {})

    def workloads(self):
        for k in WORKLOAD_KINDS:
            for name, d in self.kind(k).items():
                yield k, name, d

    @staticmethod
    def pod_labels(w):
        return w["spec"]["template"]["metadata"].get("labels", {})

    @staticmethod
    def containers(w):
        spec = w["spec"]["template"]["spec"]
        return spec.get("initContainers", []) + spec["containers"]

    def matching_workloads(self, selector):
        return [(k, n, w) for k, n, w in self.workloads() if subset(selector, self.pod_labels(w))]


def container_ports(c):
    ports = c.get("ports", [])
    return {p.get("name") for p in ports if p.get("name")}, {p["containerPort"] for p in ports}


def container_binary(c):
    words = " ".join(c.get("command", []) + c.get("args", []))
    found = [b for b in BINARIES if re.search(r"(^|[/\s])" + re.escape(b) + r"(\s|$)", words)]
    return found[0] if len(found) == 1 else None


def resolve_mount(w, c, file_path):
    """(configmap_name, key) of the ConfigMap file `file_path` in container c, or None."""
    volumes = {v["name"]: v for v in w["spec"]["template"]["spec"].get("volumes", [])}
    for m in c.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/") + "/"
        if file_path.startswith(mp) and m["name"] in volumes:
            v = volumes[m["name"]]
            if "configMap" in v:
                return v["configMap"]["name"], file_path[len(mp):]
    return None


def mount_of(w, c, file_path):
    """The volumeMount under which file_path lies (longest match), or None."""
    best = None
    for m in c.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/") + "/"
        if (file_path + "/").startswith(mp) and (best is None or len(mp) > len(best["mountPath"])):
            best = m
    return best


def memory_bytes(q):
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 1000, "M": 10**6, "G": 10**9}
    m = re.fullmatch(r"(\d+)([A-Za-z]*)", str(q))
    assert m, f"cannot read the quantity {q}"
    return int(m.group(1)) * units.get(m.group(2), 1)


class ContainerFlags:
    """The flags one container passes its binary: command line plus its flag files."""

    def __init__(self, k8s, w, c):
        self.binary = container_binary(c)
        self.command = " ".join(c.get("command", []) + c.get("args", []))
        self.flags = flags_in(self.command)
        self.flagfiles = []  # (path, configmap, key, text)
        ff = self.flags.get("flagfile")
        if ff:
            ref = resolve_mount(w, c, ff)
            if ref is None:
                raise AssertionError(f"container {c['name']}: --flagfile={ff} is on no ConfigMap mount")
            cm = k8s.kind("ConfigMap").get(ref[0])
            if cm is None or ref[1] not in cm.get("data", {}):
                raise AssertionError(f"container {c['name']}: --flagfile={ff}: ConfigMap {ref[0]} "
                                     f"has no key {ref[1]}")
            text = cm["data"][ref[1]]
            self.flagfiles.append((ff, ref[0], ref[1], text))
            for line in flagfile_lines(text):
                self.assert_flag_line(line, ff)
                self.flags.update(flags_in(line))

    @staticmethod
    def assert_flag_line(line, where):
        if not FLAG_RE.fullmatch(line):
            raise AssertionError(f"{where}: \"{line}\" is not a --flag=value line")


class XmlResult(unittest.TextTestResult):
    """Also records each case for the JUnit XML Bazel reads (tests/count_results.py)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.cases = []

    def _add(self, test, outcome, detail=""):
        self.cases.append((test.id().split(".")[-1], outcome, detail))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._add(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._add(test, "failure", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._add(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._add(test, "skipped", reason)


def write_xml(result, out):
    suite = ET.Element("testsuite", name="manifest_test", tests=str(len(result.cases)))
    for name, outcome, detail in result.cases:
        case = ET.SubElement(suite, "testcase", name=name, classname="ManifestTest")
        if outcome != "pass":
            ET.SubElement(case, outcome, message=detail[:200]).text = detail
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)


class ManifestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = load_k8s()
        cls.k8s = K8s(cls.docs)
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- Kubernetes -------------------------------------------------------------

    def test_k8s_documents_parse_and_are_listed(self):
        self.assertGreater(len(self.docs), 0)
        names = set()
        for f, d in self.docs:
            for key in ("apiVersion", "kind", "metadata"):
                self.assertIn(key, d, f"{f}: a document without {key}")
            self.assertNotIn("namespace", d["metadata"], f"{f}: manifests are namespace-less")
            key = (d["kind"], d["metadata"]["name"])
            self.assertNotIn(key, names, f"{f}: {key} defined twice")
            names.add(key)
        kust = yaml.safe_load(read("deploy/k8s/kustomization.yaml"))
        files = {os.path.basename(f) for f in glob.glob(path("deploy/k8s/*.yaml"))} - {"kustomization.yaml"}
        self.assertEqual(set(kust["resources"]), files, "kustomization.yaml lists every manifest")
        # Every manifest in the source folder is one this test sees (the BUILD glob).
        src = os.path.dirname(os.path.realpath(path("deploy/k8s/kustomization.yaml")))
        self.assertEqual({os.path.basename(f) for f in glob.glob(os.path.join(src, "*.yaml"))},
                         files | {"kustomization.yaml"})

    def test_workload_selectors_match_their_pods(self):
        for kind, name, w in self.k8s.workloads():
            sel = w["spec"]["selector"]["matchLabels"]
            self.assertTrue(subset(sel, self.k8s.pod_labels(w)), f"{kind} {name}: selector {sel}")
            others = [n for k, n, o in self.k8s.workloads() if n != name and subset(sel, self.k8s.pod_labels(o))]
            self.assertEqual(others, [], f"{kind} {name}: its selector also takes the pods of {others}")

    def test_services_select_workloads_and_ports_exist(self):
        self.assertTrue(self.k8s.kind("Service"))
        for name, svc in self.k8s.kind("Service").items():
            sel = svc["spec"].get("selector", {})
            matched = self.k8s.matching_workloads(sel)
            self.assertTrue(matched, f"Service {name}: selector {sel} matches no workload's pods")
            for port in svc["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                for kind, wname, w in matched:
                    ok = False
                    for c in K8s.containers(w):
                        names, numbers = container_ports(c)
                        ok = ok or target in names or target in numbers
                    self.assertTrue(ok, f"Service {name} port {port.get('name')}: targetPort {target} is "
                                        f"no containerPort of {kind} {wname}")

    def test_statefulsets_have_headless_governing_services(self):
        self.assertTrue(self.k8s.kind("StatefulSet"))
        for name, sts in self.k8s.kind("StatefulSet").items():
            svc = self.k8s.kind("Service").get(sts["spec"]["serviceName"])
            self.assertIsNotNone(svc, f"StatefulSet {name}: serviceName {sts['spec']['serviceName']} missing")
            self.assertEqual(svc["spec"].get("clusterIP"), "None", f"StatefulSet {name}: Service not headless")
            self.assertTrue(subset(svc["spec"]["selector"], K8s.pod_labels(sts)),
                            f"StatefulSet {name}: its Service selects other pods")
            self.assertTrue(sts["spec"].get("volumeClaimTemplates"), f"StatefulSet {name}: no PVC template")

    def test_probes_use_declared_ports(self):
        probed = 0
        for kind, name, w in self.k8s.workloads():
            for c in K8s.containers(w):
                names, numbers = container_ports(c)
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    p = c.get(probe)
                    if not p:
                        continue
                    probed += 1
                    if "grpc" in p:
                        # grpc probes take a number only.
                        self.assertIn(p["grpc"]["port"], numbers, f"{name}/{c['name']} {probe}")
                    for h in ("httpGet", "tcpSocket"):
                        if h in p:
                            port = p[h]["port"]
                            self.assertTrue(port in names or port in numbers, f"{name}/{c['name']} {probe}: {port}")
                if not names and not numbers:
                    # Nothing to probe (the worker serves nothing): the container's
                    # process exiting is what restarts it.
                    self.assertNotIn("livenessProbe", c, f"{name}/{c['name']}")
                    continue
                self.assertIn("livenessProbe", c, f"{name}/{c['name']}: no liveness probe")
                self.assertIn("readinessProbe", c, f"{name}/{c['name']}: no readiness probe")
        self.assertGreater(probed, 0)
        # The gRPC daemons are probed on the gRPC health service.
        for kind, name, w in self.k8s.workloads():
            for c in K8s.containers(w):
                if container_binary(c) in ("ps_server", "ps_coordinator"):
                    self.assertIn("grpc", c["livenessProbe"], f"{name}: liveness is not a grpc probe")
                    self.assertIn("grpc", c["readinessProbe"], f"{name}: readiness is not a grpc probe")

    def test_volumes_configmaps_secrets_and_claims_resolve(self):
        for kind, name, w in self.k8s.workloads():
            spec = w["spec"]["template"]["spec"]
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            templates = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
            self.assertFalse(set(volumes) & templates, f"{name}: a volume and a claim template share a name")
            for vname, v in volumes.items():
                if "configMap" in v:
                    cm = self.k8s.kind("ConfigMap").get(v["configMap"]["name"])
                    self.assertIsNotNone(cm, f"{name}: volume {vname}: no ConfigMap {v['configMap']['name']}")
                    for item in v["configMap"].get("items", []):
                        self.assertIn(item["key"], cm["data"], f"{name}: volume {vname}")
                if "secret" in v:
                    self.assertTrue(v["secret"]["secretName"] in self.k8s.kind("Secret") or
                                    v["secret"].get("optional") is True,
                                    f"{name}: volume {vname}: Secret {v['secret']['secretName']} is "
                                    "neither defined nor optional")
                if "persistentVolumeClaim" in v:
                    claim = v["persistentVolumeClaim"]["claimName"]
                    self.assertIn(claim, self.k8s.kind("PersistentVolumeClaim"), f"{name}: volume {vname}")
            for c in K8s.containers(w):
                mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
                self.assertEqual(len(mounts), len(set(mounts)), f"{name}/{c['name']}: a path mounted twice")
                for m in c.get("volumeMounts", []):
                    self.assertTrue(m["name"] in volumes or m["name"] in templates,
                                    f"{name}/{c['name']}: volumeMount {m['name']} has no volume")
                for ef in c.get("envFrom", []):
                    if "configMapRef" in ef:
                        self.assertIn(ef["configMapRef"]["name"], self.k8s.kind("ConfigMap"), name)
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get("configMapKeyRef")
                    if ref:
                        cm = self.k8s.kind("ConfigMap").get(ref["name"])
                        self.assertIsNotNone(cm, f"{name}: env {e['name']}")
                        self.assertIn(ref["key"], cm["data"], f"{name}: env {e['name']}")

    def test_disruption_budgets_select_one_workload(self):
        self.assertTrue(self.k8s.kind("PodDisruptionBudget"))
        for name, pdb in self.k8s.kind("PodDisruptionBudget").items():
            matched = self.k8s.matching_workloads(pdb["spec"]["selector"]["matchLabels"])
            self.assertEqual(len(matched), 1, f"PodDisruptionBudget {name} matches {[m[1] for m in matched]}")
            replicas = matched[0][2]["spec"].get("replicas", 1)
            if "maxUnavailable" in pdb["spec"]:
                self.assertLess(pdb["spec"]["maxUnavailable"], replicas, f"PodDisruptionBudget {name}")
            if "minAvailable" in pdb["spec"]:
                self.assertLess(pdb["spec"]["minAvailable"], replicas,
                                f"PodDisruptionBudget {name} would block every drain")

    def test_container_flags_exist(self):
        seen = set()
        for kind, name, w in self.k8s.workloads():
            for c in K8s.containers(w):
                cf = ContainerFlags(self.k8s, w, c)
                self.assertIsNotNone(cf.binary, f"{name}/{c['name']}: runs none of {sorted(BINARIES)}")
                seen.add(cf.binary)
                known = help_flags(cf.binary) | BUILTIN_FLAGS
                for flag in cf.flags:
                    self.assertIn(flag, known, f"{name}/{c['name']}: {cf.binary} has no --{flag}")
                # absl's own parser reads each flag file: unknown flags and bad values fail.
                for ff, cm, key, text in cf.flagfiles:
                    local = os.path.join(self.tmp, key)
                    with open(local, "w") as f:
                        f.write(text)
                    r = subprocess.run([binary(cf.binary), f"--flagfile={local}", "--help"],
                                       capture_output=True, text=True, timeout=60)
                    self.assertNotIn("ERROR", r.stdout + r.stderr, f"ConfigMap {cm} key {key}")
        self.assertEqual(seen, {"ps_server", "ps_coordinator", "ps_worker"})

    def _daemon(self, binary_name):
        for kind, name, w in self.k8s.workloads():
            for c in K8s.containers(w):
                if container_binary(c) == binary_name:
                    return kind, name, w, c, ContainerFlags(self.k8s, w, c)
        self.fail(f"no workload runs {binary_name}")

    def test_cluster_settings_agree(self):
        _, _, shards, shard_c, shard = self._daemon("ps_server")
        _, _, _, coord_c, coord = self._daemon("ps_coordinator")
        _, _, workers, worker_c, worker = self._daemon("ps_worker")
        # One shard count everywhere; the shard id comes from the pod ordinal.
        self.assertEqual(int(shard.flags["num_shards"]), shards["spec"]["replicas"])
        self.assertEqual(int(coord.flags["num_shards"]), shards["spec"]["replicas"])
        self.assertEqual(shards["kind"], "StatefulSet")
        self.assertIn("HOSTNAME", shard.flags["shard_id"] + shard.command)
        self.assertIn("shard_id", shard.flags)
        # Shards and workers reach the coordinator through a Service port.
        coord_port = int(coord.flags.get("port", 7070))
        for who in (shard, worker):
            host, port = who.flags["coordinator"].rsplit(":", 1)
            svc = self.k8s.kind("Service").get(host.split(".")[0])
            self.assertIsNotNone(svc, f"--coordinator={who.flags['coordinator']}: no such Service")
            ports = [p for p in svc["spec"]["ports"] if p["port"] == int(port)]
            self.assertTrue(ports, f"Service {host} has no port {port}")
            target = ports[0].get("targetPort", ports[0]["port"])
            names = {p.get("name"): p["containerPort"] for p in coord_c["ports"]}
            self.assertEqual(names.get(target, target), coord_port, "the Service forwards to --port")
            self.assertTrue(subset(svc["spec"]["selector"], K8s.pod_labels(self._daemon("ps_coordinator")[2])))
        self.assertNotEqual(coord.flags.get("host", "127.0.0.1"), "127.0.0.1", "coordinator on loopback")
        self.assertIn("POD_IP", shard.flags.get("host", ""), "a shard must listen on, and announce, its pod IP")
        # Listening ports are declared container ports.
        for c, cf in ((shard_c, shard), (coord_c, coord)):
            self.assertIn(int(cf.flags["port"]), container_ports(c)[1], f"{c['name']}: --port")
        # Metrics: the scrape annotation, the container port and --metrics_port agree.
        for kind, name, w in self.k8s.workloads():
            ann = w["spec"]["template"]["metadata"].get("annotations", {})
            for c in K8s.containers(w):
                cf = ContainerFlags(self.k8s, w, c)
                if "metrics_port" in cf.flags:
                    mp = int(cf.flags["metrics_port"])
                    self.assertIn(mp, container_ports(c)[1], f"{name}: --metrics_port")
                    self.assertEqual(int(ann.get("prometheus.io/port", -1)), mp, f"{name}: scrape port")
        # Data directories are on the StatefulSets' persistent volumes.
        for kind, name, w, c, cf in (self._daemon("ps_server"), self._daemon("ps_coordinator")):
            m = mount_of(w, c, cf.flags["data_dir"])
            templates = {t["metadata"]["name"] for t in w["spec"]["volumeClaimTemplates"]}
            self.assertTrue(m and m["name"] in templates, f"{name}: --data_dir is not on a PVC")
            self.assertFalse(m.get("readOnly", False))
        # Data roots are mounted (read-only), and the same in the coordinator and workers.
        self.assertEqual(coord.flags["data_root"], worker.flags["data_root"])
        for kind, name, w, c, cf in (self._daemon("ps_coordinator"), self._daemon("ps_worker")):
            for root in cf.flags["data_root"].split(":"):
                m = mount_of(w, c, root)
                self.assertTrue(m, f"{name}: --data_root {root} is not a mounted volume")
        # The shard's memory budget leaves room below the container's limit.
        budget = int(shard.flags["memory_budget_mb"]) << 20
        self.assertLess(budget, memory_bytes(shard_c["resources"]["limits"]["memory"]))
        # Each worker gets a GPU and runs on it.
        self.assertGreaterEqual(int(worker_c["resources"]["limits"]["nvidia.com/gpu"]), 1)
        self.assertEqual(worker.flags.get("device"), "gpu")

    def test_images_are_dockerfile_stages_holding_the_binary(self):
        stages = dockerfile_stages()
        for kind, name, w in self.k8s.workloads():
            for c in K8s.containers(w):
                image = c["image"].split(":")[0].split("/")[-1]
                self.assertTrue(image.startswith("ps-"), f"{name}: image {c['image']}")
                stage = image[len("ps-"):]
                self.assertIn(stage, stages, f"{name}: image {c['image']} is no Dockerfile stage")
                self.assertIn(container_binary(c), stages[stage]["binaries"], f"{name}: {c['image']}")

    # ---- Docker -------------------------------------------------------------------

    def test_dockerfile_stages_and_targets(self):
        text = read("deploy/docker/Dockerfile")
        stages = dockerfile_stages()
        self.assertIn("build", stages)
        order = list(stages)
        for i, (name, st) in enumerate(stages.items()):
            for src in st["copy_from"]:
                self.assertIn(src, order[:i], f"stage {name}: COPY --from={src} names no earlier stage")
        # bazel builds exactly the binaries the runtime stages take, all real targets.
        built = set(re.findall(r"(//[\w/]+:[\w]+)", text))
        self.assertTrue(built)
        for t in built:
            self.assertIn(t, TARGETS, f"Dockerfile builds {t}, which is not a daemon target")
            self.assertTrue(os.access(binary(TARGETS[t]), os.X_OK), t)
        staged = set()
        for st in stages.values():
            staged |= st["binaries"]
        self.assertEqual({TARGETS[t] for t in built}, staged)
        for b in staged:
            self.assertIn(f"bazel-bin/{BINARIES[b]}", text, f"{b} is staged from another path")
        self.assertEqual(stages["server"]["binaries"], {"ps_server", "ps_coordinator", "psctl"})
        self.assertEqual(stages["worker"]["binaries"], {"ps_worker"})
        # Runtime stages: not root, Debian 12.
        for name in ("server", "worker"):
            self.assertRegex(stages[name]["body"], r"\nUSER (?!0|root)", name)
        self.assertRegex(text, r"ARG RUNTIME_IMAGE=debian:12")
        self.assertRegex(text, r"ARG DEBIAN_IMAGE=debian:12\b")
        # Files COPY'd from the context exist and are not excluded by .dockerignore.
        ignore = [l.strip() for l in read(".dockerignore").splitlines() if l.strip() and not l.startswith("#")]
        for src in re.findall(r"^COPY (?!--from)(\S+) ", text, re.M):
            if src == ".":
                continue
            self.assertTrue(os.path.exists(path(src)), f"COPY {src}: no such file")
            self.assertFalse(any(src == p or src.startswith(p.rstrip("/") + "/") for p in ignore),
                             f"COPY {src} is excluded by .dockerignore")
        for script in re.findall(r"(deploy/docker/\S+\.sh)", text):
            self.assertTrue(os.access(path(script), os.X_OK), f"{script} is not executable")
        self.assertTrue(any(p.startswith("bazel-") for p in ignore), ".dockerignore keeps bazel-* out")

    def test_collect_libs_stages_every_library(self):
        dest = os.path.join(self.tmp, "image")
        bins = [binary(b) for b in ("ps_server", "ps_coordinator", "psctl", "ps_worker")]
        r = subprocess.run([path("deploy/docker/collect_libs.sh"), dest] + bins,
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        skip = re.compile(r"^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s)\.so")
        for b in bins:
            self.assertTrue(os.access(os.path.join(dest, "usr/local/bin", os.path.basename(b)), os.X_OK))
            ldd = subprocess.run(["ldd", b], capture_output=True, text=True, check=True).stdout
            libs = re.findall(r"^\s*(\S+) => (/\S+)", ldd, re.M)
            self.assertTrue(libs)
            for name, where in libs:
                if skip.match(name):
                    continue
                d = os.path.dirname(where)
                if d.startswith("/lib"):
                    d = "/usr" + d
                staged = os.path.join(dest + d, name)
                self.assertTrue(os.path.isfile(staged) and not os.path.islink(staged),
                                f"{os.path.basename(b)}: {name} not staged at {d}")

    # ---- systemd --------------------------------------------------------------------

    def test_systemd_units(self):
        env = parse_env(read("deploy/systemd/ps.env"))
        units = sorted(glob.glob(path("deploy/systemd/*.service")))
        self.assertEqual({os.path.basename(u) for u in units},
                         {"ps-coordinator.service", "ps-server@.service", "ps-worker@.service"})
        seen = set()
        for u in units:
            name = os.path.basename(u)
            svc = parse_unit(open(u).read()).get("Service", {})
            execs = svc.get("ExecStart", [])
            self.assertEqual(len(execs), 1, name)
            words = execs[0].split()
            b = os.path.basename(words[0])
            self.assertIn(b, BINARIES, f"{name}: ExecStart runs {words[0]}")
            self.assertEqual(words[0], f"/usr/local/bin/{b}", name)
            seen.add(b)
            known = help_flags(b) | BUILTIN_FLAGS
            flags = flags_in(execs[0])
            for flag in flags:
                self.assertIn(flag, known, f"{name}: {b} has no --{flag}")
            for var in re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", execs[0]):
                self.assertIn(var, env, f"{name}: ${var} is not set in ps.env")
            self.assertEqual(svc.get("Restart"), ["on-failure"], name)
            for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                               ("DynamicUser", "yes"), ("ProtectKernelTunables", "yes"),
                               ("SystemCallArchitectures", "native")):
                self.assertEqual(svc.get(key), [value], f"{name}: {key}")
            self.assertIn("RestrictAddressFamilies", svc, name)
            self.assertEqual(svc.get("EnvironmentFile", [""])[0], "/etc/ps/ps.env", name)
            if "data_dir" in flags:
                # The data directory is the unit's own StateDirectory.
                self.assertEqual(len(svc.get("StateDirectory", [])), 1, name)
                self.assertEqual(flags["data_dir"], "%S/" + svc["StateDirectory"][0], name)
            if b == "ps_server":
                self.assertEqual(flags["shard_id"], "%i", f"{name}: the instance is the shard id")
        self.assertEqual(seen, {"ps_server", "ps_coordinator", "ps_worker"})

    def test_systemd_analyze_verify(self):
        tool = shutil.which("systemd-analyze")
        if tool is None or not os.path.isdir("/lib/systemd/system"):
            self.skipTest("systemd-analyze is not installed")
        root = os.path.join(self.tmp, "root")
        os.makedirs(os.path.join(root, "usr/local/bin"))
        os.makedirs(os.path.join(root, "etc/ps"))
        os.makedirs(os.path.join(root, "usr/lib/systemd"))
        shutil.copytree("/lib/systemd/system", os.path.join(root, "usr/lib/systemd/system"), symlinks=True)
        units = os.path.join(root, "etc/systemd/system")
        os.makedirs(units)
        for b in ("ps_server", "ps_coordinator", "ps_worker"):
            shutil.copy(binary(b), os.path.join(root, "usr/local/bin", b))
        shutil.copy(path("deploy/systemd/ps.env"), os.path.join(root, "etc/ps/ps.env"))
        for u in glob.glob(path("deploy/systemd/*.service")):
            shutil.copy(u, units)
        r = subprocess.run([tool, "verify", "--man=no", f"--root={root}", "ps-coordinator.service",
                            "ps-server@0.service", "ps-worker@0.service"],
                           capture_output=True, text=True, timeout=120, cwd=units)
        out = (r.stdout + r.stderr).strip()
        self.assertEqual(r.returncode, 0, out)
        # Unknown keys are only warnings there; they are errors here.
        self.assertEqual(out, "", out)

    # ---- Grafana and the metric list ---------------------------------------------------

    def test_dashboard_queries_documented_metrics(self):
        doc = documented_metrics()
        dash = json.loads(read("deploy/grafana/ps-dashboard.json"))
        exprs = list(dashboard_exprs(dash))
        self.assertGreater(len(exprs), 10)
        used = set()
        for e in exprs:
            for name in re.findall(r"\b(ps_[a-z0-9_]+)", e):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                if base != name:
                    self.assertIn(base, doc, f"dashboard: {name}")
                    self.assertEqual(doc[base]["type"], "histogram", f"dashboard: {name} of a non-histogram")
                else:
                    self.assertIn(name, doc, f"dashboard queries {name}, which METRICS.md does not list")
                    self.assertNotEqual(doc[name]["type"], "histogram", f"dashboard: bare histogram {name}")
                if "histogram_quantile" in e and name.endswith("_bucket"):
                    self.assertIn("le", e)
                used.add(base)
        ids = [p["id"] for p in all_panels(dash)]
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
        variables = {v["name"] for v in dash["templating"]["list"]}
        for p in all_panels(dash):
            ds = p.get("datasource")
            if isinstance(ds, dict) and ds.get("uid", "").startswith("$"):
                self.assertIn(ds["uid"].strip("${}"), variables, f"panel {p['title']}")
        # The asked-for subjects are all charted.
        for needed in ("ps_shard_received_bytes_total", "ps_shard_request_seconds", "ps_shard_job_clock",
                       "ps_coordinator_job_checkpoint_age_seconds", "ps_shard_checkpoint_write_seconds",
                       "ps_coordinator_job_recoveries_total", "ps_coordinator_job_clock"):
            self.assertIn(needed, used)

    def test_shard_metrics_list_matches_code(self):
        doc = {n: m for n, m in documented_metrics().items() if m["daemon"] == "shard"}
        code = {}
        for kind, name in re.findall(r"Add(Counter|Gauge|Histogram)Family\(\s*\"(ps_[a-z0-9_]+)\"",
                                     read("server/shard_metrics.cc")):
            code[name] = kind.lower()
        self.assertTrue(code)
        self.assertEqual(set(doc), set(code), "METRICS.md's shard metrics vs server/shard_metrics.cc")
        for name, kind in code.items():
            self.assertEqual(doc[name]["type"], kind, name)
            self.assertIn("shard", doc[name]["labels"], name)

    def test_metrics_endpoints_are_documented(self):
        doc = documented_metrics()
        data = tempfile.mkdtemp(dir=self.tmp)
        runs = [("ps_server", "shard", ["--port=0", f"--data_dir={data}/shard"]),
                ("ps_coordinator", "coordinator", ["--port=0", f"--data_dir={data}/coordinator"])]
        checked = 0
        coordinator = None
        procs = []
        try:
            for b, daemon, args in runs:
                if "metrics_port" not in help_flags(b):
                    continue
                p, addr, metrics = start(b, args + ["--metrics_port=0"])
                procs.append(p)
                if b == "ps_coordinator":
                    coordinator = addr
                checked += self._check_scrape(doc, daemon, metrics)
            if "metrics_port" in help_flags("ps_worker"):
                if coordinator is None:
                    p, coordinator, _ = start("ps_coordinator", ["--port=0", f"--data_dir={data}/c2"])
                    procs.append(p)
                p, _, metrics = start("ps_worker", [f"--coordinator={coordinator}", "--device=cpu",
                                                    "--metrics_port=0"], want_listen=False)
                procs.append(p)
                checked += self._check_scrape(doc, "worker", metrics)
        finally:
            for p in reversed(procs):
                p.kill()
                p.wait()
        self.assertGreater(checked, 0)

    def _check_scrape(self, doc, daemon, metrics):
        self.assertIsNotNone(metrics, f"{daemon}: --metrics_port=0 printed no \"metrics on\" line")
        body = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10).read().decode()
        types = dict(re.findall(r"^# TYPE (ps_[a-z0-9_]+) (\w+)$", body, re.M))
        for name, kind in types.items():
            self.assertIn(name, doc, f"{daemon} serves {name}, which METRICS.md does not list")
            self.assertEqual(doc[name]["type"], kind, name)
            self.assertEqual(doc[name]["daemon"], daemon, name)
        return len(types)


def start(b, args, want_listen=True, timeout=30):
    """Starts a daemon; returns (process, listen address, metrics address) once it has
    printed the lines asked for (a "metrics on" line only when --metrics_port is given)."""
    p = subprocess.Popen([binary(b)] + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    want_metrics = any(a.startswith("--metrics_port") for a in args)
    addr = metrics = None
    deadline = time.time() + timeout
    buf = b""
    while time.time() < deadline:
        ready, _, _ = select.select([p.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
        text = buf.decode(errors="replace")
        m = re.search(r"^metrics on (\S+)$", text, re.M)
        metrics = m.group(1) if m else metrics
        m = re.search(r"^listening on (\S+)$", text, re.M)
        addr = m.group(1) if m else addr
        if (addr or not want_listen) and (metrics or not want_metrics):
            break
    if p.poll() is not None or (want_listen and addr is None):
        p.kill()
        p.wait()
        raise AssertionError(f"{b} {' '.join(args)}: exit {p.returncode}, printed {buf!r}")
    return p, addr, metrics


def dockerfile_stages():
    """{stage: {copy_from, binaries, body}} in order."""
    text = read("deploy/docker/Dockerfile")
    stages = {}
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\w+)\s*$", text, flags=re.M | re.I)
    for name, body in zip(parts[1::2], parts[2::2]):
        if name in stages:
            raise AssertionError(f"Dockerfile: stage {name} twice")
        stages[name] = {"copy_from": re.findall(r"^COPY --from=(\S+)", body, re.M), "body": body,
                        "binaries": set()}
    build = stages.get("build", {}).get("body", "")
    for dest, bins in re.findall(r"collect_libs\.sh\s+(\S+)((?:\s*\\?\s*bazel-bin/\S+)+)", build):
        for name, st in stages.items():
            if re.search(r"^COPY --from=build " + re.escape(dest) + r"/? /", st["body"], re.M):
                st["binaries"] |= {os.path.basename(b) for b in re.findall(r"bazel-bin/(\S+)", bins)}
    return stages


def parse_env(text):
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            env[k] = v
    return env


def parse_unit(text):
    """{section: {key: [values]}}, with continued lines joined."""
    text = re.sub(r"\\\n\s*", " ", text)
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            section = out.setdefault(m.group(1), {})
            continue
        k, _, v = line.partition("=")
        section.setdefault(k.strip(), []).append(v.strip())
    return out


def documented_metrics():
    """{name: {daemon, type, labels}} from the table in deploy/grafana/METRICS.md."""
    out = {}
    for line in read("deploy/grafana/METRICS.md").splitlines():
        m = re.match(r"^\|\s*`(ps_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|\s*(\w+)\s*\|([^|]*)\|", line)
        if m:
            name = m.group(1)
            if name in out:
                raise AssertionError(f"METRICS.md lists {name} twice")
            out[name] = {"daemon": m.group(2), "type": m.group(3),
                         "labels": set(re.findall(r"`(\w+)`", m.group(4)))}
    if not out:
        raise AssertionError("METRICS.md has no metric table")
    return out


def all_panels(dash):
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])


def dashboard_exprs(dash):
    for p in all_panels(dash):
        for t in p.get("targets", []):
            if t.get("expr"):
                yield t["expr"]
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if v.get("type") == "query" and q:
            yield q


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(ManifestTest)
    runner = unittest.TextTestRunner(resultclass=XmlResult, verbosity=2)
    result = runner.run(suite)
    if os.environ.get("XML_OUTPUT_FILE"):
        write_xml(result, os.environ["XML_OUTPUT_FILE"])
    sys.exit(0 if result.wasSuccessful() else 1)
