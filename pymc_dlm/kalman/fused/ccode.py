r"""C code of the fused log-likelihood nodes: pytensor's C backends call the kernels directly.

pytensor's C linkers (the ``"C"`` mode, whose linker needs C code for every node, and the
``"CVM"`` mode, which uses C code where a node has some) compile a C function for each node.
The fused nodes' C function fills the descriptor of :mod:`pymc_dlm.kalman.fused.native`
(address and shape of each input and output, the ``need`` mask of the gradient) and calls the
kernels' C entry point; no Python runs per call. The entry's address is fetched once, when the
compiled module is loaded (:func:`~pymc_dlm.kalman.fused.native.entry_address`), so pytensor's
cache of compiled modules stays valid across processes.

The functions return C source for the hooks of :class:`pytensor.link.c.op.COp`:
:func:`support_code` (``c_support_code_struct``), :func:`init_code` (``c_init_code_struct``)
and :func:`call_code` (``c_code``).
"""

__all__ = ["support_code", "init_code", "call_code"]


def support_code(name):
    """Declare the struct member holding the entry point of node ``name``."""
    return f"void (*entry_{name})(npy_int64);\n"


def init_code(kind, name, fail):
    """Fetch the address of entry ``kind`` ("loglik" or "loglik_grad") into the struct."""
    return f"""
    {{
        PyObject* module = PyImport_ImportModule("pymc_dlm.kalman.fused.native");
        if (module == NULL) {{ {fail} }}
        PyObject* address = PyObject_CallMethod(module, "entry_address", "s", "{kind}");
        Py_DECREF(module);
        if (address == NULL) {{ {fail} }}
        entry_{name} = (void (*)(npy_int64)) PyLong_AsVoidPtr(address);
        Py_DECREF(address);
        if (PyErr_Occurred()) {{ {fail} }}
    }}
    """


def call_code(name, inputs, ranks, outputs, out_like, fail, need_mask=None):
    """Run the entry of node ``name`` on C-contiguous views of ``inputs``.

    Parameters
    ----------
    name : str
        The node's name in the generated code.
    inputs : list of str
        C names of the input arrays, in the kernels' order (y, F, G, W, sd, m0, C0, Q, then
        ``g`` for the gradient), each float64 of rank ``ranks[i]``.
    ranks : list of int
        Rank of each input.
    outputs : list of str
        C names of the outputs. The first is the log-likelihood (length of y's first axis);
        output ``i >= 1`` has the shape of input ``out_like[i]``.
    out_like : list of int or None
        For each output, the input whose shape it takes (``None`` for the first).
    fail : str
        pytensor's failure statement.
    need_mask : int, optional
        The gradient's ``need`` bit mask; written after ``g`` when given.
    """
    n_in = len(inputs)
    size = sum(ranks) + n_in + (1 if need_mask is not None else 0) + len(outputs) + 2
    lines = [
        "{",
        f"    PyArrayObject* c_in[{n_in}] = {{NULL}};",
        f"    npy_int64 d[{size}];",
        "    int k = 0, ok = 1;",
    ]
    for i, (x, rank) in enumerate(zip(inputs, ranks, strict=True)):
        lines += [
            f"    c_in[{i}] = PyArray_GETCONTIGUOUS({x});",
            f"    if (c_in[{i}] == NULL) ok = 0;",
            "    else {",
            f"        d[k++] = (npy_int64) PyArray_DATA(c_in[{i}]);",
            *[f"        d[k++] = (npy_int64) PyArray_DIMS(c_in[{i}])[{j}];" for j in range(rank)],
            "    }",
        ]
    if need_mask is not None:
        lines.append(f"    d[k++] = {int(need_mask)};")
    for out, like in zip(outputs, out_like, strict=True):
        if like is None:
            alloc = f"PyArray_EMPTY(1, PyArray_DIMS({inputs[0]}), NPY_FLOAT64, 0)"
        else:
            src = inputs[like]
            alloc = f"PyArray_EMPTY(PyArray_NDIM({src}), PyArray_DIMS({src}), NPY_FLOAT64, 0)"
        lines += [
            f"    Py_XDECREF({out});",
            f"    {out} = ok ? (PyArrayObject*) {alloc} : NULL;",
            f"    if ({out} == NULL) ok = 0;",
            f"    else d[k++] = (npy_int64) PyArray_DATA({out});",
        ]
    lines += [
        "    d[k++] = 0;  /* the general sandwiches (no straight-line code of G here) */",
        "    d[k++] = 0;",
        f"    if (ok) entry_{name}((npy_int64) d);",
        f"    for (int i = 0; i < {n_in}; i++) Py_XDECREF(c_in[i]);",
        f"    if (!ok) {{ {fail} }}",
        "}",
    ]
    return "\n".join(lines) + "\n"
