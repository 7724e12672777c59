"""A real two-node Ray cluster on this machine; the second node is stopped mid-fit.

The recipe of docs/distributed.md ("Running on a cluster"), run for real: `ray start
--head` and `ray start --address=HEAD` as separate processes with their own resources
(the second node has a custom resource, `node2`, and one CPU), the training script a
separate driver process connecting with `RaySampler(address=...)`, and the workers
spread over both nodes (`scheduling_strategy="SPREAD"`). After epoch 1 the second node
is killed (its whole process group: raylet, agents and the worker on it), as when a
machine goes away. `fit` must complete all its steps, log the restart, place the
restarted worker on the surviving head (which has a CPU to spare), and end with the
weights of the same seeded fit on the intact cluster, run first: the restarted worker
continues its envs from the state the driver kept.

Every Ray process of the test runs in a process group of its own, killed in `finally`
(`ray stop` would stop every Ray on the machine, other users' too), with its own temp
dir, ports and token (Ray's token authentication stays on); Ray's other settings, its
node health checks included, are its defaults. The driver runs in a fresh
process so no Ray state of other tests (a cached token, a local Ray) leaks in. Skipped
if the `ray` command is not available or the cluster does not come up.
"""

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
import uuid

import numpy as np
import pytest

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = "CartPole-v1"
EPOCHS, N_STEPS = 4, 32
KILL_AFTER = 1  # epoch after which the second node is stopped


def ray_command():
    candidate = os.path.join(os.path.dirname(sys.executable), "ray")
    return candidate if os.access(candidate, os.X_OK) else shutil.which("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_ports() -> list:
    """Per-node ports that default to fixed numbers (two nodes on one host would clash)."""
    names = (
        "node-manager-port",
        "object-manager-port",
        "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port",
        "runtime-env-agent-port",
        "metrics-export-port",
    )
    return [f"--{name}={free_port()}" for name in names]


def start_node(args, log_path, env):
    """`ray start ... --block` in a new session, so `os.killpg` stops exactly this node."""
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [
                ray_command(),
                "start",
                "--block",
                "--disable-usage-stats",
                "--object-store-memory=100000000",
                *args,
                *node_ports(),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def stop_node(pid) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def tail(path) -> str:
    with open(path) as f:
        return f.read()[-2000:]


@contextlib.contextmanager
def two_node_cluster(tmp, env):
    """`(address, node_pid)`: a head with 2 CPUs and a node with 1 CPU and `{"node2": 1}`."""
    if ray_command() is None:
        pytest.skip("the `ray` command is not available")
    port = free_port()
    address = f"127.0.0.1:{port}"
    procs = []
    try:
        head_log = os.path.join(tmp, "head.log")
        head_args = [
            "--head",
            f"--port={port}",
            f"--ray-client-server-port={free_port()}",
            "--num-cpus=2",
            "--include-dashboard=false",
            f"--dashboard-port={free_port()}",
            f"--temp-dir={tmp}/ray",
        ]
        procs.append(start_node(head_args, head_log, env))
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in tail(head_log):
            if procs[0].poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"`ray start --head` did not come up: {tail(head_log)}")
            time.sleep(1)
        node_log = os.path.join(tmp, "node.log")
        node_args = [
            f"--address={address}",
            "--num-cpus=1",
            '--resources={"node2": 1}',
            "--node-name=kt-node2",
        ]
        procs.append(start_node(node_args, node_log, env))
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in tail(node_log):
            if procs[1].poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"the second node did not join: {tail(node_log)}")
            time.sleep(1)
        yield address, procs[1].pid
    finally:
        for proc in reversed(procs):
            stop_node(proc.pid)
            proc.wait(timeout=60)


def digest(agent) -> str:
    parts = [np.asarray(w).tobytes() for w in agent.get_weights()]
    parts += [np.asarray(v).tobytes() for v in agent.optimizer.variables]
    return hashlib.sha256(b"".join(parts)).hexdigest()


