"""Masked Linear / Conv layers of MSRS (Fernandez-Lopez et al., Interspeech 2024).

Implements the mechanism of the MSRS mask optimisation (paper Sec. 2.1):

* mask logits ``φ`` with the shape of the weight ``θ``, initialised by eq. (3)::

      φ0 = (ln(|θ0| + ς) / 2 + 1) · ρ + μ

* forward with the near-binary sigmoid mask of eq. (4), ``w = θ ⊙ σ(τ_f·φ)``;
* backward with the two temperatures of eqs. (5)-(6)::

      ∂L/∂θ = ∂L/∂w ⊙ σ(τ_f·φ)
      ∂L/∂φ = (∂L/∂w ⊙ θ) ⊙ τ_b·σ(τ_b·φ)·(1 − σ(τ_b·φ))

* the binary mask of eq. (8), ``m = 1[φ ≥ 0]`` (``φ == 0`` is kept).

The layers are mechanism only: no schedule, no penalty, no logging. The
penalty ``λ·Σφ`` of eq. (7), which layers are masked and when the search
stops live in :mod:`espnet_msrs.sparsity.selection` and
:mod:`espnet_msrs.sparsity.msrs_search`.

Precision:
    The mask product is computed in the parameter dtype with autocast
    disabled, so with ordinary mixed precision (fp32 parameters under
    ``torch.autocast``) the effective weight is fp32 and only the following
    matmul/convolution runs in fp16/bf16 (autocast casts the weight there);
    the gradients of ``θ`` and ``φ`` are fp32. If the parameters themselves
    are fp16/bf16 (``model.half()``), the product is computed in that dtype:
    ``τ_f·φ`` saturates to ±inf in fp16 (giving masks of exactly 0/1, which is
    harmless), but updates of ``φ`` of the size of ``λ`` (≈2e-10) or
    ``η·∂L/∂φ`` are far below the fp16/bf16 resolution around
    ``|φ| ≈ 1e-3`` (bf16 spacing ≈ 8e-6), so the mask search stalls: keep
    master parameters in fp32 (the paper's "FP-16" training is AMP).
"""

import contextlib
from typing import Any, Dict, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from torch import nn

from espnet_msrs.compat import conv_forward

#: Name of the mask-logit parameter φ of every masked layer.
MASK_LOGITS = "mask_logits"


def is_mask_logits(name: str) -> bool:
    """Whether a parameter name is a mask logit φ (trained by ``--optim2``)."""
    return name == MASK_LOGITS or name.endswith("." + MASK_LOGITS)


DEFAULT_MASK_KWARGS: Dict[str, float] = {
    "mu": 1e-3,
    "rho": 5e-4,
    "varsigma": 1e-8,
    "tau_forward": 1e5,
    "tau_backward": 1.0,
}


def initial_mask_logits(
    weight: torch.Tensor,
    mu: float = 1e-3,
    rho: float = 5e-4,
    varsigma: float = 1e-8,
) -> torch.Tensor:
    """Mask logits of MSRS eq. (3): ``φ0 = (ln(|θ0| + ς)/2 + 1)·ρ + μ``.

    Computed in fp32 (``ς = 1e-8`` underflows in fp16) and returned in the
    dtype of ``weight``.

    Args:
        weight: θ0, any shape.
        mu: Offset μ.
        rho: Scale ρ.
        varsigma: ς added to ``|θ0|`` before the log (must be > 0).

    Returns:
        φ0, same shape, dtype and device as ``weight``, no autograd history.
    """
    with torch.no_grad():
        w = weight.detach().float()
        phi = (torch.log(w.abs() + varsigma) / 2.0 + 1.0) * rho + mu
    return phi.to(weight.dtype)


def _scaled_sigmoid(phi: torch.Tensor, tau: float) -> torch.Tensor:
    """``σ(τ·φ)`` in one new tensor (bit-identical to ``torch.sigmoid(phi * tau)``).

    ``phi * 1.0`` is exact, so the scaling pass is skipped for ``τ = 1``; the
    sigmoid runs in place on the scaled copy (same kernel as the out-of-place
    op), so only one tensor of φ's size is allocated.
    """
    if tau == 1.0:
        return torch.sigmoid(phi)
    return torch.mul(phi, tau).sigmoid_()


