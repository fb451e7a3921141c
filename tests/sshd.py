"""A throwaway OpenSSH server on 127.0.0.1 for the remote-benchmark tests.

``LocalSshd.start(folder)`` generates a host key and a user key in ``folder``, starts
``sshd -D`` on a free port that accepts only that user key, and writes an ssh client config
(``ssh_config``) with the key and a known_hosts file holding the host key, so the client runs
exactly as for a user (BatchMode, strict host key checking) without touching ``~/.ssh``.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")
SFTP_CANDIDATES = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                   "/usr/libexec/sftp-server")


def find_sshd() -> str | None:
    """The absolute path of sshd (it refuses to start from a relative one), or None."""
    found = shutil.which("sshd")
    if found:
        return os.path.abspath(found)
    return next((p for p in SSHD_CANDIDATES if os.access(p, os.X_OK)), None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    """An ed25519 key pair without passphrase at ``path`` and ``path.pub``."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgessl-test",
                    "-f", str(path)], check=True, capture_output=True)
    return path


def client_config(folder: Path, port: int, key: Path, known_hosts: Path,
                  name: str = "ssh_config") -> Path:
    """An ssh client config for 127.0.0.1 with ``key`` only and ``known_hosts`` only."""
    path = folder / name
    path.write_text(
        "Host 127.0.0.1\n"
        f"  Port {port}\n"
        f"  IdentityFile {key}\n"
        "  IdentitiesOnly yes\n"
        "  IdentityAgent none\n"
        f"  UserKnownHostsFile {known_hosts}\n"
        "  StrictHostKeyChecking yes\n"
        "  LogLevel ERROR\n"
    )
    return path


@dataclass
class LocalSshd:
    """A running sshd on 127.0.0.1.

    Attributes:
        folder: keys, configs and the server log.
        port: the port it listens on.
        user: the user it lets in (the one running the tests).
        key: the accepted private key.
        known_hosts: a known_hosts file holding the server's host key.
        ssh_config: a client config for 127.0.0.1 using ``key`` and ``known_hosts``.
        process: the sshd process.
    """

    folder: Path
    port: int
    user: str
    key: Path
    known_hosts: Path
    ssh_config: Path
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    @classmethod
    def start(cls, folder: Path, sshd: str) -> LocalSshd:
        """Start sshd with fresh keys in ``folder``; raises RuntimeError if it does not listen."""
        folder.mkdir(parents=True, exist_ok=True)
        host_key = keygen(folder / "host_key")
        key = keygen(folder / "user_key")
        authorized = folder / "authorized_keys"
        authorized.write_text((folder / "user_key.pub").read_text())
        port = free_port()
        if os.geteuid() == 0:  # root's sshd wants its privilege separation folder
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        sftp = next((p for p in SFTP_CANDIDATES if os.access(p, os.X_OK)), "internal-sftp")
        config = folder / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"PidFile {folder / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "PermitRootLogin prohibit-password\n"
            f"Subsystem sftp {sftp}\nLogLevel ERROR\n"
        )
        known_hosts = folder / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {(folder / 'host_key.pub').read_text()}")
        log = open(folder / "sshd.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=log,
                                   stderr=subprocess.STDOUT)
        server = cls(folder, port, getpass.getuser(), key, known_hosts,
                     client_config(folder, port, key, known_hosts), process)
        server._wait_listening(log)
        return server

    def _wait_listening(self, log, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log.close()
                raise RuntimeError(f"sshd exited: {(self.folder / 'sshd.log').read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen on port {self.port} within {timeout:g} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
