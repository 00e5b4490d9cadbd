"""Low-rank factorised linear layer of LR-SMS (mechanism only).

Implements the factorised layer of "Full-Rank No More: Low-Rank Weight
Training for Modern Speech Recognition Models" (LR-SMS), §II-A, and its
spectral SVD initialisation, eq. (1)::

    z = U (Vᵀ x) + b,        U ∈ R^{m×r}, Vᵀ ∈ R^{r×n}
    SVD_r(W) = Û_{:r} Σ_r V̂ᵀ_{:r},   U = Û_{:r} √Σ_r,   Vᵀ = √Σ_r V̂ᵀ_{:r}

so that ``U·Vᵀ`` is the best rank-r approximation (Eckart–Young) of the dense
weight ``W`` (m×n) the layer replaces, and the two factors are balanced
(``UᵀU = VᵀV = Σ_r``).

Two initialisations (``init``; the YAML key is ``lowrank_init`` of
``encoder_conf``/``decoder_conf``):

* ``svd`` (LR-SMS, the default): a dense weight W is drawn as the dense model
  would draw it, then factorised by eq. (1).  Which dense initialisation: the
  paper says "we follow conventional initializations as described in [31]
  (Glorot) and [32] (He)", without saying which layer gets which.  We take
  the dense model's own: with ESPnet's ``init: null`` (the paper configs),
  PyTorch's ``nn.Linear`` default, ``kaiming_uniform_(a=√5)`` = U(±1/√n)
  (He-family; the ResNet convolutions are He-normal), as in Auto-AVSR [29],
  which re-initialises nothing; with ESPnet's ``init: <scheme>``
  (``xavier_uniform`` = Glorot, ``kaiming_normal`` = He, ...) W is drawn by
  ESPnet's own ``initialize`` with that scheme (see
  :meth:`LowRankLinear.espnet_initialization_fn` and :func:`espnet_init`).
* ``kaiming`` (the baseline of LR-SMS Fig. 4, "Kaiming initialization [32]"):
  each factor is initialised directly as a layer of its own by He et al.'s
  rule, ``kaiming_normal_(mode="fan_in", nonlinearity="relu")``:
  Var(Vᵀ) = 2/n, Var(U) = 2/r, hence Var((U·Vᵀ)_ij) = r·(2/r)·(2/n) = 4/n —
  not the dense layer's variance (1/(3n) for PyTorch's default), which is the
  mismatch §II-B says the SVD initialisation avoids ("var(W) ≈ var(UVᵀ)").
  The paper does not say which Kaiming variant; He-normal with the ReLU gain
  is [32]'s own rule.  The bias is the dense layer's (``nn.Linear``'s default,
  or zeros under ESPnet's ``init:``).

The layer holds its two factors and computes its forward; which layers are
factorised and with which rank is policy (``espnet_msrs.lowrank.rank_schedule``
and ``espnet_msrs.layers.linear_groups``).  The parameters share the
``lowrank_u`` / ``lowrank_v`` prefix so they can be selected by name.
"""

import contextlib
import contextvars
from typing import Iterator, Optional, Union

import torch
from typeguard import typechecked

#: Values of ``init`` (``lowrank_init`` in ``encoder_conf``/``decoder_conf``).
LOWRANK_INITS = ("svd", "kaiming")

# The ESPnet ``init:`` scheme being applied to the model being built (set by
# the task around ESPnet's build_model, read by espnet_initialization_fn,
# whose signature ESPnet fixes without arguments).
_ESPNET_INIT: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "espnet_msrs_espnet_init", default=None
)


@contextlib.contextmanager
def espnet_init(init: Optional[str]) -> Iterator[None]:
    """Tell low-rank layers which ESPnet ``init:`` scheme is being applied.

    ESPnet's ``initialize(model, init)`` re-draws every weight with the scheme
    and then calls each module's argument-less ``espnet_initialization_fn``;
    within this context that hook draws the dense weight W it factorises with
    the same scheme (``svd``).  The task wraps its ``build_model`` in it::

        with espnet_init(args.init):
            model = super().build_model(args)

    Args:
        init: ESPnet's ``--init`` (``None`` for no re-initialisation).
    """
    token = _ESPNET_INIT.set(init)
    try:
        yield
    finally:
        _ESPNET_INIT.reset(token)


