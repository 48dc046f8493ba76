//! The field, end to end in namespaces: an uplink that is not there yet at start (created
//! later, or renamed into place) is waited for and answered on once it appears, and a missing
//! uplink never stops the others. State is read through `status --json`.

mod common;

use std::time::{Duration, Instant};

use common::{exe, host_answers, topology};
use ndp_responder::tools::lab::{container_addr, wait_until, CONTAINER_PREFIX};

/// The uplink `name` in the daemon's status: (index, up), if it is listed.
fn uplink_state(
    daemon: &ndp_responder::tools::lab::Daemon,
    name: &str,
) -> Option<(Option<u32>, bool)> {
    daemon
        .status()?
        .uplinks
        .into_iter()
        .find(|u| u.interface == name)
        .map(|u| (u.index, u.up))
}

#[test]
fn a_missing_uplink_is_waited_for_and_answered_on_once_it_appears() {
    let topo = topology(1);
    topo.delete_uplink().unwrap();
    // Starts (READY=1) although eth0 does not exist, and says it is waiting.
    let daemon = topo.start_daemon(exe(), &["-n", CONTAINER_PREFIX]).unwrap();
    assert_eq!(
        uplink_state(&daemon, "eth0"),
        Some((None, false)),
        "{}",
        daemon.log()
    );
    let ct = container_addr(1);
    assert!(!host_answers(&topo, &ct));

    // The interface is created: answered, without a restart.
    topo.connect_uplink().unwrap();
    let created = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || host_answers(&topo, &ct)),
        "{}",
        daemon.log()
    );
    eprintln!("answered {:?} after the uplink appeared", created.elapsed());
    assert!(matches!(
        uplink_state(&daemon, "eth0"),
        Some((Some(_), true))
    ));

    // Renamed away, it is waited for again; renamed back into place, answered again.
    let host = topo.host();
    for args in [
        &["ip", "link", "set", "eth0", "down"][..],
        &["ip", "link", "set", "eth0", "name", "eth0x"],
    ] {
        topo.exec(&host, args).unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(5), || {
            uplink_state(&daemon, "eth0") == Some((None, false))
        }),
        "{:?}",
        daemon.status()
    );
    for args in [
        &["ip", "link", "set", "eth0x", "name", "eth0"][..],
        &["ip", "link", "set", "eth0", "up"],
    ] {
        topo.exec(&host, args).unwrap();
    }
    // Its address and default route went with the link (keep_addr_on_down is 0): put them
    // back, as the network configuration would.
    topo.exec(
        &host,
        &[
            "ip",
            "addr",
            "replace",
            "2001:db8:1::2/64",
            "dev",
            "eth0",
            "nodad",
        ],
    )
    .unwrap();
    let route = [
        "ip",
        "-6",
        "route",
        "replace",
        "default",
        "via",
        "2001:db8:1::1",
        "dev",
        "eth0",
    ];
    assert!(wait_until(Duration::from_secs(5), || {
        topo.try_exec(&host, &route)
            .is_ok_and(|o| o.status.success())
    }));
    topo.router_forget(&ct).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || host_answers(&topo, &ct)),
        "{}",
        daemon.log()
    );
    let stopped = daemon.stop().unwrap();
    assert!(stopped.status.success(), "{}", stopped.log);
}

#[test]
fn a_missing_uplink_never_stops_the_others() {
    let topo = topology(1);
    let dir = std::env::temp_dir().join(format!("ndp-field-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("two-uplinks.toml");
    std::fs::write(
        &file,
        format!(
            "[[uplink]]\ninterface = \"eth0\"\n[[uplink.rule]]\nprefix = \"{CONTAINER_PREFIX}\"\nmode = \"static\"\n\n[[uplink]]\ninterface = \"ndpt-vlan9\"\n[[uplink.rule]]\nprefix = \"2001:db8:9::/112\"\nmode = \"static\"\n"
        ),
    )
    .unwrap();
    let daemon = topo
        .start_daemon_args(exe(), &["-c", file.to_str().unwrap()])
        .unwrap();
    assert!(host_answers(&topo, &container_addr(1)), "{}", daemon.log());
    assert!(matches!(
        uplink_state(&daemon, "eth0"),
        Some((Some(_), true))
    ));
    assert_eq!(
        uplink_state(&daemon, "ndpt-vlan9"),
        Some((None, false)),
        "{:?}",
        daemon.status()
    );
    daemon.stop().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
