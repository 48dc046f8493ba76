//! `ndp-responder doctor` on hosts in namespaces: a healthy topology produces no finding, and
//! each fault, built into a topology, produces its finding. `--probe` runs against the Linux
//! kernel as the provider's router.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use common::{topology, EXE};
use ndp_responder::tools::lab::{Topology, CONTAINER_PREFIX, GATEWAY};

/// Run doctor on eth0 in the host namespace with `--json`; returns (exit code, report).
fn doctor(topo: &Topology, args: &[&str]) -> (i32, serde_json::Value) {
    common::doctor_json(topo, "eth0", args)
}

/// The checks that found something (severity warning or problem).
fn faults(report: &serde_json::Value) -> BTreeSet<String> {
    common::faulty_checks(report).into_iter().collect()
}

fn set(checks: &[&str]) -> BTreeSet<String> {
    checks.iter().map(|s| s.to_string()).collect()
}

fn host_cmd(topo: &Topology, args: &[&str]) {
    topo.exec(&topo.host(), args).unwrap();
}

#[test]
fn healthy_topology_has_no_findings() {
    let topo = topology(1);
    let (code, report) = doctor(&topo, &["-n", CONTAINER_PREFIX]);
    assert_eq!(faults(&report), set(&[]), "{report:#}");
    assert_eq!(report["healthy"], true);
    assert_eq!(code, 0);
    // Text mode says so too.
    let out = topo
        .try_exec(
            &topo.host(),
            &[EXE, "doctor", "-i", "eth0", "-n", CONTAINER_PREFIX],
        )
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Nothing wrong found."));
}

#[test]
fn missing_interface() {
    let topo = topology(0);
    let (code, report) = common::doctor_json(&topo, "eth9", &[]);
    assert_eq!(faults(&report), set(&["interface"]), "{report:#}");
    assert_eq!(code, 1);
}

#[test]
fn forwarding_off() {
    let topo = topology(0);
    topo.sysctl(&topo.host(), "net/ipv6/conf/all/forwarding", "0")
        .unwrap();
    let (code, report) = doctor(&topo, &["-n", CONTAINER_PREFIX]);
    assert_eq!(faults(&report), set(&["forwarding"]), "{report:#}");
    assert_eq!(code, 1);
}

#[test]
fn router_advertised_gateway_without_accept_ra_2() {
    let topo = topology(0);
    host_cmd(
        &topo,
        &[
            "ip", "-6", "route", "replace", "default", "via", GATEWAY, "dev", "eth0", "proto", "ra",
        ],
    );
    let (_, report) = doctor(&topo, &["-n", CONTAINER_PREFIX]);
    assert_eq!(faults(&report), set(&["accept_ra"]), "{report:#}");
    topo.sysctl(&topo.host(), "net/ipv6/conf/eth0/accept_ra", "2")
        .unwrap();
    let (code, report) = doctor(&topo, &["-n", CONTAINER_PREFIX]);
    assert_eq!(faults(&report), set(&[]), "{report:#}");
    assert_eq!(code, 0);
}

#[test]
fn kernel_proxy_entry_for_a_target() {
    let topo = topology(0);
    topo.sysctl(&topo.host(), "net/ipv6/conf/eth0/proxy_ndp", "1")
        .unwrap();
    host_cmd(
        &topo,
        &[
            "ip",
            "-6",
            "neigh",
            "add",
            "proxy",
            "2001:db8:1::d:2",
            "dev",
            "eth0",
        ],
    );
    let (_, report) = doctor(&topo, &["-n", CONTAINER_PREFIX]);
    assert_eq!(faults(&report), set(&["proxy_ndp"]), "{report:#}");
}

#[test]
fn prefix_routed_back_out_of_the_uplink() {
    let topo = topology(0);
    // 2001:db8:1::e:0/112 has no downstream route: it falls under the uplink's /64.
    let (_, report) = doctor(&topo, &["-n", "2001:db8:1::e:0/112"]);
    assert_eq!(faults(&report), set(&["route"]), "{report:#}");
}

