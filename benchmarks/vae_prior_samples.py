"""Why are a ConvVAE's samples not read as digits? One table for a checkpoint.

    python benchmarks/vae_prior_samples.py CHECKPOINT [--n 400] [--n-fit 2000] [--seed 0]
                                           [--mixtures K ...] [--bound]

Decodes ``n`` latents to decoder means (as the sample grid and ``test/recognised`` do) from
(a) the prior at temperatures T = 1, 0.7, 0.5, 0.3 (z = T·ε for the N(0, I) prior; a learned
prior only at T = 1) and (b) a full-covariance Gaussian fitted to the posterior means μ(x) of the
first ``n_fit`` training images and, for each K of ``--mixtures``, a K-component full-covariance
Gaussian mixture fitted to them by EM (scikit-learn, which mlxtend installs; k-means
initialisation, 10⁻⁴ added to the covariances' diagonals): priors fitted after training, not part
of the model (its bound and ``sample()`` use its own prior). For comparison, (c) the decoder
means at the posterior means of the first ``n`` of those images (reconstructions). Each row gives
the share recognised as a digit by :mod:`metrics.digits` and, for each of its conditions, the
share that meets it: confidence >= 0.9, the foreground share in the training digits' range,
purity >= 0.9 (the strokes in one colour) and background share >= 0.5 (one background colour).
The Mahalanobis condition is the rest of the gap to "recognised". With ``--bound`` a second table
gives the test split's −ELBO in bits/dim under the model's prior and under each fitted mixture,
as the model estimates it (one z and u per image).
"""

from __future__ import annotations

import argparse
import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from datamodules.svhn import SVHNDataModule
from metrics import digit_reader
from metrics.digits import MIN_BACKGROUND_SHARE, MIN_CONFIDENCE, MIN_PURITY, crop
from metrics.foreground import foreground
from model_checkpoints import load_model
from vae_models.conv_vae import ConvVAE
from vae_models.fitted_prior import FittedMixturePrior
from vae_models.gaussians import gaussian_log_prob_per_dim
from vae_models.priors import Prior, StandardNormalPrior

TEMPERATURES = (1.0, 0.7, 0.5, 0.3)


def conditions(images: Tensor) -> dict[str, float]:
    """Shares of ``images`` (8-bit, ``[B, 3, 32, 32]``) recognised and meeting each condition."""
    reader = digit_reader()
    reading = reader.read(images, 256)
    fg = foreground(crop(images), 256)
    low, high = reader.fraction_range
    met = {
        "recognised": reading.recognised,
        "confidence": reading.confidence >= MIN_CONFIDENCE,
        "fraction": (fg.fraction >= low) & (fg.fraction <= high),
        "purity": fg.purity >= MIN_PURITY,
        "background": fg.background_share >= MIN_BACKGROUND_SHARE,
    }
    return {name: float(value.float().mean()) for name, value in met.items()}


def training_images(n: int) -> Tensor:
    data = SVHNDataModule(batch_size=min(n, 500))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in warning
        data.setup("fit")
    batches, total = [], 0
    for x, _ in data.train_dataloader():
        batches.append(x)
        total += len(x)
        if total >= n:
            break
    return torch.cat(batches)[:n]


def is_standard_normal(prior: Prior) -> bool:
    """Whether p(z) is N(0, I): the normal prior, or a fitted mixture not yet fitted."""
    unfitted = isinstance(prior, FittedMixturePrior) and not prior.is_fitted
    return isinstance(prior, StandardNormalPrior) or unfitted


@torch.no_grad()
def decode(model: ConvVAE, z: Tensor) -> Tensor:
    return torch.cat([model.decode_to_pixels(chunk) for chunk in z.split(100)])


def fit_mixture(points: np.ndarray, k: int, seed: int) -> Any:
    """A K-component full-covariance Gaussian mixture fitted by EM to ``points`` [N, D]."""
    from sklearn.mixture import GaussianMixture  # installed with mlxtend

    mixture = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, random_state=seed)
    return mixture.fit(points)


