"""Runs and groups as MLflow runs: `export RUN|GROUP --mlflow URI` and `run --mlflow URI`.

Each run becomes one MLflow run in an experiment (default "training"):

    params     its settings (the RunConfig; for an imported log: source, format, origin, epochs)
    tags       device, backend, engine, precision, where it ran, status, its group, and the
               start record's hardware.* and versions.*; `training.run_id` = our run id
    metrics    every number of each epoch record at step = epoch, stamped with the epoch
               record's Unix time; system samples under `system/` with MLflow's own names
    artifacts  `run/` (the run folder's files) and `report.html` (analysis/report.py)

A group becomes a parent run (tags `training.group_id`, `training.kind` = group; the
settings its runs share as params; the group's report) with its runs nested under it
(`mlflow.parentRunId`). Exporting again updates the same MLflow runs: each is found by
its tag (`search_runs`), params already there are not sent again, and MLflow's tracking
store drops a metric whose key, step, timestamp and value it already holds. Everything
goes through `MlflowClient.log_batch`, within MLflow's limits per request (1,000
metrics, 100 params, 100 tags).

`LiveExport` streams the epochs of followed runs (`run --mlflow`): a thread of the
following process reads metrics.jsonl, so the worker never waits on MLflow and an
unreachable server cannot fail or slow training. Requests have short timeouts and no
retries of their own; a failed send is retried with backoff. At the end each run is
exported in full, and `summary()` says what did not arrive.

Only the MLflow client (`mlflow-skinny`, requirements-mlflow.txt) is needed here.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from training.analysis import groups, workload
from training.store import ACTIVE_STATES, FAILED, FINISHED, LOST, STOPPED, Run, RunError, RunLog

EXPERIMENT = "training"
RUN_TAG, GROUP_TAG, KIND_TAG, PARENT_TAG = "training.run_id", "training.group_id", "training.kind", \
    "mlflow.parentRunId"
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100  # MLflow's log_batch limits per request
MAX_PARAM_CHARS, MAX_TAG_CHARS = 6000, 8000
STATUS = {FINISHED: "FINISHED", FAILED: "FAILED", STOPPED: "KILLED", LOST: "FAILED"}
NOT_METRICS = {"type", "epoch", "time", "seq", "samples"}
SYSTEM_NAMES = {"system_cpu_percent": "system/cpu_utilization_percentage",
                "process_cpu_percent": "system/process_cpu_utilization_percentage",
                "rss_mb": "system/process_memory_rss_megabytes",
                "cpu_power_w": "system/cpu_power_watts", "cpu_energy_j": "system/cpu_energy_joules"}
GPU_NAMES = {"util_percent": "utilization_percentage", "memory_used_mb": "memory_usage_megabytes",
             "power_w": "power_usage_watts", "temperature_c": "temperature_celsius"}
# MLflow's HTTP client reads these at each request. `export` waits a little for a slow
# server; the live stream does not wait at all (it retries on its own, off the run's path).
EXPORT_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
LIVE_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
QUIET = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}  # our stdout is ids, one a line
INSTALL_HINT = "exporting to MLflow needs its client: pip install -r requirements-mlflow.txt (mlflow-skinny)"
log = logging.getLogger(__name__)


class ExportError(RunError):
    """MLflow cannot be reached or refused what was sent."""


def client_available() -> bool:
    """Whether the MLflow client is installed (the Compare page shows its button only then)."""
    return importlib.util.find_spec("mlflow") is not None


def _mlflow() -> SimpleNamespace:
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError as error:
        raise ExportError(f"{INSTALL_HINT} ({error})") from error
    return SimpleNamespace(Metric=Metric, Param=Param, RunTag=RunTag, MlflowClient=MlflowClient)


def describe_error(error: BaseException) -> str:
    """A failed request in a few words: refused, no answer in time, or MLflow's own message."""
    text = " ".join(str(error).split())
    if "Connection refused" in text or "NewConnectionError" in text:
        return "connection refused: no MLflow server answers at that address"
    if "timed out" in text.lower() or "ReadTimeout" in text:
        return f"no answer within {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT', '?')} s"
    return f"{type(error).__name__}: {text[:300]}"


def ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _text(value, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:limit]


def default_where(run: Run) -> str:
    if where := {"reference": "published run", "imported": "imported log"}.get(run.source):
        return where
    cluster = run.meta.get("cluster") or {}
    return f"Ray cluster at {cluster['address']}" if cluster.get("address") else "this machine"


def params_of(run: Run) -> dict[str, str]:
    """The run's settings: its RunConfig, or what an imported log says about itself."""
    meta = run.meta
    settings = dict(meta.get("config") or {})
    if not settings:
        settings = {key: meta.get(key) for key in ("source", "format", "origin", "epochs", "train_samples")}
    settings["model"], settings["data"] = workload.of(meta)  # an older log: the published CNN on MNIST
    return {key: _text(value, MAX_PARAM_CHARS) for key, value in settings.items()}


def tags_of(run: Run, run_log: RunLog, where: str, status: str) -> dict[str, str]:
    meta, start = run.meta, run_log.start or {}
    config = meta.get("config") or {}
    versions = start.get("versions") or {}
    tags = {RUN_TAG: run.id, "mlflow.runName": run.name, "device": meta.get("device"),
            "backend": meta.get("backend") or versions.get("backend"), "engine": meta.get("engine"),
            "precision": config.get("precision"), "where": where, "source": run.source, "status": status,
            "workload": workload.label(meta, start), "accuracy_note": workload.accuracy_note(meta, start)}
    for key in ("group", "group_kind", "group_name", "repeat", "group_size"):
        tags[GROUP_TAG if key == "group" else key] = meta.get(key)
    for section in ("hardware", "versions"):
        for key, value in (start.get(section) or {}).items():
            tags[f"{section}.{key}"] = value
    return {key: _text(value, MAX_TAG_CHARS) for key, value in tags.items() if value not in (None, "", [])}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
        and abs(value) != float("inf")


def time_base(run: Run, run_log: RunLog) -> float:
    """When the run started, in Unix seconds; 0 where nobody knows (the published runs)."""
    return (run_log.start or {}).get("time") or run.meta.get("created") or 0.0


def epoch_metrics(run: Run, run_log: RunLog, epochs: list[dict] | None = None) -> list[list[tuple]]:
    """Per epoch: [(key, value, timestamp ms, step)], every number the epoch record holds."""
    base = time_base(run, run_log)
    out = []
    for record in run_log.epochs if epochs is None else epochs:
        stamp = record.get("time") or base + (record.get("elapsed_s") or 0.0)
        out.append([(key, float(value), ms(stamp), int(record["epoch"])) for key, value in record.items()
                    if key not in NOT_METRICS and _number(value)])
    return out


def system_metrics(samples: list[dict]) -> list[list[tuple]]:
    """Per sample of system.jsonl: its numbers under MLflow's `system/` names, step = the sample's number."""
    out = []
    for step, sample in enumerate(samples):
        stamp = ms(sample.get("time") or 0.0)
        values = [(name, float(sample[key]), stamp, step) for key, name in SYSTEM_NAMES.items()
                  if _number(sample.get(key))]
        for gpu in sample.get("gpus") or []:
            values += [(f"system/gpu_{gpu.get('index', 0)}_{name}", float(gpu[key]), stamp, step)
                       for key, name in GPU_NAMES.items() if _number(gpu.get(key))]
        out.append(values)
    return out


