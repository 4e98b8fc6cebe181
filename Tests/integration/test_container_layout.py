"""The container image and the Kubernetes/OpenShift manifest, checked without a container engine or a cluster.

Midge only. The runtime stage of the Containerfile is rebuilt in a temporary directory (etc/midge with
plugins.conf and passwd, var/lib/midge, with the image's owners and modes) and the binary runs there as the
image's UID and as an OpenShift-style arbitrary UID, both with group 0; /etc/midge is not writable for them, as
with a read-only root filesystem. The manifest's projected /etc/midge volume is assembled the same way from its
ConfigMap and Secrets (files 0440, group fsGroup) and started as the Deployment's securityContext says. `ldd`
checks the binary against the library list in the Containerfile. Ports are replaced by free loopback ones.
"""
import base64
import os
from collections import Counter
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from clients import WAIT
from conftest import BROKER_KIND, REPO, free_port, midge_bin, on_free_ports, stop_process, wait_for_ports

pytestmark = pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="Midge's own container image")

CONTAINERFILE = REPO / "Containerfile"
MANIFESTS = sorted((REPO / "deploy").glob("*.yaml"))
# The container image's build of the binary (static Swift runtime), when it has been built here.
STATIC_BIN = Path(os.environ.get("MIDGE_STATIC_BIN", REPO / ".build-static" / "release" / "midge"))

IMAGE_UID = 1001
OPENSHIFT_UID = 1000680000      # what OpenShift's restricted SCC typically picks: any UID, group 0
# The runtime stage's directories and files: (mode, owner uid, group). The Containerfile must set exactly these
# (test_containerfile_sets_the_layout).
LAYOUT = {
    "etc/midge": (0o750, 0, 0),
    "etc/midge/plugins.conf": (0o640, 0, 0),
    "etc/midge/passwd": (0o640, 0, 0),
    "var/lib/midge": (0o770, 0, 0),
}

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another UID needs root")


# -- Containerfile -------------------------------------------------------------------------------------------

def containerfile() -> str:
    return CONTAINERFILE.read_text()


def instructions(stage_text: str) -> list[str]:
    """The instructions of a Containerfile stage, continuation lines joined, comments dropped."""
    joined, current = [], ""
    for line in stage_text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        joined.append((current + line).strip())
        current = ""
    return joined


def stages() -> list[str]:
    parts = re.split(r"^(?=FROM )", containerfile(), flags=re.M)
    return [p for p in parts if p.startswith("FROM ")]


def runtime_libraries() -> dict[str, tuple[str, str]]:
    """The Containerfile's `lib:` comment lines: soname -> (package, "base" or "install")."""
    libs = {}
    for m in re.finditer(r"^#\s+lib:\s+(\S+)\s+(\S+)\s+(base|install)\s*$", containerfile(), flags=re.M):
        libs[m.group(1)] = (m.group(2), m.group(3))
    assert libs, "the Containerfile has no `#   lib: SONAME PACKAGE base|install` lines"
    return libs


def runtime_installs() -> set[str]:
    packages = set()
    for instruction in instructions(stages()[-1]):
        m = re.search(r"apt-get install ([^&]*)", instruction)
        if m:
            packages |= {word for word in m.group(1).split() if not word.startswith("-")}
    return packages


def test_containerfile_is_multi_stage_non_root_and_exposes_both_ports():
    build, runtime = stages()[0], stages()[-1]
    assert len(stages()) == 2
    assert "AS build" in build.splitlines()[0]
    assert "--static-swift-stdlib" in build and "--product midge" in build
    run = instructions(runtime)
    user = [i.split()[1] for i in run if i.startswith("USER ")]
    assert len(user) == 1 and user[0].split(":")[0].isdigit() and int(user[0].split(":")[0]) != 0, user
    assert any(i.split()[1:] == ["1883", "8883", "9883"] for i in run if i.startswith("EXPOSE "))
    # The entrypoint is the binary itself: no start script, so nothing chowns or chmods at start.
    assert 'ENTRYPOINT ["/usr/local/bin/midge"]' in run
    env = " ".join(i for i in run if i.startswith("ENV "))
    assert "MIDGE_CONFIG_DIR=/etc/midge" in env and "MIDGE_STATE_DIR=/var/lib/midge" in env
    assert any(i.startswith("COPY --from=build ") and i.endswith(" /usr/local/bin/midge") for i in run)
    assert "COPY plugins.conf passwd /etc/midge/" in run


