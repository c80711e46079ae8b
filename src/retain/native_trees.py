"""LightGBM forests compiled to native code with llvmlite: the same predictions, several times faster.

LightGBM's own predictor walks each tree's node arrays for every row, and its Python entry point
costs tens of microseconds per call. ``compile_lightgbm`` reads a fitted booster's model text and
emits one LLVM function per tree (a branch per split, the thresholds and leaf values as constants),
plus a ``predict`` function that sums the trees in LightGBM's order and applies the objective's
output transform; llvmlite (already installed for numba and SHAP) turns that into machine code in
this process. Nothing is downloaded and no C compiler is needed.

The arithmetic is LightGBM's (``Tree::NumericalDecision``, ``Tree::Predict``, the binary sigmoid
and the multi-class softmax, in double precision, with the same libm ``exp``), so the predictions
are bit-for-bit those of ``Booster.predict``; the tests hold them equal on random, tiny, zero, NaN
and on-threshold inputs. Anything this module does not replicate (categorical splits, linear trees,
other objectives) raises ``UnsupportedModelError``, and the caller keeps LightGBM's predictor.

The native call releases the GIL, so large batches are split across threads.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import itertools
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CompiledForest", "UnsupportedForestError", "compile_lightgbm", "parse_lightgbm"]

# LightGBM's ``kZeroThreshold`` (a float literal, 1e-35f, used as a double)
_ZERO = float(np.float32(1e-35))
_CATEGORICAL_MASK = 1
_DEFAULT_LEFT_MASK = 2
_MISSING_NONE, _MISSING_ZERO, _MISSING_NAN = 0, 1, 2

_BLOCK_ROWS = 256
# bump when the generated code changes, so cached machine code is not reused
_CODEGEN_VERSION = 3

_COMPILE_TIMEOUT_S = 600

_llvm_lock = threading.RLock()
_llvm_ready = False
_closing = False


class UnsupportedForestError(ValueError):
    """The model holds something the compiler does not replicate; use LightGBM's predictor."""


@dataclass(frozen=True)
class _Tree:
    split_feature: tuple[int, ...]
    threshold: tuple[float, ...]
    decision_type: tuple[int, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    leaf_value: tuple[float, ...]


@dataclass(frozen=True)
class Forest:
    """What prediction needs from a LightGBM model text."""

    n_features: int
    n_outputs: int  # 1 for binary and regression, the class count for multi-class
    objective: str  # "binary", "multiclass" or "identity"
    sigmoid: float
    trees: tuple[_Tree, ...]


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split()) if text else ()


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split()) if text else ()


def parse_lightgbm(model_text: str) -> Forest:
    """Parse ``Booster.model_to_string()`` (every tree it holds is used).

    Raises
    ------
    UnsupportedForestError
        Categorical splits, linear trees, or an objective other than binary, multiclass (softmax)
        or a plain regression.
    """
    header, _, body = model_text.partition("\nTree=")
    fields: dict[str, str] = {}
    for line in header.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    try:
        n_class = int(fields["num_class"])
        per_iteration = int(fields["num_tree_per_iteration"])
        n_features = int(fields["max_feature_idx"]) + 1
        objective_line = fields["objective"].split()
    except (KeyError, ValueError) as exc:
        raise UnsupportedForestError(f"not a LightGBM model text: {exc}") from None
    name, options = objective_line[0], dict(o.split(":", 1) for o in objective_line[1:] if ":" in o)
    flags = {o for o in objective_line[1:] if ":" not in o}
    sigmoid = 1.0
    if name == "binary":
        objective, sigmoid = "binary", float(options.get("sigmoid", "1"))
    elif name == "multiclass":
        objective = "multiclass"
    elif name in ("regression", "regression_l1", "huber", "fair", "quantile", "mape") and "sqrt" not in flags:
        objective = "identity"
    else:
        raise UnsupportedForestError(f"objective {fields['objective']!r} is not compiled")
    if per_iteration != (n_class if objective == "multiclass" else 1):
        raise UnsupportedForestError("unexpected trees per iteration")
    trees: list[_Tree] = []
    for section in ("Tree=" + body).split("\nTree=") if body else []:
        if section.startswith("end of trees"):
            break
        values: dict[str, str] = {}
        for line in section.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip()
        if "num_leaves" not in values:
            break  # past the trees (feature importances, parameters)
        if int(values.get("num_cat", "0")) != 0:
            raise UnsupportedForestError("categorical splits are not compiled")
        if int(values.get("is_linear", "0")) != 0:
            raise UnsupportedForestError("linear trees are not compiled")
        n_leaves = int(values["num_leaves"])
        tree = _Tree(
            split_feature=_ints(values.get("split_feature", "")),
            threshold=_floats(values.get("threshold", "")),
            decision_type=_ints(values.get("decision_type", "")),
            left=_ints(values.get("left_child", "")),
            right=_ints(values.get("right_child", "")),
            leaf_value=_floats(values["leaf_value"]),
        )
        n_splits = n_leaves - 1
        if len(tree.leaf_value) != n_leaves or any(
            len(a) != n_splits
            for a in (tree.split_feature, tree.threshold, tree.decision_type, tree.left, tree.right)
        ):
            raise UnsupportedForestError("a tree's arrays do not match its leaf count")
        if any(d & _CATEGORICAL_MASK for d in tree.decision_type):
            raise UnsupportedForestError("categorical splits are not compiled")
        if any(f < 0 or f >= n_features for f in tree.split_feature):
            raise UnsupportedForestError("a split on a feature beyond max_feature_idx")
        trees.append(tree)
    if not trees or len(trees) % per_iteration:
        raise UnsupportedForestError("no trees, or an incomplete last iteration")
    n_outputs = n_class if objective == "multiclass" else 1
    return Forest(n_features, n_outputs, objective, sigmoid, tuple(trees))


