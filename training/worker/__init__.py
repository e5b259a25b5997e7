"""The worker: the only package that imports TensorFlow, Keras, JAX or torch.

Importing this package imports nothing heavy; `work.work` picks the backend
and device first and only then imports Keras (see device.py).
"""
