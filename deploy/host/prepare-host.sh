#!/usr/bin/env bash
# Prepares a Linux host for statewall's fast path. Idempotent; changes nothing unless
# --apply is given.
#
#   prepare-host.sh [--check | --apply] [options]
#     (default)        dry run: print what would be done
#     --check          report the host's state; exit 1 if something required is missing
#     --apply          do it (root)
#   options:
#     --hugepages N          2 MiB hugepages to reserve (default 1024 = 2 GiB; 0 = skip)
#     --hugepages-node N     reserve on this NUMA node only (default: system-wide)
#     --hugepages-group G    group that may create hugepage files (non-root DPDK)
#     --worker-cores LIST    worker cores, e.g. 2,3 or 2-5 (for the isolation advice)
#     --vfio PCI             bind this NIC (e.g. 0000:3b:00.0) to vfio-pci for DPDK;
#                            repeatable. Unbinds it from its kernel driver: the interface
#                            disappears from the kernel. Only with --apply.
#     --vfio-owner USER      chown the NIC's /dev/vfio/<group> to USER (non-root DPDK)
#     --iface IF             af_packet/af_xdp interface: up, promiscuous, GRO/LRO off;
#                            repeatable
#     --persist              also write /etc/sysctl.d/90-statewall.conf and
#                            /etc/modules-load.d/statewall.conf
#
# What it never does: edit the kernel command line (it prints the line to add), reboot,
# or touch an interface not named on the command line.
set -euo pipefail

MODE=dry HUGEPAGES=1024 HP_NODE="" HP_GROUP="" WORKER_CORES="" PERSIST=0 VFIO_OWNER=""
VFIO_DEVS=() IFACES=()
while [ $# -gt 0 ]; do
    case "$1" in
        --check) MODE=check ;;
        --apply) MODE=apply ;;
        --dry-run) MODE=dry ;;
        --hugepages) HUGEPAGES=$2; shift ;;
        --hugepages-node) HP_NODE=$2; shift ;;
        --hugepages-group) HP_GROUP=$2; shift ;;
        --worker-cores) WORKER_CORES=$2; shift ;;
        --vfio) VFIO_DEVS+=("$2"); shift ;;
        --vfio-owner) VFIO_OWNER=$2; shift ;;
        --iface) IFACES+=("$2"); shift ;;
        --persist) PERSIST=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "prepare-host.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$MODE" = apply ] && [ "$(id -u)" != 0 ]; then
    echo "prepare-host.sh: --apply needs root" >&2; exit 2
fi

SYS=${STATEWALL_SYSFS:-/sys}     # overridable for tests
PROC=${STATEWALL_PROCFS:-/proc}
problems=0
say()  { printf '%s\n' "$*"; }
ok()   { printf '  ok    %s\n' "$*"; }
warn() { printf '  WARN  %s\n' "$*"; }
bad()  { printf '  MISS  %s\n' "$*"; problems=$((problems + 1)); }
# do_cmd: run (apply), print (dry), or nothing (check)
do_cmd() {
    case "$MODE" in
        apply) printf '  run   %s\n' "$*"; "$@" ;;
        dry)   printf '  would %s\n' "$*" ;;
        check) : ;;
    esac
}
write_file() { # path content
    case "$MODE" in
        apply) printf '  write %s\n' "$1"; printf '%s\n' "$2" > "$1" ;;
        dry)   printf '  would write %s:\n%s\n' "$1" "$(printf '%s\n' "$2" | sed 's/^/          /')" ;;
        check) : ;;
    esac
}

# ---------------------------------------------------------------------------------------
say "== hugepages (dpdk; af_xdp and af_packet do not need them)"
hp_dir=$SYS/kernel/mm/hugepages/hugepages-2048kB
[ -n "$HP_NODE" ] && hp_dir=$SYS/devices/system/node/node$HP_NODE/hugepages/hugepages-2048kB
if [ "$HUGEPAGES" = 0 ]; then
    say "  skipped (--hugepages 0)"
elif [ ! -e "$hp_dir/nr_hugepages" ]; then
    bad "no 2 MiB hugepage support at $hp_dir"