@dataclass
class Exported:
    """What reached MLflow of one run (or a group's parent, `run_id` = the group id)."""
    run_id: str
    name: str
    mlflow_run_id: str | None = None
    epochs: int = 0
    epochs_sent: int = 0
    system: int = 0
    system_sent: int = 0
    artifacts: bool = False
    terminated: bool = False
    parent: str | None = None

    def missing(self) -> list[str]:
        """What did not arrive, in words; [] when everything did."""
        left = []
        if self.mlflow_run_id is None:
            left.append("the run itself")
        if self.epochs_sent < self.epochs:
            left.append(f"{self.epochs - self.epochs_sent} of {self.epochs} epochs")
        if self.system_sent < self.system:
            left.append(f"{self.system - self.system_sent} of {self.system} system samples")
        if not self.artifacts:
            left.append("the artifacts")
        return left


class Exporter:
    """One MLflow tracking server (or store) and one experiment in it.

    Args:
        uri: the tracking URI, e.g. http://127.0.0.1:5000.
        experiment: the experiment's name; made if missing.
        where: where a run trained, in words (the CLI passes `training.launch.describe`).
        http: MLflow HTTP settings used unless the environment sets them.
    """

    def __init__(self, uri: str, experiment: str = EXPERIMENT, where: Callable[[Run], str] | None = None,
                 http: dict[str, str] | None = None):
        for key, value in {**(EXPORT_HTTP if http is None else http), **QUIET}.items():
            os.environ.setdefault(key, value)
        self.mlflow = _mlflow()
        self.uri = uri
        self.experiment = experiment
        self.where = where or default_where
        self.client = self.mlflow.MlflowClient(tracking_uri=uri)
        self._experiment_id: str | None = None

    # -- finding and making runs --------------------------------------------------
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                try:
                    self._experiment_id = self.client.create_experiment(self.experiment)
                except Exception:  # made meanwhile by another exporter: use that one
                    found = self.client.get_experiment_by_name(self.experiment)
                    if found is None:
                        raise
            self._experiment_id = self._experiment_id or found.experiment_id
        return self._experiment_id

    def find(self, **tags: str):
        """The active MLflow run with these tags (ours, by run or group id), or None."""
        where = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
        found = self.client.search_runs([self.experiment_id()], filter_string=where, max_results=1)
        return found[0] if found else None

    def _ensure(self, tags: dict[str, str], name: str, start_s: float) -> tuple[str, dict, bool]:
        """(MLflow run id, its params, whether it was there already)."""
        if found := self.find(**tags):
            return found.info.run_id, dict(found.data.params), True
        made = self.client.create_run(self.experiment_id(), start_time=ms(start_s), tags=tags, run_name=name)
        return made.info.run_id, {}, False

    def unsent(self, mlflow_id: str, grouped: list[list[tuple]]) -> list[list[tuple]]:
        """The epochs (or samples) whose step MLflow does not hold yet, by its history of the commonest key.

        Each epoch goes whole in one request, so one key's steps tell which arrived; anything
        sent twice all the same is dropped by MLflow (same key, step, timestamp and value).
        """
        counts = Counter(metric[0] for group in grouped for metric in group)
        if not counts:
            return grouped
        key = counts.most_common(1)[0][0]
        steps = {metric.step for metric in self.client.get_metric_history(mlflow_id, key)}
        return [group for group in grouped
                if not (group and group[0][3] in steps and any(metric[0] == key for metric in group))]

    # -- sending ----------------------------------------------------------------------
    def send(self, mlflow_id: str, metrics: list[tuple] = (), params: dict[str, str] | None = None,
             tags: dict[str, str] | None = None) -> None:
        """log_batch calls within MLflow's limits: params and tags first, then metrics by 1,000."""
        m = self.mlflow
        params = [m.Param(k, v) for k, v in (params or {}).items()]
        tags = [m.RunTag(k, v) for k, v in (tags or {}).items()]
        while params or tags:
            self.client.log_batch(mlflow_id, params=params[:MAX_PARAMS], tags=tags[:MAX_TAGS])
            params, tags = params[MAX_PARAMS:], tags[MAX_TAGS:]
        for start in range(0, len(metrics), MAX_METRICS):
            chunk = [m.Metric(key, value, stamp, step)
                     for key, value, stamp, step in metrics[start:start + MAX_METRICS]]
            self.client.log_batch(mlflow_id, metrics=chunk)

    def send_whole(self, mlflow_id: str, grouped: list[list[tuple]], arrived: Callable[[int], None]) -> None:
        """Whole epochs (or samples) per request, up to 1,000 values; `arrived(n)` after each request."""
        batch: list[tuple] = []
        count = 0
        for metrics in grouped:
            if batch and len(batch) + len(metrics) > MAX_METRICS:
                self.send(mlflow_id, batch)
                arrived(count)
                batch, count = [], 0
            batch += metrics
            count += 1
        if batch:
            self.send(mlflow_id, batch)
            arrived(count)

    def send_epochs(self, mlflow_id: str, per_epoch: list[list[tuple]], done: Exported) -> None:
        """`done.epochs_sent` counts the epochs that fully arrived."""
        def arrived(count: int) -> None:
            done.epochs_sent += count
        self.send_whole(mlflow_id, per_epoch, arrived)

    def open_run(self, run: Run, run_log: RunLog) -> tuple[str, dict, bool]:
        """The run's MLflow run (found by its tag, else made), its params, and whether it was there."""
        return self._ensure({RUN_TAG: run.id}, run.name, time_base(run, run_log) or time.time())

    def parent_of(self, group_id: str, members: list[Run]) -> str:
        """The group's parent run, made if missing; its params are the settings all members share."""
        first = members[0].meta
        name = first.get("group_name") or group_id
        starts = [m.meta.get("created") for m in members if m.meta.get("created")]
        mlflow_id, existing, _ = self._ensure({GROUP_TAG: group_id, KIND_TAG: "group"}, name,
                                              min(starts) if starts else time.time())
        configs = [params_of(m) for m in members]
        shared = {k: v for k, v in configs[0].items() if all(c.get(k) == v for c in configs[1:])}
        shared.update(group_kind=first.get("group_kind") or "", group_size=str(len(members)))
        tags = {GROUP_TAG: group_id, KIND_TAG: "group", "mlflow.runName": name,
                "group_kind": first.get("group_kind") or "", "group_name": first.get("group_name") or ""}
        self.send(mlflow_id, params={k: v for k, v in shared.items() if k not in existing},
                  tags={k: v for k, v in tags.items() if v})
        return mlflow_id

    def export_run(self, run: Run, parent: str | None = None, report: bool = True,
                   done: Exported | None = None, sent_epochs: int = 0) -> Exported:
        """Everything of one run; `done` is filled in as each part arrives.

        Args:
            parent: the MLflow id of its group's parent run.
            report: also write and upload its offline report.
            done: progress to fill (the live stream keeps one per run).
            sent_epochs: epochs the caller knows arrived already (not sent again).
        """
        run_log = run.log(system=True).check()
        status = run.status()
        done = done or Exported(run.id, run.name)
        per_epoch = epoch_metrics(run, run_log)
        system = system_metrics(run_log.system)
        done.epochs, done.system = len(per_epoch), len(system)
        mlflow_id, existing, found = self.open_run(run, run_log)
        done.mlflow_run_id, done.parent = mlflow_id, parent
        tags = tags_of(run, run_log, self.where(run), status)
        if parent:
            tags[PARENT_TAG] = parent
        self.send(mlflow_id, params={k: v for k, v in params_of(run).items() if k not in existing}, tags=tags)
        epochs_left = per_epoch[min(sent_epochs, len(per_epoch)):]
        if found:  # exported before: send only what MLflow does not hold
            epochs_left, system = self.unsent(mlflow_id, epochs_left), self.unsent(mlflow_id, system)
        done.epochs_sent, done.system_sent = done.epochs - len(epochs_left), done.system - len(system)
        self.send_epochs(mlflow_id, epochs_left, done)

        def samples_arrived(count: int) -> None:
            done.system_sent += count
        self.send_whole(mlflow_id, system, samples_arrived)
        self.upload(mlflow_id, run, report)
        done.artifacts = True
        if status in STATUS:
            end = run_log.end or {}
            last = run_log.epochs[-1].get("time") if run_log.epochs else None
            self.client.set_terminated(mlflow_id, STATUS[status],
                                       end_time=ms(end.get("time") or last or time_base(run, run_log)))
            done.terminated = True
        return done

    def upload(self, mlflow_id: str, run: Run, report: bool) -> None:
        """The run folder's files under run/, and its report."""
        with tempfile.TemporaryDirectory(prefix="training-mlflow-") as tmp:
            folder = Path(tmp, "run")
            folder.mkdir()
            run.copy_files(folder)  # plain files only: no link is followed out of the run folder
            self.client.log_artifacts(mlflow_id, str(folder), artifact_path="run")
            if report:
                self.client.log_artifact(mlflow_id, str(write_report([run], Path(tmp, "report.html"),
                                                                     f"{run.name} ({run.id})")))

    def export(self, runs: list[Run], report: bool = True) -> list[Exported]:
        """Runs and their groups: each group's parent first (all its runs in the store count for
        its shared params, report and end), then the runs, nested under their parents."""
        parents: dict[str, tuple[str, list[Run]]] = {}
        everyone = None
        for group_id in groups.by_group(runs):
            everyone = everyone if everyone is not None else groups.by_group(runs[0].store.runs())
            members = everyone.get(group_id) or groups.by_group(runs)[group_id]
            parents[group_id] = (self.parent_of(group_id, members), members)
        parent_of_run = {run.id: parents[run.meta["group"]][0] for run in runs if run.meta.get("group")}
        results = [self.export_run(run, parent_of_run.get(run.id), report) for run in runs]
        return [*(self.finish_group(group_id, mlflow_id, members, report)
                  for group_id, (mlflow_id, members) in parents.items()), *results]

    def finish_group(self, group_id: str, mlflow_id: str, members: list[Run], report: bool) -> Exported:
        """The parent's report, and its end once every run of the group has ended."""
        done = Exported(group_id, members[0].meta.get("group_name") or group_id, mlflow_id)
        if report:
            with tempfile.TemporaryDirectory(prefix="training-mlflow-") as tmp:
                self.client.log_artifact(mlflow_id, str(write_report(members, Path(tmp, "report.html"),
                                                                     f"Group {group_id}")))
        done.artifacts = True
        statuses = [run.status() for run in members]
        if not any(s in ACTIVE_STATES for s in statuses):
            ends = [(run.end_record() or {}).get("time") for run in members]
            self.client.set_terminated(mlflow_id, "FAILED" if FAILED in statuses else "FINISHED",
                                       end_time=ms(max((e for e in ends if e), default=time.time())))
            done.terminated = True
        return done


