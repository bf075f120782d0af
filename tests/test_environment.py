"""msr_lib.environment: where generated data goes and which torch device a command runs on."""
import pytest
import torch

from msr_lib.environment import data_dir, resolve_device
from msr_lib.errors import MSRError


def test_data_dir_follows_the_variable_then_the_checkout_then_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MSR_DATA_DIR", str(tmp_path / "mine"))
    assert data_dir() == tmp_path / "mine"
    monkeypatch.delenv("MSR_DATA_DIR")
    checkout = tmp_path / "checkout"
    (checkout / "msr_lib").mkdir(parents=True)
    (checkout / "data").mkdir()
    (checkout / "notebooks").mkdir()
    monkeypatch.chdir(checkout / "notebooks")
    assert data_dir() == checkout / "data" / "generated"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".cache" / "msr_workbench"


def test_resolve_device_auto_cpu_and_one_line_errors():
    expected = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("auto") == resolve_device(None) == expected
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(MSRError, match="unknown device 'nonsense'") as info:
        resolve_device("nonsense")
    assert "\n" not in str(info.value)
    if not torch.cuda.is_available():
        with pytest.raises(MSRError, match="CUDA is not available"):
            resolve_device("cuda")
