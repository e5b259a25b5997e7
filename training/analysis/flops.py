"""FLOPs per image from the model's own layer shapes, and how far a run is from its peak.

A run trained here records its forward FLOPs per image as its backend's own
counter gave them (`flops` in the start record: `training/worker/flopcount.py`, which
says what each counter counts); `model_flops` reads those first. Else, and for the
built-in reference runs, the count is from the model's layers (`layers`: class,
input and output shapes, kernel or pool size, bias, activation), and a layer class
with no count here is named in `uncounted` (the count is then a lower bound).
The layer count's conventions (the usual ones of MFU reports):

  Conv2D, Dense     a multiply-add is 2 FLOPs: 2 x kernel inputs x outputs, + 1 per output for the bias
  BatchNorm         2 per element (scale and shift, the moving statistics folded: inference form)
  ReLU              1 per element;  softmax 3 per element (exp, sum, divide);  linear 0
  MaxPool k x k     k*k - 1 comparisons per output;  AveragePool k x k  k*k per output
  DepthwiseConv2D   2 x kernel x outputs, + 1 per output for the bias
  GlobalAveragePool one per input element (the sums and one division per channel)
  Add, Multiply     n - 1 per output for n inputs
  Flatten, Input, Dropout, Reshape, ZeroPadding2D   0
  training image    3 x forward (the backward pass is about 2 x forward: gradients of
                    activations and of weights), as in 6N-per-token counts
  evaluated image   1 x forward

Utilisation is achieved FLOP/s (FLOPs per image x images per second) over the
peak measured on the run's machine, backend, device and precision (`peak` in the
start record, from `python -m training peak`): the figure LLM reports call MFU.
Datasheet peaks stand beside it, labelled as such. Pure: no I/O.
"""

from __future__ import annotations

import math
import statistics

TRAIN_FACTOR = 3  # FLOPs of one training image per forward FLOP
ACTIVATION_FLOPS = {"linear": 0, "relu": 1, "relu6": 1, "softmax": 3}
NO_FLOPS = ("InputLayer", "Flatten", "Dropout", "Reshape", "ZeroPadding2D")
LAYERS_METHOD = "layers"  # `method` of a count from the start record's layers

# Vendor datasheet peaks, FLOP/s, for dense maths at each precision (boost clocks, no sparsity).
# Labelled "datasheet" wherever shown: a real run is measured against `peak`, not these.
DATASHEET_PEAKS = {
    "NVIDIA GeForce GTX 1080": {"float32": 8.87e12, "mixed_float16": 0.14e12},
    "NVIDIA H100 80GB HBM3": {"float32": 67e12, "mixed_float16": 989e12, "mixed_bfloat16": 989e12},
    "NVIDIA H200": {"float32": 67e12, "mixed_float16": 989e12, "mixed_bfloat16": 989e12},
    "NVIDIA A100-SXM4-80GB": {"float32": 19.5e12, "mixed_float16": 312e12, "mixed_bfloat16": 312e12},
}


ABOVE_PEAK = "above the measured peak: the timed seconds miss work (asynchronous dispatch?)"


def impossible(utilisation: float | None) -> bool:
    """A utilisation over 1 cannot be: the timing, not the device, is wrong."""
    return utilisation is not None and utilisation > 1


class FlopsError(ValueError):
    """A layer description that cannot be counted; the message names the layer and field."""


def _shape(layer: dict, index: int, key: str) -> list[int]:
    shape = layer.get(key)
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        raise FlopsError(f"layers[{index}].{key}: expected a list of positive sizes, got {shape!r}")
    return shape


def _activation(name, index: int) -> int:
    if name is None:
        return 0
    if name not in ACTIVATION_FLOPS:
        raise FlopsError(f"layers[{index}].activation: no FLOP count for {name!r}")
    return ACTIVATION_FLOPS[name]