def test_containerfile_sets_the_layout():
    text = " ".join(instructions(stages()[-1]))
    for path, (mode, uid, gid) in LAYOUT.items():
        assert f"chmod {mode:04o} /{path}" in text, path
        assert re.search(rf"chown (-R )?{uid}:{gid} /{re.escape(path)}\b", text) or \
            re.search(rf"chown -R {uid}:{gid} /{re.escape(path.rsplit('/', 1)[0])}\b", text), path
    assert "mkdir -p /var/lib/midge" in text


def test_every_listed_package_is_in_the_base_or_installed():
    installs = runtime_installs()
    for soname, (package, where) in runtime_libraries().items():
        if where == "install":
            assert package in installs, f"{soname}: {package} is not installed by the runtime stage"


# -- ldd -----------------------------------------------------------------------------------------------------

def ldd(binary: Path) -> list[tuple[str, str]]:
    """(soname, resolved path or '') for each library the binary loads; a library not found fails."""
    r = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == 0, r.stderr
    libs = []
    for line in r.stdout.splitlines():
        words = line.split()
        if not words or words[0] == "linux-vdso.so.1":
            continue
        assert "not found" not in line, f"{binary}: {line.strip()}"
        path = words[2] if len(words) > 2 and words[1] == "=>" else words[0]
        libs.append((os.path.basename(words[0]), path if path.startswith("/") else ""))
    return libs


def swift_runtime_directories(libs) -> set[str]:
    return {os.path.dirname(path) for name, path in libs if name == "libswiftCore.so"}


def test_the_binary_needs_no_system_library_the_runtime_base_lacks():
    """The Swift runtime and Foundation are linked statically into the image's binary (the static build is
    checked whole below); every other library must be one the runtime base provides."""
    libs = ldd(midge_bin())
    swift = swift_runtime_directories(libs)
    listed = runtime_libraries()
    missing = [name for name, path in libs if os.path.dirname(path) not in swift and name not in listed]
    assert not missing, f"{midge_bin()} needs {missing}: add them to the Containerfile's lib: lines and install"


@pytest.mark.skipif(not STATIC_BIN.is_file(), reason=f"no static build at {STATIC_BIN}: swift build -c release "
                    "--product midge --static-swift-stdlib --scratch-path .build-static")
def test_the_static_build_needs_only_the_listed_libraries():
    libs = ldd(STATIC_BIN)
    assert not swift_runtime_directories(libs), "the Swift runtime is linked dynamically"
    assert not [name for name, _ in libs if name.startswith(("libswift", "libFoundation", "lib_Foundation",
                                                             "libdispatch", "libBlocksRuntime"))]
    listed = runtime_libraries()
    assert [name for name, _ in libs if name not in listed] == []


# -- Running the layout --------------------------------------------------------------------------------------

class Process:
    """midge as a given UID/GID from a given environment; both ports accepting within WAIT."""

    def __init__(self, top: Path, conf_dir: Path, state_dir: Path, uid: int, groups=(), env=None):
        self.top, self.conf_dir, self.state_dir = top, conf_dir, state_dir
        self.uid, self.groups = uid, list(groups)
        self.extra_env = env or {}
        self.plain, self.tls = read_ports(conf_dir / "plugins.conf")
        self.log = top / f"log-{time.monotonic_ns()}.txt"
        self.proc = None

    def start(self):
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "MIDGE_CONFIG_DIR": str(self.conf_dir),
               "MIDGE_STATE_DIR": str(self.state_dir), **self.extra_env}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([str(midge_bin()), "-v"], env=env, cwd=self.top, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, user=self.uid, group=0,
                                         extra_groups=self.groups)
        wait_for_ports(self.proc, (self.plain, self.tls), self.log, WAIT)
        return self

    def stop(self):
        if self.proc:
            stop_process(self.proc, WAIT)
        return self.log.read_text()

    def publish(self, tls_ca: Path | None = None, password="admin"):
        cmd = ["mosquitto_pub", "-h", "localhost", "-t", "container/test", "-m", "hello", "-u", "admin",
               "-P", password]
        cmd += ["-p", str(self.tls), "--cafile", str(tls_ca)] if tls_ca else ["-p", str(self.plain)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT)


