"""Array access without numba's wraparound of negative indices, for hot loops.

numba turns ``a[i]`` with a signed ``i`` into ``a[i + len(a)]`` when ``i < 0``. Where the index
comes from data (a pool number, a day from a time, a patient from an order), LLVM cannot prove
it non-negative and keeps that select in the loop (it made the thinning loop 1.8x slower).
:func:`load` and :func:`store` read and write ``a[i]`` with no check at all: callers use them
only where every index is in ``[0, len(a))`` by construction, and say why.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

__all__ = ["load", "store"]


@intrinsic
def load(typingctx, arr, i):
    """``arr[i]`` for 0 <= i < len(arr), without the wraparound of negative indices."""
    def codegen(context, builder, signature, args):
        a = context.make_array(signature.args[0])(context, builder, value=args[0])
        idx = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = builder.gep(a.data, [idx], inbounds=True)
        return context.unpack_value(builder, signature.return_type, ptr)  # bool: i8 -> i1
    return arr.dtype(arr, i), codegen


@intrinsic
def store(typingctx, arr, i, v):
    """``arr[i] = v`` for 0 <= i < len(arr), without the wraparound of negative indices."""
    def codegen(context, builder, signature, args):
        a = context.make_array(signature.args[0])(context, builder, value=args[0])
        idx = context.cast(builder, args[1], signature.args[1], types.intp)
        val = context.cast(builder, args[2], signature.args[2], signature.args[0].dtype)
        context.pack_value(builder, signature.args[0].dtype, val,
                           builder.gep(a.data, [idx], inbounds=True))
        return context.get_dummy_value()
    return types.void(arr, i, v), codegen
