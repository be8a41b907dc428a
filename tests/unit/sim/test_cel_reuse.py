"""Remembered CEL outcomes and shared conversions never change what an expression decides."""

from __future__ import annotations

import pytest

from repairbot_sim.kube.cel import Activation, CelEvalError, compile_expression


def test_a_rule_seen_again_on_changed_input_decides_on_the_new_input() -> None:
    program = compile_expression("self.spec.dryRun == oldSelf.spec.dryRun", ["self", "oldSelf"])
    same = {"self": {"spec": {"dryRun": True}}, "oldSelf": {"spec": {"dryRun": True}}}
    assert program.evaluate(same) is True
    assert program.evaluate(same) is True
    assert program.evaluate({"self": {"spec": {"dryRun": False}}, "oldSelf": {"spec": {"dryRun": True}}}) is False


def test_a_rule_that_failed_fails_again_with_the_same_words() -> None:
    program = compile_expression("self.missing == 1", ["self", "oldSelf"])
    with pytest.raises(CelEvalError) as first:
        program.evaluate({"self": {}, "oldSelf": None})
    with pytest.raises(CelEvalError) as second:
        program.evaluate({"self": {}, "oldSelf": None})
    assert str(first.value) == str(second.value) == "no such key: missing"


def test_an_int_and_a_double_of_the_same_value_are_different_inputs() -> None:
    program = compile_expression("self == 1", ["self"])
    assert program.evaluate({"self": 1}) is True
    with pytest.raises(CelEvalError):
        program.evaluate({"self": 1.0})  # CEL has no int == double overload


def test_a_variable_replaced_in_an_activation_is_read_anew() -> None:
    program = compile_expression("variables.node != ''", ["variables"])
    activation = Activation({"variables": {"node": "gpu-1"}})
    assert program.evaluate(activation) is True
    activation["variables"] = {"node": ""}
    assert program.evaluate(activation) is False