def _times_scaled_sigmoid(a: torch.Tensor, phi: torch.Tensor, tau: float) -> torch.Tensor:
    """``a ⊙ σ(τ·φ)`` in one fused pass (a new tensor).

    ``softplus′(x; β) = σ(β·x)``, so ATen's ``softplus_backward(a, φ, β, t)``
    is ``a·e/(e + 1)`` with ``e = exp(β·φ)``, i.e. ``a ⊙ σ(β·φ)``, in a
    single vectorised kernel (reduced floats computed in fp32), where the
    textbook ``a * torch.sigmoid(phi * tau)`` needs three passes and two
    temporaries.  Where ``β·φ > t`` it returns ``a`` itself (σ = 1): with
    ``t = 20`` (``40`` in float64) σ is exactly 1.0 there in the dtype, and
    ``exp`` cannot overflow below ``t``.  Elsewhere the value is that of the
    sigmoid to a few ulp (measured on a fp32 768×3072 layer at eq. 3's φ0:
    10 % of the entries differ, by at most 3 ulp of σ and 4 ulp of
    ``θ ⊙ σ``).

    Subnormal results are flushed to 0.0: in the far negative tail
    (β·φ below about −80) ``a·e`` is subnormal, and x86 matrix products with
    subnormal operands take microcode assists, several times slower (eq. 3's
    φ0 puts a fraction of a percent of a 768-wide layer's entries there; the
    cost is measured by ``bench/train_step.py``).  The flush is ATen's
    ``hardshrink`` in place, one vectorised pass with no temporary:
    ``x`` where ``|x| > λ``, else 0, with ``λ`` the largest subnormal of the
    dtype, so exactly the subnormals (and −0.0) become +0.0.  It changes no
    product or sum of normal numbers (a subnormal term is below half an ulp
    of any normal one).
    """
    threshold = 40.0 if a.dtype == torch.float64 else 20.0
    out = torch.ops.aten.softplus_backward(a, phi, tau, threshold)
    return torch.ops.aten.hardshrink.out(out, _largest_subnormal(out.dtype), out=out)


def _largest_subnormal(dtype: torch.dtype) -> float:
    """Largest subnormal number of a floating dtype, ``tiny·(1 − eps)`` (exact)."""
    info = torch.finfo(dtype)
    return info.tiny * (1.0 - info.eps)


