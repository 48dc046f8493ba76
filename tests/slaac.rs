//! End-to-end tests of the SLAAC mode (`--slaac IFACE`, issue 17): guests on the host's bridge
//! autoconfigure addresses from the uplink's /64 with the Linux kernel as their stack (nothing
//! configured by hand inside them), and are reachable from the provider's router and the
//! Internet stand-in through the hypervisor's anti-spoof filter. The host side without guests
//! (the routes API, doctor) is tests/slaac_host.rs; the helpers are tests/common/slaac.rs.
//!
//! State is read through the kernel's tables (`ip`), packet captures and the daemon's control
//! socket, never its log (which is only printed when an assertion fails).

mod common;

use std::time::Duration;

use common::slaac::*;
use common::{exe, slaac_topology, start_capture_with};
use ndp_responder::tools::lab::{self, wait_until, GATEWAY, INTERNET_ADDR};

#[test]
fn without_the_daemon_guests_get_neither_address_nor_router() {
    let topo = slaac_topology(1);
    let out = solicit_router(&topo, 1, 2);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // It did solicit (twice, a second apart), and no advertisement came.
    assert!(
        stdout.contains("Soliciting") && stderr.trim().is_empty(),
        "{stdout}{stderr}"
    );
    assert!(
        !out.status.success(),
        "an advertisement came with no daemon: the topology is broken:\n{stdout}"
    );
    assert_eq!(topo.guest_addrs(1).unwrap(), vec![]);
    assert_eq!(topo.guest_default_route(1).unwrap(), None);
}

#[test]
fn guests_autoconfigure_and_are_reachable_through_the_antispoof_filter() {
    let topo = slaac_topology(2);
    let daemon = start(&topo);
    let router_ll = bridge_link_local();
    for n in 1..=2 {
        let addr = configured(&topo, &daemon, n, false);
        // EUI-64 from the guest's MAC (addr_gen_mode 0): the kernel's own choice.
        let route = topo.guest_default_route(n).unwrap().unwrap_or_default();
        assert!(
            route.contains(&format!("via {router_ll} dev eth0")) && route.contains("proto ra"),
            "guest {n}'s default route: {route:?}"
        );
        let addr = addr.to_string();
        assert_reachable_from_outside(&topo, &daemon, &addr);
        // And the guest reaches out, to the router and beyond it.
        for dst in [GATEWAY, INTERNET_ADDR] {
            assert!(
                replies(
                    &topo,
                    &topo.guest(n),
                    Some(&addr),
                    dst,
                    Duration::from_secs(10)
                ),
                "guest {n} ({addr}) does not reach {dst}\n{}",
                daemon.log()
            );
        }
        assert!(
            has_route(&topo, addr.parse().unwrap()),
            "no route of ours to {addr}: {:?}",
            topo.host_slaac_routes()
        );
    }
    // Guest to guest, through the host (L=0: nothing is on-link for the guests).
    let other = configured(&topo, &daemon, 2, false).to_string();
    assert!(replies(
        &topo,
        &topo.guest(1),
        None,
        &other,
        Duration::from_secs(10)
    ));

    // Guest 2's temporary (privacy) address works too, both ways.
    let temporary = configured(&topo, &daemon, 2, true).to_string();
    assert_reachable_from_outside(&topo, &daemon, &temporary);
    assert!(
        replies(
            &topo,
            &topo.guest(2),
            Some(&temporary),
            INTERNET_ADDR,
            Duration::from_secs(10)
        ),
        "guest 2 does not reach the Internet from its temporary address {temporary}\n{}",
        daemon.log()
    );
    assert!(has_route(&topo, temporary.parse().unwrap()));

    // The control socket's status: the interface, its prefix, each station by MAC with its
    // addresses, one route per address, RAs sent.
    let addr1 = configured(&topo, &daemon, 1, false);
    let st = common::status(&daemon);
    let sl = &st.uplinks[0].slaac;
    assert_eq!(sl.len(), 1, "{sl:?}");
    assert_eq!(sl[0].interface, "br0");
    assert_eq!(sl[0].prefixes, vec![lab::UPLINK_PREFIX.to_string()]);
    assert!(
        sl[0]
            .stations
            .get(&lab::guest_mac(1))
            .is_some_and(|a| a.contains(&addr1)),
        "{sl:?}"
    );
    let guest2 = sl[0]
        .stations
        .get(&lab::guest_mac(2))
        .cloned()
        .unwrap_or_default();
    assert!(guest2.contains(&temporary.parse().unwrap()), "{sl:?}");
    assert_eq!(
        sl[0].routes,
        topo.host_slaac_routes().unwrap().len(),
        "{sl:?}"
    );
    let c = &st.uplinks[0].counters;
    assert!(c.ras_sent > 0 && c.slaac_routes_added >= 3, "{c:?}");

    // Routed, never bridged: no guest frame reached the provider link, and no answer of the
    // daemon was dropped for a link-local source.
    assert_eq!(topo.mac_filter_drops().unwrap(), 0);
    assert_eq!(topo.antispoof_drops().unwrap(), 0);

    // A clean stop removes every route it installed.
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
    assert_eq!(topo.host_slaac_routes().unwrap(), vec![], "{}", stopped.log);
}

