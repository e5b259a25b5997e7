"""FLOPs per image of any Keras model, counted by its backend's own counter.

`count_flops(model, input_shape, backend)` runs before the start record and goes
into it as `flops` (docs/log-format.md). Each counter counts one forward pass in
inference mode (`training=False`) at batch 1 and at batch 2, and FLOPs per image
is the difference: work done once per batch (batch norm's per-channel rsqrt and
scale, say) is not work per image, and it cancels.

  jax         xla-cost-analysis    XLA's HloCostAnalysis of the lowered (not yet optimised)
                                   module, for the CPU: the model as written, the same on every
                                   device (a GPU's compiled module pads and calls cuDNN instead)
  tensorflow  tf-profiler          TensorFlow's profiler float-ops over the tf.function graph
                                   (the ops' registered "flops" statistics). TF 2.21 shows a jit
                                   function's HLO (`experimental_get_compiler_ir`) but has no
                                   Python cost analysis over it
  torch       torch-flop-counter   torch.utils.flop_counter.FlopCounterMode on one real forward

What each counts, against the layer-shape convention of training/analysis/flops.py
(a multiply-add 2, + 1 per bias output; batch norm 2, ReLU 1, softmax 3 per
element; a k x k max-pool k*k - 1 per output):

  xla-cost-analysis   every elementwise op 1 per element, a multiply-add 2, a reduction of n
                      values n - 1, a pooling window of w values w - 1 per output; exp, rsqrt
                      and the like as "transcendentals", not FLOPs. The same as the convention
                      except softmax: 4n - 1 for n classes (the max subtracted first, for
                      stability: n - 1 + 1 + n; the sum n - 1; the division n), exp not counted
  tf-profiler         Conv2D and MatMul 2 per multiply-add, BiasAdd, Add, Mul 1 per element;
                      MaxPool k*k per output (every window element); Softmax 5 per element;
                      ops with no statistic (Relu among them) 0, and named in `uncounted`
  torch-flop-counter  convolutions and matrix products only (2 per multiply-add); bias adds,
                      normalisation, activations, pooling and softmax 0, named in `uncounted`

So the published CNN's 5,256,616 (layers) is 5,256,625 for XLA (+9 at the
10-class softmax), 5,243,452 for the TF profiler (-17,408 ReLU, +4,224 pooling,
+20 softmax) and 5,174,272 for torch (its multiply-adds alone); tests/test_flopcount.py
checks each against the layer count's parts.

A counter that fails does not fail the run: `forward` is None with the error, and
the analysis falls back to the start record's `layers`. Imported only by the
worker, after the backend is chosen.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

METHODS = {"jax": "xla-cost-analysis", "tensorflow": "tf-profiler", "torch": "torch-flop-counter"}
BATCHES = (1, 2)  # FLOPs per image = count at 2 - count at 1

# Ops that move or view data and compute nothing: never named as uncounted.
TF_DATA_OPS = {"Placeholder", "ReadVariableOp", "Identity", "IdentityN", "Const", "NoOp", "Reshape", "Shape",
               "Cast", "Squeeze", "ExpandDims", "Transpose", "Pack", "Unpack", "ConcatV2", "StridedSlice",
               "Slice", "Pad", "Fill", "ZerosLike", "OnesLike", "StopGradient", "Range", "GatherV2",
               "PartitionedCall", "StatefulPartitionedCall", "ResourceGather"}
TORCH_DATA_OPS = {"view", "_unsafe_view", "reshape", "permute", "transpose", "t", "clone", "contiguous",
                  "expand", "squeeze", "unsqueeze", "detach", "alias", "_to_copy", "copy_", "to", "empty",
                  "zeros", "ones", "full", "cat", "stack", "split", "slice", "select", "constant_pad_nd",
                  "lift_fresh", "_reshape_alias", "as_strided", "flatten", "new_empty", "new_zeros",
                  "empty_like", "zeros_like", "ones_like", "fill_", "zero_", "split_with_sizes",
                  "unbind", "_local_scalar_dense", "item", "index_select"}


def count_flops(model, input_shape, backend: str) -> dict:
    """{"forward": FLOPs per image or None, "method", "uncounted": [ops the counter skips], "error"}."""
    method = METHODS.get(backend)
    counter = {"jax": _jax_count, "tensorflow": _tf_count, "torch": _torch_count}.get(backend)
    if counter is None:
        return {"forward": None, "method": None, "uncounted": [], "error": f"no FLOP counter for {backend!r}"}
    shape = tuple(int(d) for d in input_shape)
    try:
        (one, uncounted), (two, _) = (counter(model, shape, batch) for batch in BATCHES)
    except Exception as error:  # noqa: BLE001 - any failure: the run goes on, the analysis counts layers
        log.debug("%s could not count FLOPs: %r", method, error)
        return {"forward": None, "method": method, "uncounted": [],
                "error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"}
    return {"forward": int(round(two - one)), "method": method, "uncounted": sorted(uncounted), "error": None}


def _input_dtype(model) -> str:
    dtype = getattr(model.inputs[0], "dtype", None) if getattr(model, "inputs", None) else None
    return str(dtype or "float32")


# -- JAX: XLA's cost analysis ------------------------------------------------------------------------------

def _jax_count(model, shape: tuple[int, ...], batch: int) -> tuple[float, set[str]]:
    import jax

    def forward(trainable, non_trainable, images):
        outputs, _ = model.stateless_call(trainable, non_trainable, images, training=False)
        return outputs

    try:
        sharding = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    except RuntimeError:  # JAX_PLATFORMS without cpu: lower for the default device instead
        sharding = None

    def abstract(shape_, dtype):
        return jax.ShapeDtypeStruct(tuple(shape_), dtype, sharding=sharding)

    trainable = [abstract(v.shape, v.dtype) for v in model.trainable_variables]
    non_trainable = [abstract(v.shape, v.dtype) for v in model.non_trainable_variables]
    lowered = jax.jit(forward).lower(trainable, non_trainable, abstract((batch, *shape), _input_dtype(model)))
    cost = lowered.cost_analysis()
    if cost is None:  # the lowered module cannot be analysed on this platform: the compiled one can
        cost = lowered.compile().cost_analysis()
    if isinstance(cost, list):  # older jax: one dict per device program
        cost = cost[0]
    if not cost or "flops" not in cost:
        raise RuntimeError(f"XLA's cost analysis gave no flops ({cost!r})")
    return float(cost["flops"]), set()


# -- TensorFlow: the profiler's float-ops ------------------------------------------------------------------

def _tf_count(model, shape: tuple[int, ...], batch: int) -> tuple[float, set[str]]:
    import tensorflow as tf
    from tensorflow.python.framework import ops
    from tensorflow.python.profiler import model_analyzer, option_builder

    spec = tf.TensorSpec((batch, *shape), _input_dtype(model))
    graph = tf.function(lambda images: model(images, training=False)).get_concrete_function(spec).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"  # the profiler prints its table to stdout otherwise
    profile = model_analyzer.profile(graph, options=options)
    uncounted = set()
    for op in graph.get_operations():
        if op.type in TF_DATA_OPS:
            continue
        try:
            counted = ops.get_stats_for_node_def(graph, op.node_def, "flops").value is not None
        except ValueError:  # a registered statistic that cannot work out this op's shapes
            counted = False
        if not counted:
            uncounted.add(op.type)
    return float(profile.total_float_ops), uncounted


# -- torch: FlopCounterMode --------------------------------------------------------------------------------

def _torch_count(model, shape: tuple[int, ...], batch: int) -> tuple[float, set[str]]:
    import keras
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    images = keras.ops.zeros((batch, *shape), dtype=_input_dtype(model))  # on Keras's device
    seen: set[str] = set()

    class Ops(TorchDispatchMode):
        """Notes every aten op the forward pass dispatches, to name those the counter has no formula for."""

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.add(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter, Ops():
        model(images, training=False)
    counted = {str(op).split(".")[-1] for op in counter.get_flop_counts().get("Global", {})}
    formulas = {getattr(op, "__name__", str(op)) for op in counter.flop_registry}
    uncounted = {f"aten.{name}" for name in seen - counted - formulas - TORCH_DATA_OPS}
    return float(counter.get_total_flops()), uncounted