def _validate_init(init: str) -> None:
    if init not in LOWRANK_INITS:
        raise ValueError(
            f"lowrank_init={init!r} is not allowed; expected one of {LOWRANK_INITS} "
            "(svd: LR-SMS eq. 1 from the dense init; kaiming: both factors drawn "
            "directly, LR-SMS Fig. 4's baseline)"
        )


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
        init: ``svd`` (eq. 1 from the dense init) or ``kaiming`` (both factors
            He-normal, LR-SMS Fig. 4's baseline); see the module docstring.

    Raises:
        ValueError: A non-positive size, a rank outside ``[1, min(m, n)]`` or
            an unknown ``init``.
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
        init: str = "svd",
    ):
        super().__init__()
        _validate_init(init)
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
        self.init = init
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
    def from_linear(
        cls, linear: torch.nn.Linear, rank: int, init: str = "svd"
    ) -> "LowRankLinear":
        """Build a low-rank layer initialised from a dense layer.

        The new layer is on ``linear``'s device and dtype; it copies the bias.
        ``linear`` itself is not modified.  ``svd`` draws no random numbers;
        ``kaiming`` draws the two factors (Vᵀ first, then U).

        Args:
            linear: Dense layer with weight W (m, n) and optional bias (m,).
            rank: r, ``1 <= r <= min(m, n)``.
            init: ``svd`` (``U·Vᵀ = SVD_r(W)``, eq. 1) or ``kaiming`` (W unused).

        Returns:
            LowRankLinear with the same bias.

        Raises:
            ValueError: ``linear`` is not an ``nn.Linear``, the rank is bad or
                ``init`` is unknown.
        """
        _validate_init(init)
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
            init=init,
        )
        if init == "svd":
            layer.svd_init_(weight, linear.bias)
        else:
            layer.kaiming_init_()
            if linear.bias is not None and not layer.lowrank_u.weight.is_meta:
                with torch.no_grad():
                    layer.lowrank_u.bias.copy_(linear.bias.detach())
        return layer

    def reset_parameters(self) -> None:
        """Initialise as a new dense layer of this size would be, by ``init``.

        ``svd``: the dense weight (kaiming-uniform with a=√5) and bias (uniform
        in ±1/√in_features) come from a temporary ``nn.Linear`` of the full
        size, i.e. from PyTorch's own ``reset_parameters``; W is factorised by
        eq. (1).  ``kaiming``: the same bias, and both factors drawn by
        :meth:`kaiming_init_`.
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
        if self.init == "svd":
            self.svd_init_(dense.weight, dense.bias)
        else:
            self.kaiming_init_()
            if dense.bias is not None:
                with torch.no_grad():
                    self.lowrank_u.bias.copy_(dense.bias)

    def espnet_initialization_fn(self) -> None:
        """Hook called by ``espnet2.torch_utils.initialize.initialize``.

        ESPnet's ``--init`` (xavier_uniform, kaiming_normal, chainer, ...)
        re-initialises every parameter with ``dim > 1`` on its own, i.e. U and V
        independently, which destroys the factorisation (and its scale), and
        zeroes every ``.bias``; it then calls this hook, which restores the
        layer's own initialisation:

        * ``svd``: a dense weight W (m×n) is drawn by ESPnet's ``initialize``
          with the scheme of the enclosing :func:`espnet_init` context (the
          scheme every dense layer of the model just got), and factorised by
          eq. (1).  Outside such a context (espnet2's own task, which does not
          say the scheme) W is ``nn.Linear``'s default draw.
        * ``kaiming``: both factors re-drawn by :meth:`kaiming_init_`.

        The bias is left as ESPnet set it (zeros), like the bias of every dense
        layer of the same model.
        """
        if self.init == "kaiming":
            self.kaiming_init_()
            return
        weight = self.lowrank_v.weight
        scheme = _ESPNET_INIT.get()
        if scheme is None:
            dense = torch.nn.Linear(
                self.in_features,
                self.out_features,
                bias=False,
                device=weight.device,
                dtype=weight.dtype,
            )
        else:
            from espnet2.torch_utils.initialize import initialize

            dense = torch.nn.utils.skip_init(
                torch.nn.Linear,
                self.in_features,
                self.out_features,
                bias=False,
                device=weight.device,
                dtype=weight.dtype,
            )
            initialize(dense, scheme)  # ESPnet's own draw for this scheme
        self.svd_init_(dense.weight)

    @torch.no_grad()
    def kaiming_init_(self) -> None:
        """Draw both factors directly by He et al.'s rule (LR-SMS Fig. 4 baseline).

        ``kaiming_normal_(mode="fan_in", nonlinearity="relu")`` on each factor
        as a layer of its own: Vᵀ (r×n) ~ N(0, 2/n), U (m×r) ~ N(0, 2/r).  The
        bias is not touched.  Vᵀ is drawn first.
        """
        for factor in (self.lowrank_v.weight, self.lowrank_u.weight):
            if not factor.is_meta:
                torch.nn.init.kaiming_normal_(
                    factor, mode="fan_in", nonlinearity="relu"
                )

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
            f"rank={self.rank}, bias={self.lowrank_u.bias is not None}, "
            f"init={self.init}"
        )

