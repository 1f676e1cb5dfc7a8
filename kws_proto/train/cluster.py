"""Training past one machine: the cluster a worker belongs to (``TF_CONFIG``) and local workers.

``kws-proto train CONFIG --strategy multi-worker`` runs one worker of a
``tf.distribute.MultiWorkerMirroredStrategy``; every worker runs the same command and reads its
place from the ``TF_CONFIG`` environment variable, e.g. for the second of two workers::

    TF_CONFIG='{"cluster": {"worker": ["host0:2222", "host1:2222"]}, "task": {"type": "worker", "index": 1}}'

Worker 0 (or the task of type ``chief``, when the cluster lists one) is the chief: it alone
writes the run directory.  :func:`read_cluster` checks ``TF_CONFIG`` before TensorFlow reads it,
so a malformed one, a missing task or an address this machine cannot listen on is a
:class:`~kws_proto.errors.ConfigError` naming it, not a hang.

``kws-proto train CONFIG --workers N`` is :func:`launch_workers`: N worker processes on
127.0.0.1 with free ports and a generated ``TF_CONFIG`` each, Ctrl-C forwarded to them, and a
:class:`WorkerError` naming the worker when one dies (the others are stopped first).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kws_proto.errors import ConfigError, KwsError
from kws_proto.model.runs import RunDir
from kws_proto.util.atomic import remove_stale_temps, temp_sibling

LOOPBACK = "127.0.0.1"
STOP_GRACE = 10.0  # seconds a worker gets to stop after SIGINT / SIGTERM before SIGKILL


class WorkerError(KwsError):
    """A worker process of a multi-worker run failed; the message names it."""


@dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-worker cluster.

    Attributes
    ----------
    addresses : tuple of str
        ``host:port`` of every task, in the strategy's order (the chief first when listed).
    index : int
        This task's position in ``addresses``.
    """

    addresses: tuple[str, ...]
    index: int

    @property
    def workers(self) -> int:
        return len(self.addresses)

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def address(self) -> str:
        return self.addresses[self.index]


SINGLE = Cluster((f"{LOOPBACK}:0",), 0)
"""The cluster of a run in one process (default or mirrored): one worker, the chief."""


def read_cluster(text: str | None = None, check_port: bool = True) -> Cluster:
    """The :class:`Cluster` ``TF_CONFIG`` describes (``text``, or the environment variable).

    Raises
    ------
    ConfigError
        ``TF_CONFIG`` unset, not JSON, without ``cluster.worker`` or ``task``, a task type or
        index not in the cluster, or (``check_port``) this task's port taken on this machine.
    """
    if text is None:
        text = os.environ.get("TF_CONFIG")
    if not text:
        raise ConfigError("--strategy multi-worker needs the TF_CONFIG environment variable "
                          "(or start local workers with --workers N)")
    try:
        spec = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({e}): {text!r}") from e
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    if not isinstance(cluster, dict) or not isinstance(cluster.get("worker", []), list) or not (
            cluster.get("worker") or cluster.get("chief")):
        raise ConfigError(f"TF_CONFIG has no cluster.worker list of host:port addresses: {text!r}")
    task = spec.get("task")
    if not isinstance(task, dict) or "type" not in task:
        raise ConfigError(f"TF_CONFIG has no task (e.g. {{\"type\": \"worker\", \"index\": 0}}): {text!r}")
    chief = list(cluster.get("chief") or [])
    if len(chief) > 1:
        raise ConfigError(f"TF_CONFIG lists {len(chief)} chiefs; at most one: {chief}")
    kind, index = task["type"], task.get("index", 0)
    tasks = {"chief": chief, "worker": list(cluster.get("worker") or [])}
    if kind not in tasks:
        raise ConfigError(f"TF_CONFIG task type {kind!r} must be 'worker' or 'chief'")
    if not isinstance(index, int) or not 0 <= index < len(tasks[kind]):
        raise ConfigError(f"TF_CONFIG task index {index!r} is not a {kind} of the cluster "
                          f"({len(tasks[kind])} listed)")
    addresses = tuple(chief + tasks["worker"])
    for a in addresses:
        _split_address(a)
    here = Cluster(addresses, index + (len(chief) if kind == "worker" else 0))
    if check_port:
        check_listen(here.address)
    return here


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"TF_CONFIG address {address!r} must be host:port")
    return host, int(port)


def check_listen(address: str) -> None:
    """A :class:`ConfigError` unless this machine can listen on ``address``'s port."""
    host, port = _split_address(address)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host if host in (LOOPBACK, "localhost") else "", port))
        except OSError as e:
            raise ConfigError(f"TF_CONFIG address {address}: port {port} is in use or not "
                              f"available on this machine ({e.strerror})") from e


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 now (the OS's choice)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def local_tf_configs(n: int) -> list[str]:
    """The ``TF_CONFIG`` of each of ``n`` workers on 127.0.0.1, on free ports."""
    if n < 1:
        raise ConfigError(f"--workers={n} must be at least 1")
    workers = [f"{LOOPBACK}:{p}" for p in free_ports(n)]
    return [json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
            for i in range(n)]


@contextlib.contextmanager
def worker_output(run: RunDir, cluster: Cluster):
    """The run directory this worker writes: ``run`` itself on the chief; on any other worker a
    scratch folder in the system's temporary folder (its checkpoints, log and TensorBoard
    files, which no one reads), removed on exit.  One left by a killed worker is removed when a
    worker of the same index starts on the same run again."""
    if cluster.is_chief:
        yield run
        return
    key = hashlib.sha256(str(run.root.resolve()).encode("utf-8")).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"kws-proto-worker{cluster.index}-{key}"
    remove_stale_temps(target)
    scratch = temp_sibling(target)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        yield RunDir(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def launch_workers(argv: list[str], n: int, env: dict | None = None) -> int:
    """Run ``python -m kws_proto.cli *argv`` as ``n`` local workers; 0 when all finish.

    Each worker runs in its own process group, so Ctrl-C reaches this process alone, which
    forwards one SIGINT to every worker (each stops as after Ctrl-C,
    :func:`kws_proto.train.trainer.train`) and waits for them.
    When a worker exits with an error, the others are stopped the same way (SIGINT; SIGKILL
    after :data:`STOP_GRACE` s for one stuck waiting for the dead one: TensorFlow's workers
    catch SIGTERM) and a :class:`WorkerError` names the first that failed.
    """
    env = dict(os.environ if env is None else env)
    procs = []
    for i, tf_config in enumerate(local_tf_configs(n)):
        p = subprocess.Popen([sys.executable, "-m", "kws_proto.cli", *argv],
                             env={**env, "TF_CONFIG": tf_config}, process_group=0)
        procs.append(p)
        address = json.loads(tf_config)["cluster"]["worker"][i]
        print(f"worker {i} of {n}: pid {p.pid}, {address}", file=sys.stderr, flush=True)
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [i for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i = min(failed, key=lambda j: (codes[j] > 0, j))  # killed by a signal: the cause
                _stop(procs, signal.SIGINT)
                raise WorkerError(f"worker {i} of {n} (pid {procs[i].pid}) {_how(codes[i])}; "
                                  f"the other workers were stopped")
            if all(c == 0 for c in codes):
                return 0
            time.sleep(0.2)
    except KeyboardInterrupt:
        _stop(procs, signal.SIGINT)
        raise


def _how(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _stop(procs: list, sig: int) -> None:
    """Send ``sig`` to every running worker; SIGKILL those still running after the grace."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    deadline = time.time() + STOP_GRACE
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
