"""The prior p(z) of a VAE, one interface for every kind; a model holds one prior.

=====================  ==================================================================
``prior=``             p(z) (:func:`vae_models.image_vae.make_prior`)
=====================  ==================================================================
``"normal"``           :class:`StandardNormalPrior`, N(0, I) (the KL is analytic)
``"flow"``             on a spatial latent (C × s × s, s > 1) the autoregressive flow over
                       latent positions (VLAE; :mod:`vae_models.flow_prior`); on a vector
                       (C × 1 × 1) the autoregressive prior over its numbers
                       (:mod:`vae_models.vector_prior`, an affine flow for one component)
``"fitted"``           N(0, I) until a Gaussian mixture is fitted to posterior means by EM
                       (:mod:`vae_models.fitted_prior`)
=====================  ==================================================================

Every prior gives

* ``log_prob_elements(z)``: log p(z) split over the latent's elements by the chain rule,
  log p(z_d | z_<d), shaped like ``z`` (they sum to log p(z); the VAEs log one KL per channel);
* ``kl_elements(z, μ, log σ²)``: KL(q(z|x) ‖ p(z)) per element, the one-sample estimate
  log q(z|x) − log p(z) at the reparameterised ``z`` (analytic where it is closed form);
* ``sample(n, generator=None)``: ``n`` draws ``[n, *shape]``;
* ``fit_to_posteriors(posteriors, steps, seed)``: fit p(z) to the aggregate posterior of
  ``posteriors`` ``[N, 2, *shape]`` (μ and log σ² of q(z|x) for N images): a learned prior by
  ``steps`` Adam steps on −log p(z) at draws z ~ q(z|x); the fitted mixture by EM on the means.
  The callback ``callbacks.prior_fit.FitPrior`` calls it at the end of training.

Units: nats.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ar_models.errors import ModelConfigError, check
from vae_models.gaussians import (
    LOG_2PI,
    gaussian_log_prob_per_dim,
    kl_std_normal_per_dim,
    reparameterize,
)

#: Draws z ~ q(z|x) per step of :meth:`Prior.fit_to_posteriors`, and its Adam learning rate.
FIT_BATCH = 256
FIT_LR = 1e-3


class Prior(nn.Module):
    """p(z) over latents ``[B, *shape]`` (module docstring). Subclasses implement
    :meth:`log_prob_elements` and :meth:`draw`."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(shape)
        # follows .to() and .double(): the device and dtype of the draws
        self.register_buffer("anchor", torch.zeros(()), persistent=False)

    @property
    def trainable(self) -> bool:
        """Whether the prior has parameters that gradients train (N(0, I) and the EM-fitted
        mixture have none)."""
        return any(p.requires_grad for p in self.parameters())

    def log_prob_elements(self, z: Tensor) -> Tensor:
        """log p(z_d | z_<d) for every element, shaped like ``z`` (nats)."""
        raise NotImplementedError

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) per example, ``[B]`` nats."""
        return self.log_prob_elements(z).flatten(1).sum(-1)

    def kl_elements(self, z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        """log q(z|x) − log p(z) per element at the draw ``z`` of q = N(μ, diag exp(logvar))."""
        return gaussian_log_prob_per_dim(z, mu, logvar) - self.log_prob_elements(z)

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """ε ~ N(0, I), ``[n, *shape]``, on the prior's device and in its dtype."""
        anchor = self.anchor
        return torch.randn(
            n, *self.shape, generator=generator, device=anchor.device, dtype=anchor.dtype
        )

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws z ~ p(z), ``[n, *shape]``."""
        return self.draw(self.noise(n, generator), generator)

    def draw(self, eps: Tensor, generator: torch.Generator | None) -> Tensor:
        """z from the standard normal noise ``eps`` (and ``generator`` for further choices)."""
        raise NotImplementedError

    def fit_to_posteriors(self, posteriors: Tensor, steps: int, seed: int = 0) -> list[float]:
        """``steps`` Adam steps (learning rate :data:`FIT_LR`) on −log p(z), each on
        :data:`FIT_BATCH` draws z ~ q(z|x) of posteriors ``[N, 2, *shape]`` picked at random
        (seeded by ``seed``, so every process takes the same steps); returns each step's mean
        −log p(z) in nats."""
        if not self.trainable:
            raise ModelConfigError(f"{type(self).__name__} has no parameters to fit")
        check(integer=True, minimum=1, steps=steps)
        generator = torch.Generator(device=posteriors.device).manual_seed(seed)
        optimiser = torch.optim.Adam(self.parameters(), lr=FIT_LR)
        losses = []
        with torch.inference_mode(False), torch.enable_grad():
            posteriors = posteriors.clone()  # a normal tensor, also when taken in inference mode
            for _ in range(steps):
                pick = torch.randint(
                    len(posteriors), (FIT_BATCH,), generator=generator, device=posteriors.device
                )
                z = reparameterize(*posteriors[pick].unbind(1), generator=generator)
                loss = -self.log_prob_elements(z).mean(0).sum()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                losses.append(loss.detach())
        self.zero_grad(set_to_none=True)
        return torch.stack(losses).tolist()


class StandardNormalPrior(Prior):
    """p(z) = N(0, I); the KL of a diagonal Gaussian q to it is analytic."""

    def log_prob_elements(self, z: Tensor) -> Tensor:
        return -0.5 * (LOG_2PI + z**2)

    def kl_elements(self, z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        return kl_std_normal_per_dim(mu, logvar)

    def draw(self, eps: Tensor, generator: torch.Generator | None) -> Tensor:
        return eps
