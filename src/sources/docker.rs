//! Docker and Podman networks as a source of targets: the IPv6 addresses of the containers
//! connected to the named networks.
//!
//! Owns: the few calls of the engine's HTTP API it needs (`GET /networks/{name}`, `/events`,
//! `/version`), made with hyper over the engine's unix socket (`DOCKER_HOST=unix://...`, by
//! default /var/run/docker.sock; Podman's Docker-compatible socket works the same) and read
//! with serde_json into just the fields used; the initial inspection of each network, reading
//! them again (coalesced, at most every [`REREAD_INTERVAL`]) after every network event for
//! them or that names no network (Podman before 5) and every container start, death or
//! removal (Podman sends no network event for those), reconnecting with capped backoff when
//! the engine is down or restarts (keeping what is known meanwhile, logging once per change of
//! state), and publishing the resulting address set and, beside it, what is known of the
//! engine and the networks ([`EngineState`]: connected, which networks exist, outages).
//!
//! Must not: decide answers or send packets, or know the status report's types; the daemon
//! turns the published set into the snapshot's `docker` targets and announces new addresses,
//! and its report reads the [`EngineState`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::UnixStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

/// Container addresses by address: (network, container name).
pub type DockerTargets = BTreeMap<Ipv6Addr, (String, String)>;

/// What the watcher knows of the engine and of the followed networks, published beside the
/// targets (for the status report and the metrics: nothing on the packet path reads it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineState {
    /// The engine answered in full (every network inspected) and its events are followed.
    pub connected: bool,
    /// The followed networks that exist on the engine, as of its last answer (kept while the
    /// engine is unreachable; empty before its first answer).
    pub existing: BTreeSet<String>,
    /// Why the engine is unreachable, while it is.
    pub error: Option<String>,
    /// Outages since the watcher started: sessions lost or never made, each counted once
    /// however many retries it takes (as it is logged).
    pub outages: u64,
}

/// Backoff between reconnection attempts: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The engine's socket when `DOCKER_HOST` is not set.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// How long a request may take to be answered, and its body to arrive (the event stream
/// excepted: it lasts as long as the session).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the event stream's headers before reading the networks anyway: Docker
/// sends them at once, some Podman versions only with the first event.
const EVENTS_HEADERS_WAIT: Duration = Duration::from_secs(2);
/// How long a burst of events (a container's start sends several) may settle before the
/// networks are read again, and the least time between two reads: a busy engine costs one
/// read of the followed networks per interval at most, and a change is seen within about
/// half a second.
const REREAD_SETTLE: Duration = Duration::from_millis(100);
const REREAD_INTERVAL: Duration = Duration::from_millis(500);
/// Largest answer read whole (a network's inspection); the event stream is read piecewise.
const MAX_BODY: usize = 16 << 20;

/// Why talking to the engine failed, phrased for the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("DOCKER_HOST={0} is not supported: ndp-responder talks to the engine over its unix socket (unix:///path)")]
    Unsupported(String),
    #[error("connecting to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the engine answered {0} to GET {1}")]
    Status(StatusCode, String),
    #[error("the engine's answer to GET {0} is not what the API documents: {1}")]
    Json(String, serde_json::Error),
    #[error("the answer to GET {0} exceeds {MAX_BODY} bytes")]
    TooLarge(String),
    #[error("the event stream ended")]
    StreamEnded,
    #[error("no answer to GET {0} within {REQUEST_TIMEOUT:?}")]
    Timeout(String),
}

/// The engine's socket, from `DOCKER_HOST` (only `unix://` addresses) or the default.
fn socket_path() -> Result<PathBuf, Error> {
    match std::env::var("DOCKER_HOST") {
        Err(_) => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Ok(host) if host.is_empty() => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Ok(host) => match host.strip_prefix("unix://") {
            Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
            _ => Err(Error::Unsupported(host)),
        },
    }
}

/// Where the engine is, for log lines.
fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| format!("unix://{DEFAULT_SOCKET}"))
}