#[test]
fn the_advertisement_answers_a_solicitation_within_a_second_and_carries_the_uplink() {
    let topo = slaac_topology(1);
    let daemon = start(&topo);
    configured(&topo, &daemon, 1, false);
    let capture = start_capture_with(
        &topo.guest(1),
        "eth0",
        100,
        &[],
        "icmp6 and (ip6[40] == 133 or ip6[40] == 134)",
    );
    let out = solicit_router(&topo, 1, 1);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "no advertisement within 1 s of a solicitation:\n{text}\n{}",
        daemon.log()
    );
    // The delay, from the capture's timestamps: the solicitation, then the next advertisement.
    assert!(capture.wait_for(Duration::from_secs(2), |t| t
        .lines()
        .skip_while(|l| !l.contains("router solicitation"))
        .any(|l| l.contains("router advertisement"))));
    let stamp = |l: &str| {
        l.split_whitespace()
            .next()
            .and_then(|t| t.parse::<f64>().ok())
    };
    let lines: Vec<String> = capture.text().lines().map(str::to_string).collect();
    let rs = lines
        .iter()
        .position(|l| l.contains("router solicitation"))
        .unwrap();
    let ra = lines[rs..]
        .iter()
        .find(|l| l.contains("router advertisement"))
        .unwrap();
    let delay = stamp(ra).unwrap() - stamp(&lines[rs]).unwrap();
    eprintln!("RS answered after {:.1} ms", delay * 1000.0);
    assert!(
        delay <= 1.0,
        "RS answered after {delay:.3} s:\n{}",
        capture.text()
    );
    assert!(
        daemon.counters().rs_answered >= 1,
        "{:?}",
        daemon.counters()
    );

    // What it says (RFC 4861 4.2, 6.2): from the bridge's link-local address, a router for
    // some time, the uplink's MTU and source MAC, the uplink's /64 with A=1, L=0.
    let has = |needle: &str| {
        text.lines().any(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains(needle)
        })
    };
    assert!(has(&format!("from {}", bridge_link_local())), "{text}");
    assert!(has(&format!("MTU : {} bytes", lab::UPLINK_MTU)), "{text}");
    assert!(
        has(&format!(
            "Source link-layer address: {}",
            lab::GUEST_BRIDGE_MAC.to_uppercase()
        )),
        "{text}"
    );
    assert!(has(&format!("Prefix : {}", lab::UPLINK_PREFIX)), "{text}");
    assert!(
        has("On-link : No") && has("Autonomous address conf.: Yes"),
        "{text}"
    );
    let lifetime = text
        .lines()
        .find(|l| l.starts_with("Router lifetime"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u32>().ok());
    assert!(
        lifetime.is_some_and(|l| l > 0),
        "router lifetime {lifetime:?}:\n{text}"
    );
}

#[test]
fn dns_servers_from_the_file_are_advertised() {
    let topo = slaac_topology(1);
    let scratch = common::Scratch::new("slaac-dns");
    let config = scratch.path("ndp-responder.toml");
    std::fs::write(
        &config,
        "[[uplink]]\ninterface = \"eth0\"\n\n[[uplink.rule]]\nmode = \"slaac\"\ninterface = \"br0\"\ndns = [\"2001:db8:ff::53\"]\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let daemon = topo
        .start_daemon_args(exe(), &["-c", &config])
        .unwrap_or_else(|e| panic!("starting with {config}: {e}"));
    configured(&topo, &daemon, 1, false);
    let out = solicit_router(&topo, 1, 2);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("Recursive DNS server") && l.contains("2001:db8:ff::53")),
        "{text}"
    );
}

#[test]
fn a_prefix_added_to_the_uplink_is_advertised_and_one_that_goes_is_deprecated() {
    let topo = slaac_topology(1);
    let daemon = start(&topo);
    configured(&topo, &daemon, 1, false);
    // The provider adds a second /64 on the link (the host gets an address in it): followed.
    let second: ipnet::Ipv6Net = "2001:db8:2::/64".parse().unwrap();
    topo.exec(
        &topo.host(),
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:2::2/64",
            "dev",
            "eth0",
            "nodad",
        ],
    )
    .unwrap();
    let found = topo
        .wait_guest_addr(1, second, false, CONFIGURED_WITHIN)
        .unwrap();
    let Some(addr) = found else {
        panic!(
            "no address from {second} after the uplink got one: {:?}\n{}",
            topo.guest_addrs(1),
            daemon.log()
        );
    };
    // It goes away: advertised with lifetime 0, so the guest stops preferring the address
    // at once (RFC 4862 5.5.3 e keeps it valid two more hours, deprecated).
    topo.exec(
        &topo.host(),
        &["ip", "-6", "addr", "del", "2001:db8:2::2/64", "dev", "eth0"],
    )
    .unwrap();
    assert!(
        wait_until(CONFIGURED_WITHIN, || topo
            .guest_addrs(1)
            .unwrap()
            .iter()
            .any(|a| a.addr == addr && a.deprecated)),
        "{addr} is not deprecated after {second} left the uplink: {:?}\n{}",
        topo.guest_addrs(1),
        daemon.log()
    );
    // The first prefix is untouched.
    assert!(topo
        .guest_addrs(1)
        .unwrap()
        .iter()
        .any(|a| uplink_prefix().contains(&a.addr) && a.usable() && !a.deprecated));
}