def write_report(runs: list[Run], path: Path, title: str) -> Path:
    from training.analysis.report import write_report as write  # plotly only when a report is made

    return write(runs, path, title=title)


@dataclass
class _Stream:
    run: Run
    run_log: RunLog
    done: Exported
    mlflow_id: str | None = None
    parent: str | None = None
    sent: int = 0  # epochs that arrived


class LiveExport:
    """Send each epoch of the followed runs to MLflow as it is written, off the run's path.

    Args:
        runs: the runs being followed (one run, or a group's).
        uri, experiment, where: as for `Exporter`.
        poll_s: seconds between looks at the logs.
        report: upload each run's report at the end.
    """

    def __init__(self, runs: list[Run], uri: str, experiment: str = EXPERIMENT,
                 where: Callable[[Run], str] | None = None, poll_s: float = 1.0, report: bool = True):
        self.uri, self.experiment, self.where = uri, experiment, where
        self.poll_s, self.report = poll_s, report
        self.streams = [_Stream(run, RunLog(run.metrics_path), Exported(run.id, run.name)) for run in runs]
        self.error: str | None = None  # the last failure, in words
        self.setup_error: str | None = None
        self.finished = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="mlflow-live-export", daemon=True)
        self.exporter: Exporter | None = None

    def start(self) -> LiveExport:
        self._thread.start()
        return self

    def finish(self, timeout_s: float = 60.0) -> list[str]:
        """Stop streaming, export each run in full (at most `timeout_s`), and say how it went."""
        self._stop.set()
        self._thread.join(timeout_s)
        return self.summary()

    # -- the thread ---------------------------------------------------------------
    def _work(self) -> None:
        try:
            self.exporter = Exporter(self.uri, self.experiment, self.where, http=LIVE_HTTP)
        except ExportError as error:
            self.setup_error = str(error)
            return
        failures, retry_at = 0, 0.0
        while not self._stop.is_set():
            if time.monotonic() >= retry_at:
                try:
                    self._send_new()
                    failures = 0
                except Exception as error:  # the server is away: the local run goes on regardless
                    failures += 1
                    self.error = describe_error(error)
                    retry_at = time.monotonic() + min(30.0, self.poll_s * 2 ** failures)
                    log.debug("MLflow live export: %s (retrying)", self.error)
            self._stop.wait(self.poll_s)
        for stream in self.streams:  # the end: everything, once more, idempotently
            try:
                self.exporter.export_run(stream.run, stream.parent or self._parent(stream), self.report,
                                         stream.done, sent_epochs=stream.sent)
            except Exception as error:
                self.error = describe_error(error)
        self.finished = True

    def _parent(self, stream: _Stream) -> str | None:
        group = stream.run.meta.get("group")
        if group and stream.parent is None:
            stream.parent = self.exporter.parent_of(group, groups.by_group(stream.run.store.runs())[group])
        return stream.parent

    def _send_new(self) -> None:
        for stream in self.streams:
            stream.run_log.update()
            if stream.mlflow_id is None:
                if stream.run_log.start is None:
                    continue  # queued: nothing to say yet
                parent = self._parent(stream)
                stream.mlflow_id, existing, _ = self.exporter.open_run(stream.run, stream.run_log)
                stream.done.mlflow_run_id = stream.mlflow_id
                tags = tags_of(stream.run, stream.run_log, self.exporter.where(stream.run), "running")
                if parent:
                    tags[PARENT_TAG] = parent
                self.exporter.send(stream.mlflow_id, tags=tags, params={
                    k: v for k, v in params_of(stream.run).items() if k not in existing})
            new = stream.run_log.epochs[stream.sent:]
            if new:
                progress = Exported(stream.run.id, stream.run.name)
                try:
                    metrics = epoch_metrics(stream.run, stream.run_log, new)
                    self.exporter.send_epochs(stream.mlflow_id, metrics, progress)
                finally:
                    stream.sent += progress.epochs_sent

    # -- the end ---------------------------------------------------------------------
    def summary(self) -> list[str]:
        """One line per run: what reached MLflow, or what did not and how to send it later."""
        if self.setup_error:
            return [f"MLflow: nothing sent: {self.setup_error}"]
        lines = []
        for stream in self.streams:
            done, run = stream.done, stream.run
            if not self.finished:
                done.epochs = max(done.epochs, len(stream.run_log.epochs))
                done.epochs_sent = max(done.epochs_sent, stream.sent)
            missing = done.missing() if self.finished else [*done.missing(), "the run's end (still sending)"]
            if not missing:
                lines.append(f"MLflow: {run.name} [{run.id}] sent to {self.uri} (experiment "
                             f"{self.experiment!r}, MLflow run {done.mlflow_run_id}): {done.epochs} epochs, "
                             f"{done.system} system samples, artifacts")
            else:
                lines.append(f"MLflow: {run.name} [{run.id}]: not sent to {self.uri}: {', '.join(missing)}"
                             f" ({self.error or 'no answer'}). The local run is complete; send it later "
                             f"with: python -m training export {run.id} --mlflow {self.uri}")
        return lines