class MaskedWeightFunction(torch.autograd.Function):
    """``w = θ ⊙ σ(τ_f·φ)`` with the two-temperature backward of MSRS.

    Only ``θ`` and ``φ`` are saved; the sigmoids are recomputed in backward,
    so a masked layer keeps no tensor of the weight's size alive beyond its
    parameters (the effective weight itself is kept only by the following
    matmul/convolution, exactly like a dense layer's weight).

    Speed (this is on the path of every training step of the mask search):
    the element-wise work is memory-bound, and on CPU every fresh
    weight-sized temporary may also cost one page fault per 4 KiB.  ``w`` and
    ``∂L/∂θ`` are each one fused pass plus the in-place subnormal flush, with
    no temporary (:func:`_times_scaled_sigmoid`), ``∂L/∂φ`` three passes with
    one temporary (ATen's fused sigmoid derivative, in place), instead of
    three, three and seven passes with three, three and eight tensors for the
    textbook expressions (``bench/train_step.py``'s ``msrs_search`` row
    measures what the search step costs over a dense one).  The values agree
    with the formulas below to a few ulp (``∂L/∂φ`` evaluates the same factors
    as ``((∂L/∂w·θ)·(1 − σ))·σ·τ_b``); see :func:`_times_scaled_sigmoid` for
    the sigmoid.  Tensors of different dtypes (not produced by the masked
    layers) and double backward (``create_graph=True``) take the textbook
    expressions.

    Forward and backward (MSRS eqs. 4-6)::

        w      = θ · σ(τ_f φ)
        ∂L/∂θ  = ∂L/∂w · σ(τ_f φ)
        ∂L/∂φ  = (∂L/∂w · θ) · τ_b·σ(τ_b φ)·(1 − σ(τ_b φ))

    Why no "binary" shortcut beyond that: with τ_f = 1e5, ``σ(τ_f φ)`` is
    exactly 1.0 in fp32 only for φ ≥ 1.67e-4 (the fused kernel then passes
    θ through), and exactly 0.0 only for φ ≤ −8.9e-4 (in between it is tiny
    but not zero, e.g. σ(−50) ≈ 2e-22); at initialisation (eq. 3) about 13 %
    of a 768-wide layer's entries lie in the unsaturated band, so skipping
    work by mask would still need a full pass over φ to find them, which is
    all the fused pass costs.
    """

    @staticmethod
    def forward(
        ctx: Any,
        theta: torch.Tensor,
        phi: torch.Tensor,
        tau_forward: float,
        tau_backward: float,
    ) -> torch.Tensor:
        """Effective weight.

        Args:
            ctx: Autograd context.
            theta: Weight θ, any shape.
            phi: Mask logits φ, same shape as ``theta``.
            tau_forward: Forward temperature τ_f.
            tau_backward: Backward temperature τ_b.

        Returns:
            ``θ ⊙ σ(τ_f·φ)``, same shape and dtype as ``theta``.
        """
        ctx.save_for_backward(theta, phi)
        ctx.tau_forward = tau_forward
        ctx.tau_backward = tau_backward
        if theta.dtype != phi.dtype:
            return theta * torch.sigmoid(phi * tau_forward)
        return _times_scaled_sigmoid(theta, phi, tau_forward)

    @staticmethod
    def backward(
        ctx: Any, grad_w: torch.Tensor
    ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor], None, None]:
        """Two-temperature gradients (MSRS eqs. 5-6).

        Args:
            ctx: Autograd context.
            grad_w: ∂L/∂w, same shape as θ.

        Returns:
            ``(∂L/∂θ, ∂L/∂φ, None, None)``.
        """
        theta, phi = ctx.saved_tensors
        tau_f, tau_b = ctx.tau_forward, ctx.tau_backward
        grad_theta = grad_phi = None
        if torch.is_grad_enabled() or not (theta.dtype == phi.dtype == grad_w.dtype):
            # create_graph=True (double backward) needs differentiable
            # out-of-place ops; mixed dtypes need type promotion.
            if ctx.needs_input_grad[0]:
                grad_theta = grad_w * torch.sigmoid(phi * tau_f)
            if ctx.needs_input_grad[1]:
                s_b = torch.sigmoid(phi * tau_b)
                grad_phi = (grad_w * theta) * (tau_b * s_b * (1.0 - s_b))
            return grad_theta, grad_phi, None, None
        if ctx.needs_input_grad[0]:
            grad_theta = _times_scaled_sigmoid(grad_w, phi, tau_f)
        if ctx.needs_input_grad[1]:
            s_b = _scaled_sigmoid(phi, tau_b)  # σ(τ_b φ)
            grad_phi = torch.mul(grad_w, theta)
            # ATen's fused sigmoid derivative, in place: (g·θ)·(1 − σ)·σ.
            torch.ops.aten.sigmoid_backward.grad_input(
                grad_phi, s_b, grad_input=grad_phi
            )
            if tau_b != 1.0:
                grad_phi.mul_(tau_b)
        return grad_theta, grad_phi, None, None


def masked_weight(
    theta: torch.Tensor,
    phi: torch.Tensor,
    tau_forward: float = 1e5,
    tau_backward: float = 1.0,
) -> torch.Tensor:
    """Functional form of :class:`MaskedWeightFunction`, autocast disabled.

    Args:
        theta: Weight θ, any shape.
        phi: Mask logits φ, same shape as ``theta``.
        tau_forward: Forward temperature τ_f.
        tau_backward: Backward temperature τ_b.

    Returns:
        ``θ ⊙ σ(τ_f·φ)`` in the dtype of ``theta``.
    """
    if theta.shape != phi.shape:
        raise ValueError(
            f"mask logits shape {tuple(phi.shape)} != weight shape "
            f"{tuple(theta.shape)}"
        )
    device_type = theta.device.type
    if torch.amp.is_autocast_available(device_type):
        context = torch.autocast(device_type=device_type, enabled=False)
    else:
        context = contextlib.nullcontext()
    with context:
        return MaskedWeightFunction.apply(theta, phi, tau_forward, tau_backward)


