"""Train the published MNIST CNN on the CPU or a GPU and keep its runs on disk.

Start reading at `cli.py` (the command line) or `manager.py` (what the
dashboard calls). Only `worker.py` and `model.py` import Keras/TensorFlow.
"""
