//! The pipeline over a pktgen pair: the raw I/O ceiling and the pipeline with
//! `rules.v4`, in a worker-shaped loop.

use crate::report::Row;
use crate::Opts;
use dataplane::conntrack::ConnTable;
use dataplane::port::pktgen::{PktgenConfig, PktgenPair, RangeProto, RangeTraffic, Traffic};
use dataplane::port::{Mbuf, MbufPool, Port};
use dataplane::ruleset::{parse_ruleset, Ruleset};
use dataplane::worker::{Action, Burst, NonIpPolicy, PairMode, PairView, Pipeline, Side};
use serde_json::json;
use statewall_bench::*;
use std::net::Ipv4Addr;
use std::time::Instant;

/// A worker-shaped loop over one pktgen pair for `secs`: rx a burst on each side, (with a
/// pipeline) prefetch + `Pipeline::process` each packet, tx what is forwarded out of the
/// other side; without a pipeline it only forwards (the raw I/O ceiling).
/// Returns (packets received, packets forwarded, seconds).
pub(crate) fn pair_loop(
    traffic: Traffic,
    mut pl: Option<(&mut Pipeline, &Ruleset)>,
    secs: f64,
) -> (u64, u64, f64) {
    let pair = PktgenPair::new(&PktgenConfig {
        queues: 1,
        traffic,
        rate_pps: 0,
        ..Default::default()
    })
    .expect("pktgen");
    let (mut inside, mut outside) = pair.into_ports();
    let mut pool = MbufPool::new(4096);
    let mut rx: Vec<Mbuf> = Vec::with_capacity(BURST);
    let mut fwd: Vec<Mbuf> = Vec::with_capacity(BURST);
    let mut reply = [0u8; 2048];
    let clock = dataplane::worker::Clock::new();
    let (mut pkts, mut fwded) = (0u64, 0u64);
    let start = Instant::now();
    let mut iter = 0u64;
    loop {
        iter += 1;
        if iter.is_multiple_of(64) && start.elapsed().as_secs_f64() >= secs {
            break;
        }
        for side in [Side::Host, Side::Network] {
            let (rxp, txp): (&mut dyn Port, &mut dyn Port) = match side {
                Side::Host => (&mut inside, &mut outside),
                Side::Network => (&mut outside, &mut inside),
            };
            let n = rxp.rx_burst(0, &mut pool, &mut rx, BURST);
            if n == 0 {
                continue;
            }
            pkts += n as u64;
            let now = clock.now();
            match pl.as_mut() {
                None => fwd.append(&mut rx),
                Some((p, rs)) => {
                    for m in rx.iter() {
                        if let Ok(dataplane::packet::Frame::Ip(pp)) =
                            dataplane::packet::parse(m.data())
                        {
                            p.table_mut().prefetch(&pp);
                        }
                    }
                    let view = PairView {
                        mode: PairMode::Forward,
                        network: "outside",
                        host: "inside",
                    };
                    for m in rx.drain(..) {
                        let o = p.process(
                            &mut Burst::new(rs, view, side, now, &mut |_| {}),
                            m.data(),
                            &mut reply,
                        );
                        match o.action {
                            Action::Forward => fwd.push(m),
                            _ => pool.put(m),
                        }
                    }
                }
            }
            fwded += fwd.len() as u64;
            txp.tx_burst(0, &mut fwd, &mut pool);
            pool.put_all(&mut fwd);
        }
        if let Some((p, _)) = pl.as_mut() {
            p.table_mut()
                .expire(clock.now(), dataplane::worker::SWEEP_BUDGET_BUSY);
        }
    }
    (pkts, fwded, start.elapsed().as_secs_f64())
}

pub(crate) fn realistic_rules() -> Ruleset {
    let text = include_str!("../../../deploy/examples/rules.v4");
    parse_ruleset(text, "rules.v4", None).expect("rules.v4 compiles")
}

pub(crate) fn pipeline_range(o: &Opts) -> Vec<Row> {
    let traffic = || {
        Traffic::Range(RangeTraffic {
            proto: RangeProto::Udp,
            src_ip: (
                Ipv4Addr::new(203, 0, 113, 1),
                Ipv4Addr::new(203, 0, 113, 254),
            ),
            flows: 4096,
            ..Default::default()
        })
    };
    let (rp, rf, rs_) = pair_loop(traffic(), None, o.secs());
    let raw_mpps = rp as f64 / rs_ / 1e6;
    let rs = realistic_rules();
    let mut p = Pipeline::new(
        ConnTable::new(1 << 16, Default::default()),
        &rs,
        NonIpPolicy::PassArp,
    );
    let (sp, sf, ss) = pair_loop(traffic(), Some((&mut p, &rs)), o.secs());
    let sw_mpps = sp as f64 / ss / 1e6;
    vec![
        Row {
            scenario: "peer raw I/O".into(),
            params: "pktgen range udp 4096 flows, fwd only".into(),
            mpps: Some(raw_mpps),
            ns_pkt: Some(1e3 / raw_mpps),
            peer: format!("I/O ceiling; {rf} of {rp} forwarded"),
            extra: json!({"packets": rp, "forwarded": rf}),
            ..Default::default()
        },
        Row {
            scenario: "pipeline range".into(),
            params: "pktgen range udp 4096 flows, rules.v4".into(),
            mpps: Some(sw_mpps),
            ns_pkt: Some(1e3 / sw_mpps),
            peer: format!(
                "{:.0}% of raw I/O; {sf} of {sp} forwarded",
                100.0 * sw_mpps / raw_mpps
            ),
            extra: json!({"packets": sp, "forwarded": sf, "ratio_vs_raw_io": sw_mpps / raw_mpps,
                          "rules": rs.rule_count()}),
            ..Default::default()
        },
    ]
}