class MaskedWeightMixin:
    """Adds MSRS mask logits ``mask_logits`` to a Linear/Conv layer.

    Must come before the torch base class in the bases of a concrete class
    (``class MaskedLinear(MaskedWeightMixin, nn.Linear)``). Positional and
    other keyword arguments go to the base class unchanged.

    Args:
        *args: Base-class positional arguments.
        mu: μ of eq. (3).
        rho: ρ of eq. (3).
        varsigma: ς of eq. (3), > 0.
        tau_forward: Forward temperature τ_f, > 0.
        tau_backward: Backward temperature τ_b, > 0.
        **kwargs: Base-class keyword arguments (``bias``, ``device``, ...).
    """

    dense_class: Type[nn.Module]
    weight: nn.Parameter
    bias: Optional[nn.Parameter]

    def __init__(
        self,
        *args: Any,
        mu: float = 1e-3,
        rho: float = 5e-4,
        varsigma: float = 1e-8,
        tau_forward: float = 1e5,
        tau_backward: float = 1.0,
        **kwargs: Any,
    ) -> None:
        for key, value in (
            ("varsigma", varsigma),
            ("tau_forward", tau_forward),
            ("tau_backward", tau_backward),
        ):
            if not value > 0:
                raise ValueError(f"{key} must be > 0, got {value}")
        super().__init__(*args, **kwargs)
        self.mu = float(mu)
        self.rho = float(rho)
        self.varsigma = float(varsigma)
        self.tau_forward = float(tau_forward)
        self.tau_backward = float(tau_backward)
        self.mask_logits = nn.Parameter(torch.empty_like(self.weight))
        self.reset_mask_logits()

    @property
    def mask_kwargs(self) -> Dict[str, float]:
        """The five mask hyper-parameters, as accepted by the constructor."""
        return {
            "mu": self.mu,
            "rho": self.rho,
            "varsigma": self.varsigma,
            "tau_forward": self.tau_forward,
            "tau_backward": self.tau_backward,
        }

    def reset_parameters(self) -> None:
        """Re-initialise θ (and b) like the base layer, then φ by eq. (3)."""
        super().reset_parameters()  # type: ignore[misc]
        if getattr(self, "mask_logits", None) is not None:
            self.reset_mask_logits()

    def reset_mask_logits(self) -> None:
        """Set φ to eq. (3) of the current weight (no autograd history)."""
        with torch.no_grad():
            self.mask_logits.copy_(
                initial_mask_logits(self.weight, self.mu, self.rho, self.varsigma)
            )

    def espnet_initialization_fn(self) -> None:
        """Hook of ``espnet2.torch_utils.initialize.initialize``.

        ESPnet re-initialises every parameter with ``dim > 1`` (``mask_logits``
        included) and then calls this; φ is recomputed from the new θ.
        """
        self.reset_mask_logits()

    def binary_mask(self) -> torch.Tensor:
        """Binary mask of eq. (8), ``1[φ ≥ 0]``.

        Returns:
            Bool tensor, shape of the weight, no autograd history.
        """
        return self.mask_logits.detach() >= 0

    def effective_weight(self) -> torch.Tensor:
        """Differentiable effective weight ``θ ⊙ σ(τ_f·φ)`` (shape of θ)."""
        return masked_weight(
            self.weight, self.mask_logits, self.tau_forward, self.tau_backward
        )

    def folded_weight(self) -> torch.Tensor:
        """``θ ⊙ m`` with the binary mask (detached, masked entries exactly 0.0)."""
        return self.weight.detach().masked_fill(~self.binary_mask(), 0.0)

    def _dense_kwargs(self) -> Dict[str, Any]:
        raise NotImplementedError

    def to_dense(self) -> nn.Module:
        """Plain layer (``dense_class``) with weight ``θ ⊙ m`` and the same bias.

        Returns:
            A new module on the same device/dtype, same ``training`` flag and
            ``requires_grad``; it shares no storage with this one.
        """
        dense = self.dense_class(
            **self._dense_kwargs(),
            bias=self.bias is not None,
            device="meta",
            dtype=self.weight.dtype,
        )
        dense.weight = nn.Parameter(
            self.folded_weight().clone(), requires_grad=self.weight.requires_grad
        )
        if self.bias is not None:
            dense.bias = nn.Parameter(
                self.bias.detach().clone(), requires_grad=self.bias.requires_grad
            )
        dense.train(self.training)  # type: ignore[attr-defined]
        return dense

    @classmethod
    def from_dense(cls, module: nn.Module, **mask_kwargs: float) -> "MaskedWeightMixin":
        """Masked copy of a plain layer, with φ0 from eq. (3) of its weight.

        Weight and bias are copied (same device, dtype and ``requires_grad``);
        the new module shares no storage with ``module``, so tied weights are
        not kept tied. Hooks registered on ``module`` are not carried over.
        No random numbers are drawn.

        Args:
            module: An instance of exactly ``cls.dense_class``.
            **mask_kwargs: ``mu``, ``rho``, ``varsigma``, ``tau_forward``,
                ``tau_backward``.

        Returns:
            The masked layer.
        """
        if type(module) is not cls.dense_class:
            raise ValueError(
                f"{cls.__name__}.from_dense expects exactly "
                f"{cls.dense_class.__name__}, got {type(module).__name__}"
            )
        unknown = sorted(set(mask_kwargs) - set(DEFAULT_MASK_KWARGS))
        if unknown:
            raise ValueError(
                f"unknown mask option(s) {unknown}; allowed: "
                f"{sorted(DEFAULT_MASK_KWARGS)}"
            )
        weight = module.weight
        bias = module.bias
        masked = cls(
            **module_dense_kwargs(module),
            bias=bias is not None,
            device="meta",
            dtype=weight.dtype,
            **mask_kwargs,
        )
        masked.weight = nn.Parameter(
            weight.detach().clone(), requires_grad=weight.requires_grad
        )
        if bias is not None:
            masked.bias = nn.Parameter(
                bias.detach().clone(), requires_grad=bias.requires_grad
            )
        masked.mask_logits = nn.Parameter(torch.empty_like(masked.weight))
        masked.reset_mask_logits()
        masked.train(module.training)
        return masked

    def extra_repr(self) -> str:
        """Base-layer repr plus τ_f and τ_b."""
        base = super().extra_repr()  # type: ignore[misc]
        return (
            f"{base}, tau_forward={self.tau_forward:g}, "
            f"tau_backward={self.tau_backward:g}"
        )


