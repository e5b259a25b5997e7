"""`--profile-steps N`: the backend's own profiler around N training steps.

One trace per run, in the run's profile/ folder, in the format the backend's
own tools read:

  tensorflow  tf.profiler.experimental          profile/plugins/profile/<stamp>/<host>.xplane.pb
              (TensorBoard's profile plugin: `tensorboard --logdir <run>/profile`)
  jax         jax.profiler, with a Perfetto trace  the same .xplane.pb, plus perfetto_trace.json.gz
              and <host>.trace.json.gz (Chrome trace format: ui.perfetto.dev)
  torch       torch.profiler                     profile/torch_trace.json (Chrome trace format:
              ui.perfetto.dev or chrome://tracing)

`EpochClock` decides when (epoch PROFILE_EPOCH, from batch PROFILE_FIRST_BATCH,
from its begin hooks only) and times what starting and stopping cost.
"""

from __future__ import annotations

from pathlib import Path


class TraceProfiler:
    """Start and stop one backend's profiler; `stop` writes the trace.

    Args:
        backend: "tensorflow", "jax" or "torch" (the Keras backend of the run).
        device: "cpu" or "gpu": torch records CUDA kernels too on a GPU.
        folder: the run's profile folder (created here).
        torch_trace: the file torch's Chrome trace goes to, inside `folder`.
    """

    def __init__(self, backend: str, device: str, folder: Path, torch_trace: Path):
        self.backend = backend
        self.device = device
        self.folder = Path(folder)
        self.torch_trace = Path(torch_trace)
        self._torch = None
        self.running = False

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.backend == "tensorflow":
            import tensorflow as tf
            tf.profiler.experimental.start(str(self.folder))
        elif self.backend == "jax":
            import jax
            jax.profiler.start_trace(str(self.folder), create_perfetto_trace=True)
        elif self.backend == "torch":
            import torch
            activities = [torch.profiler.ProfilerActivity.CPU]
            if self.device == "gpu" and torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self._torch = torch.profiler.profile(activities=activities)
            self._torch.start()
        else:
            raise ValueError(f"no profiler for backend {self.backend!r}")
        self.running = True

    def stop(self) -> None:
        """Stop recording and write the trace (the slow part: seconds for a large one)."""
        if not self.running:
            return
        self.running = False
        if self.backend == "tensorflow":
            import tensorflow as tf
            tf.profiler.experimental.stop()
        elif self.backend == "jax":
            import jax
            jax.profiler.stop_trace()
        else:
            profile, self._torch = self._torch, None
            profile.stop()
            profile.export_chrome_trace(str(self.torch_trace))
