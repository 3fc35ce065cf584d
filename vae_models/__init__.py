"""Latent-variable models on the :class:`ar_models.DensityModel` base (``nll`` = negative ELBO)."""

from vae_models.conv_vae import ConvVAE
from vae_models.pixel_vae import PixelVAE
from vae_models.vae2d import VAE2D

__all__ = ["VAE2D", "ConvVAE", "PixelVAE"]
