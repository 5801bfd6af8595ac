"""App hosts reached over SSH for the scale benchmark (issue 17 item 4): one sshd per host on its
own loopback port (tests/support/sshd.py), all letting in one deploy user of the benchmark's own
(not root, no sudo), its client key and each host's key checked (StrictHostKeyChecking=yes).
The hosts share this machine's cores, disk and PostgreSQL; what separates them is what a
controller sees: a connection, a login and a Python per host. The database is its own inventory
host (`db`, the controller's local connection, as the PostgreSQL runs here).

The controller's CPU is what grows with hosts: `controller_cpu()` is the CPU time of this
process's waited-for children (ansible-playbook, its workers, the ssh clients Mitogen or Ansible
started) plus the SSH control masters Ansible left in the background (they leave the process
tree), which are read from /proc and then stopped, so each run counts its own."""

import os
import pwd
import resource
import shutil
import signal
import subprocess

from tests.support import sshd
from tests.support.paths import PM2, REPO

TICKS = os.sysconf("SC_CLK_TCK")


def available():
    return sshd.available()


class Fleet:
    """`with Fleet(base, count) as fleet:` - the user, the keys and `count` sshds; all removed after."""

    def __init__(self, base, count):
        self.base = base
        self.count = count
        self.user = "mbench" + os.urandom(3).hex()
        self.servers = []
        self.key = os.path.join(base, "client_key")
        self.known_hosts = os.path.join(base, "known_hosts")
        self.control_dir = os.path.join(base, "cp")

    def __enter__(self):
        os.makedirs(self.control_dir, exist_ok=True)
        subprocess.run(["useradd", "-m", "-d", os.path.join(self.base, "home"), "-s", "/bin/sh", "-p", "*",
                        self.user], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "maestro bench", "-f", self.key],
                       check=True)
        with open(self.key + ".pub") as fh:
            public = fh.read()
        lines = []
        for i in range(self.count):
            server = sshd.Sshd(os.path.join(self.base, "sshd%02d" % (i + 1)), allow_users=[self.user])
            os.makedirs(server.base, exist_ok=True)
            server.start()
            self.servers.append(server)
            keys = server.authorized_keys(self.user)
            os.makedirs(os.path.dirname(keys), exist_ok=True)
            with open(keys, "w") as fh:
                fh.write(public)
            lines.append(server.known_hosts_line())
        with open(self.known_hosts, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        return self

    def __exit__(self, *exc):
        self.stop_control_masters()
        for server in self.servers:
            server.stop()
        subprocess.run(["pkill", "-KILL", "-u", self.user], capture_output=True, check=False)
        subprocess.run(["userdel", self.user], capture_output=True, check=False)

    def own(self, path):
        """Hand a directory (and what is in it) to the deploy user."""
        entry = pwd.getpwnam(self.user)
        for top, dirs, files in os.walk(path):
            for name in [top] + [os.path.join(top, n) for n in dirs + files]:
                os.lchown(name, entry.pw_uid, entry.pw_gid)

    def repo_copy(self, repo, dest):
        """The app repository, the deploy user's (git refuses a repository of another owner)."""
        shutil.copytree(repo, dest, symlinks=True)
        self.own(dest)
        return dest

    def host_vars(self, index):
        server = self.servers[index]
        return {
            "ansible_connection": "ssh",
            "ansible_host": "127.0.0.1",
            "ansible_port": server.port,
            "ansible_user": self.user,
            "ansible_ssh_private_key_file": self.key,
            "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes" % self.known_hosts,
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_become": False,
            "deploy_user": self.user,
            "pm2_bin": PM2,
        }

    def envvars(self):
        return {"ANSIBLE_SSH_CONTROL_PATH_DIR": self.control_dir, "ANSIBLE_HOST_KEY_CHECKING": "True"}

    def control_masters(self):
        """pids of the SSH control masters whose sockets are in this fleet's directory."""
        pids = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % name, "rb") as fh:
                    argv = fh.read().split(b"\0")
            except OSError:
                continue
            if argv and os.path.basename(argv[0]) == b"ssh" and any(self.control_dir.encode() in a for a in argv):
                pids.append(int(name))
        return pids

    def stop_control_masters(self):
        """CPU seconds the control masters used, then stop them (each run starts its own)."""
        total = 0.0
        for pid in self.control_masters():
            total += process_cpu(pid)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        return total


def process_cpu(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat)


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def kill_pm2(user, home):
    subprocess.run(["runuser", "-u", user, "--", PM2, "kill"], env=dict(os.environ, PM2_HOME=home),
                   capture_output=True, timeout=120, cwd=REPO, check=False)
