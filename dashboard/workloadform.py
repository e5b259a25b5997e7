"""The Train page's workload choice: which model trains on which data, checked as the CLI checks it.

    model  the published CNN · a Keras Applications architecture with its image size ·
           a saved .keras file (weights re-initialised unless kept) · a package.module:function
    data   MNIST · synthetic (throughput only: no accuracy) · an .npz file

Streamlit glue over `training.config` (the fields' rules) and `training.launch.workload`
(the same edge check as `python -m training run`: a data file's shapes, dtypes and labels;
a model file or function built once by Keras in a short subprocess, the answer cached),
so an error appears under the widget it is about and the Start buttons stay disabled.
"""

from __future__ import annotations

import dataclasses

import streamlit as st

from training.config import (
    DEFAULT_DATA,
    DEFAULT_MODEL,
    KERAS_APPLICATIONS,
    KERAS_PREFIX,
    SYNTHETIC,
    ConfigError,
    RunConfig,
    validate,
)
from training.launch import workload

MODELS = {"cnn": "Published CNN (mnist-cnn)", "keras": "Keras Applications (untrained)",
          "file": "Saved model file (.keras)", "function": "Python function (package.module:function)"}
DATA = {"mnist": "MNIST", "synthetic": "Synthetic (throughput only: no accuracy)", "file": ".npz file"}


def _model(where: dict) -> tuple[str, int | None, bool]:
    """The model widgets; returns (--model, --image-size, --keep-weights)."""
    kind = st.radio("Model", list(MODELS), format_func=MODELS.get, key="workload_model", horizontal=True)
    where["model"] = st.empty()
    image_size, keep = None, False
    if kind == "cnn":
        return DEFAULT_MODEL, None, False
    if kind == "keras":
        left, right = st.columns(2)
        name = left.selectbox("Architecture", list(KERAS_APPLICATIONS), key="workload_app",
                              help="Built with weights=None: no download, trained from scratch")
        side = right.number_input("Image size (0 = the data's own; synthetic: the application's)", value=0,
                                  min_value=0, step=8, key="workload_image_size",
                                  help="Square images of this side; MNIST is resized to it on the device")
        where["image_size"] = right.empty()
        return KERAS_PREFIX + name, int(side) or None, False
    if kind == "file":
        path = st.text_input("Model file", key="workload_file", placeholder="path/to/model.keras",
                             help="A Keras 3 model saved with model.save(); loaded with safe_mode=True")
        where["model"] = st.empty()
        keep = st.checkbox("Keep its saved weights (default: re-initialised)", key="workload_keep")
        where["keep_weights"] = st.empty()
        return path.strip(), None, keep
    text = st.text_input("Function", key="workload_function", placeholder="package.module:function",
                         help="Called as function(input_shape, num_classes); returns an uncompiled "
                              "keras.Model. Imported from the folder the dashboard runs in, or PYTHONPATH")
    where["model"] = st.empty()
    side = st.number_input("Synthetic image size (0 = 28x28x1)", value=0, min_value=0, step=8,
                           key="workload_fn_size")
    where["image_size"] = st.empty()
    image_size = int(side) or None
    return text.strip(), image_size, keep


def _data(where: dict) -> str:
    kind = st.radio("Data", list(DATA), format_func=DATA.get, key="workload_data", horizontal=True)
    if kind == "synthetic":
        st.caption("Random images and labels of the model's shape: images/s only; accuracy and time to "
                   "target mean nothing and are not shown.")
    path = st.text_input("Data file", key="workload_npz", placeholder="path/to/data.npz",
                         help="x_train, y_train, x_test, y_test: uint8 or float images, integer labels"
                         ) if kind == "file" else ""
    where["data"] = st.empty()
    return {"mnist": DEFAULT_DATA, "synthetic": SYNTHETIC}.get(kind, path.strip())


def workload_choice(config: RunConfig | None) -> RunConfig | None:
    """Render the workload widgets below the settings; the settings with the workload, or None if refused."""
    st.subheader("Workload")
    where: dict = {}
    model, image_size, keep = _model(where)
    data = _data(where)
    if config is None:
        return None
    if not data:
        where["data"].error("**Data file** give the path of an .npz file")
        return None
    if not model:
        where["model"].error("**Model** give a path or a package.module:function")
        return None
    try:
        chosen = dataclasses.replace(config, model=model, data=data, image_size=image_size, keep_weights=keep)
        validate(chosen)
        if (model, data) != (DEFAULT_MODEL, DEFAULT_DATA):
            with st.spinner("Checking the model and data…"):
                workload.check(workload.resolve(chosen))
    except ConfigError as error:
        label = error.field.replace("_", " ").capitalize()
        (where.get(error.field) or st).error(f"**{label}** {error.message}")
        return None
    return chosen
