#!/usr/bin/env python3
"""The container lab: Docker engine, local systemd images, lab hosts from the inventory.

Everything the lab needs comes from two places: Debian's packages (docker.io,
debootstrap) through the mirror the host's apt already uses, and the lab inventory,
whose hosts carry ``lab_address`` and whose ``all`` group carries ``lab_network``.
No registry is contacted: images are built here and rebuilt only when their recipe
(this file's constants and ``lab/packages.txt``) changes.

    lab.py docker           install and start the Docker engine if needed
    lab.py images           build the base and node images if their recipe changed
    lab.py browser          install Debian's chromium and certutil (the browser test)
    lab.py up [-i INV]      docker + images + network + one container per lab host
    lab.py down [-i INV]    remove the lab containers and network
    lab.py status [-i INV]  one line per lab host
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = "trixie"  # Debian 13: the suite that carries HTCondor
BASE_INCLUDE = "systemd,systemd-sysv,python3,python3-apt,sudo,iproute2,procps,ca-certificates"
BASE_IMAGE = "panda-lab/base"
NODE_IMAGE = "panda-lab/node"
RECIPE_LABEL = "org.panda-facility.recipe"
PACKAGES_FILE = ROOT / "lab" / "packages.txt"
DEFAULT_INVENTORY = ROOT / "inventories" / "lab"

# Flags that let systemd run as PID 1 without --privileged (see shared LAB notes).
SYSTEMD_RUN_FLAGS = [
    "--cap-add",
    "SYS_ADMIN",
    "--cap-add",
    "NET_ADMIN",
    "--security-opt",
    "seccomp=unconfined",
    "--cgroupns=host",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
    "--stop-signal",
    "SIGRTMIN+3",
    "-e",
    "container=docker",
    # /proc/sys is read-only in a container: what the roles set there is set here (the
    # load balancers' Apache binds VIPs it does not hold yet).
    "--sysctl",
    "net.ipv4.ip_nonlocal_bind=1",
]


def log(msg: str) -> None:
    print(f"lab: {msg}", flush=True)


def run(
    cmd: list[str], check: bool = True, capture: bool = False, input_bytes: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run a command; on failure print what it said, since CI logs are all we get."""
    proc = subprocess.run(cmd, input=input_bytes, capture_output=capture)
    if check and proc.returncode != 0:
        detail = (proc.stderr or b"").decode(errors="replace").strip() if capture else ""
        raise SystemExit(f"lab: command failed ({proc.returncode}): {' '.join(cmd)}\n{detail}")
    return proc


def out(cmd: list[str]) -> str:
    return run(cmd, capture=True).stdout.decode().strip()


# --- the Debian mirror, read from the host's apt configuration --------------------


def mirror_from_deb822(text: str) -> list[str]:
    """URIs of deb stanzas in a .sources file that are not security suites."""
    uris: list[str] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if all(s.endswith("-security") for s in fields.get("suites", "").split()):
            continue
        uris.extend(fields.get("uris", "").split())
    return uris


def mirror_from_list(text: str) -> list[str]:
    """URIs of one-line ``deb`` entries that are not security suites."""
    uris: list[str] = []
    for line in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb" and not words[2].endswith("-security"):
            uris.append(words[1])
    return uris


