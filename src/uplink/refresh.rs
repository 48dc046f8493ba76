//! Refresh: keeping the snapshot equal to what the kernel, the engines and the configuration
//! say, and the uplink loop in step with it.
//!
//! Owns: the refresh task (netlink change events, coalesced; container changes; reloaded
//! rules) that publishes each new [`Snapshot`], the Docker feed of an uplink (its targets and
//! its engine's state, as [`crate::sources::docker`] publishes them), following the
//! uplink and downstream interfaces as they come and go ([`Responder::reconcile`]), the
//! kernel filter's prefixes, the uplink's solicited-node group memberships
//! ([`Responder::sync_groups`]: joined on start, on each snapshot change and when the probe
//! answers change, never on the packet path), applying a reloaded configuration in place, and
//! the log lines about what changed.
//!
//! Must not: answer, or read the kernel on the packet path.

use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tracing::{debug, error, info, warn};

use super::upstream::{announcer_every, keepalive_every};
use super::{open_uplink, Options, Responder};
use crate::decide::groups::{self, JOIN_PREFIX_LEN};
use crate::decide::targets::{Mode, Rule, Snapshot, TargetTable};
use crate::link::groups::{Groups, JoinRefused, MAX_GROUPS};
use crate::sources::docker::{self, DockerTargets, EngineState};
use crate::sources::netlink::{self, KernelView};
use crate::status::list;

/// How long to let a burst of netlink events settle before reading the kernel state again.
pub(super) const REFRESH_COALESCE: Duration = Duration::from_millis(20);

/// Where the refresh task takes its targets from; replaced by a reload.
#[derive(Clone)]
pub(super) struct Sources {
    pub(super) rules: Vec<Rule>,
    pub(super) docker: watch::Receiver<Arc<DockerTargets>>,
}

