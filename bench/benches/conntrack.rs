//! Conntrack microbenchmarks: lookup (established packets), insert (SYN + confirm) and
//! update (ACK of a SYN_SENT/SYN_RECV entry moving its state) at 1 k, 1 M and, with
//! `STATEWALL_BENCH_FULL=1`, 10 M entries. Criterion reports time per packet
//! (`Throughput::Elements`); bytes per entry are printed per table size.
// criterion_group! generates undocumented functions.
#![allow(missing_docs)]

mod common;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use dataplane::conntrack::{ConnTable, FlowKey, TrackOpts};
use dataplane::packet::tcp_flags as tf;
use statewall_bench::*;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn sizes() -> Vec<u32> {
    let mut v = vec![1_000, 1_000_000];
    if std::env::var("STATEWALL_BENCH_FULL").as_deref() == Ok("1") {
        v.push(10_000_000);
    }
    v
}

/// Benchmarks `name`: each iteration deletes `keys` from the table and runs `setup`,
/// untimed, then `run`, timed (`iter_custom`).
fn after_delete(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    (t, keys): (&mut ConnTable, &[FlowKey]),
    mut setup: impl FnMut(&mut ConnTable),
    mut run: impl FnMut(&mut ConnTable),
) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut d = Duration::ZERO;
            for _ in 0..iters {
                for k in keys {
                    t.delete(k);
                }
                setup(t);
                let t0 = Instant::now();
                run(t);
                d += t0.elapsed();
            }
            d
        })
    });
}

fn bench(c: &mut Criterion) {
    for n in sizes() {
        let rss0 = rss_bytes();
        let (mut t, failed) = established_table(n as usize + n as usize / 8 + 64, n);
        let rss1 = rss_bytes();
        println!(
            "conntrack {n} entries: {:.1} B/entry of capacity ({} B table / {} capacity), RSS {:.1} B/conn, {failed} failed handshakes",
            t.memory_bytes() as f64 / t.capacity() as f64,
            t.memory_bytes(),
            t.capacity(),
            rss1.saturating_sub(rss0) as f64 / t.len() as f64
        );
        let frames = data_frames(n);
        let order = access_order(n, 1 << 16, Pattern::Uniform, 7);
        let mut g = c.benchmark_group(format!("conntrack/{n}"));
        g.throughput(Throughput::Elements(BURST as u64));
        // lookup: a burst of 32 established data packets, parse + prefetch + track.
        let mut pos = 0usize;
        g.bench_function("lookup_burst32", |b| {
            b.iter(|| {
                let mut ps = [None; BURST];
                let mut hs = [0u64; BURST];
                for k in 0..BURST {
                    let i = order[(pos + k) & 0xffff] as usize * FRAME;
                    let p = parsed(&frames[i..i + FRAME]);
                    hs[k] = t.prefetch(&p);
                    ps[k] = Some(p);
                }
                for &h in &hs {
                    t.prefetch_entries(h);
                }
                for k in 0..BURST {
                    let i = order[(pos + k) & 0xffff] as usize * FRAME;
                    let p = ps[k].as_ref().expect("parsed");
                    let opts = TrackOpts {
                        hash: hs[k],
                        ..Default::default()
                    };
                    black_box(t.track(&frames[i..i + FRAME], p, 2_000, opts));
                }
                pos += BURST;
            })
        });
        // The same 32 new flows every iteration: deleted again before each batch
        // (untimed), so the table stays at n (+ 32) entries however long criterion runs.
        let fresh: Vec<u32> = (0..BURST as u32)
            .map(|k| n + 1 + k * 7919 % 1_000_000)
            .collect();
        let keys: Vec<FlowKey> = fresh
            .iter()
            .map(|&i| {
                let mut b = [0u8; 128];
                let l = tcp_frame(i, true, tf::SYN, isn(i).0, 0, &[], &mut b);
                FlowKey::from_parsed(&parsed(&b[..l])).expect("key")
            })
            .collect();
        // insert: 32 SYNs of new flows, tracked and confirmed.
        let mut syn = vec![[0u8; 128]; BURST];
        let mut slen = [0usize; BURST];
        for (k, &i) in fresh.iter().enumerate() {
            slen[k] = tcp_frame(i, true, tf::SYN, isn(i).0, 0, &[], &mut syn[k]);
        }
        after_delete(
            &mut g,
            "insert_syn_confirm",
            (&mut t, &keys),
            |_| {},
            |t| {
                for k in 0..BURST {
                    black_box(track_accept(t, &syn[k][..slen[k]], 3_000));
                }
            },
        );
        // update: SYN-ACK + ACK moving those flows from SYN_SENT to ESTABLISHED (state
        // and window updates of existing entries); the SYNs are inserted untimed.
        let mut upd = vec![[0u8; 128]; 2 * BURST];
        let mut ulen = [0usize; 2 * BURST];
        for (k, &i) in fresh.iter().enumerate() {
            let (ci, si) = isn(i);
            ulen[2 * k] = tcp_frame(
                i,
                false,
                tf::SYN | tf::ACK,
                si,
                ci.wrapping_add(1),
                &[],
                &mut upd[2 * k],
            );
            ulen[2 * k + 1] = tcp_frame(
                i,
                true,
                tf::ACK,
                ci.wrapping_add(1),
                si.wrapping_add(1),
                &[],
                &mut upd[2 * k + 1],
            );
        }
        g.throughput(Throughput::Elements(2 * BURST as u64));
        after_delete(
            &mut g,
            "update_synack_ack",
            (&mut t, &keys),
            |t| {
                for k in 0..BURST {
                    track_accept(t, &syn[k][..slen[k]], 3_000);
                }
            },
            |t| {
                for k in 0..2 * BURST {
                    black_box(track_accept(t, &upd[k][..ulen[k]], 3_500));
                }
            },
        );
        g.finish();
        drop(t);
    }
}

criterion_group! { name = benches; config = common::config(500); targets = bench }
criterion_main!(benches);
