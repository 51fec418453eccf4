"""The test image's initramfs: busybox, a few kernel modules, and ``/init``.

The Debian cloud kernel builds the drivers the test image needs as modules
(iso9660, the IDE/SCSI CD-ROM stack, virtio-blk, the ACPI power button, evdev),
so the initramfs carries those ``.ko`` files, their dependencies resolved from
each module's ``.modinfo`` section, and ``/init`` loads them in dependency order.

The archive is written here, not by ``cpio``: newc format, every timestamp 0 and
owner root, gzip with mtime 0, so the same inputs give the same bytes (and the
same md5/sha512 in the image service).
"""

from __future__ import annotations

import gzip
import stat
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nubis.testimage.errors import TestImageError

#: Modules the guest needs, by name; their dependencies are added automatically.
#: isofs + the CD-ROM stack read an IDE/SATA/SCSI config drive, virtio_blk reads the
#: root disk (or a config drive on virtio), button + evdev turn an ACPI power
#: button press into something ``/init`` can read, virtio_net is the guest NIC.
WANTED_MODULES: tuple[str, ...] = (
    "isofs", "cdrom", "sr_mod", "ata_piix", "virtio_pci", "virtio_blk", "virtio_scsi",
    "button", "evdev", "virtio_net",
)

#: What the test image prints on the serial console; tests and the compute service
#: look for these exact prefixes.
BOOT_LINE = "nubis-test-image booted"
READY_LINE = "nubis-test-image ready"
#: Followed by the guest's block devices (`` vda vdb``), at boot and on every change.
DISKS_LINE = "nubis-test-image disks:"
#: Kernel argument that makes the guest power itself off right after BOOT_LINE
#: (the compute host's domain-type probe uses it).
POWEROFF_ARG = "nubis.poweroff"
#: Printed once ``eth0`` has a DHCP lease (``ip=<address>``, or ``ip=none``).
IP_LINE = "nubis-test-image ip="
#: Printed with the ``uuid`` of the metadata service's ``meta_data.json``.
METADATA_LINE = "nubis-test-image metadata uuid: "
#: Ping results on the console. ``nubis-ping=<IPv4>`` in user_data: ``/init`` pings it
#: once after its lease and prints ``<IPv4>: ok`` (or ``: failed``). ``nubis-ping <IPv4>``
#: lines name peers pinged all along: ``<address> ok`` or ``<address> fail`` is printed
#: whenever one starts or stops answering.
PING_LINE = "nubis-test-image ping "
#: The user_data line that names a peer to ping (at most 8 are read).
PING_PEER = "nubis-ping "
#: First bytes of the test image's root disk; ``/init`` prints them.
DISK_MARKER = b"nubis-test-disk v1\n"

# /init runs as PID 1 under busybox sh. Every step is bounded; nothing it reads
# from the config drive is ever executed.
INIT_SCRIPT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "@BOOT_LINE@"
case " $(cat /proc/cmdline) " in
    *" @POWEROFF_ARG@ "*) sync; poweroff -f ;;
esac
while read -r ko; do insmod "/lib/modules/$ko" 2>/dev/null; done < /etc/modules

# ACPI power button -> clean power-off: block on each "Power Button" input device
# (one 24-byte input_event is enough), then sync, unmount and power off.
for ev in /sys/class/input/event*; do
    [ "$(cat "$ev/device/name" 2>/dev/null)" = "Power Button" ] || continue
    (
        dd if="/dev/input/${ev##*/}" of=/dev/null bs=24 count=1 2>/dev/null || exit 0
        echo "nubis-test-image: power button pressed, powering off"
        umount /mnt/config 2>/dev/null
        sync
        poweroff -f
    ) &
done

json_string() {  # json_string KEY FILE: the first "KEY": "value" in a one-line JSON file
    sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" "$2" | head -n 1
}

