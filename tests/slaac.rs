//! End-to-end tests of the SLAAC mode (`--slaac IFACE`, issue 17): guests on the host's bridge
//! autoconfigure addresses from the uplink's /64 with the Linux kernel as their stack (nothing
//! configured by hand inside them), and are reachable from the provider's router and the
//! Internet stand-in through the hypervisor's anti-spoof filter. Also the kernel side on its
//! own: the /128 routes of our protocol, and that nothing else is ever touched.
//!
//! State is read through the kernel's tables (`ip`), packet captures and the daemon's control
//! socket, never its log (which is only printed when an assertion fails).

mod common;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use common::{exe, require_tools, start_capture_with};
use ndp_responder::sources::netlink::{self, routes};
use ndp_responder::tools::lab::{self, wait_until, Daemon, Topology, GATEWAY, INTERNET_ADDR};
use ndp_responder::tools::netns;

/// A bare namespace of one test (no topology), removed when dropped.
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
