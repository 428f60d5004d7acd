"""A small class-conditional DDPM (Ho et al., 2020) with an MLP denoiser, for 8x8 images.

It is the demo's generator: trained on the member digits only, it memorises part of them, so
the images it generates lie nearer to members than to held-out non-members. That is the effect
GMValuator's membership experiment measures (arXiv 2304.10701, Table 1). torch is imported
lazily by the caller's first use of this module (the demo imports it only when it runs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class DDPMConfig:
    timesteps: int = 200
    hidden: int = 512
    layers: int = 4
    train_steps: int = 6000
    batch_size: int = 128
    learning_rate: float = 1e-3
    beta_start: float = 1e-4
    beta_end: float = 0.02


def _time_features(t: torch.Tensor, dim: int = 64) -> torch.Tensor:
    """Sinusoidal features of the diffusion step (as in the Transformer's positions)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class MLPDenoiser(nn.Module):
    """Predicts the noise in x_t from (x_t, t, class label)."""

    def __init__(self, n_pixels: int, n_classes: int, hidden: int = 512, layers: int = 4):
        super().__init__()
        self.label_embedding = nn.Embedding(n_classes, 64)
        self.time_mlp = nn.Sequential(nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 64))
        blocks: list[nn.Module] = [nn.Linear(n_pixels + 128, hidden), nn.SiLU()]
        for _ in range(layers - 1):
            blocks += [nn.Linear(hidden, hidden), nn.SiLU()]
        blocks.append(nn.Linear(hidden, n_pixels))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([self.time_mlp(_time_features(t)), self.label_embedding(labels)], dim=1)
        return self.net(torch.cat([x, cond], dim=1))


class DDPM:
    """Training and ancestral sampling; images are float arrays in [0, 1], shape (n, h, w)."""

    def __init__(self, image_shape: tuple[int, int], n_classes: int, config: DDPMConfig, seed: int):
        self.image_shape = image_shape
        self.n_classes = n_classes
        self.config = config
        self.seed = seed
        torch.manual_seed(seed)
        n_pixels = image_shape[0] * image_shape[1]
        self.model = MLPDenoiser(n_pixels, n_classes, config.hidden, config.layers)
        betas = torch.linspace(config.beta_start, config.beta_end * 1000 / config.timesteps, config.timesteps)
        # Few steps scale the betas up; past ~0.2 the reverse step divides by sqrt(1 - beta) ~ 0 and blows up.
        self.betas = betas.clamp(max=0.2)
        self.alphas = 1.0 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)

    def train(
        self, images: np.ndarray, labels: np.ndarray, *, on_step: Callable[[int], None] | None = None
    ) -> list[float]:
        """Fit the denoiser on (images in [0, 1], integer labels); returns the loss every 100 steps."""
        cfg = self.config
        x0_all = torch.as_tensor(images.reshape(len(images), -1) * 2.0 - 1.0, dtype=torch.float32)
        y_all = torch.as_tensor(labels, dtype=torch.long)
        generator = torch.Generator().manual_seed(self.seed)
        optimiser = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate)
        # Cosine decay: the late, small steps sharpen the fit (and with it the memorisation we want to show).
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=cfg.train_steps)
        losses: list[float] = []
        running = 0.0
        self.model.train()
        for step in range(cfg.train_steps):
            idx = torch.randint(0, len(x0_all), (cfg.batch_size,), generator=generator)
            x0, y = x0_all[idx], y_all[idx]
            t = torch.randint(0, cfg.timesteps, (cfg.batch_size,), generator=generator)
            noise = torch.randn(x0.shape, generator=generator)
            a_bar = self.alpha_bars[t][:, None]
            x_t = a_bar.sqrt() * x0 + (1.0 - a_bar).sqrt() * noise
            loss = torch.mean((self.model(x_t, t, y) - noise) ** 2)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            running += float(loss.detach())
            if (step + 1) % 100 == 0:
                losses.append(running / 100)
                running = 0.0
            if on_step is not None:
                on_step(1)
        return losses

    @torch.inference_mode()
    def sample(self, labels: np.ndarray) -> np.ndarray:
        """One image per label, by ancestral sampling from pure noise; returns (n, h, w) in [0, 1]."""
        self.model.eval()
        generator = torch.Generator().manual_seed(self.seed + 1)
        y = torch.as_tensor(labels, dtype=torch.long)
        n_pixels = self.image_shape[0] * self.image_shape[1]
        x = torch.randn((len(y), n_pixels), generator=generator)
        for step in reversed(range(self.config.timesteps)):
            t = torch.full((len(y),), step, dtype=torch.long)
            eps = self.model(x, t, y)
            alpha, a_bar, beta = self.alphas[step], self.alpha_bars[step], self.betas[step]
            x = (x - beta / (1.0 - a_bar).sqrt() * eps) / alpha.sqrt()
            if step > 0:
                x = x + beta.sqrt() * torch.randn(x.shape, generator=generator)
        images = ((x.clamp(-1.0, 1.0) + 1.0) / 2.0).numpy()
        return images.reshape(len(y), *self.image_shape)
