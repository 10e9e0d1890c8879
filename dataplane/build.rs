//! Builds the DPDK shim when the `dpdk` feature is on; does nothing otherwise, so the
//! default build needs neither DPDK nor a C compiler.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "dpdk")]
    dpdk::build();
}

#[cfg(feature = "dpdk")]
mod dpdk {
    pub fn build() {
        println!("cargo:rerun-if-changed=src/port/dpdk/shim.c");
        let lib = pkg_config::Config::new()
            .atleast_version("21.11")
            .probe("libdpdk")
            .unwrap_or_else(|e| {
                panic!(
                    "the `dpdk` feature needs DPDK's development files found by pkg-config \
                     (Debian/Ubuntu: apt-get install libdpdk-dev pkg-config): {e}"
                )
            });
        let mut cc = cc::Build::new();
        cc.file("src/port/dpdk/shim.c").warnings(false).opt_level(3);
        for p in &lib.include_paths {
            cc.include(p);
        }
        // pkg-config's other cflags: `-include rte_config.h`, `-march=...`, defines.
        let out = std::process::Command::new("pkg-config")
            .args(["--cflags-only-other", "libdpdk"])
            .output()
            .expect("running pkg-config");
        let other = String::from_utf8_lossy(&out.stdout).to_string();
        let mut it = other.split_whitespace();
        while let Some(f) = it.next() {
            if f == "-include" {
                if let Some(h) = it.next() {
                    cc.flag("-include").flag(h);
                }
            } else {
                cc.flag(f);
            }
        }
        for (k, v) in &lib.defines {
            cc.define(k, v.as_deref());
        }
        cc.compile("statewall_dpdk_shim");
    }
}
