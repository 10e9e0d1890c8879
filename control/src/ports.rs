//! Configuration to ports: turns the `[[port]]` tables into per-queue
//! `Box<dyn Port>` handles (pktgen pairs, pcap, af_packet, af_xdp, DPDK), naming the
//! port and its field in every error. Used by [`crate::runtime::Runtime::start`].

use crate::config::{Config, PortConfig};
use anyhow::{bail, Context, Result};
use dataplane::port::{self, Port};
use std::sync::Arc;

/// One port's queue handles.
type PortHandles = Vec<Box<dyn Port>>;
/// Every port's queue handles, in config order.
type PortQueues = Vec<PortHandles>;

/// Per-queue port handles for every configured port: `handles[port][queue]`.
pub(crate) fn open_ports(
    cfg: &Config,
    queues: u16,
) -> Result<(PortQueues, Option<Arc<port::pktgen::PktgenStats>>)> {
    let mut out: Vec<Option<Vec<Box<dyn Port>>>> = cfg.ports.iter().map(|_| None).collect();
    let mut pktgen_stats = None;
    // pktgen ports come as a linked pair.
    let gens: Vec<usize> = (0..cfg.ports.len())
        .filter(|&i| cfg.ports[i].backend == "pktgen")
        .collect();
    if !gens.is_empty() {
        if gens.len() != 2 {
            bail!("port: the pktgen backend needs exactly two ports (side = \"inside\" and \"outside\"), found {}", gens.len());
        }
        let inside = gens
            .iter()
            .copied()
            .find(|&i| cfg.ports[i].side.as_deref() == Some("inside"));
        let outside = gens
            .iter()
            .copied()
            .find(|&i| cfg.ports[i].side.as_deref() == Some("outside"));
        let (Some(ii), Some(oi)) = (inside, outside) else {
            bail!(
                "port[{}].side: the two pktgen ports must be one \"inside\" and one \"outside\"",
                gens[1]
            );
        };
        let gcfg = pktgen_config(cfg, queues);
        let pair = port::pktgen::PktgenPair::new(&gcfg).context("pktgen")?;
        pktgen_stats = Some(pair.stats());
        let (ins, outs): (PortHandles, PortHandles) = pair
            .into_queue_ports()
            .into_iter()
            .map(|(a, b)| (Box::new(a) as Box<dyn Port>, Box::new(b) as Box<dyn Port>))
            .unzip();
        out[ii] = Some(ins);
        out[oi] = Some(outs);
    }
    for (i, p) in cfg.ports.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        out[i] = Some(open_one(cfg, i, p, queues)?);
    }
    Ok((
        out.into_iter()
            .map(|o| o.expect("every port opened"))
            .collect(),
        pktgen_stats,
    ))
}

/// The generator configuration from `[pktgen]`.
pub fn pktgen_config(cfg: &Config, queues: u16) -> port::pktgen::PktgenConfig {
    use port::pktgen::{EstablishedTraffic, LifecycleTraffic, RangeProto, RangeTraffic, Traffic};
    let g = &cfg.pktgen;
    let traffic = match g.mode.as_str() {
        "established" => Traffic::Established(EstablishedTraffic {
            flows: g.flows,
            frame_size: g.frame_size,
            ..Default::default()
        }),
        "range" => Traffic::Range(RangeTraffic {
            proto: if g.proto == "tcp" {
                RangeProto::Tcp
            } else {
                RangeProto::Udp
            },
            frame_size: g.frame_size,
            flows: g.flows,
            ..Default::default()
        }),
        _ => Traffic::Lifecycle(LifecycleTraffic {
            concurrent: g.flows,
            reuse_ports: g.reuse_ports,
            ..Default::default()
        }),
    };
    port::pktgen::PktgenConfig {
        queues,
        traffic,
        rate_pps: g.rate_pps,
        ..Default::default()
    }
}

