"""Checks of error messages, shared by the input-validation tests."""

import re

import pytest


def check_message(err, argname):
    """The message names the argument and says what was received."""
    msg = str(err.value)
    assert re.search(argname, msg), msg
    assert "got" in msg, f"the message does not say what was received: {msg}"


def expect(make, argname, exc=(ValueError, TypeError)):
    """``make()`` raises ``exc`` with a message naming ``argname`` and what was received."""
    with pytest.raises(exc) as err:
        make()
    check_message(err, argname)