def host_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this host's apt uses; LAB_MIRROR overrides it."""
    if os.environ.get("LAB_MIRROR"):
        return os.environ["LAB_MIRROR"]
    uris: list[str] = []
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        uris += mirror_from_deb822(path.read_text())
    for path in [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            uris += mirror_from_list(path.read_text())
    debian = [u for u in uris if "security" not in u]
    if not debian:
        raise SystemExit("lab: no Debian mirror in /etc/apt; set LAB_MIRROR=<url>")
    return debian[0].rstrip("/")


# --- Docker engine -----------------------------------------------------------------


def docker_ready() -> bool:
    return (
        shutil.which("docker") is not None
        and run(["docker", "info"], check=False, capture=True).returncode == 0
    )


def ensure_docker() -> None:
    """Install docker.io from Debian when missing; start dockerd when it is not running."""
    if docker_ready():
        return
    if shutil.which("dockerd") is None:
        log("installing docker.io and debootstrap from Debian packages")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "docker.io", "debootstrap"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    log("starting dockerd")
    (ROOT / ".lab").mkdir(exist_ok=True)
    # dockerd outlives this process: the log file stays open in it, not here.
    with open(ROOT / ".lab" / "dockerd.log", "ab") as logfile:
        subprocess.Popen(
            ["dockerd"], stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if docker_ready():
            return
        time.sleep(1)
    raise SystemExit("lab: dockerd did not answer within 60 s")


BROWSER_PACKAGES = ["chromium", "libnss3-tools", "fonts-dejavu-core"]


def ensure_browser() -> None:
    """Debian's chromium (headless) and certutil, for the lab's browser test."""
    if shutil.which("chromium") and shutil.which("certutil"):
        return
    log(f"installing {' '.join(BROWSER_PACKAGES)} from Debian packages")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *BROWSER_PACKAGES],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


# --- images ------------------------------------------------------------------------


def node_packages() -> list[str]:
    words = []
    for line in PACKAGES_FILE.read_text().splitlines():
        words += line.split("#", 1)[0].split()
    return words


def recipe_hashes() -> tuple[str, str]:
    """Hashes of the base recipe and the node recipe (which includes the base)."""
    base = hashlib.sha256(f"{SUITE}|{BASE_INCLUDE}|v2".encode()).hexdigest()[:16]
    node = hashlib.sha256(
        f"{base}|{' '.join(node_packages())}|{' '.join(DISABLED_UNITS)}|v2".encode()
    ).hexdigest()[:16]
    return base, node


# Services the node image has installed but must not start until a role enables them.
DISABLED_UNITS = [
    "apache2",
    "apache-htcacheclean",
    "mariadb",
    "haproxy",
    "keepalived",
    "squid",
    "condor",
    "nagios4",
    "postfix",
    "cron",
    "exim4",
    "firewalld",
    "nagios-nrpe-server",
    "prometheus",
]


def image_recipe(image: str) -> str | None:
    proc = run(
        [
            "docker",
            "image",
            "inspect",
            "-f",
            '{{ index .Config.Labels "' + RECIPE_LABEL + '" }}',
            f"{image}:latest",
        ],
        check=False,
        capture=True,
    )
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def build_base(recipe: str) -> None:
    debootstrap_image(SUITE, BASE_INCLUDE, BASE_IMAGE, recipe, '["/lib/systemd/systemd"]')


def debootstrap_image(suite: str, include: str, image: str, recipe: str, cmd: str) -> None:
    """A minimal Debian ``suite`` from the host's mirror with ``include``, imported as
    ``image`` and labelled with its recipe."""
    if shutil.which("debootstrap") is None:
        ensure_docker()
        subprocess.run(["apt-get", "install", "-y", "-qq", "debootstrap"], check=True)
    mirror = host_mirror()
    log(f"debootstrap {suite} from the host's mirror (about a minute)")
    with tempfile.TemporaryDirectory(prefix="panda-lab-rootfs-") as rootfs:
        run(
            ["debootstrap", "--variant=minbase", f"--include={include}", suite, rootfs, mirror],
            capture=True,
        )
        # Each container must get a machine id of its own at first boot.
        Path(rootfs, "etc/machine-id").write_text("")
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [
                "docker",
                "import",
                "--change",
                f"LABEL {RECIPE_LABEL}={recipe}",
                "--change",
                "ENV container=docker",
                "--change",
                f"CMD {cmd}",
                "-",
                f"{image}:latest",
            ],
            stdin=tar.stdout,
            stdout=subprocess.DEVNULL,
        )
        if tar.wait() != 0 or imported.returncode != 0:
            raise SystemExit(f"lab: importing the {image} image failed")


def build_node(recipe: str) -> None:
    """Base image plus the facility's packages, installed once, services left disabled."""
    log("installing the facility's packages into the node image (a few minutes)")
    name = "panda-lab-build"
    run(["docker", "rm", "-f", name], check=False, capture=True)
    script = "\n".join(
        [
            "set -e",
            "export DEBIAN_FRONTEND=noninteractive",
            # Keep package scripts from starting daemons inside the build container.
            "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d",
            "chmod +x /usr/sbin/policy-rc.d",
            "apt-get update -qq",
            "apt-get install -y -qq --no-install-recommends "
            + " ".join(node_packages())
            + " >/tmp/apt.log || { tail -n 40 /tmp/apt.log; exit 1; }",
            "rm -f /usr/sbin/policy-rc.d /tmp/apt.log",
            "for u in " + " ".join(DISABLED_UNITS) + "; do",
            '  systemctl disable "$u" >/dev/null 2>&1 || true',
            "done",
            "apt-get clean",
        ]
    )
    run(["docker", "run", "--name", name, f"{BASE_IMAGE}:latest", "bash", "-c", script])
    run(
        [
            "docker",
            "commit",
            "--change",
            f"LABEL {RECIPE_LABEL}={recipe}",
            "--change",
            'CMD ["/lib/systemd/systemd"]',
            name,
            f"{NODE_IMAGE}:latest",
        ],
        capture=True,
    )
    run(["docker", "rm", "-f", name], capture=True)


def ensure_images() -> None:
    base, node = recipe_hashes()
    if image_recipe(BASE_IMAGE) != base:
        build_base(base)
    else:
        log(f"{BASE_IMAGE} is current ({base})")
    if image_recipe(NODE_IMAGE) != node:
        build_node(node)
    else:
        log(f"{NODE_IMAGE} is current ({node})")


# --- lab hosts from the inventory --------------------------------------------------


@dataclass(frozen=True)
class LabHost:
    name: str  # the container's name
    hostname: str  # the inventory name, also the host name inside the container
    address: str
    aliases: tuple[str, ...]
    tmpfs: tuple[str, ...] = ()  # lab_tmpfs: small file systems of its own (PATH:size=N)