fn open_one(cfg: &Config, i: usize, p: &PortConfig, queues: u16) -> Result<Vec<Box<dyn Port>>> {
    match p.backend.as_str() {
        "pcap" => {
            if queues != 1 {
                bail!("port[{i}].backend: a pcap port supports one worker (set dataplane.workers = 1)");
            }
            let port = port::pcap::PcapPort::open(p.pcap_in.as_deref(), p.pcap_out.as_deref())
                .with_context(|| format!("port[{i}] ({}): opening pcap", p.name))?;
            Ok(vec![Box::new(port)])
        }
        "af_packet" => {
            let ifname = p.interface.as_deref().unwrap_or_default();
            let port = port::af_packet::AfPacketPort::open(ifname, queues, &Default::default())
                .with_context(|| {
                    format!("port[{i}] ({}): opening af_packet on {ifname}", p.name)
                })?;
            Ok(port
                .split_queues()
                .into_iter()
                .map(|q| Box::new(q) as Box<dyn Port>)
                .collect())
        }
        "af_xdp" => {
            let ifname = p.interface.as_deref().unwrap_or_default();
            let descriptors = u32::try_from(p.descriptors).unwrap_or(u32::MAX);
            let cfg = port::af_xdp::XdpConfig::with_descriptors(descriptors);
            let port = port::af_xdp::AfXdpPort::open(ifname, queues, &cfg)
                .with_context(|| format!("port[{i}] ({}): opening af_xdp on {ifname}", p.name))?;
            Ok(port
                .split_queues()
                .into_iter()
                .map(|q| Box::new(q) as Box<dyn Port>)
                .collect())
        }
        "dpdk" => open_dpdk(cfg, i, p, queues),
        other => bail!("port[{i}].backend: backend {other:?} is not built into this binary"),
    }
}

/// Opens a dpdk port, initialising DPDK's EAL first (once per process) with
/// `[dpdk] eal_args`.
#[cfg(feature = "dpdk")]
fn open_dpdk(cfg: &Config, i: usize, p: &PortConfig, queues: u16) -> Result<Vec<Box<dyn Port>>> {
    use port::dpdk;
    dpdk::eal_init(&cfg.dpdk.eal_args).context("[dpdk] eal_args")?;
    let device = p.device.as_deref().unwrap_or_default();
    let pcfg = dpdk::DpdkPortConfig {
        queues: p.rx_queues.unwrap_or(queues),
        descriptors: u16::try_from(p.descriptors).unwrap_or(u16::MAX),
        pool_size: u32::try_from(cfg.dataplane.pool_size).unwrap_or(u32::MAX),
        socket_id: p.socket_id,
        ..Default::default()
    };
    let port = dpdk::DpdkPort::open(&p.name, device, &pcfg)
        .with_context(|| format!("port[{i}] ({}): opening DPDK device {device:?}", p.name))?;
    if !port.link_up() {
        tracing::warn!(port = %p.name, device, "DPDK link is down (memif: is the peer running?)");
    }
    Ok(port
        .split_queues()
        .into_iter()
        .map(|q| Box::new(q) as Box<dyn Port>)
        .collect())
}

#[cfg(not(feature = "dpdk"))]
fn open_dpdk(_cfg: &Config, i: usize, _p: &PortConfig, _queues: u16) -> Result<Vec<Box<dyn Port>>> {
    bail!("port[{i}].backend: this binary was built without DPDK support (rebuild with --features dpdk)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(backend: &str, interface: &str) -> PortConfig {
        PortConfig {
            name: "wan".into(),
            backend: backend.into(),
            interface: Some(interface.into()),
            pcap_in: None,
            pcap_out: None,
            descriptors: 256,
            side: None,
            device: None,
            rx_queues: None,
            socket_id: None,
            address: Vec::new(),
            mtu: None,
        }
    }

    #[test]
    fn open_one_af_xdp_names_port_and_interface_on_error() {
        for backend in ["af_packet", "af_xdp"] {
            let e = open_one(&Config::embedded(), 0, &live(backend, "sw-nosuch0"), 1)
                .err()
                .expect("no such interface");
            let msg = format!("{e:#}");
            assert!(
                msg.contains(&format!("port[0] (wan): opening {backend} on sw-nosuch0")),
                "{msg}"
            );
            assert!(msg.contains("no such interface"), "{msg}");
        }
    }
}