# --------------------------------------------------------------------------------------------
# Code generation
# --------------------------------------------------------------------------------------------


def _hex(value: float) -> str:
    """A double as LLVM's exact hexadecimal constant."""
    return "0x" + np.float64(value).view(np.uint64).item().to_bytes(8, "big").hex().upper()


def _goes_left(threshold: float, nan_left: bool) -> tuple[str, str]:
    """``fcmp`` predicate and constant for ``zeroed(v) <= threshold``.

    LightGBM reads a dense row's values with ``|v| <= kZeroThreshold`` as 0.0, so a value in that
    band goes where 0.0 goes. ``nan_left`` says where NaN goes (the ``u`` predicates are true on
    NaN, the ``o`` ones false).
    """
    prefix = "u" if nan_left else "o"
    if threshold >= _ZERO or threshold < -_ZERO:  # the band is wholly on one side already
        return f"{prefix}le", _hex(threshold)
    if threshold >= 0.0:  # 0.0 goes left: so does the whole band
        return f"{prefix}le", _hex(_ZERO)
    return f"{prefix}lt", _hex(-_ZERO)  # 0.0 goes right: so does the whole band


def _branch(tree: _Tree, i: int, lines: list[str]) -> None:
    """The IR of split ``i``: ``Tree::NumericalDecision`` for the row's feature value."""
    decision = tree.decision_type[i]
    missing = (decision >> 2) & 3

    def target(child: int) -> str:
        return f"%l{~child}" if child < 0 else f"%n{child}"

    left, right = target(tree.left[i]), target(tree.right[i])
    default = left if decision & _DEFAULT_LEFT_MASK else right
    threshold = tree.threshold[i]
    lines.append(f"n{i}:")
    lines.append(f"  %p{i} = getelementptr double, ptr %row, i64 {tree.split_feature[i]}")
    lines.append(f"  %v{i} = load double, ptr %p{i}")
    if missing == _MISSING_NAN:  # NaN goes the default way
        lines.append(f"  %m{i} = fcmp uno double %v{i}, %v{i}")
        lines.append(f"  br i1 %m{i}, label {default}, label %s{i}")
        lines.append(f"s{i}:")
        predicate, bound = _goes_left(threshold, nan_left=False)
    elif missing == _MISSING_ZERO:  # NaN reads as 0.0; 0.0 (and the band around it) goes the default way
        lines.append(f"  %a{i} = fcmp uge double %v{i}, {_hex(-_ZERO)}")
        lines.append(f"  %b{i} = fcmp ule double %v{i}, {_hex(_ZERO)}")
        lines.append(f"  %m{i} = and i1 %a{i}, %b{i}")
        lines.append(f"  br i1 %m{i}, label {default}, label %s{i}")
        lines.append(f"s{i}:")
        predicate, bound = "ole", _hex(threshold)
    else:  # NaN reads as 0.0
        predicate, bound = _goes_left(threshold, nan_left=threshold >= 0.0)
    lines.append(f"  %c{i} = fcmp {predicate} double %v{i}, {bound}")
    lines.append(f"  br i1 %c{i}, label {left}, label {right}")


