"""Where a training runs: one device, several devices of this machine, or several machines (TF_CONFIG)."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import tempfile

from core.config import DISTRIBUTIONS  # noqa: F401  (the choices, with the config field)
TF_CONFIG_HELP = (
    'set TF_CONFIG on every host to {"cluster": {"worker": ["host1:port", "host2:port"]}, '
    '"task": {"type": "worker", "index": I}} with I its place in the list (0 is the chief)'
)


def cluster_task(distribution: str, environ: dict | None = None) -> tuple[str, int, int] | None:
    """(task type, task index, workers) from TF_CONFIG for multi-worker, None otherwise; ValueError with one line
    when TF_CONFIG is missing or broken, so that a worker stops before it loads any data."""
    if distribution != "multi-worker":
        return None
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not text:
        raise ValueError(f"train.distribution multi-worker needs TF_CONFIG, which is not set: {TF_CONFIG_HELP}")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): {TF_CONFIG_HELP}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError(f"TF_CONFIG needs a cluster and a task: {TF_CONFIG_HELP}")
    for job, addresses in cluster.items():
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(isinstance(address, str) and address.rpartition(":")[2].isdigit() for address in addresses)
        ):
            raise ValueError(f"TF_CONFIG's cluster.{job} must be a list of host:port addresses: {TF_CONFIG_HELP}")
    if not cluster.get("worker") and not cluster.get("chief"):
        raise ValueError(f"TF_CONFIG's cluster names no worker: {TF_CONFIG_HELP}")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in ("worker", "chief") or kind not in cluster:
        raise ValueError(f"TF_CONFIG's task.type must be worker or chief, a job of its cluster; got {kind!r}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise ValueError(f"TF_CONFIG's task.index must be 0 to {len(cluster[kind]) - 1} for {kind}; got {index!r}")
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    return kind, index, workers


def is_chief(distribution: str) -> bool:
    """True for the process that writes the run folder: the only one, or TF_CONFIG's chief (else worker 0)."""
    task = cluster_task(distribution)
    if task is None:
        return True
    kind, index, _ = task
    cluster = json.loads(os.environ["TF_CONFIG"])["cluster"]
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)


def run_store(distribution: str, store):
    """The RunStore a training writes to: store for the chief, a temporary one for the other workers.

    Every worker saves its history and weights as the chief does (TensorFlow's own advice for multi-worker
    saving), but into a folder deleted when the process ends, so that only the chief leaves a run.
    """
    if is_chief(distribution):
        return store
    from core.runs.store import RunStore

    folder = tempfile.mkdtemp(prefix="imdb-worker-runs-")
    atexit.register(shutil.rmtree, folder, True)
    return RunStore(folder)


def strategy(distribution: str):
    """The tf.distribute strategy of distribution; None for one device (Keras's default)."""
    cluster_task(distribution)  # the one-line error, before TensorFlow's own
    if distribution == "none":
        return None
    import tensorflow as tf

    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()

    class MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        """MultiWorkerMirroredStrategy whose reduce takes what Keras 3.15's fit gives it on several workers.

        fit reduces a first (ids, labels) batch to learn its shapes, and TensorFlow's collective reduce takes one
        tensor, not a tuple ("Attempt to convert a value (PerReplica ...)"): each tensor goes on its own. fit then
        averages every step's scalar logs along axis 0, which a scalar has not: those are averaged as they are.
        """

        def reduce(self, reduce_op, value, axis=None):
            parent = super()

            def one(tensor):
                local = self.experimental_local_results(tensor)[0]
                scalar = getattr(local, "shape", None) is not None and local.shape.rank == 0
                return parent.reduce(reduce_op, tensor, None if scalar else axis)

            return tf.nest.map_structure(one, value)

    return MultiWorkerStrategy()


def scope(strategy_or_none):
    """strategy.scope(), or nothing for one device: build and compile a model inside it."""
    return strategy_or_none.scope() if strategy_or_none is not None else contextlib.nullcontext()


def replicas(strategy_or_none) -> int:
    """Devices a global batch is split between (1 on one device)."""
    return strategy_or_none.num_replicas_in_sync if strategy_or_none is not None else 1
