//! The report: the table printed as the suite runs ([`Row`]), and the JSON and SVG
//! written to `bench/results/`.

use crate::Opts;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// One line of the table (and one object of the JSON).
#[derive(Default)]
pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) params: String,
    pub(crate) mpps: Option<f64>,
    pub(crate) ns_pkt: Option<f64>,
    pub(crate) cps: Option<f64>,
    pub(crate) peer: String,
    pub(crate) extra: Value,
}

pub(crate) fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

pub(crate) fn print_row(r: &Row) {
    println!(
        "{:<22} {:<34} {:>9} {:>9} {:>11}  {}",
        r.scenario,
        r.params,
        fmt_opt(r.mpps, 3),
        fmt_opt(r.ns_pkt, 1),
        r.cps
            .map(|c| format!("{:.0}", c))
            .unwrap_or_else(|| "-".into()),
        r.peer
    );
}

pub(crate) fn header() {
    println!(
        "{:<22} {:<34} {:>9} {:>9} {:>11}  peer / notes",
        "scenario", "parameters", "Mpps/core", "ns/pkt", "conn/s"
    );
    println!("{}", "-".repeat(130));
}

pub(crate) fn results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

pub(crate) fn utc_stamp() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (s.div_euclid(86400), s.rem_euclid(86400));
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) fn write_json(o: &Opts, rows: &[Row], cores: usize, total: f64) -> std::io::Result<()> {
    let dir = results_dir();
    std::fs::create_dir_all(&dir)?;
    let stamp = utc_stamp();
    let v = json!({
        "timestamp": stamp,
        "mode": format!("{:?}", o.mode).to_lowercase(),
        "cores": cores,
        "duration_s": total,
        "rows": rows.iter().map(|r| json!({
            "scenario": r.scenario,
            "params": r.params,
            "mpps_per_core": r.mpps,
            "ns_per_packet": r.ns_pkt,
            "connections_per_s": r.cps,
            "peer": r.peer,
            "extra": r.extra,
        })).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&v).expect("json");
    let path = dir.join(format!("{stamp}.json"));
    std::fs::write(&path, &text)?;
    std::fs::write(dir.join("latest.json"), &text)?;
    let svg = plot_svg(rows);
    std::fs::write(dir.join(format!("{stamp}.svg")), &svg)?;
    std::fs::write(dir.join("latest.svg"), &svg)?;
    println!(
        "statewall-bench: results in {} (plot: latest.svg)",
        path.display()
    );
    Ok(())
}

/// One line of a chart: a label, a colour and its (x, y) points.
pub(crate) type Series = (String, &'static str, Vec<(f64, f64)>);

/// Two charts as one SVG: established Mpps per core against the number of tracked
/// connections (log x, uniform and zipf), and total Mpps against workers (scaling).
pub(crate) fn plot_svg(rows: &[Row]) -> String {
    let mut est: Vec<Series> = vec![
        ("uniform".into(), "#1f77b4", Vec::new()),
        ("zipf".into(), "#ff7f0e", Vec::new()),
    ];
    let mut scale: Vec<Series> = vec![("total Mpps".into(), "#2ca02c", Vec::new())];
    for r in rows {
        match (r.scenario.as_str(), r.mpps) {
            ("established", Some(m)) => {
                let n = r.extra["connections"].as_f64().unwrap_or(0.0);
                let i = usize::from(r.extra["pattern"].as_str() == Some("zipf"));
                est[i].2.push((n.log10(), m));
            }
            ("scaling", Some(_)) => {
                if let (Some(w), Some(t)) =
                    (r.extra["workers"].as_f64(), r.extra["total_mpps"].as_f64())
                {
                    scale[0].2.push((w, t));
                }
            }
            _ => {}
        }
    }
    let mut out = String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"920\" height=\"360\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"920\" height=\"360\" fill=\"white\"/>\n",
    );
    out += &chart(
        0.0,
        "Established packets: Mpps per core vs tracked connections",
        "connections (log10)",
        &est,
    );
    out += &chart(
        460.0,
        "Scaling: total Mpps vs workers (pktgen, established)",
        "workers",
        &scale,
    );
    out += "</svg>\n";
    out
}

pub(crate) fn chart(x0: f64, title: &str, xlabel: &str, series: &[Series]) -> String {
    let (w, h, l, t) = (400.0, 260.0, x0 + 50.0, 50.0);
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|s| s.2.iter().copied()).collect();
    let mut o = format!(
        "<text x=\"{}\" y=\"24\" font-weight=\"bold\">{title}</text>\n",
        x0 + 10.0
    );
    if pts.is_empty() {
        return o + &format!(
            "<text x=\"{}\" y=\"150\">no data in this run</text>\n",
            l + 100.0
        );
    }
    let (xmin, xmax) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let ymax = pts.iter().fold(0.0f64, |a, p| a.max(p.1)) * 1.1;
    let xspan = if xmax > xmin { xmax - xmin } else { 1.0 };
    let sx = |x: f64| l + (x - xmin) / xspan * w;
    let sy = |y: f64| t + h - y / ymax.max(1e-9) * h;
    o += &format!(
        "<line x1=\"{l}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/><line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{}\" stroke=\"black\"/>\n",
        t + h, l + w, t + h, t + h
    );
    o += &format!(
        "<text x=\"{}\" y=\"{}\">{xlabel}</text>\n",
        l + w / 2.0 - 40.0,
        t + h + 35.0
    );
    for k in 0..=4 {
        let y = ymax * k as f64 / 4.0;
        o += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{y:.1}</text>\n",
            l - 5.0,
            sy(y) + 4.0
        );
    }
    for &(x, _) in &pts {
        o += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{x:.0}</text>\n",
            sx(x),
            t + h + 15.0
        );
    }
    for (i, (name, colour, p)) in series.iter().enumerate() {
        let mut p = p.clone();
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = p
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        o += &format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n",
            path.join(" ")
        );
        for &(x, y) in &p {
            o += &format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>\n",
                sx(x),
                sy(y)
            );
        }
        o += &format!(
            "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{name}</text>\n",
            l + w - 80.0,
            t + 15.0 + 15.0 * i as f64
        );
    }
    o
}