# The config drive: an ISO 9660 filesystem labelled config-2, on any bus.
dev=""
i=0
while [ $i -lt 100 ]; do
    dev=$(findfs LABEL=config-2 2>/dev/null) && break
    dev=""
    i=$((i + 1))
    usleep 100000
done
if [ -n "$dev" ] && mount -t iso9660 -o ro "$dev" /mnt/config; then
    md=/mnt/config/openstack/latest/meta_data.json
    echo "nubis-test-image config drive: $dev"
    if [ -f "$md" ]; then
        uuid=$(json_string uuid "$md")
        host=$(json_string hostname "$md")
        echo "nubis-test-image uuid: $uuid"
        echo "nubis-test-image hostname: $host"
        [ -n "$host" ] && hostname "$host"
    fi
    ud=/mnt/config/openstack/latest/user_data
    if [ -f "$ud" ]; then
        echo "nubis-test-image user_data begin"
        head -c 65536 "$ud"
        echo
        echo "nubis-test-image user_data end"
    fi
else
    echo "nubis-test-image config drive: none"
fi

for disk in /dev/vda /dev/sda; do
    if [ -b "$disk" ]; then
        echo "nubis-test-image disk $disk: $(head -c 64 "$disk" | head -n 1)"
        break
    fi
done

# Block devices: listed once now and again whenever one is hot-plugged or removed
# (a volume attached through libvirt), polled twice a second.
disks() {
    names=""
    for b in /sys/block/vd* /sys/block/sd*; do
        [ -e "$b" ] && names="$names ${b##*/}"
    done
    echo "$names"
}
seen=$(disks)
echo "@DISKS_LINE@$seen"