else
    have=$(cat "$hp_dir/nr_hugepages")
    if [ "$have" -ge "$HUGEPAGES" ]; then
        ok "$have hugepages of 2 MiB reserved (want $HUGEPAGES)"
    else
        [ "$MODE" = check ] && bad "$have hugepages of 2 MiB reserved, want $HUGEPAGES"
        do_cmd sh -c "echo $HUGEPAGES > $hp_dir/nr_hugepages"
        if [ "$MODE" = apply ] && [ "$(cat "$hp_dir/nr_hugepages")" -lt "$HUGEPAGES" ]; then
            warn "only $(cat "$hp_dir/nr_hugepages") reserved (memory fragmented): reserve at boot with hugepages=$HUGEPAGES on the kernel command line"
        fi
    fi
    if grep -qs ' /dev/hugepages hugetlbfs ' "$PROC/mounts"; then
        ok "hugetlbfs mounted on /dev/hugepages"
    else
        [ "$MODE" = check ] && bad "hugetlbfs not mounted on /dev/hugepages"
        do_cmd mkdir -p /dev/hugepages
        do_cmd mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages
    fi
    if [ -n "$HP_GROUP" ]; then
        do_cmd chgrp "$HP_GROUP" /dev/hugepages
        do_cmd chmod 1770 /dev/hugepages
    fi
    if [ $PERSIST = 1 ]; then
        say "  persist: add hugepages=$HUGEPAGES to the kernel command line (reserved before memory fragments); systemd mounts /dev/hugepages (dev-hugepages.mount)"
    fi
fi

# ---------------------------------------------------------------------------------------
say "== memlock limit"
ml=$(ulimit -l)
if [ "$ml" = unlimited ]; then ok "RLIMIT_MEMLOCK unlimited in this shell"
else warn "RLIMIT_MEMLOCK is $ml KiB in this shell; statewall.service sets LimitMEMLOCK=infinity (outside systemd: ulimit -l unlimited)"; fi

# ---------------------------------------------------------------------------------------
say "== CPU isolation for worker cores (printed, never applied)"
if [ -z "$WORKER_CORES" ]; then
    say "  pass --worker-cores (the [dataplane].cores of your config) for exact advice"
else
    cmdline=$(cat "$PROC/cmdline" 2>/dev/null || true)
    for p in isolcpus nohz_full rcu_nocbs; do
        if printf '%s' "$cmdline" | grep -qw "$p=[^ ]*"; then
            ok "$(printf '%s' "$cmdline" | grep -o "$p=[^ ]*")"
        else
            warn "$p not set"
        fi
    done
    say "  add to GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot:"
    say "    isolcpus=managed_irq,domain,$WORKER_CORES nohz_full=$WORKER_CORES rcu_nocbs=$WORKER_CORES irqaffinity=0-1 intel_iommu=on iommu=pt${HUGEPAGES:+ hugepages=$HUGEPAGES}"
    say "  (irqaffinity: housekeeping cores; intel_iommu/amd_iommu + iommu=pt only for dpdk/vfio)"
