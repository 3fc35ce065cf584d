"""Does the PixelVAE's pixel decoder use what z carries? One table for a checkpoint.

    python benchmarks/pixelvae_decoder_use.py CHECKPOINT [--n 200] [--seed 0]

For the first ``n`` test images of the stand-in (labelled digits) it reads, with the digit reader
of :mod:`metrics`, the digit in (a) the auxiliary decoder's mean μ_aux(c(z)) at the posterior
mean z = μ(x), which sees no pixels (only for models trained with ``aux_weight`` > 0), and (b)
one draw x ~ P(x | z) of the pixel decoder at the same z (the reconstruction of
``test/recon_accuracy``). The share read as the input's label is printed for both: (a) high and
(b) low means z carries the digit and the pixel decoder does not follow it. A second table gives,
per colour channel, the mean absolute error of both at the top-left pixel (the background colour,
where the pixel decoder sees no pixels) and the auxiliary decoder's learned σ (grey levels): a
channel whose σ is large was given up, and z does not carry that colour.
"""

from __future__ import annotations

import argparse
import warnings

import torch

from datamodules.svhn import SVHNDataModule
from metrics import digit_reader
from model_checkpoints import load_model
from vae_models.conv_vae import ConvVAE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--n", type=int, default=200, help="test images (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws")
    args = parser.parse_args()
    model = load_model(args.checkpoint).eval()
    if not hasattr(model, "aux_head"):
        parser.error(f"{args.checkpoint} holds a {type(model).__name__}, not a PixelVAE")
    data = SVHNDataModule(batch_size=args.n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in warning
        data.setup("test")
    x, y = next(iter(data.test_dataloader()))
    reader = digit_reader()
    rows = []
    with torch.no_grad():
        z = model.posterior_mean(x)
        if model.aux_head is not None:
            aux_mean = ConvVAE.quantize(model.aux_head(model.conditioning(z))[0])
            rows.append(("auxiliary decoder's mean (no pixels)", aux_mean))
        draw = model.decode_to_pixels(z, generator=torch.Generator().manual_seed(args.seed))
        rows.append(("pixel decoder, one draw x ~ P(x|z)", draw))
    print(f"| decoded from z = μ(x), {len(y)} test images | read as the input's digit |")
    print("|---|---|")
    for name, images in rows:
        labels = reader.read(images, 256).labels
        print(f"| {name} | {(labels == y).double().mean().item():.1%} |")
    print()
    print("| top-left pixel (background colour), grey levels | R | G | B |")
    print("|---|---|---|---|")
    for name, images in rows:
        error = (images[:, :, 0, 0] - x[:, :, 0, 0]).abs().double().mean(0).tolist()
        print(f"| {name}: mean abs error | " + " | ".join(f"{e:.1f}" for e in error) + " |")
    if model.aux_head is not None:
        sigma = (0.5 * model.aux_head(model.conditioning(z[:1]))[1][0, :, 0, 0]).exp() * 256
        print("| auxiliary decoder's learned σ | " + " | ".join(f"{v:.1f}" for v in sigma) + " |")


if __name__ == "__main__":
    main()
