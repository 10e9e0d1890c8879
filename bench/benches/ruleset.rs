//! Ruleset microbenchmarks: compile time and per-packet `eval_filter` at 10, 1 000 and
//! 10 000 rules, for NEW packets (they walk the chain to its last rule) and ESTABLISHED
//! packets (they hit the early ESTABLISHED,RELATED rule).
// criterion_group! generates undocumented functions.
#![allow(missing_docs)]

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::conntrack::{CtState, CtStatus, Direction};
use dataplane::ruleset::{parse_ruleset, FilterChain, PacketCtx, RuleCounters};
use statewall_bench::*;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut buf = [0u8; 128];
    let n = data_frame(7, &mut buf);
    let frame = buf[..n].to_vec();
    let p = parsed(&frame);
    for rules in [10usize, 1000, 10_000] {
        let text = ruleset_text(rules, None);
        let mut g = c.benchmark_group(format!("ruleset/{rules}"));
        g.bench_function("compile", |b| {
            b.iter(|| black_box(parse_ruleset(&text, "bench", None).expect("compiles")))
        });
        let rs = parse_ruleset(&text, "bench", None).expect("compiles");
        let mut counters = RuleCounters::for_ruleset(&rs);
        g.throughput(Throughput::Elements(1));
        let meta = dataplane::ruleset::PktMeta::default();
        for mix in [RuleMix::NewHeavy, RuleMix::EstablishedHeavy] {
            let ctx = PacketCtx {
                frame: &frame,
                parsed: &p,
                ct_state: if mix == RuleMix::NewHeavy {
                    CtState::New
                } else {
                    CtState::Established
                },
                ct_dir: Direction::Original,
                ct_status: CtStatus::default(),
                in_port: "inside",
                out_port: "outside",
                ct_tuples: None,
                now: 1_000,
                meta: &meta,
            };
            g.bench_function(format!("eval_{}", mix.name()), |b| {
                b.iter(|| {
                    black_box(rs.eval_filter(
                        FilterChain::Forward,
                        black_box(&ctx),
                        &mut counters,
                        &mut |_| {},
                    ))
                })
            });
        }
        g.finish();
    }
}

criterion_group! { name = benches; config = common::config(300); targets = bench }
criterion_main!(benches);
