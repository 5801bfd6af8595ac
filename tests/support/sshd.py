"""An sshd of a test's own on a free loopback port (as molecule/ssh/create.yml starts one): its own
configuration, host key and pid file in a directory of the test's, keys only, the users it lets in
named (AllowUsers), authorized_keys at a path of the test's (`authorized_keys(user)`). Run as root.

StrictModes is off: the test's directory lives under /tmp (1777), which sshd's StrictModes refuses
for the authorized_keys path; the role's files themselves are 0600/0700 and the tests check that.
UsePAM is on, as on Debian's own sshd: accounts such as postgres are locked ('!') and sshd without
PAM refuses a locked account even for a key.
"""

import os
import shutil
import signal
import subprocess
import time

from .pgcluster import free_port

SSHD = "/usr/sbin/sshd"


def available():
    return os.geteuid() == 0 and os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("ssh-keygen")


class Sshd:
    def __init__(self, base, allow_users):
        self.base = base
        self.allow_users = list(allow_users)
        self.port = free_port()
        self.config = os.path.join(base, "sshd_config")
        self.host_key = os.path.join(base, "host_key")
        self.pid_file = os.path.join(base, "sshd.pid")
        self.log = os.path.join(base, "sshd.log")

    def authorized_keys(self, user):
        return os.path.join(self.base, "authorized_keys", user, "authorized_keys")

    def known_hosts_line(self):
        with open(self.host_key + ".pub") as fh:
            return "[127.0.0.1]:%d %s" % (self.port, " ".join(fh.read().split()[:2]))

    def start(self):
        os.makedirs(os.path.join(self.base, "authorized_keys"), exist_ok=True)  # each user's directory below
        os.chmod(os.path.join(self.base, "authorized_keys"), 0o755)
        os.makedirs("/run/sshd", exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "maestro test sshd", "-f",
                        self.host_key], check=True)
        with open(self.config, "w") as fh:
            fh.write("\n".join([
                "Port %d" % self.port, "ListenAddress 127.0.0.1", "HostKey " + self.host_key,
                "PidFile " + self.pid_file,
                "AuthorizedKeysFile %s/authorized_keys/%%u/authorized_keys" % self.base,
                "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin no",
                "AllowUsers " + " ".join(self.allow_users), "UsePAM yes", "StrictModes no",
                "AllowTcpForwarding no", "X11Forwarding no", ""]))
        subprocess.run([SSHD, "-t", "-f", self.config], check=True)
        subprocess.run([SSHD, "-f", self.config, "-E", self.log], check=True)
        deadline = time.time() + 20
        while not os.path.exists(self.pid_file):
            if time.time() > deadline:
                raise RuntimeError("sshd did not start: " + open(self.log).read())
            time.sleep(0.1)
        return self

    def stop(self):
        try:
            with open(self.pid_file) as fh:
                pid = int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