@dataclass(frozen=True)
class LabNetwork:
    name: str
    subnet: str


def read_inventory(inventory: Path) -> tuple[LabNetwork, list[LabHost]]:
    data = json.loads(out(["ansible-inventory", "-i", str(inventory), "--list"]))
    hostvars: dict[str, dict] = data.get("_meta", {}).get("hostvars", {})
    return lab_topology(hostvars)


def lab_topology(hostvars: dict[str, dict]) -> tuple[LabNetwork, list[LabHost]]:
    """The network and hosts the lab inventory describes; hosts without lab_address
    (such as the controller) are not containers."""
    hosts: list[LabHost] = []
    network: LabNetwork | None = None
    for name, hv in sorted(hostvars.items()):
        if "lab_address" not in hv:
            continue
        net = hv.get("lab_network") or {}
        if not net.get("name") or not net.get("subnet"):
            raise SystemExit(
                f"lab: host {name} has lab_address but lab_network lacks name or subnet"
            )
        network = network or LabNetwork(net["name"], net["subnet"])
        domain = hv.get("facility_domain", "")
        aliases = tuple(sorted({name, f"{name}.{domain}" if domain else name}))
        # The container is what Ansible connects to: the host's ansible_host, else the
        # network's prefix and the inventory name.
        container = hv.get("ansible_host") or f"{net.get('container_prefix', '')}{name}"
        tmpfs = tuple(str(t) for t in hv.get("lab_tmpfs", []))
        hosts.append(LabHost(container, name, hv["lab_address"], aliases, tmpfs))
    if network is None:
        raise SystemExit("lab: the inventory has no host with lab_address")
    return network, hosts


def container_state(name: str) -> str | None:
    proc = run(["docker", "inspect", "-f", "{{.State.Status}}", name], check=False, capture=True)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def wait_booted(names: list[str], timeout: float = 120) -> None:
    """Wait until systemd in every container has finished starting up."""
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            proc = run(
                ["docker", "exec", name, "systemctl", "is-system-running"],
                check=False,
                capture=True,
            )
            if proc.stdout.decode().strip() in ("running", "degraded"):
                pending.remove(name)
        if pending:
            time.sleep(1)
    if pending:
        raise SystemExit(f"lab: systemd did not finish booting in: {', '.join(pending)}")


def up(inventory: Path) -> None:
    ensure_docker()
    ensure_images()
    network, hosts = read_inventory(inventory)
    if (
        run(["docker", "network", "inspect", network.name], check=False, capture=True).returncode
        != 0
    ):
        log(f"creating network {network.name} ({network.subnet})")
        run(["docker", "network", "create", "--subnet", network.subnet, network.name], capture=True)
    started = []
    for host in hosts:
        state = container_state(host.name)
        if state == "running":
            continue
        if state is not None:
            run(["docker", "start", host.name], capture=True)
        else:
            log(f"creating {host.name} at {host.address}")
            alias_flags = [f for a in host.aliases for f in ("--network-alias", a)]
            run(
                [
                    "docker",
                    "run",
                    "-d",
                    "--name",
                    host.name,
                    "--hostname",
                    host.hostname,
                    "--network",
                    network.name,
                    "--ip",
                    host.address,
                    *alias_flags,
                    "--label",
                    "org.panda-facility.lab=1",
                    *SYSTEMD_RUN_FLAGS,
                    *[f for t in host.tmpfs for f in ("--tmpfs", t)],
                    f"{NODE_IMAGE}:latest",
                    "/lib/systemd/systemd",
                ],
                capture=True,
            )
        started.append(host.name)
    wait_booted([h.name for h in hosts])
    log(f"{len(hosts)} lab hosts running ({len(started)} started now)")


def down(inventory: Path) -> None:
    if not docker_ready():
        return
    network, hosts = read_inventory(inventory)
    names = [h.name for h in hosts if container_state(h.name) is not None]
    if names:
        run(["docker", "rm", "-f", *names], capture=True)
    run(["docker", "network", "rm", network.name], check=False, capture=True)
    log(f"removed {len(names)} lab hosts")


def status(inventory: Path) -> None:
    _, hosts = read_inventory(inventory)
    for host in hosts:
        print(f"{host.name:12} {host.address:15} {container_state(host.name) or 'absent'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["docker", "images", "browser", "up", "down", "status"])
    parser.add_argument("-i", "--inventory", type=Path, default=DEFAULT_INVENTORY)
    args = parser.parse_args(argv)
    (ROOT / ".lab").mkdir(exist_ok=True)
    if args.command == "docker":
        ensure_docker()
    elif args.command == "images":
        ensure_docker()
        ensure_images()
    elif args.command == "browser":
        ensure_browser()
    elif args.command == "up":
        up(args.inventory)
    elif args.command == "down":
        down(args.inventory)
    else:
        status(args.inventory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
