//! The metrics endpoint: `GET /metrics` in the Prometheus/OpenMetrics text format, over hyper.
//!
//! Owns: the HTTP listener and each connection (a timer, a 5 s header timeout, an 8 KiB read
//! buffer, no keep-alive, 10 s at most), and one rendering reused for a second (only one
//! gathering at a time), so scraping cannot load the uplinks' loops.
//!
//! Must not: gather the status itself (it asks through [`Ask`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use tokio::net::TcpListener;
use tracing::warn;

use super::windows::{gather, Ask, Slots, METRICS_RENDERS, METRICS_SHED};

/// Metrics connections served at once.
const METRICS_CONNECTIONS: usize = 16;
/// How long an HTTP client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The most a metrics connection lasts, whatever the client does.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);
/// hyper's read buffer for a connection: its minimum; a longer request head is refused (431).
const MAX_BUF: usize = 8192;
/// How long one rendering of the metrics is served before the uplinks are asked again.
const RENDER_REUSE: Duration = Duration::from_secs(1);
/// One rendering of the metrics, served again for [`RENDER_REUSE`].
type Cache = Arc<tokio::sync::Mutex<Option<(Instant, Bytes)>>>;

/// Serve `GET /metrics` forever.
pub async fn serve(listener: std::net::TcpListener, ask: Ask) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("metrics: {e}; no metrics will be served");
            return;
        }
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_BUF)
        .keep_alive(false);
    let cache = Cache::default();
    let mut slots = Slots::new("metrics", METRICS_CONNECTIONS, &METRICS_SHED);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!("metrics: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !slots.admit() {
            continue; // dropping it closes it
        }
        let asked = Arc::new(AtomicBool::new(false));
        let (ask, cache, flag) = (ask.clone(), cache.clone(), asked.clone());
        let service = hyper::service::service_fn(move |req| {
            flag.store(true, Ordering::Relaxed);
            let (ask, cache) = (ask.clone(), cache.clone());
            async move { Ok::<_, std::convert::Infallible>(respond(req, &ask, &cache).await) }
        });
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let task = tokio::spawn(async move {
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, connection).await;
        });
        slots.add(task, asked);
    }
}

/// The metrics text: the cached rendering while it is fresh, else a new one (one at a time:
/// the others wait for it). None when the daemon is stopping.
async fn rendering(ask: &Ask, cache: &Cache) -> Option<Bytes> {
    let mut cached = cache.lock().await;
    if let Some((at, body)) = cached.as_ref() {
        if at.elapsed() < RENDER_REUSE {
            return Some(body.clone());
        }
    }
    METRICS_RENDERS.fetch_add(1, Ordering::Relaxed);
    let body = Bytes::from(gather(ask).await?.prometheus());
    *cached = Some((Instant::now(), body.clone()));
    Some(body)
}

async fn respond<B>(
    req: hyper::Request<B>,
    ask: &Ask,
    cache: &Cache,
) -> hyper::Response<Full<Bytes>> {
    let reply = |code: u16, kind: &str, body: Bytes| {
        hyper::Response::builder()
            .status(code)
            .header("content-type", kind)
            .body(Full::new(body))
            .unwrap_or_default()
    };
    if req.method() != hyper::Method::GET || req.uri().path() != "/metrics" {
        return reply(
            404,
            "text/plain",
            Bytes::from_static(b"ndp-responder serves GET /metrics\n"),
        );
    }
    match rendering(ask, cache).await {
        Some(body) => reply(
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body,
        ),
        None => reply(
            503,
            "text/plain",
            Bytes::from_static(b"the daemon is stopping\n"),
        ),
    }
}