def driver(address, node_pid, out_path) -> None:
    """The training script (run in its own process): the fit on the intact cluster, then
    the same fit with the second node killed after epoch `KILL_AFTER`; writes JSON."""
    import keras

    import keras_trust as kt
    from keras_trust.distributed import RaySampler

    ray.init(address=address, log_to_driver=False)  # wait for both nodes to be alive
    try:
        deadline = time.monotonic() + 120
        while sum(n["Alive"] for n in ray.nodes()) < 2 and time.monotonic() < deadline:
            time.sleep(1)
        nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
    finally:
        ray.shutdown()

    class Watch(keras.callbacks.Callback):
        def __init__(self, sampler, kill):
            super().__init__()
            self.sampler, self.kill, self.placements = sampler, kill, []

        def on_epoch_end(self, epoch, logs=None):
            self.placements.append(self.sampler.placement())
            if self.kill and epoch == KILL_AFTER:
                stop_node(node_pid)

    out = {"nodes": nodes}
    for name, kill in (("intact", False), ("killed", True)):
        sampler = RaySampler(
            num_workers=2, envs_per_worker=1, address=address, scheduling_strategy="SPREAD"
        )
        watch = Watch(sampler, kill)
        agent = kt.PPO(n_steps=N_STEPS, batch_size=32, epochs=2)
        history = agent.fit(
            ENV, EPOCHS * 2 * N_STEPS, seed=2, verbose=0, sampler=sampler, callbacks=[watch]
        )
        out[name] = {
            "digest": digest(agent),
            "num_timesteps": agent.num_timesteps,
            "history": history.history,
            "placements": watch.placements,
            "ray_left_running": ray.is_initialized(),
        }
    with open(out_path, "w") as f:
        json.dump(out, f, default=float)


def test_second_node_stopped_mid_fit():
    tmp = tempfile.mkdtemp(prefix="kt2n_", dir="/tmp")  # short: Ray's socket paths
    token = os.path.join(tmp, "token")
    with open(token, "w") as f:
        f.write(uuid.uuid4().hex + uuid.uuid4().hex)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": token,
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    env.pop("RAY_ADDRESS", None)
    out_path = os.path.join(tmp, "out.json")
    try:
        with two_node_cluster(tmp, env) as (address, node_pid):
            code = (
                f"import sys; sys.path.insert(0, {HERE!r}); import test_ray_two_node_cluster as t; "
                f"t.driver({address!r}, {node_pid}, {out_path!r})"
            )
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
            )
            assert done.returncode == 0, done.stderr[-3000:]
        with open(out_path) as f:
            out = json.load(f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    head = next(k for k, r in out["nodes"].items() if "node:__internal_head__" in r)
    second = next(k for k, r in out["nodes"].items() if "node2" in r)
    intact, killed = out["intact"], out["killed"]
    for run in (intact, killed):
        assert not run["ray_left_running"]  # the sampler connected, and disconnected
        assert run["num_timesteps"] == EPOCHS * 2 * N_STEPS  # nothing lost
        assert run["history"]["timesteps"] == [2.0 * N_STEPS * (e + 1) for e in range(EPOCHS)]
        # One worker on each node while both are alive, on this very machine.
        for placement in run["placements"][: KILL_AFTER + 1]:
            assert {w["node_id"] for w in placement} == {head, second}, placement
            assert {w["hostname"] for w in placement} == {socket.gethostname()}
    assert intact["history"]["sampler_restarts"] == [0.0] * EPOCHS
    restarts = killed["history"]["sampler_restarts"]
    assert restarts[: KILL_AFTER + 1] == [0.0] * (KILL_AFTER + 1)
    assert restarts[-1] == 1.0
    before, after = killed["placements"][KILL_AFTER], killed["placements"][-1]
    moved = [k for k in range(2) if before[k]["node_id"] == second]
    assert len(moved) == 1
    assert [w["node_id"] for w in after] == [head, head]  # restarted on the survivor
    assert after[moved[0]]["incarnation"] != before[moved[0]]["incarnation"]
    assert killed["digest"] == intact["digest"]  # continued exactly