/// `text` as one URL path segment or query value (RFC 3986 unreserved characters as they are,
/// every other octet percent-encoded).
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// GET `path` on a fresh connection to the engine (a unix socket connection costs nothing;
/// the long-lived one carries the event stream). The response's body is still to be read.
///
/// The path carries no API version: the engine then serves its own current one. The fields
/// read here are the same in every version, and a pinned old version is refused by newer
/// engines (Docker 29 serves 1.44 and later only).
async fn get(socket: &Path, path: &str) -> Result<Response<Incoming>, Error> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| Error::Connect(socket.display().to_string(), e))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // Drives the connection until the response's body is read or dropped.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::get(path)
        .header(hyper::header::HOST, "docker")
        .body(Empty::<Bytes>::new())
        .map_err(|_| Error::Status(StatusCode::BAD_REQUEST, path.to_string()))?;
    Ok(sender.send_request(request).await?)
}

/// GET `path` and parse its JSON answer, all within [`REQUEST_TIMEOUT`]. `Ok(None)` for 404
/// Not Found.
async fn get_json<T: for<'de> Deserialize<'de>>(
    socket: &Path,
    path: &str,
) -> Result<Option<T>, Error> {
    tokio::time::timeout(REQUEST_TIMEOUT, get_json_now(socket, path))
        .await
        .map_err(|_| Error::Timeout(path.to_string()))?
}

async fn get_json_now<T: for<'de> Deserialize<'de>>(
    socket: &Path,
    path: &str,
) -> Result<Option<T>, Error> {
    let response = get(socket, path).await?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| match e.downcast::<hyper::Error>() {
            Ok(e) => Error::Http(*e),
            Err(_too_large) => Error::TooLarge(path.to_string()),
        })?
        .to_bytes();
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(Error::Status(status, path.to_string()));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Json(path.to_string(), e))
}

/// The fields of `GET /networks/{id}` read here (Docker Engine API, NetworkInspect).
#[derive(Debug, Default, Deserialize)]
struct Network {
    #[serde(rename = "Containers", default)]
    containers: Option<HashMap<String, Endpoint>>,
}

#[derive(Debug, Default, Deserialize)]
struct Endpoint {
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "IPv6Address", default)]
    ipv6_address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Version {
    #[serde(rename = "Version", default)]
    version: Option<String>,
}

/// One message of `GET /events` (EventMessage): its type, its action and its actor's
/// attributes.
#[derive(Debug, Default, Deserialize)]
struct Event {
    #[serde(rename = "Type", default)]
    kind: Option<String>,
    #[serde(rename = "Action", default)]
    action: Option<String>,
    #[serde(rename = "Actor", default)]
    actor: Option<Actor>,
}

#[derive(Debug, Default, Deserialize)]
struct Actor {
    #[serde(rename = "Attributes", default)]
    attributes: Option<HashMap<String, String>>,
}

/// The container actions after which a followed network may have changed: a container
/// started or stopped (Podman before 5 sends no network event for `podman run --network` or
/// `podman stop`; its `died` and `remove` are Docker's `die` and `destroy`, and `cleanup` comes
/// once the container's network is torn down).
const CONTAINER_ACTIONS: [&str; 6] = ["start", "die", "died", "destroy", "remove", "cleanup"];

/// What the event stream is filtered to: network events (all of them: which network one
/// concerns is decided here) and the container actions above. An engine applies the filters
/// to its own action names (Podman matches `died`, and answers with `die`).
const EVENT_FILTERS: &str = r#"{"type":["network","container"],"event":["create","destroy","remove","connect","disconnect","start","die","died","cleanup"]}"#;

impl Event {
    /// The network's name, when the event names one. Docker's network events carry the
    /// network's name in `name` beside its driver (`type`) or the container (`container`), as
    /// Podman 5 does; Podman before 5 puts the container's name there and names no network
    /// (its issue 21311).
    fn network(&self) -> Option<&str> {
        let attributes = self.actor.as_ref()?.attributes.as_ref()?;
        if !attributes.contains_key("type") && !attributes.contains_key("container") {
            return None;
        }
        attributes.get("name").map(String::as_str)
    }

    /// Whether the followed `networks` must be read again after this event: a network event
    /// for one of them, or that names no network it can be attributed to, and a container
    /// start, death or removal (whose networks the event does not say).
    fn calls_for_a_reread(&self, networks: &[String]) -> bool {
        match self.kind.as_deref() {
            Some("network") => self
                .network()
                .is_none_or(|name| networks.iter().any(|n| n == name)),
            Some("container") => self
                .action
                .as_deref()
                .is_some_and(|a| CONTAINER_ACTIONS.contains(&a)),
            _ => false,
        }
    }
}

