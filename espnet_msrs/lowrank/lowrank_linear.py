"""Low-rank factorised linear layer of LR-SMS (mechanism only).

Implements the factorised layer of "Full-Rank No More: Low-Rank Weight
Training for Modern Speech Recognition Models" (LR-SMS), §II-A, and its
spectral SVD initialisation, eq. (1)::

    z = U (Vᵀ x) + b,        U ∈ R^{m×r}, Vᵀ ∈ R^{r×n}
    SVD_r(W) = Û_{:r} Σ_r V̂ᵀ_{:r},   U = Û_{:r} √Σ_r,   Vᵀ = √Σ_r V̂ᵀ_{:r}

so that ``U·Vᵀ`` is the best rank-r approximation (Eckart–Young) of the dense
weight ``W`` (m×n) the layer replaces, and the two factors are balanced
(``UᵀU = VᵀV = Σ_r``).

The layer holds its two factors and computes its forward; which layers are
factorised and with which rank is policy (``espnet_msrs.lowrank.rank_schedule``
and ``espnet_msrs.layers.linear_policy``).  The parameters share the
``lowrank_u`` / ``lowrank_v`` prefix so they can be selected by name.
"""

from typing import Optional, Union

import torch
from typeguard import typechecked


class LowRankLinear(torch.nn.Module):
    """Linear layer ``z = U(Vᵀx) + b`` with ``W ≈ U·Vᵀ`` of rank ``r``.

    Submodules:
        lowrank_v: ``nn.Linear(in_features, rank, bias=False)``; its weight is
            Vᵀ, shape (r, n).
        lowrank_u: ``nn.Linear(rank, out_features, bias=bias)``; its weight is
            U, shape (m, r), and its bias is b, shape (m,).

    At construction the layer is initialised by :meth:`reset_parameters`: a
    dense weight is drawn exactly as ``nn.Linear(in_features, out_features)``
    would draw it and factorised by SVD (eq. 1).  The two submodules are built
    without drawing random numbers, so with the same seed the dense weight is
    the one ``nn.Linear`` would have had.

    Args:
        in_features: n, size of each input sample.
        out_features: m, size of each output sample.
        rank: r, with ``1 <= r <= min(m, n)``.
        bias: Whether the layer has an additive bias b (held by ``lowrank_u``).
        device: Device of the parameters (default: torch's default device).
        dtype: Floating dtype of the parameters (default: torch's default).

    Raises:
        ValueError: A non-positive size or a rank outside ``[1, min(m, n)]``.
    """

    @typechecked
    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        bias: bool = True,
        device: Optional[Union[str, torch.device]] = None,
        dtype: Optional[torch.dtype] = None,
    ):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"LowRankLinear: in_features={in_features} and "
                f"out_features={out_features} must be >= 1"
            )
        if not 1 <= rank <= min(in_features, out_features):
            raise ValueError(
                f"LowRankLinear({in_features} -> {out_features}): rank={rank} is "
                f"not allowed; it must satisfy 1 <= rank <= "
                f"min(in_features, out_features) = {min(in_features, out_features)}"
            )
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        if device is None:
            device = torch.get_default_device()
        factory = {"device": device, "dtype": dtype}
        # skip_init builds on the meta device: no random numbers are drawn here,
        # the only draw is the dense weight of reset_parameters().
        self.lowrank_v = torch.nn.utils.skip_init(
            torch.nn.Linear, in_features, rank, bias=False, **factory
        )
        self.lowrank_u = torch.nn.utils.skip_init(
            torch.nn.Linear, rank, out_features, bias=bias, **factory
        )
        self.reset_parameters()

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, rank: int) -> "LowRankLinear":
        """Build a low-rank layer SVD-initialised from a dense layer (eq. 1).

        The new layer is on ``linear``'s device and dtype; it copies the bias.
        ``linear`` itself is not modified.

        Args:
            linear: Dense layer with weight W (m, n) and optional bias (m,).
            rank: r, ``1 <= r <= min(m, n)``.

        Returns:
            LowRankLinear with ``U·Vᵀ = SVD_r(W)`` and the same bias.

        Raises:
            ValueError: ``linear`` is not an ``nn.Linear`` or the rank is bad.
        """
        if not isinstance(linear, torch.nn.Linear):
            raise ValueError(
                f"LowRankLinear.from_linear: expected torch.nn.Linear, "
                f"got {type(linear).__name__}"
            )
        weight = linear.weight
        layer = torch.nn.utils.skip_init(
            cls,
            linear.in_features,
            linear.out_features,
            rank,
            bias=linear.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )
        layer.svd_init_(weight, linear.bias)
        return layer

    def reset_parameters(self) -> None:
        """Draw W as ``nn.Linear.reset_parameters`` would, then SVD-factorise it.

        The dense weight (kaiming-uniform with a=√5) and bias (uniform in
        ±1/√in_features) come from a temporary ``nn.Linear`` of the full size,
        i.e. from PyTorch's own ``reset_parameters``.
        """
        weight = self.lowrank_v.weight
        if weight.is_meta:  # built by skip_init: nothing to draw
            return
        dense = torch.nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.lowrank_u.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )
        self.svd_init_(dense.weight, dense.bias)

    def espnet_initialization_fn(self) -> None:
        """Hook called by ``espnet2.torch_utils.initialize.initialize``.

        ESPnet's ``--init`` (xavier_uniform, kaiming_normal, chainer, ...)
        re-initialises every parameter with ``dim > 1`` on its own, i.e. U and V
        independently, which destroys the factorisation (and its scale), and
        zeroes every ``.bias``; it then calls this hook.  We re-draw the dense
        weight as ``nn.Linear`` does by default and SVD-factorise it (eq. 1):
        under ESPnet's ``--init`` a low-rank layer is SVD-initialised from
        ``nn.Linear``'s default dense init, whatever the scheme's name (the hook
        is not told which scheme was used).  The bias is left as ESPnet set it
        (zeros), like the bias of every dense layer of the same model.
        """
        weight = self.lowrank_v.weight
        dense = torch.nn.Linear(
            self.in_features,
            self.out_features,
            bias=False,
            device=weight.device,
            dtype=weight.dtype,
        )
        self.svd_init_(dense.weight)

    @torch.no_grad()
    def svd_init_(
        self, weight: torch.Tensor, bias: Optional[torch.Tensor] = None
    ) -> None:
        """Set ``U, Vᵀ`` from the truncated SVD of a dense weight (eq. 1).

        The SVD is computed in float64 and the factors are cast back to the
        layer's dtype and device.

        Args:
            weight: Dense weight W, shape (m, n) = (out_features, in_features).
            bias: Optional bias to copy, shape (m,); None leaves b unchanged.

        Raises:
            ValueError: Wrong shapes, or a bias for a layer without bias.
        """
        m, n, r = self.out_features, self.in_features, self.rank
        if weight.is_meta or self.lowrank_u.weight.is_meta:
            # Shape-only build (model summaries on the meta device): no values.
            return
        if tuple(weight.shape) != (m, n):
            raise ValueError(
                f"LowRankLinear.svd_init_: weight has shape {tuple(weight.shape)}, "
                f"expected (out_features, in_features) = ({m}, {n})"
            )
        w64 = weight.detach().to(torch.float64)
        if m < n:
            # A wide W is factorised through its transpose: Wᵀ = V̂ Σ Ûᵀ is an
            # SVD of W with the roles of the factors swapped.  LAPACK's
            # divide-and-conquer SVD is several times faster on the tall
            # operand (768×3072 on 1 CPU thread: 3.8 s -> 1.5 s; much more
            # with busy threads), and the result is again an SVD of W, so the
            # factors below are the same up to the sign of each singular pair.
            v_full, s, uh = torch.linalg.svd(w64.T, full_matrices=False)
            u_full, vh = uh.T, v_full.T
        else:
            u_full, s, vh = torch.linalg.svd(w64, full_matrices=False)
        sqrt_s = s[:r].sqrt()
        u = u_full[:, :r] * sqrt_s  # (m, r) = Û_{:r} √Σ_r
        vt = sqrt_s[:, None] * vh[:r]  # (r, n) = √Σ_r V̂ᵀ_{:r}
        self.lowrank_u.weight.copy_(u)
        self.lowrank_v.weight.copy_(vt)
        if bias is not None:
            if self.lowrank_u.bias is None:
                raise ValueError(
                    "LowRankLinear.svd_init_: got a bias for a layer built with "
                    "bias=False"
                )
            if tuple(bias.shape) != (m,):
                raise ValueError(
                    f"LowRankLinear.svd_init_: bias has shape {tuple(bias.shape)}, "
                    f"expected ({m},)"
                )
            self.lowrank_u.bias.copy_(bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute ``U(Vᵀx) + b``.

        Args:
            x: Input, (..., in_features).

        Returns:
            Output, (..., out_features).
        """
        return self.lowrank_u(self.lowrank_v(x))

    def dense_weight(self) -> torch.Tensor:
        """Equivalent dense weight ``U·Vᵀ``, shape (out_features, in_features).

        Differentiable; wrap in ``torch.no_grad()`` for export or analysis.
        """
        return self.lowrank_u.weight @ self.lowrank_v.weight

    def num_parameters_saved(self) -> int:
        """Weights saved versus the dense layer: ``m·n − r·(m + n)``.

        The bias is the same in both and not counted.  Negative when
        ``r > m·n / (m + n)`` (the factorisation is then larger than W).
        """
        m, n, r = self.out_features, self.in_features, self.rank
        return m * n - r * (m + n)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, bias={self.lowrank_u.bias is not None}"
        )

