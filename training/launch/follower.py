"""The follower: one small detached process per cluster run, copying its records home.

`python -m training follow RUN_ID` asks Ray for the job's status and full log
about once a second, appends every echoed record whose `seq` is newer than the
last one in the local log, and keeps `status.json` in step (`queued` while the
job is pending, `running` while it runs). Because it always reads the full log
and compares sequence numbers, a lost connection, a killed follower or a
restarted dashboard re-syncs with no epoch missing or duplicated. When the job
ends, the follower makes sure the local log ends too: the worker's own end
record, or one with Ray's message (a node that died, a job killed by `stop`).
Its (pid, start time) is the run's process identity, so a dead follower makes
the run look `lost` until the next look starts a new one (`launch.reattach`). A run
folder deleted meanwhile ends the follower at once.
"""

from __future__ import annotations

import logging
import time

from training.launch.cluster import job_id_of
from training.store import (
    END_STATES,
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    STOPPED,
    STOPPING,
    Run,
)
from training.store.logreader import LogReader
from training.store.logwriter import LogWriter, read_echoed

POLL_S = 1.0  # how often the job's log is read; records arrive this late at most
GIVE_UP_S = 600  # unreachable this long: the run ends failed, naming the cluster
log = logging.getLogger(__name__)

JOB_STATES = {"PENDING": QUEUED, "RUNNING": RUNNING}
JOB_ENDS = {"SUCCEEDED": FINISHED, "STOPPED": STOPPED, "FAILED": FAILED}


def last_seq(path) -> int:
    """The highest `seq` already in a local log (0 for none)."""
    seqs = [r["seq"] for r in LogReader(path).read().records if isinstance(r.get("seq"), int)]
    return max(seqs, default=0)


class Follower:
    """Copies one job's echoed records into the run's folder; see the module docstring."""

    def __init__(self, run: Run, client):
        self.run = run
        self.client = client
        self.job_id = job_id_of(run)
        self.metrics = LogWriter(run.metrics_path)  # records keep the seq the worker gave them
        self.system = LogWriter(run.system_path)
        self.seen = {"metrics": last_seq(run.metrics_path), "system": last_seq(run.system_path)}
        self.ended = run.end_record() is not None

    def sync(self) -> None:
        """Append what the job printed since the last sync; each record once, in order."""
        echoed = read_echoed(self.client.get_job_logs(self.job_id))
        for tag, writer in (("metrics", self.metrics), ("system", self.system)):
            for record in echoed.get(tag, []):
                seq = record.get("seq")
                if isinstance(seq, int) and seq > self.seen[tag]:
                    writer.write(record, sync=record.get("type") in ("start", "epoch", "end"))
                    self.seen[tag] = seq
                    self.ended = self.ended or record.get("type") == "end"

    def step(self) -> bool:
        """One look at the job; True once the job has ended and the run says so."""
        state = str(self.client.get_job_status(self.job_id).value)
        self.sync()  # after the status: a job that ended has printed everything by now
        if state in JOB_ENDS:
            self.finish(JOB_ENDS[state])
            return True
        wanted, recorded = JOB_STATES.get(state), self.run.recorded_state()
        if wanted and recorded not in (STOPPING, wanted):
            self.run.set_status(wanted)
        return False

    def finish(self, job_end: str) -> None:
        """End the local run: the worker's own end record, or one made from Ray's message."""
        end = self.run.end_record()
        if end is None:
            status = STOPPED if self.run.recorded_state() == STOPPING else job_end
            if status == FINISHED:
                status = FAILED  # the job exited 0 without the worker's end record
            message = self.client.get_job_info(self.job_id).message or "no message from Ray"
            error = None if status == STOPPED else f"Ray job {self.job_id}: {message}"
            self.metrics.write({"type": "end", "status": status, "error": error,
                                "note": "recorded by the follower"}, sync=True)
            end = {"status": status, "error": error}
        status = end["status"] if end.get("status") in END_STATES else FAILED
        self.run.set_status(status, error=end.get("error"))

    def close(self) -> None:
        self.metrics.close()
        self.system.close()


def follow(run: Run) -> int:
    """Follow the run's job to its end; 0 when it was recorded, 1 when contact was lost for good."""
    from ray.job_submission import JobSubmissionClient

    address = run.meta["cluster"]["address"]
    last_contact = time.monotonic()
    follower = None
    while True:
        if not run.folder.exists():  # the run was deleted: nothing left to copy into
            log.debug("run %s: its folder is gone; the follower ends", run.id)
            return 1
        try:
            follower = follower or Follower(run, JobSubmissionClient(address))
            if follower.step():
                follower.close()
                return 0
            last_contact = time.monotonic()
        except Exception as error:  # noqa: BLE001 - a dropped connection: try again, then give up
            log.debug("run %s: no answer from %s: %s", run.id, address, error)
            if follower:
                follower.close()
            follower = None
            if time.monotonic() - last_contact > GIVE_UP_S:
                run.append_end(FAILED, f"lost contact with the Ray cluster at {address} for "
                                       f"{GIVE_UP_S} s: {error}")
                run.set_status(FAILED, error=f"lost contact with the Ray cluster at {address}")
                return 1
        time.sleep(POLL_S)