#[test]
fn dns_servers_are_relayed_from_the_uplinks_router() {
    let topo = slaac_topology(1);
    let daemon = start(&topo);
    configured(&topo, &daemon, 1, false);
    // The provider's router advertises a DNS server on the uplink (RDNSS only: router lifetime
    // 0 and no prefix, so the host's own routing is unchanged).
    let frame = quiet_advert(
        lab::ROUTER_MAC,
        "fe80::ff:fe00:101",
        Some("2001:db8:ff::35"),
    );
    assert_eq!(common::send_frames_in(&topo.router(), "r0", &[frame]), 1);
    // The guests hear it from the host (asked with a solicitation: the answer is due at once).
    let mut text = String::new();
    let relayed = wait_until(Duration::from_secs(10), || {
        text = String::from_utf8_lossy(&solicit_router(&topo, 1, 1).stdout).into_owned();
        text.lines()
            .any(|l| l.contains("Recursive DNS server") && l.contains("2001:db8:ff::35"))
    });
    assert!(relayed, "not relayed:\n{text}\n{}", daemon.log());
}

#[test]
fn an_uplink_configured_by_router_advertisements_shares_the_prefix_it_learned() {
    let topo = slaac_topology(1);
    let host = topo.host();
    // The provider's router advertises another /64 on the link, and routes it there; the
    // host, forwarding, accepts advertisements only with accept_ra=2.
    topo.exec(
        &topo.router(),
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:3::1/64",
            "dev",
            "r0",
            "nodad",
        ],
    )
    .unwrap();
    topo.sysctl(&host, "net/ipv6/conf/eth0/accept_ra", "2")
        .unwrap();
    let ra = router_advert(
        lab::ROUTER_MAC,
        "fe80::ff:fe00:101",
        1800,
        Some("2001:db8:3::/64"),
        None,
    );
    assert_eq!(common::send_frames_in(&topo.router(), "r0", &[ra]), 1);
    let host_addr = "2001:db8:3::ff:fe00:201";
    assert!(
        wait_until(Duration::from_secs(5), || {
            let out = topo
                .exec(&host, &["ip", "-6", "addr", "show", "dev", "eth0"])
                .unwrap();
            String::from_utf8_lossy(&out.stdout).contains(host_addr)
        }),
        "the host did not autoconfigure {host_addr} on its uplink"
    );
    // doctor is content with accept_ra=2, and says what to do without it.
    let doctor = |args: &[&str]| {
        let mut full = vec!["--slaac", "br0"];
        full.extend_from_slice(args);
        common::doctor_json(&topo, "eth0", &full).1
    };
    let problems = common::faulty_checks;
    let report = doctor(&[]);
    assert_eq!(problems(&report), Vec::<String>::new(), "{report:#}");
    topo.sysctl(&host, "net/ipv6/conf/eth0/accept_ra", "1")
        .unwrap();
    let report = doctor(&[]);
    assert_eq!(
        problems(&report),
        vec!["accept_ra".to_string()],
        "{report:#}"
    );
    topo.sysctl(&host, "net/ipv6/conf/eth0/accept_ra", "2")
        .unwrap();

    // The daemon shares both /64s of the uplink; the guest takes an address in the learned
    // one, reachable from the router's address in it.
    let daemon = start(&topo);
    let learned: ipnet::Ipv6Net = "2001:db8:3::/64".parse().unwrap();
    let addr = topo
        .wait_guest_addr(1, learned, false, CONFIGURED_WITHIN)
        .unwrap()
        .unwrap_or_else(|| {
            panic!(
                "no address from {learned}: {:?}\n{}",
                topo.guest_addrs(1),
                daemon.log()
            )
        });
    configured(&topo, &daemon, 1, false);
    assert!(
        replies(
            &topo,
            &topo.router(),
            Some("2001:db8:3::1"),
            &addr.to_string(),
            Duration::from_secs(10)
        ),
        "{addr} does not answer pings from 2001:db8:3::1\n{}",
        daemon.log()
    );
}