def layer_flops(layer: dict, index: int = 0) -> int:
    """Forward FLOPs of one layer for one image (see the conventions above)."""
    kind = layer.get("class")
    if kind in NO_FLOPS:
        return 0
    out = _shape(layer, index, "output")
    outputs = math.prod(out)
    bias = outputs if layer.get("bias", True) else 0
    activation = _activation(layer.get("activation"), index) * outputs
    if kind == "Conv2D":
        kernel = _shape(layer, index, "kernel")
        channels_in = _shape(layer, index, "input")[-1]
        return 2 * math.prod(kernel) * channels_in * outputs + bias + activation
    if kind == "DepthwiseConv2D":
        return 2 * math.prod(_shape(layer, index, "kernel")) * outputs + bias + activation
    if kind == "Dense":
        return 2 * _shape(layer, index, "input")[-1] * outputs + bias + activation
    if kind == "BatchNormalization":
        return 2 * outputs
    if kind == "Activation":
        return activation
    if kind == "ReLU":
        return outputs
    if kind in ("Add", "Multiply"):  # n inputs: n - 1 operations per output
        return (len(layer.get("inputs") or [None, None]) - 1) * outputs
    if kind == "GlobalAveragePooling2D":
        return math.prod(_shape(layer, index, "input"))
    if kind == "AveragePooling2D":
        return math.prod(_shape(layer, index, "pool")) * outputs
    if kind == "MaxPooling2D":
        return (math.prod(_shape(layer, index, "pool")) - 1) * outputs
    raise FlopsError(f"layers[{index}].class: no FLOP count for {kind!r}")


def forward_flops(layers: list[dict]) -> int:
    """Forward FLOPs per image of the whole model."""
    return sum(layer_flops(layer, index) for index, layer in enumerate(layers))


def uncountable(layer: dict) -> bool:
    """A layer this count has no convention for (its class, or its activation)."""
    kind = layer.get("class")
    known = kind in NO_FLOPS or kind in COUNTED
    return not known or (layer.get("activation") or "linear") not in ACTIVATION_FLOPS


