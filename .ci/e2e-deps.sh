#!/usr/bin/env bash
# Debian packages the end-to-end tests (tests/tests/*.rs, statewall-e2e) need.
# Called by .ci/run as root; safe to run again. Without them the tests print SKIP.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  iproute2      # ip netns, ip link (veth), ss
  ethtool       # offloads off on the veths (real frames, complete checksums)
  procps        # sysctl
  coreutils     # timeout
  curl          # HTTP clients, FTP client in tests
  python3       # http.server, UDP echo
  iputils-ping  # ICMP echo
  nftables      # counters inside the protected namespace
  hping3        # hand-made TCP flag probes (FIN, NULL, Xmas, ACK)
  nmap          # stealth scans
  tcpdump       # debugging captures
  socat         # ad-hoc UDP/TCP endpoints
  vsftpd        # FTP server (FTP helper test)
  lftp          # FTP client (active and passive)
  traceroute    # UDP traceroute through MASQUERADE (ICMP time exceeded translated back)
)
if [ "$(id -u)" != 0 ]; then
  echo "e2e-deps: not root, not installing ${PKGS[*]}" >&2
  exit 0
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
echo "e2e-deps: installed ${PKGS[*]}"
