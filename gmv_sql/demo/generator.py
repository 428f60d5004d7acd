"""The demo's generator run: how big it is, training the small DDPM on the members, sampling digits.

torch is imported only inside train_and_sample (through gmv_sql.demo.ddpm), when the demo runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Plan:
    """How big the demo is. Few members per class let the small DDPM memorise them, which is the
    effect the membership test must detect."""

    members_per_class: int
    nonmembers_per_class: int
    generated_per_class: int
    train_steps: int
    hidden: int = 512
    timesteps: int = 100
    learning_rate: float = 2e-3


# Measured (docs/DEMO.md): 10 members per class and 2,500 steps gave no effect in efficientnet space
# (p = 0.6) although pixel space showed one; 4 per class memorise enough. QUICK's 3,000 steps train in
# about a minute on 2 cores and still give p < 1e-4 at seeds 0-2 (a 256-wide denoiser does not: p = 0.16).
QUICK = Plan(members_per_class=4, nonmembers_per_class=16, generated_per_class=60, train_steps=3000)
# More samples and steps than QUICK, same split: both only strengthen the effect.
FULL = Plan(members_per_class=4, nonmembers_per_class=16, generated_per_class=100, train_steps=8000)


def train_and_sample(
    member_images: np.ndarray,
    member_labels: np.ndarray,
    plan: Plan,
    seed: int,
    *,
    say: Callable[[str], None],
) -> tuple[np.ndarray, np.ndarray]:
    """Train the class-conditional DDPM on the members only (with a progress bar), then sample
    plan.generated_per_class digits of each class; returns (images, labels). say prints a line."""
    import torch

    from gmv_sql.demo.ddpm import DDPM, DDPMConfig
    from gmv_sql.progress import Progress

    # The matrices are small: one thread is as fast as two, and far faster on a busy machine
    # (spinning OpenMP threads wait on each other).
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = DDPMConfig(
            timesteps=plan.timesteps,
            hidden=plan.hidden,
            train_steps=plan.train_steps,
            learning_rate=plan.learning_rate,
        )
        model = DDPM(member_images.shape[1:], 10, config, seed=seed)
        with Progress("training DDPM", plan.train_steps, unit="steps") as progress:
            losses = model.train(member_images, member_labels, on_step=progress.update)
        say(f"final training loss {losses[-1]:.4f}" if losses else "trained")
        labels = np.repeat(np.arange(10), plan.generated_per_class)
        return model.sample(labels), labels
    finally:
        torch.set_num_threads(previous_threads)