/// The events read so far from a stream of JSON objects (the engine writes one per line, but
/// the transport may split or join them anywhere): complete ones are taken from the front of
/// `buffer`, an incomplete one stays for the next chunk.
fn take_events(buffer: &mut Vec<u8>) -> Result<Vec<Event>, serde_json::Error> {
    let mut events = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(buffer).into_iter::<Event>();
    let mut consumed = 0;
    loop {
        match stream.next() {
            Some(Ok(event)) => {
                consumed = stream.byte_offset();
                events.push(event);
            }
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(e)) => return Err(e),
            None => {
                consumed = stream.byte_offset();
                break;
            }
        }
    }
    buffer.drain(..consumed);
    Ok(events)
}

/// The IPv6 address of an endpoint, as the API writes it ("2001:db8::2/112").
fn endpoint_addr(field: Option<&str>) -> Option<Ipv6Addr> {
    field?.split('/').next()?.parse().ok()
}

/// Inspect every network; networks that do not exist are reported in `missing`.
async fn inspect_all(
    socket: &Path,
    networks: &[String],
    missing: &mut BTreeSet<String>,
) -> Result<DockerTargets, Error> {
    let mut targets = DockerTargets::new();
    for name in networks {
        match get_json::<Network>(socket, &format!("/networks/{}", url_encode(name))).await? {
            Some(net) => {
                if missing.remove(name) {
                    info!("docker: network {name} exists now");
                }
                for (id, ep) in net.containers.unwrap_or_default() {
                    if let Some(addr) = endpoint_addr(ep.ipv6_address.as_deref()) {
                        let container = ep.name.unwrap_or_else(|| id.chars().take(12).collect());
                        targets.insert(addr, (name.clone(), container));
                    }
                }
            }
            None => {
                if missing.insert(name.clone()) {
                    warn!(
                        "docker: network {name} does not exist (yet); waiting for it to be created"
                    );
                }
            }
        }
    }
    Ok(targets)
}

/// One container address: (address, (network, container)).
type Entry<'a> = (&'a Ipv6Addr, &'a (String, String));

/// What changed between two sets, address by address: the entries that connected (in `new`
/// only, or held by another container or network than in `old`) and those that left (the
/// converse), each in address order.
fn changes<'a>(old: &'a DockerTargets, new: &'a DockerTargets) -> (Vec<Entry<'a>>, Vec<Entry<'a>>) {
    let connected = new
        .iter()
        .filter(|(addr, held)| old.get(*addr) != Some(*held))
        .collect();
    let left = old
        .iter()
        .filter(|(addr, held)| new.get(*addr) != Some(*held))
        .collect();
    (connected, left)
}

/// Log what changed between two sets, as an operator wants to read it.
fn log_changes(old: &DockerTargets, new: &DockerTargets) {
    let (connected, left) = changes(old, new);
    for (addr, (net, name)) in connected {
        info!("docker: {addr} ({name}) connected to {net}");
    }
    for (addr, (net, name)) in left {
        info!("docker: {addr} ({name}) left {net}");
    }
}

/// Follow `networks` forever, publishing the targets on `tx` and the engine's state on
/// `state`.
pub async fn watch(
    networks: Vec<String>,
    tx: watch::Sender<Arc<DockerTargets>>,
    state: watch::Sender<EngineState>,
) {
    follow(socket_path, engine_address(), networks, tx, state).await
}

