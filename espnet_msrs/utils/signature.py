"""Expose a subclass's YAML API as the union of its own and its ESPnet base's.

Our encoder/decoder subclasses take their own keyword arguments and pass the
rest (``**kwargs``) to espnet2's class.  ESPnet's ``--print_config`` lists a
class's options from ``inspect.signature``; :func:`merge_init_signature` sets
``__init__.__signature__`` to our parameters followed by the base's, so users
see every option with its default, and nothing of ESPnet's is copied here.
"""

import inspect


def merge_init_signature(cls: type, base: type) -> type:
    """Class decorator helper: cls.__init__ shows base.__init__'s parameters too."""
    own = inspect.signature(cls.__init__)
    base_sig = inspect.signature(base.__init__)
    params = []
    seen = set()
    own_params = [p for p in own.parameters.values() if p.kind != p.VAR_KEYWORD]
    base_params = [
        p for p in base_sig.parameters.values() if p.kind not in (p.VAR_KEYWORD,)
    ]
    # positional (no default) first: self, then the base's required ones.
    for p in own_params[:1] + [p for p in base_params[1:] if p.default is p.empty]:
        if p.name not in seen:
            params.append(p.replace(kind=p.POSITIONAL_OR_KEYWORD))
            seen.add(p.name)
    for p in base_params[1:] + own_params[1:]:
        if p.name not in seen and p.default is not p.empty:
            params.append(p.replace(kind=p.POSITIONAL_OR_KEYWORD))
            seen.add(p.name)
    cls.__init__.__signature__ = own.replace(parameters=params)
    return cls