COUNTED = ("Conv2D", "DepthwiseConv2D", "Dense", "BatchNormalization", "Activation", "ReLU", "Add",
           "Multiply", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D")


def count_layers(layers: list[dict]) -> tuple[int, list[str]]:
    """(forward FLOPs per image of the layers it can count, the classes it cannot, first-seen order).

    A malformed description of a layer it can count still raises FlopsError.
    """
    counted, missing = 0, []
    for index, layer in enumerate(layers):
        if uncountable(layer):
            kind = layer.get("class")
            if kind in COUNTED:  # the class is known: its activation is not
                kind = f"{kind}(activation={layer.get('activation')})"
            if kind not in missing:
                missing.append(str(kind))
            continue
        counted += layer_flops(layer, index)
    return counted, missing


def _first_uncountable(layers: list[dict]) -> str:
    for index, layer in enumerate(layers):
        if uncountable(layer):
            try:
                layer_flops(layer, index)
            except FlopsError as error:
                return str(error)
    return "no layer could be counted"


def recorded_flops(start: dict | None) -> dict | None:
    """The start record's `flops` (the backend's own count) when it has a forward count."""
    recorded = (start or {}).get("flops")
    forward = recorded.get("forward") if isinstance(recorded, dict) else None
    return recorded if isinstance(forward, (int, float)) and forward > 0 else None


def model_flops(start: dict | None) -> dict | None:
    """{"forward", "train_image", "eval_image", "method", "uncounted"} FLOPs of one image, or None.

    The backend's own count when the start record has one (`flops`), else the count
    from its `layers`, naming the layer classes it could not count; None when neither
    is there (an older log: FLOPs unknown, not guessed). Raises FlopsError when no
    layer could be counted, or one is malformed.
    """
    recorded = recorded_flops(start)
    if recorded is not None:
        forward, method = int(recorded["forward"]), recorded.get("method")
        missing = recorded.get("uncounted") or []
    else:
        layers = (start or {}).get("layers")
        if not layers:
            return None
        forward, missing = count_layers(layers)
        method = LAYERS_METHOD
        if forward == 0 and missing:
            raise FlopsError(_first_uncountable(layers))
    return {"forward": forward, "train_image": TRAIN_FACTOR * forward, "eval_image": forward,
            "method": method, "uncounted": list(missing)}


def datasheet_peak(gpu_names: list[str] | None, precision: str | None) -> float | None:
    """The datasheet FLOP/s of the run's first GPU at its precision, if the table has it."""
    for name in gpu_names or []:
        peak = DATASHEET_PEAKS.get(name, {}).get(precision or "float32")
        if peak:
            return peak
    return None


def steady_epochs(epochs: list[dict]) -> list[dict]:
    """The epochs a steady state is taken over: not epoch 1 (warm-up), not a profiled one."""
    return [e for e in epochs if e.get("epoch", 0) > 1 and not e.get("profiled")]


def trained_images(record: dict) -> float | None:
    """Training images of one epoch record: `samples`, else samples_per_s x train_s (older records)."""
    if record.get("samples"):
        return record["samples"]
    if record.get("samples_per_s") and record.get("train_s"):
        return record["samples_per_s"] * record["train_s"]
    return None


def _steady(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def efficiency(epochs: list[dict], start: dict | None, test_images: int | None,
               precision: str | None = None, device: str | None = None) -> dict:
    """A run's FLOPs per image, achieved FLOP/s over its steady epochs, peak and utilisation.

    `achieved_train_flops_per_s`: training FLOPs over training seconds (runs that time
    training alone); `achieved_epoch_flops_per_s`: training plus evaluation FLOPs over the
    whole epoch's seconds (every run, the published ones included). `utilisation` is the
    first of the two that is known over the measured peak, `epoch_utilisation` the second
    over it (it does not depend on where the train/eval split falls); `datasheet_utilisation`
    is `utilisation`'s achieved FLOP/s over the datasheet peak of the run's GPU.
    """
    try:
        counted, problem = model_flops(start), None
    except FlopsError as error:  # a log's layers this version cannot count: say so, do not fail the page
        counted, problem = None, str(error)
    start = start or {}
    peak = (start.get("peak") or {}).get("flops_per_s")
    gpus = (start.get("hardware") or {}).get("gpu_names") if device != "cpu" else None
    sheet = datasheet_peak(gpus, precision)
    result = {"flops_per_train_image": None, "flops_per_eval_image": None,
              "achieved_train_flops_per_s": None, "achieved_epoch_flops_per_s": None,
              "achieved_flops_per_s": None, "peak_flops_per_s": peak, "utilisation": None,
              "epoch_utilisation": None,
              "datasheet_peak_flops_per_s": sheet, "datasheet_utilisation": None, "flops_error": problem,
              "flops_method": None, "flops_uncounted": []}
    if counted is None:
        return result
    train, evaluate = counted["train_image"], counted["eval_image"]
    steady = [(e, trained_images(e)) for e in steady_epochs(epochs) if trained_images(e)]
    trained = _steady([images * train / e["train_s"] for e, images in steady if e.get("train_s")])
    whole = None
    if test_images is not None:
        whole = _steady([(images * train + test_images * evaluate) / e["epoch_time_s"]
                         for e, images in steady if e.get("epoch_time_s")])
    achieved = trained if trained is not None else whole
    result.update({"flops_per_train_image": train, "flops_per_eval_image": evaluate,
                   "flops_method": counted["method"], "flops_uncounted": counted["uncounted"],
                   "achieved_train_flops_per_s": trained, "achieved_epoch_flops_per_s": whole,
                   "achieved_flops_per_s": achieved,
                   "utilisation": achieved / peak if achieved is not None and peak else None,
                   "epoch_utilisation": whole / peak if whole is not None and peak else None,
                   "datasheet_utilisation": achieved / sheet if achieved is not None and sheet else None})
    return result