# Networking: a DHCP lease on eth0 (busybox udhcpc), then the metadata service.
if [ -e /sys/class/net/eth0 ]; then
    ip link set lo up
    ip link set eth0 up
    if udhcpc -i eth0 -f -q -n -t 10 -T 2 -O staticroutes -O mtu \
            -s /etc/udhcpc.script >/dev/null 2>&1; then
        addr=$(ip -4 -o addr show dev eth0 | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p' | head -n 1)
        echo "@IP_LINE@$addr"
        # busybox nc, not wget: the static busybox's wget crashes resolving a URL.
        req="GET /openstack/latest/meta_data.json HTTP/1.0"
        i=0
        while [ $i -lt 10 ]; do
            printf '%s\r\nHost: 169.254.169.254\r\n\r\n' "$req" \
                | nc -w 5 169.254.169.254 80 > /tmp/meta_data.json 2>/dev/null
            head -n 1 /tmp/meta_data.json | grep -q " 200 " && break
            rm -f /tmp/meta_data.json
            i=$((i + 1))
            sleep 1
        done
        if [ -s /tmp/meta_data.json ]; then
            echo "@METADATA_LINE@$(json_string uuid /tmp/meta_data.json)"
        else
            echo "nubis-test-image metadata: unreachable"
        fi
        target=$(sed -n 's/^nubis-ping=\([0-9.]*\)$/\1/p' \
            /mnt/config/openstack/latest/user_data 2>/dev/null | head -n 1)
        if [ -n "$target" ]; then
            r=failed
            ping -c 5 -W 2 "$target" >/dev/null 2>&1 && r=ok
            echo "@PING_LINE@$target: $r"
        fi
    else
        echo "@IP_LINE@none"
    fi
fi

# Peers to ping (network tests): the "nubis-ping <IPv4>" lines of user_data. Only a
# dotted quad is taken from a line; a result is printed when it changes.
peers=""
if [ -f /mnt/config/openstack/latest/user_data ]; then
    q='[0-9]\{1,3\}'
    peers=$(head -c 65536 /mnt/config/openstack/latest/user_data | tr -d '\r' \
        | sed -n "s/^@PING_PEER@\($q\.$q\.$q\.$q\)\$/\1/p" | head -n 8)
fi

echo "@READY_LINE@"
tick=0
while :; do
    usleep 500000
    now=$(disks)
    if [ "$now" != "$seen" ]; then
        seen=$now
        echo "@DISKS_LINE@$seen"
    fi
    tick=$((tick + 1))
    [ -n "$peers" ] && [ $((tick % 4)) -eq 0 ] || continue
    for peer in $peers; do
        if ping -c 1 -W 1 "$peer" >/dev/null 2>&1; then r=ok; else r=fail; fi
        if [ "$r" != "$(cat "/tmp/ping.$peer" 2>/dev/null)" ]; then
            echo "$r" > "/tmp/ping.$peer"
            echo "@PING_LINE@$peer $r"
        fi
    done
done
""".replace("@BOOT_LINE@", BOOT_LINE).replace("@READY_LINE@", READY_LINE).replace(
    "@POWEROFF_ARG@", POWEROFF_ARG).replace("@DISKS_LINE@", DISKS_LINE).replace(
    "@IP_LINE@", IP_LINE).replace("@METADATA_LINE@", METADATA_LINE).replace(
    "@PING_LINE@", PING_LINE).replace("@PING_PEER@", PING_PEER)

# busybox udhcpc's hook (``-s``): address, MTU, and the classless static routes
# (option 121: the metadata route via the DHCP port, the default route) or the router.
UDHCPC_SCRIPT = r"""#!/bin/busybox sh
case "$1" in
    deconfig)
        ip addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound|renew)
        ip addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
        if [ -n "$staticroutes" ]; then
            set -- $staticroutes
            while [ $# -ge 2 ]; do
                ip route add "$1" via "$2" dev "$interface" 2>/dev/null
                shift 2
            done
        elif [ -n "$router" ]; then
            for r in $router; do
                ip route add default via "$r" dev "$interface"
                break
            done
        fi
        ;;
esac
exit 0
"""


# --- kernel modules -------------------------------------------------------------

_SECTION = struct.Struct("<IIQQQQIIQQ")


def modinfo(ko: bytes) -> dict[str, str]:
    """Return the ``key=value`` pairs of a kernel module's ``.modinfo`` section.

    Reads the ELF64 little-endian section table directly, so no host tool
    (``modinfo``, ``depmod``) is needed and the host kernel does not matter.
    """
    if ko[:4] != b"\x7fELF" or ko[4] != 2 or ko[5] != 1:
        raise TestImageError("not an ELF64 little-endian kernel module")
    shoff = struct.unpack_from("<Q", ko, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ko, 0x3A)
    headers = [_SECTION.unpack_from(ko, shoff + i * shentsize) for i in range(shnum)]
    strtab_off, strtab_size = headers[shstrndx][4], headers[shstrndx][5]
    strtab = ko[strtab_off:strtab_off + strtab_size]
    for h in headers:
        name = strtab[h[0]:strtab.index(b"\0", h[0])]
        if name == b".modinfo":
            info: dict[str, str] = {}
            for item in ko[h[4]:h[4] + h[5]].split(b"\0"):
                key, sep, value = item.decode("utf-8", "replace").partition("=")
                if sep:
                    info.setdefault(key, value)
            return info
    raise TestImageError("kernel module has no .modinfo section")


def _canonical(name: str) -> str:
    return name.replace("-", "_")


def index_modules(module_dir: Path) -> dict[str, Path]:
    """Map every module name (``-`` as ``_``) under ``module_dir`` to its ``.ko`` file."""
    return {_canonical(p.name[:-3]): p for p in sorted(module_dir.rglob("*.ko"))}


def resolve_modules(wanted: Iterable[str], depends: Mapping[str, list[str]]) -> list[str]:
    """Order ``wanted`` plus everything they depend on so dependencies load first.

    ``depends`` maps a module name to the names it needs (from ``.modinfo``).
    A module missing from ``depends`` (not shipped) is an error.
    """
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = in progress, 2 = done

    def visit(name: str, chain: tuple[str, ...]) -> None:
        name = _canonical(name)
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise TestImageError(f"module dependency cycle: {' -> '.join((*chain, name))}")
        if name not in depends:
            raise TestImageError(f"kernel module {name} not found in the kernel package")
        state[name] = 1
        for dep in depends[name]:
            visit(dep, (*chain, name))
        state[name] = 2
        order.append(name)

    for name in wanted:
        visit(name, ())
    return order


def module_closure(module_dir: Path, wanted: Iterable[str]) -> list[tuple[str, Path]]:
    """Return ``(name, .ko path)`` for ``wanted`` and their dependencies, load order."""
    index = index_modules(module_dir)
    depends: dict[str, list[str]] = {}

    def deps_of(name: str) -> list[str]:
        info = modinfo(index[name].read_bytes())
        return [_canonical(d) for d in info.get("depends", "").split(",") if d]

    pending = [_canonical(n) for n in wanted]
    while pending:
        name = pending.pop()
        if name in depends or name not in index:
            continue
        depends[name] = deps_of(name)
        pending.extend(depends[name])
    return [(name, index[name]) for name in resolve_modules(wanted, depends)]


# --- cpio (newc) ----------------------------------------------------------------


@dataclass(frozen=True)
class CpioEntry:
    """One member of a newc archive: a directory, file, symlink or device node."""

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def directory(name: str) -> CpioEntry:
    """A directory entry (mode 0755)."""
    return CpioEntry(name, stat.S_IFDIR | 0o755)


def regular(name: str, data: bytes, executable: bool = False) -> CpioEntry:
    """A regular file entry (0755 if executable, else 0644)."""
    return CpioEntry(name, stat.S_IFREG | (0o755 if executable else 0o644), data)


def chardev(name: str, major: int, minor: int) -> CpioEntry:
    """A character device node (mode 0600)."""
    return CpioEntry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def write_newc(entries: Iterable[CpioEntry]) -> bytes:
    """Serialize ``entries`` (parents before children) as a newc archive with its trailer."""
    out = bytearray()
    for ino, entry in enumerate([*entries, CpioEntry("TRAILER!!!", 0)], start=1):
        name = entry.name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(entry.mode) else 1
        fields = (ino, entry.mode, 0, 0, nlink, 0, len(entry.data), 0, 0,
                  entry.rdev[0], entry.rdev[1], len(name), 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        out += header + name + _pad4(len(header) + len(name))
        out += entry.data + _pad4(len(entry.data))
    return bytes(out)


def entries(busybox: bytes, modules: list[tuple[str, bytes]]) -> list[CpioEntry]:
    """Return the initramfs members: directories, /dev/console, busybox, modules, /init."""
    dirs = ["bin", "dev", "etc", "lib", "lib/modules", "mnt", "mnt/config", "proc", "sys",
            "tmp"]
    out = [directory(d) for d in dirs]
    out.append(chardev("dev/console", 5, 1))
    out.append(regular("bin/busybox", busybox, executable=True))
    out.extend(regular(f"lib/modules/{name}.ko", data) for name, data in modules)
    listing = "".join(f"{name}.ko\n" for name, _ in modules)
    out.append(regular("etc/modules", listing.encode()))
    out.append(regular("init", INIT_SCRIPT.encode(), executable=True))
    out.append(regular("etc/udhcpc.script", UDHCPC_SCRIPT.encode(), executable=True))
    return out


def build(busybox: Path, module_dir: Path, wanted: Iterable[str] = WANTED_MODULES) -> bytes:
    """Return the gzip'd newc initramfs for ``busybox`` and the modules under ``module_dir``."""
    modules = [(name, path.read_bytes()) for name, path in module_closure(module_dir, wanted)]
    archive = write_newc(entries(busybox.read_bytes(), modules))
    return gzip.compress(archive, compresslevel=9, mtime=0)
