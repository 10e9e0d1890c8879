//! FTP through statewall with the FTP helper (`-t raw ... --dport 21 -j CT --helper ftp`):
//! vsftpd outside, curl inside, in passive (PASV, EPSV) and active (PORT, EPRT) mode,
//! under a strict forward ruleset where only the control connection may be opened as NEW,
//! so every data connection must be RELATED (an expectation from the helper). The same
//! transfers without the helper rule must fail, which shows the ruleset is strict enough.

use statewall_e2e::*;
use std::os::unix::fs::PermissionsExt;

const STRICT: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i inside -p tcp --dport 21 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p tcp -j REJECT --reject-with tcp-reset
-A FORWARD -j REJECT
COMMIT
";

const HELPER: &str = "*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp --dport 21 -j CT --helper ftp
COMMIT
";

const BODY: &str = "a file fetched over an FTP data connection\n";

/// (name, extra curl options)
const MODES: [(&str, &[&str]); 4] = [
    ("PASV", &["--disable-epsv"]),
    ("EPSV", &[]),
    ("PORT", &["-P", "-", "--disable-eprt"]),
    ("EPRT", &["-P", "-"]),
];

fn start_vsftpd(topo: &Topology, sw: &Statewall) -> Background {
    let d = sw.dir.path();
    // vsftpd drops privileges to `ftp` and chroots: the tree must be traversable and the
    // anonymous root not writable.
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = d.join("ftproot");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("file.txt"), BODY).unwrap();
    std::fs::set_permissions(
        root.join("file.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::create_dir_all("/var/run/vsftpd/empty").unwrap();
    let conf = format!(
        "listen=YES
listen_ipv6=NO
listen_address={ip}
listen_port=21
background=NO
anonymous_enable=YES
no_anon_password=YES
anon_root={root}
local_enable=NO
write_enable=NO
pasv_enable=YES
pasv_min_port=30000
pasv_max_port=30999
port_enable=YES
connect_from_port_20=YES
seccomp_sandbox=NO
secure_chroot_dir=/var/run/vsftpd/empty
xferlog_enable=YES
vsftpd_log_file={log}
log_ftp_protocol=YES
",
        ip = topo.outside_ip,
        root = root.display(),
        log = d.join("vsftpd.log").display(),
    );
    let conf_path = d.join("vsftpd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let bg = topo.spawn_in(
        &topo.outside_ns,
        120,
        d,
        d,
        "vsftpd",
        &["vsftpd", conf_path.to_str().unwrap()],
    );
    topo.wait_tcp_listen(&topo.outside_ns, 21, 10);
    bg
}

fn fetch(topo: &Topology, opts: &[&str]) -> std::process::Output {
    let url = format!("ftp://{}/file.txt", topo.outside_ip);
    let mut args = vec!["curl", "-sS", "-m", "6", "--connect-timeout", "3"];
    args.extend_from_slice(opts);
    args.push(&url);
    topo.inside(10, &args)
}

#[test]
fn ftp_active_and_passive_through_the_helper() {
    let test = "ftp_active_and_passive_through_the_helper";
    let Some(topo) = Topology::for_test(test, e2e_needs(test).tools(&["vsftpd", "curl"])) else {
        return;
    };
    let sw = Statewall::start(&topo, Mode::Forward, &format!("{HELPER}{STRICT}"), "");
    let _ftpd = start_vsftpd(&topo, &sw);
    let mut report = String::new();
    for (name, opts) in MODES {
        let rel0 = sw.metric(r#"statewall_packets_total{state="RELATED"}"#);
        let o = fetch(&topo, opts);
        let rel = sw.metric(r#"statewall_packets_total{state="RELATED"}"#) - rel0;
        report += &format!("{name}: exit {:?}, RELATED +{rel}\n", o.status.code());
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout) == BODY,
            "FTP {name} through the helper failed: {}\n{report}vsftpd log:\n{}\n{}",
            show(&o),
            std::fs::read_to_string(sw.dir.path().join("vsftpd.log")).unwrap_or_default(),
            sw.logs()
        );
        assert!(
            rel >= 1.0,
            "FTP {name}: the data connection was not RELATED\n{}",
            sw.logs()
        );
    }
    println!("{test}: ok\n{report}");
}

/// The control experiment: the same strict ruleset without the helper refuses every
/// data connection (so the test above proves the helper, not a loose ruleset).
#[test]
fn ftp_without_helper_data_connections_are_refused() {
    let test = "ftp_without_helper_data_connections_are_refused";
    let Some(topo) = Topology::for_test(test, e2e_needs(test).tools(&["vsftpd", "curl"])) else {
        return;
    };
    let sw = Statewall::start(&topo, Mode::Forward, STRICT, "");
    let _ftpd = start_vsftpd(&topo, &sw);
    let mut report = String::new();
    for (name, opts) in MODES {
        let o = fetch(&topo, opts);
        report += &format!("{name}: exit {:?}\n", o.status.code());
        assert!(
            !o.status.success(),
            "FTP {name} worked without the helper: the ruleset is not strict\n{}",
            sw.logs()
        );
        // The control connection itself worked: curl got as far as the data connection
        // (exit 7 = data connect refused, 9/30/12/28 = the server could not connect back).
        assert_ne!(o.status.code(), Some(67), "FTP login failed: {}", show(&o));
    }
    println!("{test}: ok\n{report}");
}
