r"""C code of the fused log-likelihood nodes: pytensor's C backends call the kernels directly.

pytensor's C linkers (the ``"C"`` mode, whose linker needs C code for every node, and the
``"CVM"`` mode, which uses C code where a node has some) compile a C function for each node.
The fused nodes' C function fills the descriptor declared in
:mod:`pymc_dlm.kalman.fused.layout` (address and shape of each input, the ``need`` mask of
the gradient, the address of each output) and calls the
kernels' C entry point; no Python runs per call. The entry's address is fetched once, when the
compiled module is loaded (:func:`~pymc_dlm.kalman.fused.native.entry_address`), so pytensor's
cache of compiled modules stays valid across processes.

The functions return C source for the hooks of :class:`pytensor.link.c.op.COp`:
:func:`support_code` (``c_support_code_struct``), :func:`init_code` (``c_init_code_struct``)
and :func:`call_code` (``c_code``).
"""

from pymc_dlm.kalman.fused import layout

__all__ = ["support_code", "init_code", "call_code"]


def support_code(name):
    """Declare the struct member holding the entry point of node ``name``."""
    return f"void (*entry_{name})(npy_int64);\n"


def init_code(name, fail):
    """Fetch the address of the kernels' entry into the struct."""
    return f"""
    {{
        PyObject* module = PyImport_ImportModule("pymc_dlm.kalman.fused.native");
        if (module == NULL) {{ {fail} }}
        PyObject* address = PyObject_CallMethod(module, "entry_address", NULL);
        Py_DECREF(module);
        if (address == NULL) {{ {fail} }}
        entry_{name} = (void (*)(npy_int64)) PyLong_AsVoidPtr(address);
        Py_DECREF(address);
        if (PyErr_Occurred()) {{ {fail} }}
    }}
    """


def call_code(name, inputs, ranks, outputs, fail, need_mask):
    """Run the entry of node ``name`` on C-contiguous views of ``inputs``.

    The descriptor is :data:`pymc_dlm.kalman.fused.layout.GRAD`. A value node passes the
    kernels' inputs without the cotangent and the log-likelihood as its only output, with
    ``need_mask`` 0: the cotangent is then a local zero and the gradients' addresses null
    (the entry writes no gradient when none is wanted).

    Parameters
    ----------
    name : str
        The node's name in the generated code.
    inputs : list of str
        C names of the input arrays, in the descriptor's order, each float64.
    ranks : list of int
        Rank of each input (the node's), checked against the descriptor.
    outputs : list of str
        C names of the outputs, in the descriptor's order.
    fail : str
        pytensor's failure statement.
    need_mask : int
        The gradient's ``need`` bit mask.
    """
    descriptor = layout.GRAD
    expected = [slot.rank for slot in descriptor.inputs]
    value_only = need_mask == 0 and len(inputs) == len(layout.INPUTS) and len(outputs) == 1
    if value_only:
        expected = expected[: len(layout.INPUTS)]
    elif len(outputs) != len(descriptor.outputs):
        n_out = len(descriptor.outputs)
        raise TypeError(f"the kernels' entry writes {n_out} outputs, not {len(outputs)}")
    if list(ranks) != expected:
        raise TypeError(f"the kernels' entry takes inputs of ranks {expected}, not {ranks}")
    n_in = len(inputs)
    lines = [
        "{",
        f"    PyArrayObject* c_in[{n_in}] = {{NULL}};",
        f"    npy_int64 d[{descriptor.size}] = {{0}};",
        "    double no_cotangent = 0.0;",
        "    int ok = 1;",
    ]
    for i, (x, slot) in enumerate(zip(inputs, descriptor.inputs)):
        k = descriptor.offset(slot.name)
        lines += [
            f"    c_in[{i}] = PyArray_GETCONTIGUOUS({x});",
            f"    if (c_in[{i}] == NULL) ok = 0;",
            "    else {",
            f"        d[{k}] = (npy_int64) PyArray_DATA(c_in[{i}]);",
            *[
                f"        d[{k + 1 + j}] = (npy_int64) PyArray_DIMS(c_in[{i}])[{j}];"
                for j in range(slot.rank)
            ],
            "    }",
        ]
    if value_only:
        k = descriptor.offset(layout.COTANGENT.name)
        lines += [f"    d[{k}] = (npy_int64) &no_cotangent;", f"    d[{k + 1}] = 1;"]
    lines.append(f"    d[{descriptor.need_at}] = {int(need_mask)};")
    for out, out_name, like in zip(outputs, descriptor.outputs, descriptor.out_like):
        if like is None:
            alloc = f"PyArray_EMPTY(1, PyArray_DIMS({inputs[0]}), NPY_FLOAT64, 0)"
        else:
            src = inputs[like]
            alloc = f"PyArray_EMPTY(PyArray_NDIM({src}), PyArray_DIMS({src}), NPY_FLOAT64, 0)"
        lines += [
            f"    Py_XDECREF({out});",
            f"    {out} = ok ? (PyArrayObject*) {alloc} : NULL;",
            f"    if ({out} == NULL) ok = 0;",
            f"    else d[{descriptor.offset(out_name)}] = (npy_int64) PyArray_DATA({out});",
        ]
    lines += [
        "    /* the general sandwiches (no straight-line code of G here): zeros */",
        f"    if (ok) entry_{name}((npy_int64) d);",
        f"    for (int i = 0; i < {n_in}; i++) Py_XDECREF(c_in[i]);",
        f"    if (!ok) {{ {fail} }}",
        "}",
    ]
    return "\n".join(lines) + "\n"