@torch.no_grad()
def bounds_under_priors(model: ConvVAE, mixtures: dict[str, Any], seed: int) -> dict[str, float]:
    """The test split's −ELBO in bits/dim (one z and u per image, the model's estimate) with the
    model's own prior and with each fitted mixture as p(z) (the one-sample KL
    log q(z|x) − log p(z) at the same z)."""
    data = SVHNDataModule(batch_size=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in warning
        data.setup("test")
    torch.manual_seed(seed)
    totals = dict.fromkeys(["the model's prior", *mixtures], 0.0)
    count = 0
    for x, _ in data.test_dataloader():
        recon, z, mu_z, logvar_z = model.recon_and_latent(x)
        log_q = gaussian_log_prob_per_dim(z, mu_z, logvar_z).flatten(1).sum(-1)
        log_p = {"the model's prior": model.prior.log_prob(z)}
        flat = z.flatten(1).double().numpy()
        for name, mixture in mixtures.items():
            log_p[name] = torch.from_numpy(mixture.score_samples(flat)).to(z.dtype)
        for name, value in log_p.items():
            totals[name] += float((recon + log_q - value).sum())
        count += len(x)
    return {name: total / count / (model.n_dims * math.log(2)) for name, total in totals.items()}


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--n", type=int, default=400, help="latents decoded per row")
    parser.add_argument("--n-fit", type=int, default=2000, help="training images for the fit")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws")
    parser.add_argument(
        "--mixtures", type=int, nargs="*", default=[], help="components of fitted mixtures"
    )
    parser.add_argument(
        "--bound", action="store_true", help="also the test bound under each fitted mixture"
    )
    args = parser.parse_args()
    model = load_model(args.checkpoint).eval()
    if not isinstance(model, ConvVAE):
        parser.error(f"{args.checkpoint} holds a {type(model).__name__}, not a ConvVAE")
    x = training_images(max(args.n_fit, args.n))
    mu = torch.cat([model.posterior_mean(chunk) for chunk in x.split(250)])
    rows: list[tuple[str, dict[str, float]]] = [
        (f"reconstructions of {args.n} training images", conditions(decode(model, mu[: args.n])))
    ]
    normal = is_standard_normal(model.prior)
    for temperature in TEMPERATURES if normal else (1.0,):
        torch.manual_seed(args.seed)
        z = model.prior.sample(args.n)
        if normal:
            z = temperature * z
        rows.append((f"prior, T = {temperature}", conditions(decode(model, z))))
    flat = mu[: args.n_fit].flatten(1).double()
    cov = torch.cov(flat.T) + 1e-5 * torch.eye(flat.shape[1], dtype=torch.double)
    fitted = torch.distributions.MultivariateNormal(flat.mean(0), cov)
    torch.manual_seed(args.seed)
    z = fitted.sample((args.n,)).float().view(args.n, *mu.shape[1:])
    rows.append(
        (f"full-covariance Gaussian fitted to {args.n_fit} μ(x)", conditions(decode(model, z)))
    )
    mixtures = {}
    for k in args.mixtures:
        label = f"{k}-component full-covariance mixture fitted to {args.n_fit} μ(x)"
        mixtures[label] = fit_mixture(flat.numpy(), k, args.seed)
        draws, _ = mixtures[label].sample(args.n)
        z = torch.from_numpy(draws).float().view(args.n, *mu.shape[1:])
        rows.append((label, conditions(decode(model, z))))
    names = list(rows[0][1])
    print("| latents decoded | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, shares in rows:
        print(f"| {label} | " + " | ".join(f"{100 * shares[n]:.1f}%" for n in names) + " |")
    if args.bound:
        print()
        print("| p(z) | test −ELBO (bits/dim) |")
        print("|---|---|")
        for name, bpd in bounds_under_priors(model, mixtures, args.seed).items():
            print(f"| {name} | {bpd:.4f} |")


if __name__ == "__main__":
    main()
