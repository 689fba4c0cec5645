"""A reader for VNN-COMP properties (VNN-LIB, an SMT-LIB subset).

Supported: ``(declare-const X_i Real)`` / ``Y_j``; input bounds ``(assert (<= X_i c))`` and
``(>= X_i c)``; output constraints that are linear (in)equalities over ``Y`` (terms: constants,
variables, ``+``, ``-``, ``*`` by a constant), combined with ``and`` / ``or`` in disjunctive normal
form, as in mnistfc's and acasxu's files. The assertions describe the *unsafe* set: the property
holds when no input in the box reaches it.

Used as a point (``at = vnnlib(...)``, or the saliency constraint of ``check_vnnlib(..., delta=d)``),
a property means the image it was generated from: VNN-COMP writes the box ``x +- eps`` clipped to
the input domain ([0, 1] for images), so `VnnlibProperty.point` un-clips it. A coordinate at the
domain's lower bound is ``ub - eps``, one at the upper bound is ``lb + eps``, any other is the
centre. For mnistfc this recovers the MNIST test image exactly, up to the float32 rounding of the
numbers in the files (at most 3.1e-8, far below the pixel step 1/255): prop_2 is test image 49.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camlang.errors import CamlangError

__all__ = ["VnnlibProperty", "load_vnnlib", "parse_vnnlib"]


@dataclass(frozen=True)
class VnnlibProperty:
    """Input box, its centre, and the unsafe output set as a union of polyhedra ``A y <= c``.

    ``label`` is the class k when every disjunct reads ``Y_j >= Y_k`` (the usual robustness
    encoding), else None.
    """

    path: str
    lo: np.ndarray
    hi: np.ndarray
    disjuncts: tuple[tuple[np.ndarray, np.ndarray], ...]
    n_outputs: int
    label: int | None

    @property
    def centre(self) -> np.ndarray:
        """The centre of the (clipped) box; not the property's image, see `point`."""
        return (self.lo + self.hi) / 2

    @property
    def eps(self) -> float:
        """The box's L-inf radius before clipping: half the widest side."""
        return float(np.max(self.hi - self.lo)) / 2

    def point(self, domain: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
        """The point the box was built around, undoing the clipping to ``domain`` (module docstring).

        A box that reaches outside ``domain`` was not clipped to it: its centre is returned. A side
        that spans the whole domain is its centre too (then ``eps`` is half the domain).
        """
        if np.any(self.lo < domain[0]) or np.any(self.hi > domain[1]):
            return self.centre  # not a box clipped to this domain (e.g. acasxu): nothing to undo
        eps = self.eps
        at_lo = self.lo <= domain[0]
        at_hi = self.hi >= domain[1]
        x = (self.lo + self.hi) / 2
        # a side clipped at both ends spans the domain; then eps is half of it and the centre is right
        x = np.where(at_lo & ~at_hi, self.hi - eps, x)
        x = np.where(at_hi & ~at_lo, self.lo + eps, x)
        # eps is estimated from float32 bounds, so lo/hi -/+ eps can miss the box by ~1e-8: a point
        # outside its own box would lose every shortcut that starts from the point (docs/smt.md)
        return np.clip(x, self.lo, self.hi)


_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def _sexprs(text: str) -> list:
    text = re.sub(r";[^\n]*", "", text)
    stack: list[list] = [[]]
    for tok in _TOKEN.findall(text):
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) == 1:
                raise ValueError("unbalanced ')'")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise ValueError("unbalanced '('")
    return stack[0]


def _linear(expr: object, n_in: int, n_out: int) -> tuple[np.ndarray, float, bool]:
    """(coefficients over X then Y, constant, uses X)."""
    coef = np.zeros(n_in + n_out)
    if isinstance(expr, str):
        if expr.startswith("X_"):
            coef[int(expr[2:])] = 1.0
            return coef, 0.0, True
        if expr.startswith("Y_"):
            coef[n_in + int(expr[2:])] = 1.0
            return coef, 0.0, False
        return coef, float(expr), False
    assert isinstance(expr, list) and expr
    op, *args = expr
    parts = [_linear(a, n_in, n_out) for a in args]
    if op == "+":
        return sum((p[0] for p in parts), coef), sum(p[1] for p in parts), any(p[2] for p in parts)
    if op == "-":
        if len(parts) == 1:
            return -parts[0][0], -parts[0][1], parts[0][2]
        first = parts[0]
        return (
            first[0] - sum((p[0] for p in parts[1:]), coef),
            first[1] - sum(p[1] for p in parts[1:]),
            any(p[2] for p in parts),
        )
    if op == "*" and len(parts) == 2:
        (ca, ka, xa), (cb, kb, xb) = parts
        if not ca.any():
            return ka * cb, ka * kb, xb
        if not cb.any():
            return kb * ca, ka * kb, xa
    raise ValueError(f"unsupported term {expr!r} (only linear terms are allowed)")


def _dnf(expr: object) -> list[list[list]]:
    """Disjunctive normal form of and/or over atoms."""
    assert isinstance(expr, list)
    if expr[0] == "and":
        out: list[list[list]] = [[]]
        for sub in expr[1:]:
            out = [a + b for a in out for b in _dnf(sub)]
        return out
    if expr[0] == "or":
        return [conj for sub in expr[1:] for conj in _dnf(sub)]
    return [[expr]]


