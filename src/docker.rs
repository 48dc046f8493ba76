//! Docker and Podman networks as a source of targets: the IPv6 addresses of the containers
//! connected to the named networks.
//!
//! Owns: the connection to the engine's API (bollard, honouring `DOCKER_HOST`; Podman's
//! Docker-compatible socket works the same), the initial inspection of each network, following
//! `network connect/disconnect/create/destroy` events, reconnecting with capped backoff when
//! the engine is down or restarts (keeping what is known meanwhile, logging once per change of
//! state), and publishing the resulting address set.
//!
//! Must not: decide answers or send packets; the daemon turns the published set into the
//! snapshot's `docker` targets and announces new addresses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::{EventsOptions, InspectNetworkOptions};
use bollard::Docker;
use futures::StreamExt;
use tokio::sync::watch;
use tracing::{info, warn};

/// Container addresses by address: (network, container name).
pub type DockerTargets = BTreeMap<Ipv6Addr, (String, String)>;

/// Backoff between reconnection attempts: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The IPv6 address of an endpoint, as the API writes it ("2001:db8::2/112").
fn endpoint_addr(field: Option<&str>) -> Option<Ipv6Addr> {
    field?.split('/').next()?.parse().ok()
}

/// Where the engine is, for log lines.
fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Inspect every network; networks that do not exist are reported in `missing`.
async fn inspect_all(
    docker: &Docker,
    networks: &[String],
    missing: &mut BTreeSet<String>,
) -> Result<DockerTargets, bollard::errors::Error> {
    let mut targets = DockerTargets::new();
    for name in networks {
        match docker
            .inspect_network(name, None::<InspectNetworkOptions>)
            .await
        {
            Ok(net) => {
                if missing.remove(name) {
                    info!("docker: network {name} exists now");
                }
                let containers = net.containers.unwrap_or_default();
                for (id, ep) in containers {
                    if let Some(addr) = endpoint_addr(ep.ipv6_address.as_deref()) {
                        let container = ep.name.unwrap_or_else(|| id.chars().take(12).collect());
                        targets.insert(addr, (name.clone(), container));
                    }
                }
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                if missing.insert(name.clone()) {
                    warn!(
                        "docker: network {name} does not exist (yet); waiting for it to be created"
                    );
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(targets)
}

/// Log what changed between two sets, as an operator wants to read it.
fn log_changes(old: &DockerTargets, new: &DockerTargets) {
    for (addr, (net, name)) in new {
        if !old.contains_key(addr) {
            info!("docker: {addr} ({name}) connected to {net}");
        }
    }
    for (addr, (net, name)) in old {
        if !new.contains_key(addr) {
            info!("docker: {addr} ({name}) left {net}");
        }
    }
}

/// Follow `networks` forever, publishing the targets on `tx`.
pub async fn watch(networks: Vec<String>, tx: watch::Sender<Arc<DockerTargets>>) {
    let mut backoff = BACKOFF_FIRST;
    // Whether the current outage was reported: one warning per outage, not per retry.
    let mut reported_down = false;
    let mut missing = BTreeSet::new();
    let publish = |new: DockerTargets| {
        let old = tx.borrow().clone();
        if *old != new {
            log_changes(&old, &new);
            let _ = tx.send(Arc::new(new));
        }
    };
    loop {
        let mut connected = false;
        let session = async {
            let docker = Docker::connect_with_defaults()?;
            docker.ping().await?;
            connected = true;
            // Subscribe before the full read, so that no change falls between the two.
            let filters = HashMap::from([("type".to_string(), vec!["network".to_string()])]);
            let mut events = docker.events(Some(EventsOptions {
                filters: Some(filters),
                ..Default::default()
            }));
            let version = docker
                .version()
                .await
                .ok()
                .and_then(|v| v.version)
                .unwrap_or_else(|| "?".into());
            info!(
                "docker: connected to the engine at {} (version {version}); following {}",
                engine_address(),
                networks.join(", ")
            );
            publish(inspect_all(&docker, &networks, &mut missing).await?);
            while let Some(event) = events.next().await {
                let event = event?;
                let network = event
                    .actor
                    .as_ref()
                    .and_then(|a| a.attributes.as_ref())
                    .and_then(|a| a.get("name").cloned());
                if network.is_some_and(|n| networks.contains(&n)) {
                    publish(inspect_all(&docker, &networks, &mut missing).await?);
                }
            }
            Err::<(), _>(bollard::errors::Error::IOError {
                err: std::io::Error::other("the event stream ended"),
            })
        };
        let outcome = session.await;
        if connected {
            // The engine was there: start the backoff afresh, and report the next outage.
            backoff = BACKOFF_FIRST;
            reported_down = false;
        }
        let reason = match outcome {
            Ok(()) => "the session ended".to_string(),
            Err(e) => e.to_string(),
        };
        // Log once per outage, not per retry; keep answering what is known.
        if !reported_down {
            let known = tx.borrow().len();
            warn!(
                "docker: the engine at {} is not reachable ({reason}); still answering the {known} known address(es), retrying",
                engine_address()
            );
            reported_down = true;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_addresses_are_parsed_without_their_prefix_length() {
        assert_eq!(
            endpoint_addr(Some("2001:db8:1::d:2/112")),
            Some("2001:db8:1::d:2".parse().unwrap())
        );
        assert_eq!(endpoint_addr(Some("")), None);
        assert_eq!(endpoint_addr(None), None);
        assert_eq!(endpoint_addr(Some("192.0.2.5/24")), None);
    }

    #[test]
    fn changes_are_computed_per_address() {
        let a: Ipv6Addr = "2001:db8:1::d:2".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1::d:3".parse().unwrap();
        let old = DockerTargets::from([(a, ("net".into(), "c1".into()))]);
        let new = DockerTargets::from([(b, ("net".into(), "c2".into()))]);
        // Logging only; it must not panic on any combination.
        log_changes(&old, &new);
        log_changes(&new, &DockerTargets::new());
    }
}
