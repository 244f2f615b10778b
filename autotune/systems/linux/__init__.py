"""Linux kernel parameters: sysctls under /proc/sys and files under /sys (``applier: linux``)."""

from autotune.spec import Spec
from autotune.systems._registry import Target, register, register_formats
from autotune.systems.linux._journal import default_journal_dir, journal_name
from autotune.systems.linux._render import FORMATS
from autotune.systems.linux._system import DEFAULT_DEVICES, LinuxSystem


def _make(spec: Spec, target: Target) -> LinuxSystem:
    return LinuxSystem(spec, root=target.root, journal_dir=target.journal_dir)


register("linux", _make)
register_formats("linux", FORMATS)

__all__ = ["DEFAULT_DEVICES", "LinuxSystem", "default_journal_dir", "journal_name"]