#[test]
fn uplink_down_and_gateway_gone() {
    let topo = topology(0);
    host_cmd(&topo, &["ip", "link", "set", "eth0", "down"]);
    let (code, report) = doctor(&topo, &[]);
    let found = faults(&report);
    assert!(
        found.contains("link") && found.contains("gateway"),
        "{report:#}"
    );
    assert_eq!(code, 1);
}

#[test]
fn no_default_route() {
    let topo = topology(0);
    host_cmd(&topo, &["ip", "-6", "route", "del", "default"]);
    let (_, report) = doctor(&topo, &["-n", CONTAINER_PREFIX]);
    assert_eq!(faults(&report), set(&["gateway"]), "{report:#}");
}

#[test]
fn prefix_covering_the_gateway() {
    let topo = topology(0);
    // The /64 is on-link on eth0 *and* covers the gateway: two findings.
    let (_, report) = doctor(&topo, &["-n", "2001:db8:1::/64"]);
    assert_eq!(
        faults(&report),
        set(&["prefix_covers_gateway", "route"]),
        "{report:#}"
    );
}

#[test]
fn another_responder_in_the_hosts_namespace() {
    let topo = topology(0);
    // A stand-in process called "ndppd" in the host's namespace.
    let dir = std::env::temp_dir().join(format!("ndpt-fake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("ndppd");
    std::fs::copy("/bin/sleep", &fake).unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &topo.host()])
        .arg(&fake)
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let seen = ndp_responder::tools::lab::wait_until(std::time::Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{}/comm", child.id()))
            .map(|c| c.trim() == "ndppd")
            .unwrap_or(false)
    });
    assert!(seen, "the stand-in did not start");
    let (_, report) = doctor(&topo, &["-n", CONTAINER_PREFIX]);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(faults(&report), set(&["other_responder"]), "{report:#}");
    let text = report.to_string();
    assert!(
        text.contains(&format!("ndppd (pid {})", child.id())),
        "{text}"
    );
}

#[test]
fn probe_tells_which_source_the_router_accepts() {
    let topo = topology(0);
    let probe = ["--probe", "2001:db8:1::d:99"];
    let answered = |report: &serde_json::Value, policy: &str| {
        let results = report["probe"]
            .as_array()
            .expect("probe results in the report");
        let result = results.iter().find(|r| r["policy"] == policy).unwrap();
        assert!(result["sent"].as_u64().unwrap() <= 3, "{result}");
        result["answered"] == true
    };
    let (code, report) = doctor(&topo, &probe);
    assert!(
        answered(&report, "target") && answered(&report, "link-local"),
        "{report:#}"
    );
    assert_eq!(code, 0, "{report:#}");

    // The hypervisor now drops NDP from the host's link-local address to the router.
    let rules = "table bridge nollns {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n  iifname \"to-host\" icmpv6 type nd-neighbor-solicit ip6 saddr fe80::/10 drop\n }\n}\n";
    common::nft(&topo.hypervisor(), rules);

    let (code, report) = doctor(&topo, &probe);
    assert!(answered(&report, "target"), "{report:#}");
    assert!(!answered(&report, "link-local"), "{report:#}");
    assert!(
        report.to_string().contains("keep --source target"),
        "{report:#}"
    );
    assert_eq!(
        code, 0,
        "a provider that filters link-local is not a fault: {report:#}"
    );

    // A test address the gateway will not talk to: every NS from the host is dropped.
    let rules = "table bridge nons {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n  iifname \"to-host\" icmpv6 type nd-neighbor-solicit drop\n }\n}\n";
    common::nft(&topo.hypervisor(), rules);
    let (code, report) = doctor(&topo, &probe);
    assert_eq!(faults(&report), set(&["probe"]), "{report:#}");
    assert_eq!(code, 1);
}
