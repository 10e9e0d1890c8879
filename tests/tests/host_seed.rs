//! The seed scenario in host mode: statewall in front of the inside namespace with
//! `-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT; -A INPUT -j REJECT`.
//! Real curl and python3 http.server on both sides.

use statewall_e2e::*;
use std::time::Instant;

#[test]
fn host_seed_outbound_http_works_inbound_is_rejected() {
    let test = "host_seed_outbound_http_works_inbound_is_rejected";
    let Some(topo) = Topology::for_test(test, e2e_needs(test).tools(&["curl"])) else {
        return;
    };
    let sw = Statewall::start(&topo, Mode::Host, SEED_RULES, "");
    let www = www_with(sw.dir.path(), "hello.txt", "hello through statewall\n");
    let d = sw.dir.path();
    let (ns_in, ns_out) = (&topo.inside_ns, &topo.outside_ns);
    let (ip_in, ip_out) = (&topo.inside_ip, &topo.outside_ip);
    let _srv_out = topo.http_server((ns_out, ip_out, 8080), &www, (d, "http-outside"), 120);
    let _srv_in = topo.http_server((ns_in, ip_in, 8081), &www, (d, "http-inside"), 120);

    // Inside -> outside: the host opened it (OUTPUT), replies are ESTABLISHED (INPUT).
    let url = format!("http://{}:8080/hello.txt", topo.outside_ip);
    let o = topo.inside(
        15,
        &["curl", "-sS", "-m", "10", "-w", "\n%{http_code}", &url],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out == "hello through statewall\n\n200",
        "curl inside -> outside {url} failed: {}\n{}",
        show(&o),
        sw.logs()
    );

    // Outside -> inside: NEW toward the host, REJECT with icmp-port-unreachable, so
    // curl must fail at once with "connection refused" (exit 7), not time out (28).
    let rejects_before = sw.metric(r#"statewall_drops_total{reason="reject"}"#);
    let url = format!("http://{}:8081/hello.txt", topo.inside_ip);
    let t0 = Instant::now();
    let o = topo.outside(15, &["curl", "-sS", "-m", "5", &url]);
    let took = t0.elapsed();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(7),
        "curl outside -> inside {url} should be refused (exit 7): {}\n{}",
        show(&o),
        sw.logs()
    );
    assert!(
        err.contains("Couldn't connect") || err.contains("refused"),
        "unexpected curl error: {}",
        show(&o)
    );
    assert!(
        took.as_secs_f64() < 1.5,
        "the REJECT took {took:?} to arrive (a drop would time out)\n{}",
        sw.logs()
    );
    let rejects_after = sw.wait_metric_at_least(
        r#"statewall_drops_total{reason="reject"}"#,
        rejects_before + 1.0,
    );
    assert!(
        rejects_after > rejects_before,
        "no reject counted\n{}",
        sw.logs()
    );
    // The inside server never saw the connection.
    let log = _srv_in.stderr();
    assert!(
        !log.contains("GET /hello.txt"),
        "inside server was reached: {log}"
    );
    println!(
        "{test}: ok (refused in {took:?}); counters:\n{}",
        interesting(&sw.metrics())
    );
}