/// [`watch`] with the engine's socket found by `locate` (each time it connects) and named
/// `address` in log lines.
async fn follow(
    locate: impl Fn() -> Result<PathBuf, Error>,
    address: String,
    networks: Vec<String>,
    tx: watch::Sender<Arc<DockerTargets>>,
    state: watch::Sender<EngineState>,
) {
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
    // The engine answered in full: connected, and these networks exist.
    let answered = |missing: &BTreeSet<String>| {
        let existing: BTreeSet<String> = networks
            .iter()
            .filter(|n| !missing.contains(*n))
            .cloned()
            .collect();
        state.send_if_modified(|s| {
            let changed = !s.connected || s.error.is_some() || s.existing != existing;
            s.connected = true;
            s.error = None;
            s.existing = existing;
            changed
        });
    };
    loop {
        let mut connected = false;
        let session = async {
            // Subscribe before the full read, so that no change falls between the two. Its
            // headers are awaited briefly only: an engine may hold them until the first event.
            let filters = url_encode(EVENT_FILTERS);
            let events_path = format!("/events?filters={filters}");
            let socket = locate()?;
            let mut subscribing = Box::pin(get(&socket, &events_path));
            let early = tokio::time::timeout(EVENTS_HEADERS_WAIT, &mut subscribing).await;
            let subscribed = |events: Response<Incoming>| match events.status() {
                status if status.is_success() => Ok(events),
                status => Err(Error::Status(status, "/events".into())),
            };
            let early = match early {
                Ok(response) => Some(subscribed(response?)?),
                Err(_still_waiting) => None,
            };
            let version = get_json::<Version>(&socket, "/version")
                .await
                .ok()
                .flatten()
                .and_then(|v| v.version)
                .unwrap_or_else(|| "?".into());
            info!(
                "docker: connected to the engine at {} (version {version}); following {}",
                address,
                networks.join(", ")
            );
            publish(inspect_all(&socket, &networks, &mut missing).await?);
            answered(&missing);
            // The engine answered in full: a later failure starts the backoff afresh.
            connected = true;
            let events = match early {
                Some(events) => events,
                None => subscribed(subscribing.await?)?,
            };
            let mut body = events.into_body();
            let mut buffer = Vec::new();
            // When the networks are read again: after a burst of events has settled, and
            // never sooner than REREAD_INTERVAL after the last read (events meanwhile wait).
            let mut due: Option<Instant> = None;
            let mut last_read = Instant::now();
            loop {
                let frame = match due {
                    None => body.frame().await,
                    Some(at) => tokio::select! {
                        frame = body.frame() => frame,
                        () = tokio::time::sleep_until(at) => {
                            due = None;
                            publish(inspect_all(&socket, &networks, &mut missing).await?);
                            answered(&missing);
                            last_read = Instant::now();
                            continue;
                        }
                    },
                };
                let Some(frame) = frame else { break };
                let Ok(data) = frame?.into_data() else {
                    continue;
                };
                buffer.extend_from_slice(&data);
                let events =
                    take_events(&mut buffer).map_err(|e| Error::Json("/events".into(), e))?;
                if due.is_none() && events.iter().any(|e| e.calls_for_a_reread(&networks)) {
                    due = Some((Instant::now() + REREAD_SETTLE).max(last_read + REREAD_INTERVAL));
                }
                if buffer.len() > MAX_BODY {
                    return Err(Error::TooLarge("/events".into()));
                }
            }
            Err::<std::convert::Infallible, _>(Error::StreamEnded)
        };
        let Err(outcome) = session.await;
        if connected {
            // The engine was there: start the backoff afresh, and report the next outage.
            backoff = BACKOFF_FIRST;
            reported_down = false;
        }
        let reason = outcome.to_string();
        state.send_modify(|s| {
            s.connected = false;
            s.error = Some(reason.clone());
            if !reported_down {
                s.outages += 1;
            }
        });
        // Log once per outage, not per retry; keep answering what is known.
        if !reported_down {
            let known = tx.borrow().len();
            warn!(
                "docker: the engine at {} is not reachable ({reason}); still answering the {known} known address(es), retrying",
                address
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
    fn events_are_taken_whole_however_the_stream_is_cut() {
        let stream = concat!(
            r#"{"Type":"network","Action":"connect","Actor":{"ID":"n1","Attributes":{"container":"c","name":"ipv6exposed","type":"bridge"}},"time":1}"#,
            "\n",
            r#"{"Type":"network","Action":"disconnect","Actor":{"ID":"n2","Attributes":{"container":"c","name":"other"}}}"#,
            "\n",
            r#"{"status":"no actor"}"#,
            "\n"
        );
        for cut in 0..stream.len() {
            let mut buffer = stream.as_bytes()[..cut].to_vec();
            let mut names: Vec<Option<String>> = take_events(&mut buffer)
                .unwrap()
                .iter()
                .map(|e| e.network().map(String::from))
                .collect();
            buffer.extend_from_slice(&stream.as_bytes()[cut..]);
            names.extend(
                take_events(&mut buffer)
                    .unwrap()
                    .iter()
                    .map(|e| e.network().map(String::from)),
            );
            assert_eq!(
                names,
                [
                    Some("ipv6exposed".to_string()),
                    Some("other".to_string()),
                    None
                ],
                "cut at {cut}"
            );
            assert!(buffer.iter().all(u8::is_ascii_whitespace), "cut at {cut}");
        }
        let mut garbage = b"{\"Actor\": 5}\n".to_vec();
        assert!(take_events(&mut garbage).is_err());
    }

    /// A fake engine on a unix socket: `/version` and `/networks/ipv6exposed` are answered
    /// (other networks do not exist), the event stream's headers are never sent (as some
    /// Podman versions do until the first event) and its connection is closed when `hang_up`
    /// says so, and every request path is recorded.
    async fn fake_engine(
        path: PathBuf,
        seen: Arc<std::sync::Mutex<Vec<String>>>,
        hang_up: watch::Receiver<bool>,
    ) {
        fake_engine_sending(path, seen, hang_up, &[]).await
    }

    /// [`fake_engine`], but its event stream answers at once and sends `events` (each line a
    /// chunk of its own) 300 ms after the headers, then holds the stream open.
    async fn fake_engine_sending(
        path: PathBuf,
        seen: Arc<std::sync::Mutex<Vec<String>>>,
        hang_up: watch::Receiver<bool>,
        events: &'static [&'static str],
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            let mut hang_up = hang_up.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).to_string();
                let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
                seen.lock().unwrap().push(path.clone());
                let body = match path.as_str() {
                    "/version" => r#"{"Version":"fake","ApiVersion":"1.52"}"#,
                    "/networks/ipv6exposed" => {
                        r#"{"Name":"ipv6exposed","Containers":{"0123456789abcdef":{"Name":"c1","IPv6Address":"2001:db8:1::d:2/112","IPv4Address":""}}}"#
                    }
                    p if p.starts_with("/events") => {
                        if !events.is_empty() {
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
                                .await;
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            for event in events {
                                let chunk = format!("{:x}\r\n{event}\n\r\n", event.len() + 1);
                                let _ = stream.write_all(chunk.as_bytes()).await;
                            }
                        }
                        // Hold the connection open, until told to hang up.
                        let _ = hang_up.wait_for(|h| *h).await;
                        return;
                    }
                    _ => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                            .await;
                        return;
                    }
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    }

    /// A temporary directory for a fake engine's socket, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("ndp-docker-test-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Wait (up to 10 s) until the published state satisfies `cond`; the state then.
    async fn state_when(
        rx: &mut watch::Receiver<EngineState>,
        cond: impl FnMut(&EngineState) -> bool,
    ) -> EngineState {
        let reached = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(cond))
            .await
            .map(|state| state.expect("the watcher is gone").clone());
        reached.unwrap_or_else(|_| panic!("the state never got there: {:?}", rx.borrow()))
    }

    #[test]
    fn an_engine_that_holds_the_event_streams_headers_is_still_read() {
        let dir = TempDir::new("headers");
        let path = dir.0.join("engine.sock");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let published = runtime().block_on(async {
            let (_hang_up, hang_up_rx) = watch::channel(false);
            tokio::spawn(fake_engine(path.clone(), seen.clone(), hang_up_rx));
            let (mut rx, _state) = follow_fake(&path, &["ipv6exposed"]);
            tokio::time::timeout(Duration::from_secs(10), rx.changed())
                .await
                .map(|_| rx.borrow().clone())
        });
        let targets = published.expect("the networks were never read");
        let addr: Ipv6Addr = "2001:db8:1::d:2".parse().unwrap();
        assert_eq!(
            targets.get(&addr),
            Some(&("ipv6exposed".to_string(), "c1".to_string()))
        );
        let seen = seen.lock().unwrap().clone();
        // The subscription went first; no path names an API version.
        assert!(seen[0].starts_with("/events?filters=%7B"), "{seen:?}");
        assert!(seen.iter().all(|p| !p.starts_with("/v1")), "{seen:?}");
    }

    #[test]
    fn the_engines_state_is_published_connected_existing_and_through_an_outage() {
        let dir = TempDir::new("state");
        let path = dir.0.join("engine.sock");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        runtime().block_on(async {
            let (targets, mut state) = follow_fake(&path, &["ipv6exposed", "absent"]);
            // No engine yet: one outage, however many retries, with its reason.
            let down = state_when(&mut state, |s| s.error.is_some()).await;
            assert!(!down.connected, "{down:?}");
            assert!(down.existing.is_empty(), "{down:?}");
            assert!(
                down.error.as_deref().unwrap().starts_with("connecting to"),
                "{down:?}"
            );
            let (hang_up, hang_up_rx) = watch::channel(false);
            let engine = tokio::spawn(fake_engine(path.clone(), seen.clone(), hang_up_rx));
            // It comes up: connected, one network exists and the other does not.
            let up = state_when(&mut state, |s| s.connected).await;
            assert_eq!(up.existing, BTreeSet::from(["ipv6exposed".to_string()]));
            assert_eq!(up.error, None);
            assert_eq!(up.outages, 1, "retries are not outages: {up:?}");
            assert_eq!(targets.borrow().len(), 1);
            // It goes away: not connected, a second outage; what is known is kept.
            engine.abort();
            let _ = std::fs::remove_file(&path);
            hang_up.send_replace(true);
            let gone = state_when(&mut state, |s| !s.connected).await;
            assert_eq!(gone.outages, 2, "{gone:?}");
            assert!(gone.error.is_some(), "{gone:?}");
            assert_eq!(gone.existing, up.existing);
            assert_eq!(targets.borrow().len(), 1);
        });
    }

    const DOCKER_CONNECT_OTHER: &str = r#"{"Type":"network","Action":"connect","Actor":{"ID":"n2","Attributes":{"container":"0123","name":"other","type":"bridge"}}}"#;
    const DOCKER_CONNECT: &str = r#"{"Type":"network","Action":"connect","Actor":{"ID":"n1","Attributes":{"container":"0123","name":"ipv6exposed","type":"bridge"}}}"#;
    const DOCKER_CREATE_OTHER: &str = r#"{"Type":"network","Action":"create","Actor":{"ID":"n2","Attributes":{"name":"other","type":"bridge"}}}"#;
    /// Podman 4.3's, as read from its API: the container's name, no network.
    const PODMAN4_CONNECT: &str = r#"{"status":"connect","id":"9d06","Type":"network","Action":"connect","Actor":{"ID":"9d06","Attributes":{"containerExitCode":"0","image":"","name":"c2","podId":""}},"scope":"local","time":1}"#;
    const PODMAN4_DIE: &str = r#"{"status":"die","id":"cb3d","from":"localhost/ndpt-busybox:latest","Type":"container","Action":"die","Actor":{"ID":"cb3d","Attributes":{"containerExitCode":"137","exitCode":"137","image":"localhost/ndpt-busybox:latest","name":"c1","podId":""}},"scope":"local","time":1}"#;
    const PODMAN4_SYNC: &str = r#"{"status":"sync","id":"cb3d","Type":"container","Action":"sync","Actor":{"ID":"cb3d","Attributes":{"name":"c1"}}}"#;

    #[test]
    fn events_that_may_change_a_followed_network_call_for_a_reread() {
        let followed = ["ipv6exposed".to_string()];
        let reread = |line: &str| {
            let mut buffer = line.as_bytes().to_vec();
            let events = take_events(&mut buffer).unwrap();
            assert_eq!(events.len(), 1, "{line}");
            events[0].calls_for_a_reread(&followed)
        };
        // A network event for a followed network, or that names none (Podman before 5).
        assert!(reread(DOCKER_CONNECT));
        assert!(reread(PODMAN4_CONNECT));
        // One for another network is not ours.
        assert!(!reread(DOCKER_CONNECT_OTHER));
        assert!(!reread(DOCKER_CREATE_OTHER));
        // Container starts, deaths and removals, whichever engine's words.
        for action in ["start", "die", "died", "destroy", "remove", "cleanup"] {
            let line = PODMAN4_DIE.replace(r#""Action":"die""#, &format!(r#""Action":"{action}""#));
            assert!(reread(&line), "{action}");
        }
        assert!(!reread(PODMAN4_SYNC));
        assert!(!reread(
            r#"{"Type":"image","Action":"pull","Actor":{"Attributes":{"name":"x"}}}"#
        ));
        assert!(!reread(r#"{"status":"no type"}"#));
    }

    /// Follow `networks` on the fake engine at `path` (from a task of the current runtime):
    /// the published targets and engine state.
    fn follow_fake(
        path: &Path,
        networks: &[&str],
    ) -> (
        watch::Receiver<Arc<DockerTargets>>,
        watch::Receiver<EngineState>,
    ) {
        let (tx, targets) = watch::channel(Arc::new(DockerTargets::new()));
        let (state_tx, state) = watch::channel(EngineState::default());
        let socket = path.to_path_buf();
        tokio::spawn(follow(
            move || Ok(socket.clone()),
            "fake".into(),
            networks.iter().map(|n| n.to_string()).collect(),
            tx,
            state_tx,
        ));
        (targets, state)
    }

    /// Follow a fake engine that sends `events`; the paths it was asked for after 2 s.
    fn requests_after(name: &str, events: &'static [&'static str]) -> Vec<String> {
        let dir = TempDir::new(name);
        let path = dir.0.join("engine.sock");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        runtime().block_on(async {
            let (_hang_up, hang_up_rx) = watch::channel(false);
            tokio::spawn(fake_engine_sending(
                path.clone(),
                seen.clone(),
                hang_up_rx,
                events,
            ));
            let _watch = follow_fake(&path, &["ipv6exposed"]);
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        let seen = seen.lock().unwrap().clone();
        seen
    }

    #[test]
    fn a_burst_of_events_costs_one_reread_and_other_networks_none() {
        const BURST: [&str; 12] = [
            PODMAN4_CONNECT,
            PODMAN4_DIE,
            DOCKER_CONNECT,
            PODMAN4_CONNECT,
            PODMAN4_DIE,
            DOCKER_CONNECT,
            PODMAN4_CONNECT,
            PODMAN4_DIE,
            DOCKER_CONNECT,
            PODMAN4_CONNECT,
            PODMAN4_DIE,
            DOCKER_CONNECT,
        ];
        let reads = |seen: &[String]| {
            seen.iter()
                .filter(|p| *p == "/networks/ipv6exposed")
                .count()
        };
        let seen = requests_after("burst", &BURST);
        assert_eq!(
            reads(&seen),
            2,
            "the first read, then one for the burst: {seen:?}"
        );
        let seen = requests_after(
            "others",
            &[DOCKER_CONNECT_OTHER, DOCKER_CREATE_OTHER, PODMAN4_SYNC],
        );
        assert_eq!(reads(&seen), 1, "only the first read: {seen:?}");
        // The subscription asks for network events and the container actions, by name.
        let events = seen.iter().find(|p| p.starts_with("/events")).unwrap();
        assert_eq!(
            events,
            &format!("/events?filters={}", url_encode(EVENT_FILTERS))
        );
    }

    #[test]
    fn names_are_percent_encoded_in_paths_and_queries() {
        assert_eq!(url_encode("ipv6exposed"), "ipv6exposed");
        assert_eq!(url_encode("my net/../x"), "my%20net%2F..%2Fx");
        assert_eq!(
            url_encode(r#"{"type":["network"]}"#),
            "%7B%22type%22%3A%5B%22network%22%5D%7D"
        );
    }

    #[test]
    fn changes_are_computed_per_address() {
        let ip = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let held = |net: &str, name: &str| (net.to_string(), name.to_string());
        let old = DockerTargets::from([
            (ip("2001:db8:1::d:2"), held("net", "stays")),
            (ip("2001:db8:1::d:3"), held("net", "leaves")),
            (ip("2001:db8:1::d:4"), held("net", "before")),
            (ip("2001:db8:1::d:5"), held("net", "moves")),
        ]);
        let new = DockerTargets::from([
            (ip("2001:db8:1::d:2"), held("net", "stays")),
            (ip("2001:db8:1::d:4"), held("net", "after")),
            (ip("2001:db8:1::d:5"), held("other", "moves")),
            (ip("2001:db8:1::d:6"), held("net", "arrives")),
        ]);
        let owned = |entries: Vec<Entry<'_>>| -> Vec<(Ipv6Addr, (String, String))> {
            entries.into_iter().map(|(a, h)| (*a, h.clone())).collect()
        };
        let (connected, left) = changes(&old, &new);
        // An address taken over by another container, or seen on another network, left and
        // connected again; an unchanged one did neither.
        assert_eq!(
            owned(connected),
            [
                (ip("2001:db8:1::d:4"), held("net", "after")),
                (ip("2001:db8:1::d:5"), held("other", "moves")),
                (ip("2001:db8:1::d:6"), held("net", "arrives")),
            ]
        );
        assert_eq!(
            owned(left),
            [
                (ip("2001:db8:1::d:3"), held("net", "leaves")),
                (ip("2001:db8:1::d:4"), held("net", "before")),
                (ip("2001:db8:1::d:5"), held("net", "moves")),
            ]
        );
        let (connected, left) = changes(&new, &new);
        assert!(connected.is_empty() && left.is_empty());
        let none = DockerTargets::new();
        let (connected, left) = changes(&none, &old);
        assert_eq!(owned(connected).len(), 4);
        assert!(left.is_empty());
    }
}