def parse_vnnlib(text: str, n_inputs: int, where: str = "<vnnlib>") -> VnnlibProperty:
    """Parse VNN-LIB text for a network with ``n_inputs`` inputs.

    Malformed text is a `CamlangError` naming the file (E710), never a Python exception.
    """
    try:
        forms = _sexprs(text)
    except ValueError as exc:
        raise CamlangError(f"{where}: {exc}", code="E710") from exc
    try:
        return _parse_forms(forms, n_inputs, where)
    except (ValueError, IndexError, TypeError, AttributeError, AssertionError, KeyError) as exc:
        raise CamlangError(
            f"{where}: cannot read this VNN-LIB file ({type(exc).__name__}: {exc or 'malformed form'})",
            hint="declare X_i and Y_j with (declare-const NAME Real), bound every X_i with <= and >=, "
            "and state the output set with and/or of linear atoms over Y_j",
            code="E710",
        ) from exc


def _parse_forms(forms: list, n_inputs: int, where: str) -> VnnlibProperty:
    n_out = 0
    declared_x = 0
    for f in forms:
        if isinstance(f, list) and f and f[0] == "declare-const":
            name = f[1]
            if name.startswith("Y_"):
                n_out = max(n_out, int(name[2:]) + 1)
            elif name.startswith("X_"):
                declared_x = max(declared_x, int(name[2:]) + 1)
    if declared_x != n_inputs:
        raise CamlangError(
            f"{where} declares {declared_x} inputs X_i but the network takes {n_inputs}",
            hint="pair the property with the network it was written for",
            code="E711",
        )
    lo = np.full(n_inputs, -np.inf)
    hi = np.full(n_inputs, np.inf)
    out_conj: list[list[list]] = [[]]
    for f in forms:
        if not (isinstance(f, list) and f and f[0] == "assert"):
            continue
        body = f[1]
        try:
            if body[0] in ("<=", ">=") and isinstance(body[1], str) and isinstance(body[2], str):
                a, b = body[1], body[2]
                if a.startswith("X_") and not b.startswith(("X_", "Y_")):
                    i = int(a[2:])
                    if body[0] == "<=":
                        hi[i] = min(hi[i], float(b))
                    else:
                        lo[i] = max(lo[i], float(b))
                    continue
            out_conj = [a + b for a in out_conj for b in _dnf(body)]
        except (ValueError, IndexError, TypeError) as exc:
            raise CamlangError(f"{where}: cannot read assertion {body!r}: {exc}", code="E710") from exc
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        missing = [i for i in range(n_inputs) if not (np.isfinite(lo[i]) and np.isfinite(hi[i]))]
        raise CamlangError(f"{where}: inputs {missing[:5]} have no lower/upper bound", code="E711")
    if np.any(lo > hi):
        raise CamlangError(f"{where}: the input box is empty (some X_i has lower > upper)", code="E711")
    disjuncts = []
    labels: set[int | None] = set()
    for conj in out_conj:
        rows, rhs = [], []
        for atom in conj:
            op, a, b = atom[0], atom[1], atom[2]
            try:
                ca, ka, xa = _linear(a, n_inputs, n_out)
                cb, kb, xb = _linear(b, n_inputs, n_out)
            except (ValueError, IndexError) as exc:
                raise CamlangError(f"{where}: {exc}", code="E710") from exc
            if xa or xb:
                raise CamlangError(
                    f"{where}: mixed input/output constraint {atom!r} is not supported", code="E710"
                )
            diff, k = (ca - cb)[n_inputs:], kb - ka  # a - b  (op)  0  ->  diff.y (op) k
            if op in ("<=", "<"):
                rows.append(diff)
                rhs.append(k)
            elif op in (">=", ">"):
                rows.append(-diff)
                rhs.append(-k)
            else:
                raise CamlangError(f"{where}: unsupported relation `{op}`", code="E710")
            labels.add(_label_of(rows[-1], rhs[-1]))
        if not rows:
            raise CamlangError(f"{where}: an output disjunct has no constraints", code="E710")
        disjuncts.append((np.array(rows), np.array(rhs)))
    if not disjuncts or disjuncts == [] or (len(out_conj) == 1 and not out_conj[0]):
        raise CamlangError(f"{where}: no output constraint found", code="E710")
    label = labels.pop() if len(labels) == 1 else None
    return VnnlibProperty(where, lo, hi, tuple(disjuncts), n_out, label)


def _label_of(diff: np.ndarray, k: float) -> int | None:
    """k for a stored row ``Y_k - Y_j <= 0`` (the atom ``Y_j >= Y_k``), else None."""
    nz = np.flatnonzero(diff)
    if k != 0 or len(nz) != 2:
        return None
    pos = [i for i in nz if diff[i] == 1.0]
    neg = [i for i in nz if diff[i] == -1.0]
    if len(pos) == 1 and len(neg) == 1:
        return int(pos[0])
    return None


def load_vnnlib(path: str | Path, n_inputs: int) -> VnnlibProperty:
    """Read a ``.vnnlib`` file for a network with ``n_inputs`` inputs."""
    p = Path(path)
    if not p.is_file():
        raise CamlangError(f"VNN-LIB file `{p}` not found", hint="check the path", code="E712")
    return parse_vnnlib(p.read_text(), n_inputs, str(p))
