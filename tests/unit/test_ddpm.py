"""The demo's generator: a class-conditional DDPM with an MLP denoiser (tiny settings, a few seconds)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")  # a third-party package: `pytest -m "not torch"` runs without it

from gmv_sql.demo.ddpm import DDPM, DDPMConfig  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices: on a busy 2-core machine two OpenMP threads spin against each other (10x slower)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


TINY = DDPMConfig(timesteps=20, hidden=32, layers=2, train_steps=300, batch_size=32, learning_rate=3e-3)


def _toy_data(n_per_class: int = 8):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), n_per_class)
    images = np.zeros((len(labels), 4, 4))
    for i, label in enumerate(labels):  # class c lights up row c
        images[i, label, :] = 0.8 + 0.2 * rng.random(4)
    return images, labels


def test_training_lowers_the_loss_and_sampling_is_seeded():
    images, labels = _toy_data()
    model = DDPM((4, 4), 3, TINY, seed=3)
    losses = model.train(images, labels)
    assert len(losses) == 3 and losses[-1] < losses[0]
    first = model.sample(np.array([0, 1, 2, 2]))
    assert first.shape == (4, 4, 4) and first.min() >= 0.0 and first.max() <= 1.0
    np.testing.assert_array_equal(first, model.sample(np.array([0, 1, 2, 2])))

    again = DDPM((4, 4), 3, TINY, seed=3)
    again.train(images, labels)
    np.testing.assert_allclose(again.sample(np.array([0, 1, 2, 2])), first, atol=1e-6)


def test_samples_follow_their_class():
    images, labels = _toy_data()
    model = DDPM(
        (4, 4),
        3,
        DDPMConfig(timesteps=50, hidden=64, layers=2, train_steps=600, batch_size=32, learning_rate=3e-3),
        seed=0,
    )
    model.train(images, labels)
    samples = model.sample(np.repeat(np.arange(3), 4))
    # The brightest row of each sample is the row its class lights up.
    brightest = samples.mean(axis=2).argmax(axis=1)
    assert (brightest == np.repeat(np.arange(3), 4)).mean() >= 0.9


def test_on_step_reports_every_step():
    images, labels = _toy_data(2)
    seen = []
    DDPM((4, 4), 3, DDPMConfig(timesteps=5, hidden=8, layers=1, train_steps=7, batch_size=4), seed=0).train(
        images, labels, on_step=seen.append
    )
    assert seen == [1] * 7