fi
say "  NUMA: keep worker cores on the NIC's node:"
for ifc in "${IFACES[@]}"; do
    n=$(cat "$SYS/class/net/$ifc/device/numa_node" 2>/dev/null || echo "?")
    say "    $ifc: numa_node=$n  (cores: $(cat "$SYS/devices/system/node/node${n#-}/cpulist" 2>/dev/null || echo unknown))"
done
for dev in "${VFIO_DEVS[@]}"; do
    say "    $dev: numa_node=$(cat "$SYS/bus/pci/devices/$dev/numa_node" 2>/dev/null || echo "?")"
done

# ---------------------------------------------------------------------------------------
say "== sysctls (af_packet/af_xdp socket buffers and busy polling)"
SYSCTLS="net.core.rmem_max=67108864
net.core.wmem_max=67108864
net.core.netdev_max_backlog=250000
net.core.busy_poll=50
net.core.busy_read=50"
sysctl_conf=""
while IFS='=' read -r k v; do
    f=$PROC/sys/${k//.//}
    cur=$(cat "$f" 2>/dev/null || echo "?")
    if [ "$cur" = "?" ]; then warn "$k not available"; continue; fi
    if [ "$cur" -ge "$v" ] 2>/dev/null; then ok "$k = $cur (want >= $v)"
    else
        [ "$MODE" = check ] && warn "$k = $cur (recommended >= $v)"
        do_cmd sysctl -q -w "$k=$v"
    fi
    sysctl_conf+="$k = $v"$'\n'
done <<< "$SYSCTLS"
[ $PERSIST = 1 ] && write_file /etc/sysctl.d/90-statewall.conf "# statewall fast path (prepare-host.sh)
$sysctl_conf"

# ---------------------------------------------------------------------------------------
say "== af_packet / af_xdp interfaces"
for ifc in "${IFACES[@]}"; do
    if [ ! -e "$SYS/class/net/$ifc" ]; then bad "interface $ifc does not exist"; continue; fi
    drvlink=$(readlink "$SYS/class/net/$ifc/device/driver" 2>/dev/null || true)
    ok "interface $ifc exists (driver ${drvlink:+$(basename "$drvlink")}${drvlink:-none/virtual})"
    do_cmd ip link set dev "$ifc" up promisc on
    if command -v ethtool >/dev/null 2>&1; then
        do_cmd ethtool -K "$ifc" gro off lro off
    else
        warn "ethtool not installed: cannot turn GRO/LRO off on $ifc (apt-get install ethtool)"
    fi
done
say "  af_xdp needs: kernel >= 5.10 (zero-copy needs driver support: ice, i40e, mlx5, ...),"
say "  CAP_BPF/CAP_NET_ADMIN/CAP_NET_RAW (statewall.service.d/af_xdp.conf.example),"
say "  as many combined channels as workers: ethtool -L IF combined N"
kver=$(uname -r); kmaj=${kver%%.*}; kmin=${kver#*.}; kmin=${kmin%%.*}
if [ "$kmaj" -gt 5 ] || { [ "$kmaj" = 5 ] && [ "$kmin" -ge 10 ]; }; then ok "kernel $kver (AF_XDP ok)"; else warn "kernel $kver: AF_XDP needs >= 5.10"; fi

# ---------------------------------------------------------------------------------------
say "== vfio-pci (dpdk)"
if [ ${#VFIO_DEVS[@]} = 0 ]; then
    say "  no --vfio device given"
else
    if [ -d "$SYS/kernel/iommu_groups" ] && [ -n "$(ls -A "$SYS/kernel/iommu_groups" 2>/dev/null)" ]; then
        ok "IOMMU groups present"
    else
        bad "no IOMMU groups: enable VT-d/AMD-Vi in firmware and add intel_iommu=on iommu=pt (or amd_iommu=on)"
    fi
    if [ -d "$SYS/module/vfio_pci" ]; then ok "vfio-pci module loaded"
    else [ "$MODE" = check ] && bad "vfio-pci module not loaded"; do_cmd modprobe vfio-pci; fi
    [ $PERSIST = 1 ] && write_file /etc/modules-load.d/statewall.conf "vfio-pci"
    for dev in "${VFIO_DEVS[@]}"; do
        d=$SYS/bus/pci/devices/$dev
        if [ ! -e "$d" ]; then bad "PCI device $dev not found"; continue; fi
        drv=$(basename "$(readlink "$d/driver" 2>/dev/null)" 2>/dev/null || echo none)
        if [ "$drv" = vfio-pci ]; then
            ok "$dev bound to vfio-pci"
        else
            [ "$MODE" = check ] && bad "$dev bound to $drv, not vfio-pci"
            if ls "$d/net" >/dev/null 2>&1; then
                for n in "$d"/net/*; do
                    if ip -o route show dev "$(basename "$n")" 2>/dev/null | grep -q .; then
                        warn "$dev is $(basename "$n") and has routes: binding removes it from the kernel"
                    fi
                done
            fi
            do_cmd sh -c "echo vfio-pci > $d/driver_override"
            [ "$drv" != none ] && do_cmd sh -c "echo $dev > $d/driver/unbind"
            do_cmd sh -c "echo $dev > $SYS/bus/pci/drivers_probe"
        fi
        if [ -n "$VFIO_OWNER" ]; then
            grp=$(basename "$(readlink "$d/iommu_group" 2>/dev/null)" 2>/dev/null || true)
            [ -n "$grp" ] && do_cmd chown "$VFIO_OWNER" "/dev/vfio/$grp"
        fi
    done
fi

# ---------------------------------------------------------------------------------------
say "== libraries"
if command -v ldconfig >/dev/null && ldconfig -p 2>/dev/null | grep -q 'librte_eal'; then ok "libdpdk (librte_eal) present"
else say "  libdpdk not found (only the dpdk backend needs it: apt-get install dpdk)"; fi

say ""
case "$MODE" in
    check) if [ $problems = 0 ]; then say "check: host ready for what was asked"; else say "check: $problems problem(s)"; exit 1; fi ;;
    dry)   say "dry run: nothing changed; run again with --apply (as root) to do it" ;;
    apply) say "applied" ;;
esac
