"""Arrays handed to inlined functions in the engine's hot loop without their reference count.

numba increments and decrements an array's count (atomically) each time one is passed to an
inlined function, and cannot always prune the pairs: in the event loop they cost about 5% of
the engine's time.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic


@intrinsic
def borrowed(typingctx, arr):
    """``arr`` with a NULL meminfo: the same memory, shape and strides, and no count. Valid only
    while ``arr`` itself is alive: an argument of the caller, or an array its loop also uses."""
    def codegen(context, builder, signature, args):
        src = context.make_array(signature.args[0])(context, builder, value=args[0])
        out = context.make_array(signature.return_type)(context, builder)
        out.meminfo = context.get_constant_null(types.MemInfoPointer(types.voidptr))
        out.parent = src.parent
        out.nitems = src.nitems
        out.itemsize = src.itemsize
        out.data = src.data
        out.shape = src.shape
        out.strides = src.strides
        return out._getvalue()
    return arr(arr), codegen