/// Rebuild the snapshot whenever the kernel reports a change or a reload replaces the rules,
/// forever.
pub(super) async fn refresh_task(
    handle: netlink::Handle,
    ifname: String,
    mut sources_rx: watch::Receiver<Sources>,
    table: Arc<TargetTable>,
    changed: Arc<Notify>,
    mut view: KernelView,
) {
    let mut sources = sources_rx.borrow_and_update().clone();
    let mut docker_open = true;
    let mut sources_open = true;
    loop {
        let events = match netlink::watch() {
            Ok(w) => w,
            Err(e) => {
                error!("cannot subscribe to kernel changes: {e}; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Look once right after (re)subscribing: changes may have happened meanwhile.
        let mut kernel_due = true;
        loop {
            if !kernel_due {
                tokio::select! {
                    event = events.changed() => {
                        if let Err(e) = event {
                            // ENOBUFS (events were lost) or worse: a fresh subscription, then
                            // a fresh read of everything.
                            warn!("kernel change subscription: {e}; subscribing again");
                            break;
                        }
                    }
                    result = sources.docker.changed(), if docker_open => {
                        // The containers changed: rebuild from the kernel state we have.
                        docker_open = result.is_ok();
                        let docker = sources.docker.borrow_and_update().clone();
                        publish(&view, &ifname, &sources.rules, &docker, &table, &changed);
                        continue;
                    }
                    result = sources_rx.changed(), if sources_open => {
                        // A reload: the new rules apply at once, to the state we have.
                        sources_open = result.is_ok();
                        sources = sources_rx.borrow_and_update().clone();
                        docker_open = true;
                        let docker = sources.docker.borrow_and_update().clone();
                        publish(&view, &ifname, &sources.rules, &docker, &table, &changed);
                        continue;
                    }
                }
            }
            kernel_due = false;
            tokio::time::sleep(REFRESH_COALESCE).await;
            // Swallow the events of the burst we are about to read anyway.
            while let Some(Ok(())) = futures::FutureExt::now_or_never(events.changed()) {}
            match netlink::kernel_view(&handle).await {
                Ok(fresh) => {
                    view = fresh;
                    let docker = sources.docker.borrow_and_update().clone();
                    publish(&view, &ifname, &sources.rules, &docker, &table, &changed);
                }
                Err(e) => warn!("could not read the kernel's state: {e}"),
            }
        }
    }
}

pub(super) fn publish(
    view: &KernelView,
    ifname: &str,
    rules: &[Rule],
    docker: &DockerTargets,
    table: &TargetTable,
    changed: &Notify,
) {
    let next = Snapshot::build(view, ifname, rules, docker);
    let current = table.load();
    if *current != next {
        log_changes(ifname, &current, &next);
        table.store(next);
        changed.notify_one();
    }
}

pub(super) fn docker_networks(rules: &[Rule]) -> Vec<String> {
    rules
        .iter()
        .filter_map(|r| match &r.mode {
            Mode::Docker { network } => Some(network.clone()),
            _ => None,
        })
        .collect()
}

/// The Docker watcher of one uplink, replaced when a reload changes its networks: the targets
/// it publishes (for the refresh task) and the engine's state (for the report).
pub(super) struct DockerFeed {
    pub(super) networks: Vec<String>,
    pub(super) rx: watch::Receiver<Arc<DockerTargets>>,
    pub(super) state: watch::Receiver<EngineState>,
    pub(super) task: Option<tokio::task::JoinHandle<()>>,
}

impl DockerFeed {
    /// Follow `networks`, starting from what is already known of them (so that a reload does
    /// not forget the containers of the networks it keeps, nor that they exist; the new
    /// watcher is connected once the engine has answered it).
    pub(super) fn start(
        networks: Vec<String>,
        known: &DockerTargets,
        engine: &EngineState,
    ) -> DockerFeed {
        let kept: DockerTargets = known
            .iter()
            .filter(|(_, (net, _))| networks.contains(net))
            .map(|(a, v)| (*a, v.clone()))
            .collect();
        let (tx, rx) = watch::channel(Arc::new(kept));
        let (state_tx, state) = watch::channel(EngineState {
            existing: engine
                .existing
                .iter()
                .filter(|n| networks.contains(n))
                .cloned()
                .collect(),
            ..EngineState::default()
        });
        let task = (!networks.is_empty())
            .then(|| tokio::spawn(docker::watch(networks.clone(), tx, state_tx)));
        DockerFeed {
            networks,
            rx,
            state,
            task,
        }
    }
}

impl Drop for DockerFeed {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Log what changed between two snapshots, as an operator wants to read it.
pub(super) fn log_changes(ifname: &str, old: &Snapshot, new: &Snapshot) {
    if new.uplink.is_none() {
        return;
    }
    if old.up != new.up
        || old.mac != new.mac
        || old.uplink_addrs != new.uplink_addrs
        || old.gateways != new.gateways
    {
        info!("{ifname} changed: {}", describe(new));
    }
    for added in new.known.difference(&old.known) {
        info!("auto: {added} is now known behind a downstream interface");
    }
    for removed in old.known.difference(&new.known) {
        info!("auto: {removed} is no longer known downstream");
    }
}

pub(super) fn describe(snap: &Snapshot) -> String {
    format!(
        "MAC {}, {}, own addresses: {}; gateways: {}",
        snap.mac,
        if snap.up { "up" } else { "down" },
        list(&snap.uplink_addrs),
        list(&snap.gateways)
    )
}

/// Warn about rules that can never answer as the routes stand (see `ndp-responder doctor`).
pub(super) fn warn_unrouted(ifname: &str, snap: &Snapshot) {
    for rule in snap
        .rules
        .iter()
        .filter(|r| !matches!(r.mode, Mode::Docker { .. } | Mode::Slaac { .. }))
    {
        let probe = rule.prefix.addr();
        if let Some(Some(oif)) = snap.route_oif(&probe) {
            if Some(oif) == snap.uplink && rule.prefix.prefix_len() < 128 {
                let sample = Ipv6Addr::from(u128::from(rule.prefix.broadcast()).saturating_sub(1));
                if snap.route_oif(&sample) == Some(Some(oif)) {
                    warn!(
                        "rule {rule}: its addresses are routed out of {ifname}, so none is answered until the prefix is routed to a downstream interface (run `ndp-responder doctor -i {ifname} -n {}`)",
                        rule.prefix
                    );
                }
            }
        }
    }
}

impl Responder {
    /// A reloaded configuration for this uplink: apply what changed, keep the socket and all
    /// that is known (the refresh task applies the new rules to the snapshot).
    pub(super) fn apply(&mut self, new: Options) {
        let old = std::mem::replace(&mut self.opts, new);
        let new = &self.opts;
        self.settings = new.settings;
        self.cache.set_limits(new.probe);
        self.limiter.set_limits(new.rate_limit, Instant::now());
        if new.keepalive != old.keepalive {
            self.keepalive = new.keepalive.map(keepalive_every);
            if self.keepalive.is_none() {
                self.gateway_reader = None;
                // No answer can be read any more: not a failure of the gateway.
                self.expected.clear();
            }
        }
        if new.announce != old.announce {
            self.announcer = new.announce.map(announcer_every);
            self.in_use_window = new.announce.unwrap_or_default().saturating_mul(2);
        }
        // New settings or limits reach the program with the next snapshot too; the switch
        // itself (fast_path) takes effect now.
        let snap = self.table.load();
        self.sync_fast(&snap);
    }

    /// Let the kernel drop solicitations for targets outside every rule (see
    /// [`link::ndp_filter`] and [`Snapshot::filter_prefixes`]); re-applied when the rules or
    /// the containers of a docker rule without a prefix change.
    pub(super) fn apply_filter(&mut self, snap: &Snapshot) {
        let Some((_, socket)) = &self.uplink else {
            return;
        };
        let want = snap.filter_prefixes();
        if want == self.filtered {
            return;
        }
        match socket.get_ref().set_targets(&want) {
            Ok(()) => {
                debug!("kernel filter on {}: targets in {want:?}", self.ifname);
                self.filtered = want;
            }
            Err(e) => warn!(
                "could not narrow the kernel filter on {} to the rules' prefixes ({e}); every solicitation reaches the daemon",
                self.ifname
            ),
        }
    }

    /// Join the solicited-node groups of what is answered now on the uplink, and leave the
    /// others (see [`crate::decide::groups`]), so that a switch or bridge that snoops MLD
    /// forwards the router's solicitations for them here. A new uplink starts a fresh set;
    /// none while the uplink is not open.
    pub(super) fn sync_groups(&mut self, snap: &Snapshot) {
        let Some(index) = self.uplink.as_ref().map(|(i, _)| *i) else {
            self.groups = None;
            return;
        };
        if self.groups.as_ref().map(|g| g.ifindex()) != Some(index) {
            self.groups = Some(Groups::new(index));
        }
        let mut positives: Vec<Ipv6Addr> = self.cache.positives().collect();
        positives.sort_unstable();
        let wanted = groups::wanted(snap, positives.iter().copied());
        self.group_positives = positives;
        for prefix in &wanted.too_wide {
            let message = format!(
                "{}: rule {prefix} is wider than /{JOIN_PREFIX_LEN}: the solicited-node groups of its addresses are not joined, so a switch or bridge that snoops MLD may never pass the router's solicitations for them to this host; use narrower static rules (/{JOIN_PREFIX_LEN} or longer), auto or docker rules, or let the switch flood unknown multicast to this port",
                self.ifname
            );
            self.warn_once(format!("mld-wide-{}-{prefix}", self.ifname), &message);
        }
        let Some(joined) = self.groups.as_mut() else {
            return;
        };
        let synced = joined.sync(&wanted.groups);
        let now = joined.len();
        for (_, why) in &synced.refused {
            self.counters.mld_refused.add(*why);
        }
        if synced.joined + synced.left > 0 {
            debug!(
                "{}: joined {} solicited-node group(s), left {}: {now} joined",
                self.ifname, synced.joined, synced.left
            );
        }
        if let Some((first, why)) = synced.refused.first() {
            let why = match (why, &synced.error) {
                (JoinRefused::Limit, _) => format!("at most {MAX_GROUPS} are joined"),
                (JoinRefused::Kernel, Some(e)) => format!("the kernel refused ({e})"),
                (JoinRefused::Kernel, None) => "the kernel refused".to_string(),
            };
            warn!(
                "{}: {} solicited-node group(s) not joined ({first} first): {why}; behind a switch that snoops MLD, solicitations for their addresses may not reach this host",
                self.ifname,
                synced.refused.len()
            );
        }
    }

    /// After the probe cache's timers or answers: sync the groups if its positive answers
    /// changed.
    pub(super) fn positives_changed(&mut self) {
        let mut positives: Vec<Ipv6Addr> = self.cache.positives().collect();
        positives.sort_unstable();
        if positives != self.group_positives {
            let snap = self.table.load();
            self.sync_groups(&snap);
            self.sync_fast(&snap);
        }
    }

    /// Follow the uplink and downstream interfaces as the snapshot says they are now.
    pub(super) fn reconcile(&mut self) {
        let snap = self.table.load();
        let current = self.uplink.as_ref().map(|(i, _)| *i);
        if current != snap.uplink {
            if current.is_some() {
                self.uplink = None;
            }
            match snap.uplink {
                None => warn!("{} is gone; answering resumes when it is back", self.ifname),
                Some(_) if snap.mac.is_zero() => {
                    let message = format!(
                        "{} has no Ethernet MAC address: ndp-responder needs an Ethernet-like uplink",
                        self.ifname
                    );
                    self.warn_once(format!("no-mac-{}", self.ifname), &message);
                }
                Some(index) => match open_uplink(&self.ifname, index) {
                    Ok(fd) => {
                        info!("{} is here (index {index}): answering on it", self.ifname);
                        self.uplink = Some((index, Arc::new(fd)));
                        self.filtered.clear();
                    }
                    Err(e) => warn!("cannot listen on {}: {e}", self.ifname),
                },
            }
        }
        self.apply_filter(&snap);
        self.probers
            .retain(|index, _| snap.downstream.contains_key(index));
        if self.gateway_reader.as_ref().map(|(i, _)| *i) != snap.uplink {
            self.gateway_reader = None;
        }
        self.sync_groups(&snap);
        self.sync_fast(&snap);
        self.note_new_addresses(&snap);
    }
}