def _emit_tree(index: int, tree: _Tree, n_features: int, k: int) -> str:
    """``void tree_i(ptr x, i64 rows, ptr acc)``: acc[r * k + class] += leaf(row r), for every row.

    One tree over a block of rows keeps that tree's code in the instruction cache; each row still
    adds the trees in LightGBM's order, so the sums are the same to the last bit.
    """
    lines = [
        f"define internal void @tree_{index}(ptr noalias %x, i64 %rows, ptr noalias %acc) {{",
        "entry:",
        "  br label %head",
        "head:",
        "  %r = phi i64 [0, %entry], [%next, %add]",
        "  %more = icmp slt i64 %r, %rows",
        "  br i1 %more, label %walk, label %done",
        "done:",
        "  ret void",
        "walk:",
        f"  %offset = mul i64 %r, {n_features}",
        "  %row = getelementptr double, ptr %x, i64 %offset",
    ]
    if tree.left:
        lines.append("  br label %n0")
        leaves = [f"[{_hex(v)}, %l{j}]" for j, v in enumerate(tree.leaf_value)]
        for j in range(len(tree.leaf_value)):
            lines += [f"l{j}:", "  br label %add"]
        for i in range(len(tree.left)):
            _branch(tree, i, lines)
    else:  # a single leaf
        lines.append("  br label %add")
        leaves = [f"[{_hex(tree.leaf_value[0])}, %walk]"]
    lines += [
        "add:",
        f"  %leaf = phi double {', '.join(leaves)}",
        f"  %base = mul i64 %r, {k}",
        f"  %slot = add i64 %base, {index % k}",
        "  %sp = getelementptr double, ptr %acc, i64 %slot",
        "  %old = load double, ptr %sp",
        "  %sum = fadd double %old, %leaf",
        "  store double %sum, ptr %sp",
        "  %next = add i64 %r, 1",
        "  br label %head",
        "}",
    ]
    return "\n".join(lines)


def _emit_predict(forest: Forest) -> str:
    """``void predict(ptr x, i64 rows, ptr out)``: ``out`` holds rows * k zeros on entry."""
    k = forest.n_outputs
    lines = ["define void @predict(ptr noalias %x, i64 %rows, ptr noalias %out) {", "entry:"]
    # trees of iteration j, class c sit at j * k + c: LightGBM's order within each class
    lines += [f"  call void @tree_{i}(ptr %x, i64 %rows, ptr %out)" for i in range(len(forest.trees))]
    lines += [
        "  br label %head",
        "head:",
        "  %r = phi i64 [0, %entry], [%next, %body]",
        "  %more = icmp slt i64 %r, %rows",
        "  br i1 %more, label %body, label %done",
        "done:",
        "  ret void",
        "body:",
        f"  %base = mul i64 %r, {k}",
    ]
    for c in range(k):
        lines += [
            f"  %i{c} = add i64 %base, {c}",
            f"  %q{c} = getelementptr double, ptr %out, i64 %i{c}",
            f"  %s{c} = load double, ptr %q{c}",
        ]
    if forest.objective == "binary":  # 1.0 / (1.0 + std::exp(-sigmoid_ * input))
        lines += [
            f"  %t = fmul double {_hex(-forest.sigmoid)}, %s0",
            "  %e = call double @exp(double %t)",
            "  %d = fadd double 1.0, %e",
            "  %o0 = fdiv double 1.0, %d",
        ]
    elif forest.objective == "multiclass":  # Common::Softmax
        top = "%s0"
        for c in range(1, k):
            lines += [
                f"  %g{c} = fcmp ogt double %s{c}, {top}",
                f"  %top{c} = select i1 %g{c}, double %s{c}, double {top}",
            ]
            top = f"%top{c}"
        total = "0.0"
        for c in range(k):
            lines += [
                f"  %u{c} = fsub double %s{c}, {top}",
                f"  %e{c} = call double @exp(double %u{c})",
                f"  %w{c} = fadd double {total}, %e{c}",
            ]
            total = f"%w{c}"
        lines += [f"  %o{c} = fdiv double %e{c}, {total}" for c in range(k)]
    else:  # the raw sums are the output
        lines += ["  %next = add i64 %r, 1", "  br label %head", "}"]
        return "\n".join(lines)
    lines += [f"  store double %o{c}, ptr %q{c}" for c in range(k)]
    lines += ["  %next = add i64 %r, 1", "  br label %head", "}"]
    return "\n".join(lines)