def module_dense_kwargs(module: nn.Module) -> Dict[str, Any]:
    """Constructor arguments (without bias/device/dtype) of a Linear/Conv layer.

    Args:
        module: ``nn.Linear`` or ``nn.Conv{1,2,3}d`` (or a masked subclass).

    Returns:
        Keyword arguments that rebuild a layer of the same geometry.
    """
    if isinstance(module, nn.Linear):
        return {"in_features": module.in_features, "out_features": module.out_features}
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return {
            "in_channels": module.in_channels,
            "out_channels": module.out_channels,
            "kernel_size": module.kernel_size,
            "stride": module.stride,
            "padding": module.padding,
            "dilation": module.dilation,
            "groups": module.groups,
            "padding_mode": module.padding_mode,
        }
    raise ValueError(
        f"cannot rebuild {type(module).__name__}: only Linear and Conv1d/2d/3d"
    )


class MaskedLinear(MaskedWeightMixin, nn.Linear):
    """``nn.Linear`` with MSRS mask logits; ``y = x (θ ⊙ σ(τ_f·φ))ᵀ + b``.

    Args:
        in_features: Input size.
        out_features: Output size.
        bias: Whether to add a bias.
        mu, rho, varsigma, tau_forward, tau_backward: See
            :class:`MaskedWeightMixin`.

    Shapes:
        input: (*, in_features); output: (*, out_features).
    """

    dense_class = nn.Linear

    def _dense_kwargs(self) -> Dict[str, Any]:
        return module_dense_kwargs(self)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Linear map with the effective weight.

        Args:
            input: (*, in_features).

        Returns:
            (*, out_features).
        """
        return F.linear(input, self.effective_weight(), self.bias)


class _MaskedConvNd(MaskedWeightMixin):
    """Shared forward of the masked convolutions (``nn.ConvNd``'s, other weight)."""

    def _dense_kwargs(self) -> Dict[str, Any]:
        return module_dense_kwargs(self)  # type: ignore[arg-type]

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Convolution with the effective weight (padding mode included).

        Args:
            input: (B, C_in, *spatial) or unbatched (C_in, *spatial).

        Returns:
            (B, C_out, *spatial_out).
        """
        return conv_forward(self, input, self.effective_weight(), self.bias)


class MaskedConv1d(_MaskedConvNd, nn.Conv1d):
    """``nn.Conv1d`` with MSRS mask logits.

    Takes ``nn.Conv1d``'s arguments plus the keyword-only ``mu``, ``rho``,
    ``varsigma``, ``tau_forward``, ``tau_backward`` (:class:`MaskedWeightMixin`).

    Shapes:
        input: (B, C_in, T); output: (B, C_out, T_out).
    """

    dense_class = nn.Conv1d


class MaskedConv2d(_MaskedConvNd, nn.Conv2d):
    """``nn.Conv2d`` with MSRS mask logits (see :class:`MaskedConv1d`).

    Shapes:
        input: (B, C_in, H, W); output: (B, C_out, H_out, W_out).
    """

    dense_class = nn.Conv2d


class MaskedConv3d(_MaskedConvNd, nn.Conv3d):
    """``nn.Conv3d`` with MSRS mask logits (see :class:`MaskedConv1d`).

    Shapes:
        input: (B, C_in, T, H, W); output: (B, C_out, T_out, H_out, W_out).
    """

    dense_class = nn.Conv3d
