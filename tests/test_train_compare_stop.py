"""Ctrl-C / SIGTERM during the main comparison ends the whole job (not only one method's run)."""

import pytest

import train.__main__ as cli
from train import compare as compare_lib
from train import trainer
from train.errors import RunStopped


def _fake_train(stop_at_method, signal_name, calls):
    def fake(config, workdir, *, desc, **kwargs):
        calls.append(desc)
        stopped = desc == stop_at_method
        return trainer.Result(state={"step": 7}, metrics={} if stopped else {"accuracy": 0.5}, num_params=10,
                              step_time=0.01, steps_run=7, resumed_from=None, stopped=stopped,
                              stopped_by=signal_name if stopped else "")

    return fake


@pytest.mark.parametrize("signal_name, code", [("SIGINT", 130), ("SIGTERM", 0)])
def test_a_stopped_run_ends_the_comparison(monkeypatch, capsys, signal_name, code):
    calls = []
    monkeypatch.setattr(compare_lib, "preflight", lambda config, workdir: None)
    monkeypatch.setattr(trainer, "train", _fake_train("filtermap", signal_name, calls))
    with pytest.raises(RunStopped) as info:
        compare_lib.compare(["dense", "filtermap", "basis"], workdir="runs/x")
    assert calls == ["dense", "filtermap"]  # basis never started
    assert info.value.signal_name == signal_name and "'filtermap' at step 7" in str(info.value)

    calls.clear()
    assert cli.main(["--methods", "dense,filtermap,basis", "--workdir", "runs/x"]) == code
    assert calls == ["dense", "filtermap"]
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith(f"comparison stopped by {signal_name}") and "--workdir runs/x" in out[-1]
