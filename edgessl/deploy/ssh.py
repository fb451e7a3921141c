"""SSH to a device: the ``ssh://`` address and a session that runs commands and copies files.

Uses the system ``ssh`` and ``scp`` clients (argument lists, never a shell on this side) in
batch mode: key auth only, from the user's ``~/.ssh/config`` and agent, so a missing key fails
at once instead of waiting at a password prompt. Each way ssh can fail has its own one-line
message that says how to fix it: unreachable host, refused key, unknown host key, timeout.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from edgessl.deploy.remote_config import RemoteConfig
from edgessl.errors import ConfigError, DeviceUnavailableError

log = logging.getLogger("edgessl")

UNREACHABLE = ("connection refused", "timed out", "no route to host", "could not resolve",
               "network is unreachable", "name or service not known", "connection closed",
               "connection reset", "kex_exchange_identification", "temporary failure")


class RemoteError(DeviceUnavailableError):
    """The device could not be reached, refused the key, or cannot run the bundle.

    Attributes:
        kind: "unreachable", "auth", "host-key", "python", "runtime", "timeout" or "remote".
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class SshTarget:
    """Where to connect: ``ssh://[user@]host[:port]``."""

    host: str
    user: str | None = None
    port: int | None = None

    @property
    def destination(self) -> str:
        """``user@host`` as ssh and scp take it (IPv6 addresses in brackets for scp)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" if self.user else host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        return f"{user}{host}" + (f":{self.port}" if self.port else "")

    def ssh_command(self) -> str:
        """The ssh command a user types to reach this target (for messages)."""
        return shlex.join(["ssh", *(["-p", str(self.port)] if self.port else []),
                           self.destination.strip("[]")])


def parse_target(url: str) -> SshTarget:
    """Parse ``ssh://[user@]host[:port]``.

    Raises:
        ConfigError: for another scheme, a path, a bad port or a host/user starting with '-'.
    """
    example = "pass --remote ssh://user@host or ssh://user@host:2222"
    parts = urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise ConfigError(f"remote '{url}' is not an ssh:// address; {example}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.password:
        raise ConfigError(f"remote '{url}' has a path, query or password; {example}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"remote '{url}' has a bad port; {example}") from None
    user = parts.username
    # A leading '-' would make ssh read the host or user as an option.
    if parts.hostname.startswith("-") or (user or "").startswith("-"):
        raise ConfigError(f"remote '{url}' has a host or user starting with '-'; {example}")
    return SshTarget(host=parts.hostname, user=user, port=port)


class SshSession:
    """Runs commands on and copies files to one target with the system ssh/scp clients."""

    def __init__(self, target: SshTarget, config: RemoteConfig) -> None:
        self.target = target
        self.config = config

    def _options(self) -> list[str]:
        c = self.config
        options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={c.connect_timeout}",
                   "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        if c.ssh_config:
            options += ["-F", c.ssh_config]
        if c.identity:
            options += ["-i", c.identity]
        return options

    def run(self, argv: list[str], what: str, timeout: float | None = None
            ) -> subprocess.CompletedProcess:
        """Run ``argv`` on the target (quoted for its shell); ssh failures become RemoteError."""
        port = ["-p", str(self.target.port)] if self.target.port else []
        command = ["ssh", *self._options(), *port, self.target.destination.strip("[]"),
                   shlex.join(argv)]
        return self._call(command, what, timeout)

    def copy(self, local: Path, remote_folder: str) -> None:
        """Copy the folder ``local`` into ``remote_folder`` on the target (scp -r)."""
        port = ["-P", str(self.target.port)] if self.target.port else []
        command = ["scp", "-q", "-r", *self._options(), *port, str(local),
                   f"{self.target.destination}:{remote_folder}/"]
        result = self._call(command, f"copying the bundle to {self.target}")
        if result.returncode != 0:
            raise RemoteError("remote", f"copying the bundle to {self.target}:{remote_folder} "
                              f"failed ({last_line(result.stderr)}); check the free space there")

    def _call(self, command: list[str], what: str, timeout: float | None = None
              ) -> subprocess.CompletedProcess:
        limit = timeout or self.config.timeout
        log.debug("running %s", shlex.join(command))
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=limit,
                                    stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise RemoteError("unreachable", f"'{command[0]}' is not installed on this host; "
                              "install the OpenSSH client (e.g. apt install openssh-client)"
                              ) from None
        except subprocess.TimeoutExpired:
            raise RemoteError("timeout", f"{what} on {self.target} took longer than {limit:g} s; "
                              "check the device or raise --remote-timeout") from None
        if result.returncode == 255:
            raise ssh_failure(self.target, result.stderr)
        return result


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no message"


def ssh_failure(target: SshTarget, stderr: str) -> RemoteError:
    """The RemoteError for ssh's exit code 255, told apart by ssh's message."""
    text = (stderr or "").lower()
    detail = last_line(stderr)
    if "permission denied" in text or "too many authentication failures" in text:
        return RemoteError("auth", f"{target} refused every key offered ({detail}); edgessl "
                           "uses key auth only: install your key there (ssh-copy-id"
                           f"{' -p ' + str(target.port) if target.port else ''} "
                           f"{target.destination.strip('[]')}) or load it (ssh-add), then check "
                           f"that `{target.ssh_command()} true` works without a password")
    if "host key verification failed" in text or "host identification has changed" in text:
        return RemoteError("host-key", f"the host key of {target} is unknown or changed "
                           f"({detail}); connect once with `{target.ssh_command()}` to check "
                           "and accept it")
    if any(marker in text for marker in UNREACHABLE):
        return RemoteError("unreachable", f"cannot reach {target} ({detail}); check the host "
                           "name, the port and that sshd runs on the device")
    return RemoteError("remote", f"ssh to {target} failed ({detail}); try "
                       f"`{target.ssh_command()} true` to see why")
