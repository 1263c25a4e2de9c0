"""Elastic modules: one max-size weight, smaller configurations are slices of it.

As Once-for-All's ``dynamic_op.py``, every smaller configuration of a module reuses the first-k
channels of the largest one's weights, but here nothing is stored between calls: the chosen
configuration is an argument of ``forward``.

The elastic path and the static path share one forward: :class:`Elastic` wraps an ordinary
("static") module class. The largest instance holds the weights; for a smaller choice, a
shape-only copy of the static module built on the ``meta`` device (cached per choice) is run by
``torch.func.functional_call`` with slices of the large weights. ``to_static(choice)`` builds the
same static module for real and copies the slices in. The static twin therefore computes exactly
what the elastic module computes, and exports like any ordinary module.

Slicing rules (:func:`slice_like`), decided by the owning module's type:
- everything: the first k entries along each dimension (channels, hidden units, layers of a stack);
- ``nn.Conv1d`` kernels: the centre k taps (a smaller kernel is the middle of the larger one);
- ``nn.LSTM``: dimension 0 stacks four gates, sliced gate by gate.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

__all__ = ["Elastic", "slice_like", "assign_like", "sliced_state", "freeze_choice"]


def _rule(module: nn.Module, name: str) -> str:
    if isinstance(module, nn.LSTM) and name.startswith(("weight_", "bias_")):
        return "gates"
    if isinstance(module, nn.Conv1d) and name == "weight":
        return "kernel"
    return "first"


def _view(full: Tensor, shape: tuple[int, ...], rule: str, name: str) -> Tensor:
    """The region of ``full`` that a tensor of ``shape`` takes; a view (gates: (4, h, ...) view)."""
    if full.dim() != len(shape) or any(s > f for s, f in zip(shape, full.shape)):
        raise ValueError(f"{name}: cannot slice shape {tuple(shape)} out of {tuple(full.shape)}; "
                         "the choice exceeds the supernet's maximum size (build the supernet with larger candidates)")
    if rule == "gates":
        if full.size(0) % 4 or shape[0] % 4:
            raise ValueError(f"{name}: LSTM gate dimension must be a multiple of 4, got {full.size(0)} -> {shape[0]}")
        full, shape = full.unflatten(0, (4, full.size(0) // 4)), (4, shape[0] // 4, *shape[1:])
    index = []
    for d, (f, s) in enumerate(zip(full.shape, shape)):
        start = (f - s) // 2 if rule == "kernel" and d == 2 else 0
        index.append(slice(start, start + s))
    return full[tuple(index)]


def slice_like(full: Tensor, shape: torch.Size | tuple[int, ...], rule: str = "first", name: str = "tensor") -> Tensor:
    """The part of ``full`` with ``shape``, taken by ``rule`` ("first", "kernel" or "gates").

    Raises:
        ValueError: ``shape`` is larger than ``full`` in some dimension (a choice beyond the
            supernet's maximum) or has another number of dimensions.
    """
    shape = tuple(shape)
    if tuple(full.shape) == shape:
        return full
    view = _view(full, shape, rule, name)
    return view.flatten(0, 1) if rule == "gates" else view


def assign_like(full: Tensor, value: Tensor, rule: str = "first", name: str = "tensor") -> None:
    """Write ``value`` into the part of ``full`` that :func:`slice_like` reads (no gradient)."""
    with torch.no_grad():
        view = _view(full, tuple(value.shape), rule, name)
        view.copy_(value.unflatten(0, (4, value.size(0) // 4)) if rule == "gates" else value)


# (name in target, module of `full` owning the tensor, attribute, target shape, slicing rule)
_Plan = list[tuple[str, nn.Module, str, tuple[int, ...], str]]


def _slice_plan(full: nn.Module, target: nn.Module) -> _Plan:
    plan: _Plan = []
    for prefix, module in target.named_modules():
        tensors = itertools.chain(module.named_parameters(recurse=False), module.named_buffers(recurse=False))
        for name, t in tensors:
            key = f"{prefix}.{name}" if prefix else name
            try:
                owner = full.get_submodule(prefix)
            except AttributeError as e:
                raise ValueError(f"{key}: the static module has a tensor the max-size module lacks ({e})") from e
            if not isinstance(getattr(owner, name, None), Tensor):
                raise ValueError(f"{key}: the static module has a tensor the max-size module lacks")
            plan.append((key, owner, name, tuple(t.shape), _rule(module, name)))
    return plan


def _apply_plan(plan: _Plan) -> dict[str, Tensor]:
    return {key: slice_like(getattr(owner, name), shape, rule, key) for key, owner, name, shape, rule in plan}


def sliced_state(full: nn.Module, target: nn.Module) -> dict[str, Tensor]:
    """Views of ``full``'s parameters and buffers, shaped like ``target``'s (matched by name).

    ``target`` has the structure of ``full`` or a prefix of it (fewer stacked layers); the
    tensors keep their autograd link to ``full``.
    """
    return _apply_plan(_slice_plan(full, target))


def freeze_choice(choice: Mapping[str, Any]) -> tuple:
    """Hashable key of a choice (constructor keyword arguments)."""
    return tuple(sorted(choice.items()))


class Elastic(nn.Module):
    """An elastic version of a static module class.

    Args:
        cls: the static module class, e.g. ``nn.Linear`` or ``FeedForward``.
        **max_kwargs: constructor arguments of the largest configuration; its weights are the
            ones stored (as ``self.full``).

    A *choice* is a mapping of constructor arguments that override ``max_kwargs``, e.g.
    ``{"in_features": 96, "out_features": 96}`` for an ``Elastic(nn.Linear, in_features=192,
    out_features=192)``. Every sized argument of a choice must be at most its maximum.

    Example:
        >>> lin = Elastic(nn.Linear, in_features=8, out_features=8)
        >>> y = lin({"in_features": 4, "out_features": 2}, torch.randn(3, 4))  # (3, 2)
        >>> static = lin.to_static({"in_features": 4, "out_features": 2})      # an nn.Linear
    """

    def __init__(self, cls: type[nn.Module], **max_kwargs: Any) -> None:
        super().__init__()
        self.cls = cls
        self.max_kwargs = dict(max_kwargs)
        self.full = cls(**max_kwargs)
        self._skeletons: dict[tuple, nn.Module] = {}  # cache of shape-only modules; not state
        self._plans: weakref.WeakKeyDictionary[nn.Module, _Plan] = weakref.WeakKeyDictionary()  # per target

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()  # caches are rebuilt on demand, not pickled or copied
        state["_skeletons"] = {}
        del state["_plans"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._plans = weakref.WeakKeyDictionary()

    def kwargs(self, choice: Mapping[str, Any] | None) -> dict[str, Any]:
        """Constructor arguments of ``choice`` (the maximum for every argument not given)."""
        unknown = set(choice or {}) - set(self.max_kwargs)
        if unknown:
            raise ValueError(f"{self.cls.__name__}: unknown choice argument(s) {sorted(unknown)}; "
                             f"choose among {sorted(self.max_kwargs)}")
        return {**self.max_kwargs, **(choice or {})}

    def skeleton(self, choice: Mapping[str, Any] | None = None) -> nn.Module:
        """The static module of ``choice`` on the ``meta`` device (shapes only), cached."""
        kw = self.kwargs(choice)
        key = freeze_choice(kw)
        sk = self._skeletons.get(key)
        if sk is None:
            with torch.device("meta"):
                sk = self.cls(**kw)
            self._skeletons[key] = sk
        return sk

    def sliced(self, target: nn.Module) -> dict[str, Tensor]:
        """Views of the stored weights shaped like ``target`` (a static module of this class).

        Which tensor and slice each entry takes is worked out once per ``target`` (skeletons are
        cached, so a forward only slices).
        """
        return _apply_plan(self._plan(target))

    def load_sliced(self, target: nn.Module, state: Mapping[str, Tensor]) -> None:
        """Write a static module's tensors (``state``, named as in ``target``) into their slices."""
        plan = self._plan(target)
        missing = sorted({key for key, *_ in plan} - set(state))
        if missing:
            raise ValueError(f"{self.cls.__name__}: state lacks {missing[:5]}")
        for key, owner, name, _, rule in plan:
            assign_like(getattr(owner, name), state[key].to(getattr(owner, name)), rule, key)

    def _plan(self, target: nn.Module) -> _Plan:
        plan = self._plans.get(target)
        if plan is None:
            plan = self._plans[target] = _slice_plan(self.full, target)
        return plan

    def forward(self, choice: Mapping[str, Any] | None, *args: Any, **kwargs: Any) -> Any:
        """Run the static module of ``choice`` on sliced weights (gradients reach ``self.full``)."""
        sk = self.skeleton(choice)
        if sk.training != self.training:
            sk.train(self.training)
        return functional_call(sk, self.sliced(sk), args, kwargs, strict=True)

    def to_static(self, choice: Mapping[str, Any] | None = None) -> nn.Module:
        """An ordinary module of ``choice`` with copies of the sliced weights (no link back)."""
        device = next(itertools.chain(self.full.parameters(), self.full.buffers()), torch.empty(0)).device
        with torch.device(device):
            m = self.cls(**self.kwargs(choice))
        keys = set(m.state_dict())  # non-persistent buffers are rebuilt by the constructor
        m.load_state_dict({k: v.detach().clone() for k, v in self.sliced(m).items() if k in keys}, strict=True)
        return m.train(self.training)

    def extra_repr(self) -> str:
        return f"{self.cls.__name__}, max={self.max_kwargs}"
