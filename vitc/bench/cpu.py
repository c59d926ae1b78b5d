"""What machine this is: CPU model, its kind (vendor, microarchitecture class, ISA), flags and load.

Every benchmark table names the CPU it ran on, and committed results are kept per CPU kind
(benchmarks/results/<kind>/), because the same code is fast or slow depending on the instructions the
CPU has. Reads /proc/cpuinfo; nothing here measures.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Environment variables that change which OpenBLAS kernels run (some machines set them globally): the
# report names them, since the OpenBLAS core type decides vitc's float32 GEMM speed.
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE")

# /proc/cpuinfo flags of the instructions the kernels use, in the order of the ISA tiers.
AMX_FLAGS = ("amx_tile", "amx_bf16", "amx_int8")


@dataclass(frozen=True)
class CpuInfo:
    model_name: str
    vendor: str  # "AMD", "Intel" or what cpuinfo says
    family: int | None
    model: int | None
    isa: str  # "amx", "avx512", "avx2" or "baseline": the best vector ISA the CPU reports
    microarch: str  # e.g. "Zen 2 class (family 23)", "" when unknown
    kind: str  # slug for results folders, e.g. "amd-zen2-avx2", "intel-amx"
    description: str  # one line for the tables
    flags: tuple[str, ...]
    logical_cpus: int

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flags"] = [f for f in self.flags if f.startswith(("avx", "amx", "fma", "f16c"))]
        return d


def _cpuinfo_fields(text: str) -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _amd_microarch(family: int | None, model: int | None) -> tuple[str, str]:
    """(slug, name) of an AMD CPU from its family/model (AMD's published family numbers)."""
    if family == 23:  # Zen, Zen+, Zen 2; virtual machines often report a made-up model number
        return "zen2", "Zen / Zen+ / Zen 2 class (family 23)"
    if family == 25:
        zen4 = model is not None and (0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or 0xA0 <= model <= 0xAF)
        return ("zen4", "Zen 4 (family 25)") if zen4 else ("zen3", "Zen 3 (family 25)")
    if family == 26:
        return "zen5", "Zen 5 (family 26)"
    return (f"f{family}" if family is not None else "unknown"), (f"family {family}" if family is not None else "")


def isa_of(flags: set[str] | frozenset[str] | tuple[str, ...]) -> str:
    flags = set(flags)
    if {"amx_tile", "amx_bf16"} <= flags or {"amx_tile", "amx_int8"} <= flags:
        return "amx"
    if "avx512f" in flags:
        return "avx512"
    if {"avx2", "fma"} <= flags:
        return "avx2"
    return "baseline"


ISA_TEXT = {
    "amx": "AVX-512 + AMX",
    "avx512": "AVX-512, no AMX",
    "avx2": "AVX2, no AVX-512",
    "baseline": "no AVX2",
}


def cpu_info(cpuinfo_text: str | None = None) -> CpuInfo:
    """This machine's CPU (or the one described by ``cpuinfo_text``, for tests)."""
    if cpuinfo_text is None:
        try:
            cpuinfo_text = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo_text = ""
    f = _cpuinfo_fields(cpuinfo_text)
    flags = tuple(f.get("flags", "").split())
    vendor_id = f.get("vendor_id", "")
    vendor = {"AuthenticAMD": "AMD", "GenuineIntel": "Intel"}.get(vendor_id, vendor_id or platform.machine())
    family = int(f["cpu family"]) if f.get("cpu family", "").isdigit() else None
    model = int(f["model"]) if f.get("model", "").isdigit() else None
    isa = isa_of(flags)
    extras = []
    if isa in ("avx512", "amx"):
        extras += [name for flag, name in (("avx512_bf16", "BF16"), ("avx512_vnni", "VNNI")) if flag in flags]
    if vendor == "AMD":
        arch_slug, microarch = _amd_microarch(family, model)
        kind = f"amd-{arch_slug}-{isa}"
    else:
        microarch = f"family {family} model {model}" if family is not None else ""
        kind = f"{vendor.lower() or 'cpu'}-{isa}"
    model_name = f.get("model name") or platform.processor() or platform.machine()
    isa_text = ISA_TEXT[isa] + (f" ({', '.join(extras)})" if extras else "")
    description = ", ".join(x for x in (model_name, microarch, isa_text) if x)
    return CpuInfo(
        model_name=model_name,
        vendor=vendor,
        family=family,
        model=model,
        isa=isa,
        microarch=microarch,
        kind=kind,
        description=description,
        flags=flags,
        logical_cpus=os.cpu_count() or 1,
    )


def load_average() -> tuple[float, float, float] | None:
    """1, 5 and 15 minute load averages (what ``uptime`` prints), None where the OS has none."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def openblas_env() -> dict[str, str]:
    """The OpenBLAS variables set in this environment (they select its kernels)."""
    return {k: os.environ[k] for k in OPENBLAS_ENV if k in os.environ}


def _proc_stat_cpu() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat's first line; None without /proc."""
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - idle, total


class OthersShare:
    """How much of the machine other processes used while a block ran: (all CPUs' busy time - this
    process's CPU time) / (all CPUs' time). 0 on an otherwise idle machine; 0.5 on 2 CPUs means one
    whole CPU went to someone else. ``share`` is None where /proc/stat is missing."""

    def __enter__(self) -> OthersShare:
        self._stat, self._self = _proc_stat_cpu(), sum(os.times()[:2])
        self.share: float | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        end = _proc_stat_cpu()
        if self._stat is None or end is None:
            return
        hz = os.sysconf("SC_CLK_TCK")
        busy, total = (end[0] - self._stat[0]) / hz, (end[1] - self._stat[1]) / hz
        mine = sum(os.times()[:2]) - self._self
        if total > 0:
            self.share = min(max((busy - mine) / total, 0.0), 1.0)


def busy_share(seconds: float) -> float | None:
    """Share of all CPUs busy over the next ``seconds`` (this process sleeps meanwhile, so it is the
    others' share); None without /proc/stat."""
    start = _proc_stat_cpu()
    time.sleep(seconds)
    end = _proc_stat_cpu()
    if start is None or end is None or end[1] <= start[1]:
        return None
    return min(max((end[0] - start[0]) / (end[1] - start[1]), 0.0), 1.0)


def wait_for_quiet(max_wait: float, threshold: float = 0.25, window: float = 2.0) -> tuple[float, float | None]:
    """Sleep until the others' share of the CPUs over ``window`` seconds is at most ``threshold`` (0.25:
    half a core of 2), or ``max_wait`` seconds have passed. Returns (seconds waited, the last share).

    On a shared machine a run that starts while someone else's test suite holds the cores measures
    that suite, not the engine; waiting for a quiet moment (and reporting the wait and the share) is
    cheaper than a second round."""
    t0 = time.monotonic()
    share = None
    while True:
        share = busy_share(window)
        waited = time.monotonic() - t0
        if share is None or share <= threshold or waited >= max_wait:
            return waited, share