def read_ports(conf: Path) -> tuple[int, int]:
    ports = [int(p) for p in re.findall(r"^listener (\d+)", conf.read_text(), flags=re.M)]
    assert len(ports) == 2, ports
    return ports[0], ports[1]


def place(path: Path, data: bytes | None, mode: int, uid: int, gid: int):
    if data is None:
        path.mkdir(parents=True, exist_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def image_root(top: Path) -> Path:
    """The runtime stage's files, as its COPY and RUN lines leave them."""
    root = top / "root"
    for d in ("etc", "var", "var/lib"):
        place(root / d, None, 0o755, 0, 0)
    sources = {"etc/midge/plugins.conf": on_free_ports((REPO / "plugins.conf").read_text()).encode(),
               "etc/midge/passwd": (REPO / "passwd").read_bytes()}
    for path, (mode, uid, gid) in LAYOUT.items():
        place(root / path, sources.get(path), mode, uid, gid)
    return root


def listing(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_mode & 0o7777 for p in sorted(d.rglob("*"))}


def open_top(prefix: str):
    top = tempfile.TemporaryDirectory(prefix=prefix, dir="/tmp")
    os.chmod(top.name, 0o755)
    return top


@needs_root
@pytest.mark.parametrize("uid", [IMAGE_UID, OPENSHIFT_UID])
def test_the_image_layout_serves_both_ports_as_a_non_root_uid_with_group_0(uid):
    with open_top("midge-image-") as name:
        top = Path(name)
        root = image_root(top)
        conf_dir, state = root / "etc/midge", root / "var/lib/midge"
        before = listing(conf_dir)
        broker = Process(top, conf_dir, state, uid).start()
        try:
            r = broker.publish()
            assert r.returncode == 0, r.stderr
            assert broker.publish(tls_ca=state / "ca.crt").returncode == 0
            assert broker.publish(password="wrong").returncode != 0
        finally:
            log = broker.stop()
        assert listing(conf_dir) == before, "midge wrote into /etc/midge"
        for name in ("ca.crt", "ca.key", "server.crt", "server.key"):
            assert (state / name).stat().st_uid == uid, name
        assert (state / "server.key").stat().st_mode & 0o777 == 0o600
        assert (state / "ca.key").stat().st_mode & 0o777 == 0o600
        assert "read-only" in log and str(state / "ca.crt") in log
        assert "admin still has the default password" in log

        # Warm start (a container restart with the same volume): the certificates are reused.
        ca = (state / "ca.crt").read_bytes()
        broker = Process(top, conf_dir, state, uid).start()
        try:
            assert broker.publish(tls_ca=state / "ca.crt").returncode == 0
        finally:
            log = broker.stop()
        assert (state / "ca.crt").read_bytes() == ca
        assert "Generated" not in log


# -- The manifest --------------------------------------------------------------------------------------------

def manifest_objects() -> list[dict]:
    assert MANIFESTS, "no deploy/*.yaml"
    objects = []
    for path in MANIFESTS:
        objects += [o for o in yaml.safe_load_all(path.read_text()) if o]
    return objects


def one(kind: str, name: str | None = None) -> dict:
    found = [o for o in manifest_objects() if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


def container() -> dict:
    containers = one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(c: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def test_manifest_has_the_expected_objects():
    kinds = Counter(o["kind"] for o in manifest_objects())
    assert kinds >= Counter({"ConfigMap": 1, "Deployment": 1, "Route": 1, "Secret": 1, "Service": 2}), kinds
    for o in manifest_objects():
        assert o["apiVersion"] == {"Route": "route.openshift.io/v1", "Deployment": "apps/v1"}.get(o["kind"], "v1")


def test_deployment_is_non_root_read_only_and_drops_every_capability():
    deployment = one("Deployment")
    assert deployment["spec"]["replicas"] == 1          # state is in memory, per process
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security.get("runAsUser", IMAGE_UID) != 0
    assert isinstance(security["fsGroup"], int) and security["fsGroup"] != 0
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    c = container()
    cs = c["securityContext"]
    assert cs["readOnlyRootFilesystem"] is True
    assert cs["allowPrivilegeEscalation"] is False
    assert cs["capabilities"]["drop"] == ["ALL"] and not cs["capabilities"].get("add")
    assert {p["containerPort"]: p["name"] for p in c["ports"]} == {1883: "mqtt", 8883: "mqtts", 9883: "admin"}
    # HTTP probes on the admin listener that plugins.conf in the ConfigMap opens.
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert re.search(r"^admin_listener 9883$", one("ConfigMap")["data"]["plugins.conf"], flags=re.M)
    env = env_of(c)
    assert env["MIDGE_CONFIG_DIR"] == "/etc/midge"
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["/etc/midge"].get("readOnly") is True
    assert "projected" in volumes[mounts["/etc/midge"]["name"]]
    state = mounts[env["MIDGE_STATE_DIR"]]              # the state directory is a writable emptyDir
    assert not state.get("readOnly") and "emptyDir" in volumes[state["name"]]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]


def test_services_and_the_passthrough_route():
    pod_labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    services = [o for o in manifest_objects() if o["kind"] == "Service"]
    by_type = {s["spec"].get("type", "ClusterIP"): s for s in services}
    assert "ClusterIP" in by_type and ({"NodePort", "LoadBalancer"} & by_type.keys())
    named_ports = {p["name"] for p in container()["ports"]}
    for s in services:
        assert s["spec"]["selector"].items() <= pod_labels.items()
        assert sorted(p["port"] for p in s["spec"]["ports"]) == [1883, 8883], s["metadata"]["name"]
        for p in s["spec"]["ports"]:
            assert p["targetPort"] in named_ports or p["targetPort"] in (1883, 8883)
    route = one("Route")
    assert route["spec"]["tls"]["termination"] == "passthrough"
    assert route["spec"]["tls"].get("insecureEdgeTerminationPolicy", "None") == "None"
    assert route["spec"]["to"] == {"kind": "Service", "name": by_type["ClusterIP"]["metadata"]["name"]}
    target = route["spec"]["port"]["targetPort"]
    port = next(p for p in by_type["ClusterIP"]["spec"]["ports"] if target in (p["name"], p["port"]))
    assert port["port"] == 8883
    # The Route's host is among the names a generated server certificate gets.
    assert route["spec"]["host"] in env_of(container())["MIDGE_TLS_SANS"].split(",")


def test_the_config_directory_volume_matches_what_plugins_conf_names():
    """plugins.conf in the ConfigMap names passwd and certs/server.crt|key relative to /etc/midge; the projected
    volume must put the Secrets' files exactly there."""
    paths = {item["path"] for source in config_volume()["projected"]["sources"]
             for item in next(iter(source.values())).get("items", [])}
    conf = one("ConfigMap")["data"]["plugins.conf"]
    named = set(re.findall(r"^(?:password_file|certfile|keyfile) (\S+)", conf, flags=re.M))
    assert named == {"passwd", "certs/server.crt", "certs/server.key"}
    assert named | {"plugins.conf", "certs/ca.crt"} <= paths
    assert re.findall(r"^listener (\d+)", conf, flags=re.M) == ["1883", "8883"]


def config_volume() -> dict:
    pod = one("Deployment")["spec"]["template"]["spec"]
    mount = next(m for m in container()["volumeMounts"] if m["mountPath"] == "/etc/midge")
    return next(v for v in pod["volumes"] if v["name"] == mount["name"])


def secret_data(secret: dict) -> dict[str, bytes]:
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    data.update({k: v.encode() for k, v in (secret.get("stringData") or {}).items()})
    return data


def assemble_config_volume(directory: Path, fs_group: int, tls_secret: dict[str, bytes] | None):
    """What the kubelet mounts at /etc/midge: each source's items at their paths, defaultMode, group fsGroup
    (the volume itself read-only: not writable for the pod's user)."""
    volume = config_volume()["projected"]
    mode = volume.get("defaultMode", 0o644)
    # The kubelet mounts it read-only; here, no write permission for anyone but root stands for that.
    place(directory, None, 0o555, 0, fs_group)
    for source in volume["sources"]:
        kind, ref = next(iter(source.items()))
        if kind == "configMap":
            data = {k: v.encode() for k, v in one("ConfigMap", ref["name"])["data"].items()}
        elif kind == "secret":
            found = [o for o in manifest_objects() if o["kind"] == "Secret" and o["metadata"]["name"] == ref["name"]]
            if found:
                data = secret_data(found[0])
            elif ref["name"] == "midge-tls" and tls_secret is not None:
                data = tls_secret
            else:
                assert ref.get("optional") is True, f"secret {ref['name']} is neither in the manifest nor optional"
                continue
        else:
            raise AssertionError(f"unexpected projected source {kind}")
        for item in ref.get("items", [{"key": k, "path": k} for k in data]):
            if item["key"] not in data:
                assert ref.get("optional") is True, f"{ref['name']} has no {item['key']}"
                continue
            content = data[item["key"]]
            if item["path"] == "plugins.conf":
                content = on_free_ports(content.decode()).encode()
            for parent in reversed(Path(item["path"]).parents[:-1]):
                place(directory / parent, None, 0o555, 0, fs_group)
            place(directory / item["path"], content, item.get("mode", mode), 0, fs_group)


@needs_root
def test_the_manifest_volumes_run_as_the_deployment_says():
    """The pod as the kubelet would set it up: /etc/midge from the ConfigMap and Secrets (read-only, 0440, group
    fsGroup), MIDGE_STATE_DIR an empty directory, the UID from the securityContext with group 0 and fsGroup.
    First without the optional midge-tls Secret (certificates generated, with the MIDGE_TLS_SANS names), then
    with one made from those certificates, as `kubectl create secret generic midge-tls` would."""
    pod = one("Deployment")["spec"]["template"]["spec"]
    uid, fs_group = pod["securityContext"].get("runAsUser", IMAGE_UID), pod["securityContext"]["fsGroup"]
    env = env_of(container())
    sans = env["MIDGE_TLS_SANS"].replace("$(POD_NAMESPACE)", "default")
    with open_top("midge-pod-") as name:
        top = Path(name)
        conf_dir = top / "etc/midge"
        state = top / "var/lib/midge"
        assemble_config_volume(conf_dir, fs_group, None)
        place(state, None, 0o2777, 0, fs_group)    # an emptyDir, with fsGroup applied
        broker = Process(top, conf_dir, state, uid, groups=[fs_group], env={"MIDGE_TLS_SANS": sans}).start()
        try:
            assert broker.publish().returncode == 0
            assert broker.publish(tls_ca=state / "ca.crt").returncode == 0
        finally:
            log = broker.stop()
        assert "world-readable" not in log
        for san in sans.split(","):
            assert san in log, f"{san} not among the generated certificate's names: {log}"
        assert not (conf_dir / "certs").exists()

        tls = {"tls.crt": (state / "server.crt").read_bytes(), "tls.key": (state / "server.key").read_bytes(),
               "ca.crt": (state / "ca.crt").read_bytes()}
        shutil.rmtree(conf_dir)
        shutil.rmtree(state)
        assemble_config_volume(conf_dir, fs_group, tls)
        place(state, None, 0o2777, 0, fs_group)
        broker = Process(top, conf_dir, state, uid, groups=[fs_group], env={"MIDGE_TLS_SANS": sans}).start()
        try:
            assert broker.publish(tls_ca=conf_dir / "certs/ca.crt").returncode == 0
        finally:
            log = broker.stop()
        assert list(state.iterdir()) == [], "certificates generated although the Secret supplies them"
        assert "Generated" not in log