def _emit(forest: Forest) -> str:
    """The module's LLVM IR: one function per tree and ``predict``."""
    parts = ["declare double @exp(double)"]
    parts += [_emit_tree(i, t, forest.n_features, forest.n_outputs) for i, t in enumerate(forest.trees)]
    parts.append(_emit_predict(forest))
    return "\n\n".join(parts) + "\n"


def _initialise_llvm() -> None:
    global _llvm_ready
    import llvmlite.binding as llvm

    with _llvm_lock:
        if not _llvm_ready:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _llvm_ready = True


_Native = Callable[[int, int, int], None]


class CompiledForest:
    """A LightGBM model as native code; ``predict`` equals ``Booster.predict`` (transformed output).

    Attributes
    ----------
    n_features : int
    n_outputs : int
        Columns of ``predict``'s result: 1 (binary probability, regression value) or the classes.
    digest : str
        SHA-256 of the model text it was compiled from.
    """

    def __init__(self, forest: Forest, engine: object, function: _Native, digest: str) -> None:
        self.n_features = forest.n_features
        self.n_outputs = forest.n_outputs
        self.n_trees = len(forest.trees)
        self.digest = digest
        self._engine = engine  # keeps the machine code alive
        self._function = function
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def predict(self, matrix: np.ndarray, threads: int = 1) -> np.ndarray:
        """Predictions of the rows of ``matrix`` (n, n_features): shape (n,) or (n, n_outputs).

        ``threads`` > 1 splits large inputs across threads (the native code releases the GIL).
        """
        x = np.ascontiguousarray(matrix, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix of {self.n_features} columns, got shape {x.shape}")
        n = x.shape[0]
        out = np.zeros((n, self.n_outputs), dtype=np.float64)
        parts = min(max(threads, 1), n // 256) if n >= 512 else 1
        if parts <= 1:
            self._call(x, out)
        else:
            bounds = np.linspace(0, n, parts + 1).astype(int)
            pool = self._executor(parts)
            futures = [pool.submit(self._call, x[lo:hi], out[lo:hi]) for lo, hi in itertools.pairwise(bounds)]
            for future in futures:
                future.result()
        return out[:, 0] if self.n_outputs == 1 else out

    def _call(self, x: np.ndarray, out: np.ndarray) -> None:
        # blocks of rows small enough to stay in the data cache while every tree passes over them
        for start in range(0, len(x), _BLOCK_ROWS):
            block = x[start : start + _BLOCK_ROWS]
            self._function(block.ctypes.data, len(block), out[start : start + _BLOCK_ROWS].ctypes.data)

    def _executor(self, threads: int) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None or self._pool._max_workers < threads:
                self._pool = ThreadPoolExecutor(threads, thread_name_prefix="retain-forest")
            return self._pool

    def __getstate__(self) -> dict[str, object]:
        raise TypeError("a CompiledForest holds machine code; pickle the booster and compile again")


def _target_machine() -> object:
    import llvmlite.binding as llvm

    _initialise_llvm()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(
        cpu=llvm.get_host_cpu_name(),
        features=llvm.get_host_cpu_features().flatten(),  # what this CPU (or VM) really offers
        opt=2,
        codemodel="jitdefault",
    )


def _object_code(forest: Forest) -> bytes:
    """Machine code of the forest (runs in the compiling child process)."""
    import llvmlite.binding as llvm

    module = llvm.parse_assembly(_emit(forest))
    module.verify()
    return bytes(_target_machine().emit_object(module))  # type: ignore[attr-defined]


def _compile_in_child(model_text: str) -> bytes:
    """Compile in a child process: LLVM's memory (hundreds of MB for a large forest) and CPU
    stay out of the caller, a crash there cannot take a server down, and a caller that exits
    meanwhile leaves nothing half-done in its own LLVM state."""
    with tempfile.TemporaryDirectory(prefix="retain-forest-") as tmp:
        source, target = Path(tmp) / "model.txt", Path(tmp) / "forest.o"
        source.write_text(model_text, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "retain.native_trees", str(source), str(target)],
            capture_output=True,
            text=True,
            timeout=_COMPILE_TIMEOUT_S,
            env={**os.environ, "PYTHONHASHSEED": "0"},
            check=False,
        )
        if done.returncode != 0 or not target.is_file():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UnsupportedForestError(f"the compiler process failed ({done.returncode}): {last}")
        return target.read_bytes()


def cache_key(model_text: str) -> str:
    """What the machine code depends on: the model, this CPU and the LLVM version."""
    import llvmlite
    import llvmlite.binding as llvm

    _initialise_llvm()
    h = hashlib.sha256(model_text.encode("utf-8"))
    h.update(f"|{llvm.get_process_triple()}|{llvm.get_host_cpu_name()}".encode())
    h.update(f"|{llvm.get_host_cpu_features().flatten()}|llvmlite {llvmlite.__version__}".encode())
    h.update(f"|codegen {_CODEGEN_VERSION}".encode())
    return h.hexdigest()


def _read_cached(path: Path) -> bytes | None:
    """Cached machine code, or ``None`` when absent or damaged (its checksum is checked first:
    damaged machine code is never executed)."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    digest, code = blob[:32], blob[32:]
    return code if len(blob) > 32 and hashlib.sha256(code).digest() == digest else None


def _write_cached(path: Path, code: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        partial.write_bytes(hashlib.sha256(code).digest() + code)
        partial.replace(path)  # atomic: a concurrent reader sees all of it or nothing
    except OSError:
        pass  # a read-only or full disk only costs the next process a compilation


def _load(code: bytes) -> tuple[object, _Native]:
    """Link machine code into this process; its own LLVM context, under the module lock."""
    import llvmlite.binding as llvm

    with _llvm_lock:
        if _closing:
            raise UnsupportedForestError("the process is exiting")
        target = _target_machine()
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly("", context=llvm.create_context()), target)
        engine.add_object_file(llvm.ObjectFileRef.from_data(code))
        engine.finalize_object()
        address = engine.get_function_address("predict")
    if not address:
        raise UnsupportedForestError("the compiled code has no predict function")
    return engine, ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p)(address)


@atexit.register
def _close() -> None:
    """Let a load in progress finish and start none after: LLVM's global state is torn down at exit."""
    global _closing
    if _llvm_lock.acquire(timeout=10):
        _closing = True
        _llvm_lock.release()


def compile_lightgbm(model_text: str, cache_dir: Path | None = None) -> CompiledForest:
    """Compile a LightGBM model text (``Booster.model_to_string()``) to native code.

    The compilation runs in a child process (seconds for hundreds of trees); the machine code is
    then linked into this one.

    Parameters
    ----------
    model_text : str
    cache_dir : Path, optional
        Where machine code is kept by ``cache_key``: a second process loading the same model on
        the same kind of CPU skips the compilation.

    Raises
    ------
    UnsupportedForestError
        When the model holds something the compiler does not replicate, or compiling failed.
    """
    forest = parse_lightgbm(model_text)
    key = cache_key(model_text)
    cached = cache_dir / f"{key}.o" if cache_dir is not None else None
    code = _read_cached(cached) if cached is not None else None
    if code is None:
        code = _compile_in_child(model_text)
        if cached is not None:
            _write_cached(cached, code)
    engine, function = _load(code)
    return CompiledForest(forest, engine, function, key)


def main(argv: list[str] | None = None) -> int:
    """``python -m retain.native_trees MODEL.txt OUT.o``: the compiling child process."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m retain.native_trees MODEL.txt OUT.o", file=sys.stderr)
        return 2
    source, target = Path(args[0]), Path(args[1])
    code = _object_code(parse_lightgbm(source.read_text(encoding="utf-8")))
    partial = target.with_suffix(".partial")
    partial.write_bytes(code)
    partial.replace(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
