"""HW3 §1: a VAE on low-dimensional continuous data (2-D points) with a Gaussian decoder.

Generative model: z ~ p(z) = N(0, I_L), x | z ~ p(x|z) = N(μ_θ(z), Σ_θ(z)) with
Σ_θ(z) = diag σ²_θ(z) (``decoder_variance="diagonal"``) or σ²_θ(z) I (``"isotropic"``, one scalar).
Inference model: q(z|x) = N(μ_φ(x), diag σ²_φ(x)). Both are MLPs that output log-variances.

The negative ELBO of one example, in nats, is

    −ELBO(x) = E_q[−log p(x|z)] + KL(q(z|x) ‖ p(z)) = recon + kl ≥ −log p(x),

with the KL analytic (summed over latent dimensions) and the reconstruction term estimated with
reparameterised samples z ~ q(z|x): one while training, the mean over ``eval_samples`` in eval mode
(the same unbiased estimate with less variance, for validation and test numbers). ``nll`` is this
negative ELBO (an upper bound on the NLL).
:meth:`VAE2D.loss_terms` also returns ``kl``, ``recon`` and the KL of each latent dimension
``kl_dim<j>``, so the base logs ``<stage>/bpd``, ``<stage>/kl_bpd``, ``<stage>/recon_bpd`` and
``<stage>/kl_dim<j>_bpd`` (all bits per *data* dimension; the ``kl_dim`` terms sum to ``kl``), and
the latent-use diagnostics of :mod:`vae_models.base` (``<stage>/active_units``,
``<stage>/mi_nats``).

At test time the first ``iwae_points`` test examples are also scored with ``iwae_k`` importance
samples: ``test/iwae<k>_bpd`` is −IWAE_k and ``test/elbo<k>_bpd`` the −ELBO averaged over the same
k samples (both bits/dim), so IWAE-k and the ELBO are compared on the same points and samples.

Hooks for callbacks (beyond the DensityModel contract): :meth:`encode`, :meth:`decode`,
:meth:`latent_kl`, ``sample(n, decoder_noise=False)`` and the attribute ``latent_dim``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ar_models.ar_mlp import mlp
from ar_models.base import unpack_batch
from ar_models.errors import check
from vae_models.base import LatentVariableModel
from vae_models.gaussians import (
    gaussian_log_prob,
    kl_std_normal_per_dim,
    reparameterize,
    soft_clamp,
    standard_normal_log_prob,
)
from vae_models.iwae import iwae_bound

DECODER_VARIANCES = ("diagonal", "isotropic")
#: Network log-variances are soft-clamped into this range, so exp(±logvar) is always finite.
LOGVAR_RANGE = (-12.0, 8.0)


class VAE2D(LatentVariableModel):
    """VAE with Gaussian encoder and decoder for ``FloatTensor[B, data_dim]`` batches.

    Args:
        decoder_variance: ``"diagonal"`` (σ²(z) per data dimension) or ``"isotropic"`` (one σ²(z)).
        latent_dim: L, the dimension of z (HW3 §1: 2).
        data_dim: D, the dimension of x (HW3 §1: 2).
        hidden_sizes: widths of the hidden layers (ReLU) of the encoder and of the decoder.
        lr: Adam learning rate.
        lr_final_factor: the learning rate decays along a cosine from ``lr`` to
            ``lr * lr_final_factor`` over the trainer's total steps (1.0: constant).
        eval_samples: z samples averaged in the reconstruction term in eval mode (validation,
            test); training always uses one.
        iwae_k: importance samples of the test-time IWAE evaluation.
        iwae_points: how many of the first test examples the IWAE evaluation scores.
    """

    def __init__(
        self,
        decoder_variance: str = "diagonal",
        latent_dim: int = 2,
        data_dim: int = 2,
        hidden_sizes: list[int] | None = None,
        lr: float = 1e-3,
        lr_final_factor: float = 1.0,
        eval_samples: int = 1,
        iwae_k: int = 100,
        iwae_points: int = 100,
    ) -> None:
        check(decoder_variance=decoder_variance, choices=DECODER_VARIANCES)
        hidden = list(hidden_sizes) if hidden_sizes is not None else [128, 128]
        check(integer=True, minimum=1, **{f"hidden_sizes[{i}]": h for i, h in enumerate(hidden)})
        check(
            integer=True,
            minimum=1,
            latent_dim=latent_dim,
            data_dim=data_dim,
            eval_samples=eval_samples,
            iwae_k=iwae_k,
            iwae_points=iwae_points,
        )
        # The per-latent-dimension KL terms depend on latent_dim; the base reads them in __init__.
        self.extra_terms = ("kl", "recon", *(f"kl_dim{j}" for j in range(latent_dim)))
        super().__init__(lr=lr, lr_final_factor=lr_final_factor)
        self.save_hyperparameters()
        self.decoder_variance = decoder_variance
        self.latent_dim = latent_dim
        self.data_dim = data_dim
        self.eval_samples = eval_samples
        self.iwae_k = iwae_k
        self.iwae_points = iwae_points
        n_dec_var = data_dim if decoder_variance == "diagonal" else 1
        self.encoder = mlp([data_dim, *hidden, 2 * latent_dim])
        self.decoder = mlp([latent_dim, *hidden, data_dim + n_dec_var])
        self._iwae_buffer: list[Tensor] = []

    @property
    def n_dims(self) -> int:
        return self.data_dim

    # ------------------------------------------------------------------ the two networks
    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x) = N(μ, diag exp(logvar)): returns ``(μ, logvar)``, each ``[B, L]``."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, soft_clamp(logvar, *LOGVAR_RANGE)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, logvar) of q(z|x), each ``[B, L]`` (the latent-use diagnostics' hook)."""
        self._check_x(x)
        return self.encode(x)

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """p(x|z) = N(μ, diag exp(logvar)): returns ``μ [..., D]`` and ``logvar [..., D]``
        (diagonal) or ``[..., 1]`` (isotropic, broadcast over the D dimensions)."""
        out = self.decoder(z)
        mu, logvar = out[..., : self.data_dim], out[..., self.data_dim :]
        return mu, soft_clamp(logvar, *LOGVAR_RANGE)

    # ------------------------------------------------------------------ bounds (nats)
    def _check_x(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.data_dim:
            raise ValueError(
                f"VAE2D expects a FloatTensor[B, {self.data_dim}], got shape {tuple(x.shape)}"
            )

    def latent_kl(self, x: Tensor) -> Tensor:
        """KL(q(z_j|x) ‖ N(0, 1)) of each latent dimension j, ``[B, L]`` nats (analytic)."""
        self._check_x(x)
        return kl_std_normal_per_dim(*self.encode(x))

    def loss_terms(self, x: Tensor) -> dict[str, Tensor]:
        """Per-example nats: ``nll`` = −ELBO = ``recon`` + ``kl``; ``kl_dim<j>`` sum to ``kl``.

        recon = −log p(x|z) averaged over S reparameterised z ~ q(z|x) (an unbiased estimate of
        E_q[−log p(x|z)]; S = 1 in train mode, ``eval_samples`` in eval mode);
        kl = KL(q(z|x) ‖ N(0, I)), analytic.
        """
        self._check_x(x)
        mu_z, logvar_z = self.encode(x)
        z = reparameterize(mu_z, logvar_z, 1 if self.training else self.eval_samples)
        mu_x, logvar_x = self.decode(z)  # [S, B, D]
        recon = -gaussian_log_prob(x, mu_x, logvar_x).mean(0)
        kl_dims = kl_std_normal_per_dim(mu_z, logvar_z)
        kl = kl_dims.sum(-1)
        terms = {"nll": recon + kl, "kl": kl, "recon": recon}
        terms.update({f"kl_dim{j}": kl_dims[:, j] for j in range(self.latent_dim)})
        return terms

    def nll(self, x: Tensor) -> Tensor:
        """The negative ELBO per example in nats (an upper bound on −log p(x)), estimated as in
        :meth:`loss_terms`."""
        return self.loss_terms(x)["nll"]

    def log_weights(self, x: Tensor, k: int) -> Tensor:
        """log w_i = log p(x|z_i) + log p(z_i) − log q(z_i|x), z_i ~ q(z|x): ``[k, B]`` nats.

        Each row is a single-sample ELBO estimate (with a Monte-Carlo KL).
        """
        self._check_x(x)
        mu_z, logvar_z = self.encode(x)
        z = reparameterize(mu_z, logvar_z, k)  # [k, B, L]
        mu_x, logvar_x = self.decode(z)
        return (
            gaussian_log_prob(x, mu_x, logvar_x)
            + standard_normal_log_prob(z)
            - gaussian_log_prob(z, mu_z, logvar_z)
        )

    def iwae(self, x: Tensor, k: int) -> Tensor:
        """IWAE_k(x) = log (1/k) Σ_i w_i ≤ log p(x), per example ``[B]`` in nats (a *lower*
        bound on the log-likelihood; ``-iwae(x, k)`` is comparable with ``nll``)."""
        check(integer=True, minimum=1, k=k)
        return iwae_bound(self.log_weights(x, k))

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, n: int, decoder_noise: bool = True) -> Tensor:
        """x ~ p(x|z), z ~ N(0, I): ``[n, D]``; with ``decoder_noise=False`` the means μ(z)."""
        z = torch.randn(n, self.latent_dim, device=self.device)
        mu, logvar = self.decode(z)
        if not decoder_noise:
            return mu
        return reparameterize(mu, logvar.expand_as(mu))

    # ------------------------------------------------------------------ test-time IWAE
    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._iwae_buffer = []

    def test_step(self, batch: Any, batch_idx: int) -> None:
        super().test_step(batch, batch_idx)
        have = sum(len(t) for t in self._iwae_buffer)
        if have < self.iwae_points:
            self._iwae_buffer.append(unpack_batch(batch)[: self.iwae_points - have].detach())

    def on_test_epoch_end(self) -> None:
        """Log −IWAE_k and the −ELBO (mean of the same k log weights) on the first test points."""
        super().on_test_epoch_end()
        if not self._iwae_buffer:
            return
        x = torch.cat(self._iwae_buffer)
        log_w = self.log_weights(x, self.iwae_k)
        k = self.iwae_k
        self.log(f"test/iwae{k}_bpd", self.to_bpd(-iwae_bound(log_w).mean()))
        self.log(f"test/elbo{k}_bpd", self.to_bpd(-log_w.mean()))
        self._iwae_buffer = []
