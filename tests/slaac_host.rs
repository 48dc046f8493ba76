//! The host side of the SLAAC mode (issue 17), without guests: the /128 host routes API in
//! a namespace of its own (it touches only routes of our protocol), and `doctor --slaac` on
//! the SLAAC topology (what the mode needs, our routes and strays). The guests themselves are
//! tests/slaac.rs.

mod common;

use std::net::Ipv6Addr;

use common::slaac_topology;
use ndp_responder::sources::netlink::{self, routes};
use ndp_responder::tools::lab::Topology;
use ndp_responder::tools::netns;

struct Bare(String);

impl Bare {
    fn new(name: &str) -> Bare {
        let ns = format!("ndpt{}x{name}", std::process::id());
        let _ = netns::delete(&ns);
        netns::add(&ns).unwrap_or_else(|e| panic!("creating namespace {ns}: {e}"));
        Bare(ns)
    }

    fn ip(&self, args: &str) -> String {
        let args: Vec<&str> = args.split_whitespace().collect();
        let out = netns::exec(&self.0, &[&["ip"], args.as_slice()].concat())
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `f` with a netlink handle inside this namespace, on a runtime of its own.
    fn netlink<T: Send>(&self, f: impl AsyncFnOnce(&netlink::Handle) -> T + Send) -> T {
        netns::run_in(&self.0, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let h = netlink::connect().await.unwrap();
                f(&h).await
            })
        })
        .unwrap()
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = netns::delete(&self.0);
    }
}

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn host_routes_touch_only_routes_of_our_protocol() {
    let ns = Bare::new("routes");
    // Two veth pairs (the kernel may lack the dummy driver), both ends up: carrier.
    for (dev, peer) in [("d0", "p0"), ("d1", "p1")] {
        ns.ip(&format!("link add {dev} type veth peer name {peer}"));
        ns.ip(&format!("link set {peer} up"));
        ns.ip(&format!("link set {dev} up"));
    }
    let (d0, d1) = ns.netlink(async |_| {
        (
            netlink::ifindex("d0").unwrap(),
            netlink::ifindex("d1").unwrap(),
        )
    });
    // Routes of others: a static and a boot /128, ours in another table, another protocol's
    // /128 to the same address as one we will be asked for.
    ns.ip("-6 route add 2001:db8::1/128 dev d0 proto static");
    ns.ip("-6 route add 2001:db8::2/128 dev d0 proto boot");
    ns.ip("-6 route add 2001:db8::3/128 dev d0 proto 110 table 100");
    ns.ip("-6 route add 2001:db8::/64 dev d1 proto static");
    let others = |ns: &Bare| {
        let mut all = ns.ip("-6 route show table all");
        all.retain(|c| c != '\r');
        all.lines()
            .filter(|l| {
                l.starts_with("2001:db8::") && !l.contains("proto 110 ") || l.contains("table 100")
            })
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let before = others(&ns);
    assert_eq!(before.len(), 4, "{before:?}");

    let outcome = ns.netlink(async |h| {
        let mut out = Vec::new();
        out.push(routes::add_host_route(h, a("2001:db8::10"), d0).await);
        out.push(routes::add_host_route(h, a("2001:db8::11"), d1).await);
        // Again: already there, ours: fine.
        out.push(routes::add_host_route(h, a("2001:db8::10"), d0).await);
        let listed = routes::own_routes(h).await.unwrap();
        // Someone else's route to that address: left alone, and an error.
        let taken = routes::add_host_route(h, a("2001:db8::1"), d0).await;
        // Deleting "ours" where only someone else's is: nothing happens.
        out.push(routes::del_host_route(h, a("2001:db8::2"), d0).await);
        (out, listed, taken)
    });
    let (out, mut listed, taken) = outcome;
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    listed.sort();
    assert_eq!(
        listed,
        vec![(a("2001:db8::10"), d0), (a("2001:db8::11"), d1)]
    );
    let err = taken
        .expect_err("a static route to the address exists")
        .to_string();
    assert!(
        err.contains("2001:db8::1/128") && err.contains("left alone"),
        "{err}"
    );
    let shown = ns.ip("-6 route show proto 110");
    assert!(
        shown.contains("2001:db8::10 dev d0") && shown.contains("2001:db8::11 dev d1"),
        "{shown}"
    );
    assert_eq!(others(&ns), before, "a route of another protocol changed");

    // Flushing one interface, then all: only ours, only in the main table.
    let (one, rest, left) = ns.netlink(async |h| {
        let one = routes::flush_own_routes(h, Some(d0)).await.unwrap();
        let after_one = routes::own_routes(h).await.unwrap();
        let rest = routes::flush_own_routes(h, None).await.unwrap();
        (one, rest, after_one)
    });
    assert_eq!((one, rest), (1, 1));
    assert_eq!(left, vec![(a("2001:db8::11"), d1)]);
    assert_eq!(ns.ip("-6 route show proto 110").trim(), "");
    assert_eq!(others(&ns), before, "a route of another protocol changed");
}

fn doctor(topo: &Topology, args: &[&str]) -> (i32, serde_json::Value) {
    common::doctor_json(topo, "eth0", args)
}

/// The findings of `check` in a report, as (severity, message).
fn findings(report: &serde_json::Value, check: &str) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn doctor_checks_what_the_slaac_mode_needs() {
    let topo = slaac_topology(1);
    let host = topo.host();
    // A ready host: nothing to fix, and it says what it would share.
    let (code, report) = doctor(&topo, &["--slaac", "br0"]);
    assert_eq!(code, 0, "{report:#}");
    assert!(
        findings(&report, "slaac_prefix")
            .iter()
            .any(|(s, m)| s == "ok" && m.contains("sharing 2001:db8:1::/64 of eth0")),
        "{report:#}"
    );
    // Our routes are listed, one elsewhere is a stray; routes of others are not ours.
    topo.exec(&host, &["ip", "link", "add", "br9", "type", "bridge"])
        .unwrap();
    topo.exec(&host, &["ip", "link", "set", "br9", "up"])
        .unwrap();
    for (addr, dev, proto) in [
        ("2001:db8:1::5", "br0", "110"),
        ("2001:db8:1::6", "br9", "110"),
        ("2001:db8:1::7", "br0", "static"),
    ] {
        topo.exec(
            &host,
            &["ip", "-6", "route", "add", addr, "dev", dev, "proto", proto],
        )
        .unwrap();
    }
    let (code, report) = doctor(&topo, &["--slaac", "br0"]);
    assert_eq!(code, 1, "{report:#}");
    let routes = findings(&report, "slaac_routes");
    assert!(
        routes.contains(&(
            "ok".into(),
            "1 /128 route(s) of ndp-responder (proto 110) on br0: 2001:db8:1::5".into()
        )),
        "{routes:?}"
    );
    assert!(
        routes
            .iter()
            .any(|(s, m)| s == "warning" && m.contains("2001:db8:1::6 leaves by br9")),
        "{routes:?}"
    );
    // The same from a configuration file with a slaac rule: its interface is checked, and
    // its /64, on-link on the uplink by design, is not judged as a container prefix.
    let scratch = common::Scratch::new("slaac-doctor");
    let config = scratch.s("ndp-responder.toml");
    std::fs::write(
        &config,
        "[[uplink]]\ninterface = \"eth0\"\n\n[[uplink.rule]]\nmode = \"slaac\"\ninterface = \"br0\"\n",
    )
    .unwrap();
    let out = topo
        .try_exec(&host, &[common::EXE, "doctor", "-c", &config, "--json"])
        .unwrap();
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let report = &reports[0];
    assert!(findings(report, "route").is_empty(), "{report:#}");
    assert!(
        findings(report, "slaac_prefix")
            .iter()
            .any(|(s, m)| s == "ok" && m.contains("with the hosts on br0")),
        "{report:#}"
    );

    // Forwarding off, an address of the /64 on br0, a guests' interface that does not exist.
    topo.sysctl(&host, "net/ipv6/conf/all/forwarding", "0")
        .unwrap();
    topo.exec(
        &host,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:1::b/64",
            "dev",
            "br0",
            "nodad",
        ],
    )
    .unwrap();
    let (_, report) = doctor(&topo, &["--slaac", "br0", "--slaac", "nosuch0"]);
    assert_eq!(
        findings(&report, "forwarding")[0].0,
        "problem",
        "{report:#}"
    );
    assert_eq!(
        findings(&report, "slaac_on_link")[0].0,
        "problem",
        "{report:#}"
    );
    assert!(
        findings(&report, "slaac_interface")
            .iter()
            .any(|(s, m)| s == "problem" && m.contains("'nosuch0'")),
        "{report:#}"
    );
}
