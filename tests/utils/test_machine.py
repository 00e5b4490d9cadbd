"""The CPU name recorded by benchmarks and the study."""

from pathlib import Path

from espnet_msrs.utils import machine


def test_cpu_model_is_the_model_name_of_proc_cpuinfo():
    names = [line.split(":", 1)[1].strip()
             for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("model name")]
    assert machine.cpu_model() == names[0]


def test_without_proc_cpuinfo_the_platform_answers(monkeypatch):
    def unreadable(self, *args, **kwargs):
        raise OSError("no /proc")

    monkeypatch.setattr(Path, "read_text", unreadable)
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    monkeypatch.setattr(machine.platform, "machine", lambda: "riscv64")
    assert machine.cpu_model() == "riscv64"
