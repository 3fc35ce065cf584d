"""The hooks that the callbacks call on a model, written down as :class:`typing.Protocol`\\ s.

A callback checks its model once, when the trainer sets it up (:func:`require_hooks`), and stops
with a :class:`MissingHooksError` naming the callback, the model class and each missing hook,
instead of failing somewhere in the middle of a run. The protocols are runtime-checkable, so
``isinstance(model, LatentImageModel)`` also works; it checks only that the names exist, while
:func:`missing_hooks` also checks that each method takes the arguments a callback passes (the
positional ones by count, the keyword-only ones by name).

=========================  ===================================================================
protocol                   callbacks
=========================  ===================================================================
:class:`Density`           CategoryBars, Density2D (exact ``nll`` on every state, ``sample``)
:class:`ImageSampler`      SampleGrid, SampleQualityMonitor
:class:`ClassConditional`  ClassConditionalGrid
:class:`MaskedImageModel`  ReceptiveField
:class:`LatentImageModel`  Interpolations, Reconstructions
:class:`GaussianEncoder`   LatentScatter
:class:`NoisySampler`      VAESamples
:class:`PriorModel`        FitPrior
=========================  ===================================================================

Optional attributes, read with a default where a model lacks them (:func:`optional_hook`):
``decoded_label`` (what ``decode_to_pixels`` returns, for titles; default "decoder mean") and
``extra_terms`` (the loss terms beside the NLL, e.g. ``("kl", "recon")``; default none).
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from ar_models.errors import MissingHooksError


@runtime_checkable
class Density(Protocol):
    """A normalised model over discrete ``x``: ``nll(x)`` = -log p(x) in nats per example and
    ``sample(n)``, n examples shaped like a batch."""

    def nll(self, x: Tensor) -> Tensor: ...

    def sample(self, n: int) -> Tensor: ...


@runtime_checkable
class ImageSampler(Protocol):
    """Images ``sample(n) -> LongTensor[n, C, H, W]`` with values in {0..n_categories-1}."""

    n_categories: int

    def sample(self, n: int) -> Tensor: ...


@runtime_checkable
class ClassConditional(Protocol):
    """A class-conditional image model: ``n_classes`` > 0 classes, ``sample(n, y=labels)`` images
    ``LongTensor[n, C, H, W]`` in {0..n_categories-1} of the asked classes ``y: LongTensor[n]``."""

    n_classes: int
    n_categories: int

    def sample(self, n: int, *, y: Tensor) -> Tensor: ...


@runtime_checkable
class MaskedImageModel(Protocol):
    """An autoregressive image model whose conditionals can be read by gradients:
    ``embed(x)`` is the network input ``x_in`` of integer images ``x``, ``conditional_logits(x,
    x_in)`` the logits ``[B, C, H, W, K]`` of every conditional (``y=`` labels where ``n_classes``
    > 0), ``receptive_radius`` the nominal radius R in pixels; the model is rebuilt from
    ``hparams`` for a fresh copy."""

    image_shape: tuple[int, int, int]
    n_categories: int
    n_classes: int
    receptive_radius: int
    hparams: Any

    def embed(self, x: Tensor) -> Tensor: ...

    def conditional_logits(self, x: Tensor, x_in: Tensor) -> Tensor: ...


@runtime_checkable
class LatentImageModel(Protocol):
    """An image VAE: ``posterior_mean(x)`` the mean of q(z|x), ``decode_to_pixels(z)`` images like a
    batch ``x`` in {0..n_categories-1} (the decoder mean, or one draw x ~ P(x|z))."""

    n_categories: int

    def posterior_mean(self, x: Tensor) -> Tensor: ...

    def decode_to_pixels(self, z: Tensor) -> Tensor: ...


@runtime_checkable
class GaussianEncoder(Protocol):
    """A VAE with a diagonal Gaussian posterior: ``encode(x) -> (μ, log σ²)`` of q(z|x), and
    ``latent_kl(x) -> [B, L]``, KL(q(z_j|x) ‖ N(0, 1)) per latent dimension in nats."""

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]: ...

    def latent_kl(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class NoisySampler(Protocol):
    """``sample(n, decoder_noise=True)``: z ~ p(z), x ~ p(x|z); ``decoder_noise=False``: the decoder
    mean μ(z)."""

    def sample(self, n: int, *, decoder_noise: bool) -> Tensor: ...


@runtime_checkable
class PriorModel(Protocol):
    """A VAE with a prior that can be fitted to its aggregate posterior: ``posterior(x) ->
    (μ, log σ²)`` of q(z|x) and ``prior.fit_to_posteriors(posteriors, steps, seed)``
    (:mod:`vae_models.priors`)."""

    prior: Any

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]: ...


def protocol_members(protocol: type) -> dict[str, inspect.Signature | None]:
    """The names a protocol declares: methods with their signature, attributes with None."""
    members: dict[str, inspect.Signature | None] = {}
    for name in getattr(protocol, "__annotations__", {}):
        members[name] = None
    for name, value in vars(protocol).items():
        if not name.startswith("_") and inspect.isfunction(value):
            members[name] = inspect.signature(value)
    return members


def signature_gaps(method: Any, wanted: inspect.Signature, keywords: tuple[str, ...]) -> list[str]:
    """What ``method`` cannot take of the call ``wanted`` describes (plus extra ``keywords``):
    too few positional parameters, or keyword parameters it does not name."""
    try:
        have = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return []
    kinds = inspect.Parameter
    if any(p.kind == kinds.VAR_KEYWORD for p in have):
        named = None
    else:
        named = {
            p.name for p in have if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
        }
    positional = [p for p in have if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
    params = list(wanted.parameters.values())[1:]  # without self
    n_positional = sum(p.kind == kinds.POSITIONAL_OR_KEYWORD for p in params)
    gaps = []
    if len(positional) < n_positional and not any(p.kind == kinds.VAR_POSITIONAL for p in have):
        gaps.append(f"{n_positional} positional arguments")
    wanted_keywords = [p.name for p in params if p.kind == kinds.KEYWORD_ONLY] + list(keywords)
    if named is not None:
        gaps += [f"{k}=" for k in wanted_keywords if k not in named]
    return gaps


def missing_hooks(model: Any, protocol: type, keywords: tuple[str, ...] = ()) -> list[str]:
    """The hooks of ``protocol`` that ``model`` lacks or whose methods cannot take the callbacks'
    arguments, as readable strings (empty when the model has them all). ``keywords``: further
    keyword arguments a callback passes to ``sample`` (e.g. its ``sample_kwargs``)."""
    missing = []
    for name, signature in protocol_members(protocol).items():
        try:
            value = getattr(model, name)
        except Exception:  # noqa: BLE001 (a property that fails is as good as absent)
            missing.append(name)
            continue
        if signature is None:
            continue
        if not callable(value):
            missing.append(f"{name}() (not callable)")
            continue
        extra = keywords if name == "sample" else ()
        gaps = signature_gaps(value, signature, extra)
        if gaps:
            missing.append(f"{name}({', '.join(gaps)})")
    return missing


def require_hooks(
    callback: object, model: Any, protocol: type, keywords: tuple[str, ...] = ()
) -> None:
    """Raise :class:`MissingHooksError` unless ``model`` has the hooks of ``protocol``."""
    missing = missing_hooks(model, protocol, keywords)
    if missing:
        raise MissingHooksError(
            f"{type(callback).__name__} needs a model with the hooks of callbacks.hooks."
            f"{protocol.__name__}; {type(model).__name__} lacks: {', '.join(missing)}"
        )


def optional_hook(model: Any, name: str, default: Any) -> Any:
    """An optional attribute of the module docstring's list, or ``default`` where the model has
    none."""
    return getattr(model, name, default)
