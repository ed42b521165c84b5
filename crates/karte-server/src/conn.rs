//! Connection hygiene for the clinic server: a cap on open connections, and timeouts that close slow and idle ones.
//!
//! Without these, sockets that send a request head one line at a time, or nothing at all, stay open for ever, and
//! a few hundred of them use up the process's file descriptors so that `/health` and real clients cannot connect
//! (issue 24, abuse test F3). Three pieces, all inside axum-server's accept loop:
//!
//! - [`CappedListener`]: accepts a connection only while fewer than `max_connections` are open; at the cap it stops
//!   accepting (new connections wait in the kernel's queue, costing this process no descriptor) and logs one
//!   warning per burst. The cap is kept below the descriptor limit ([`connection_cap`]), so `accept` never fails
//!   for lack of descriptors.
//! - the TLS handshake timeout (axum-server's `RustlsAcceptor`);
//! - [`Guard`]: after the handshake, a connection not answering a request must see a request start within
//!   `idle` and, once its first byte came, the whole head within `header_read`; the request's body is bounded by
//!   the same time in the router (`app::read_body`). While a request is being answered (a long generation)
//!   nothing times out here: `request_timeout` bounds that.
//!
//! Nothing here logs or counts an address or a byte of what clients send.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::http::Response;
use axum_server::accept::Accept;
use axum_server::{AddrListener, Address};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::ConnCounters;

/// The timeouts and the cap, with their stated defaults (README, 設定ファイル `[serve]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// A request's head (and then its body) must arrive within this once it has started. Default 10 s.
    pub header_read: Duration,
    /// A TLS handshake must finish within this. Default 10 s.
    pub handshake: Duration,
    /// A connection may wait this long for a request (new, or kept alive after an answer). Default 60 s.
    pub idle: Duration,
    /// Open connections at most; `None` = [`DEFAULT_MAX_CONNECTIONS`]. Always kept under the descriptor limit.
    pub max_connections: Option<usize>,
}

pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Descriptors kept free for everything that is not a client connection (model file, logs, token store, the
/// runtime's own): the cap is at most the limit minus this.
pub const DESCRIPTOR_RESERVE: u64 = 64;

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            max_connections: None,
        }
    }
}

/// The process's soft descriptor limit, after raising it to the hard limit (what systemd's `LimitNOFILE` or
/// `ulimit -Hn` allows); `None` where there is no such limit.
pub fn raise_descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
                return None;
            }
            if r.rlim_cur < r.rlim_max {
                let want = libc::rlimit {
                    rlim_cur: r.rlim_max.min(1 << 20),
                    rlim_max: r.rlim_max,
                };
                if want.rlim_cur > r.rlim_cur && libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                    r.rlim_cur = want.rlim_cur;
                }
            }
        }
        // rlim_t is u64 on 64-bit Linux, narrower elsewhere.
        #[allow(clippy::useless_conversion)]
        Some(u64::from(r.rlim_cur))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The cap: the configured value (default 1024), never above the descriptor limit minus the reserve, at least 1.
pub fn connection_cap(configured: Option<usize>, descriptor_limit: Option<u64>) -> usize {
    let wanted = configured.unwrap_or(DEFAULT_MAX_CONNECTIONS).max(1);
    match descriptor_limit {
        Some(l) => {
            let room = l.saturating_sub(DESCRIPTOR_RESERVE).max(1);
            wanted.min(usize::try_from(room).unwrap_or(usize::MAX))
        }
        None => wanted,
    }
}

/// The peer address type of the capped listener (axum-server's accept loop is generic over it). It is never
/// logged.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl Address for PeerAddr {
    type Stream = CountedStream;
    type Listener = CappedListener;
}

/// A TCP listener that holds one semaphore permit per open connection.
pub struct CappedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    cap: usize,
    /// Set when the cap is reached, cleared once a quarter of the slots are free again: one warning per burst.
    saturated: AtomicBool,
    counters: Arc<ConnCounters>,
}

impl CappedListener {
    pub fn new(
        listener: std::net::TcpListener,
        cap: usize,
        counters: Arc<ConnCounters>,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        counters.max.store(cap, Ordering::Relaxed);
        Ok(Self {
            inner: TcpListener::from_std(listener)?,
            slots: Arc::new(Semaphore::new(cap)),
            cap,
            saturated: AtomicBool::new(false),
            counters,
        })
    }

    async fn slot(&self) -> io::Result<OwnedSemaphorePermit> {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(p) => {
                if self.slots.available_permits() >= self.cap / 4 {
                    self.saturated.store(false, Ordering::Relaxed);
                }
                Ok(p)
            }
            Err(_) => {
                if !self.saturated.swap(true, Ordering::Relaxed) {
                    self.counters.cap_reached.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        max_connections = self.cap,
                        "connection cap reached: new connections wait until others close \
                         (slow and idle ones are closed after their timeouts)"
                    );
                }
                Arc::clone(&self.slots)
                    .acquire_owned()
                    .await
                    .map_err(io::Error::other)
            }
        }
    }
}

impl AddrListener<CountedStream, PeerAddr> for CappedListener {
    async fn bind_to(_addr: PeerAddr) -> io::Result<Self> {
        Err(io::Error::other(
            "CappedListener is made from a bound listener",
        ))
    }

    async fn accept_stream(&self) -> io::Result<(CountedStream, PeerAddr)> {
        let permit = self.slot().await?;
        let (stream, addr) = self.inner.accept().await?;
        // A streamed answer is many small writes: without TCP_NODELAY each waits for the client's (delayed) ACK of
        // the one before, adding tens of milliseconds per token. Best effort: a socket that refuses still serves.
        let _ = stream.set_nodelay(true);
        self.counters.open.fetch_add(1, Ordering::Relaxed);
        Ok((
            CountedStream {
                inner: stream,
                _permit: permit,
                counters: Arc::clone(&self.counters),
            },
            PeerAddr(addr),
        ))
    }

    fn get_local_addr(&self) -> io::Result<PeerAddr> {
        self.inner.local_addr().map(PeerAddr)
    }
}

/// A TCP stream that gives its slot back when it closes.
pub struct CountedStream {
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
    counters: Arc<ConnCounters>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Where a connection stands: answering requests, or waiting for one (since when, and whether it has started).
struct Phase {
    /// Requests being answered (their response bodies not yet finished).
    active: usize,
    /// When the connection last became free of requests (accepted, or the last answer ended).
    idle_since: Instant,
    /// The first byte of the next request's head, while no request is active.
    head_since: Option<Instant>,
}

#[derive(Clone)]
struct ConnState(Arc<Mutex<Phase>>);

impl ConnState {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(Phase {
            active: 0,
            idle_since: Instant::now(),
            head_since: None,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Marks a request active from the moment its head is parsed until its response body is finished or dropped.
struct ActiveGuard(ConnState);

impl ActiveGuard {
    fn new(c: ConnState) -> Self {
        {
            let mut p = c.lock();
            p.active += 1;
            p.head_since = None;
        }
        Self(c)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let mut p = self.0.lock();
        p.active = p.active.saturating_sub(1);
        if p.active == 0 {
            p.idle_since = Instant::now();
            p.head_since = None;
        }
    }
}

/// The acceptor wrapper: wraps the (TLS or plain) stream in [`Timed`] and the service in [`ConnService`].
#[derive(Clone)]
pub struct Guard<A> {
    inner: A,
    limits: ConnLimits,
    counters: Arc<ConnCounters>,
}

impl<A> Guard<A> {
    pub fn new(inner: A, limits: ConnLimits, counters: Arc<ConnCounters>) -> Self {
        Self {
            inner,
            limits,
            counters,
        }
    }
}

impl<A, I, S> Accept<I, S> for Guard<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Timed<A::Stream>;
    type Service = ConnService<A::Service>;
    type Future =
        Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send + 'static>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let fut = self.inner.accept(stream, service);
        let limits = self.limits;
        let counters = Arc::clone(&self.counters);
        Box::pin(async move {
            let (stream, service) = fut.await?;
            // The idle clock starts after the handshake, which has its own bound.
            let conn = ConnState::new();
            Ok((
                Timed {
                    inner: stream,
                    conn: conn.clone(),
                    limits,
                    counters,
                    sleep: Box::pin(tokio::time::sleep(limits.idle)),
                },
                ConnService {
                    inner: service,
                    conn,
                },
            ))
        })
    }
}

/// A stream whose reads fail with `TimedOut` when the connection waits too long for a request or its head.
pub struct Timed<S> {
    inner: S,
    conn: ConnState,
    limits: ConnLimits,
    counters: Arc<ConnCounters>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let mut p = self.conn.lock();
                    if p.active == 0 && p.head_since.is_none() {
                        p.head_since = Some(Instant::now());
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let deadline = {
                    let p = self.conn.lock();
                    if p.active > 0 {
                        None
                    } else {
                        Some(match p.head_since {
                            Some(t) => (t + self.limits.header_read, true),
                            None => (p.idle_since + self.limits.idle, false),
                        })
                    }
                };
                let Some((deadline, header)) = deadline else {
                    return Poll::Pending;
                };
                let deadline = tokio::time::Instant::from_std(deadline);
                if self.sleep.deadline() != deadline {
                    self.sleep.as_mut().reset(deadline);
                }
                if self.sleep.as_mut().poll(cx).is_ready() {
                    let counter = if header {
                        &self.counters.closed_header_timeout
                    } else {
                        &self.counters.closed_idle_timeout
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        if header {
                            "request head too slow"
                        } else {
                            "idle connection"
                        },
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The per-connection service: marks each request active until its response body ends.
#[derive(Clone)]
pub struct ConnService<S> {
    inner: S,
    conn: ConnState,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, R, B> tower_service::Service<R> for ConnService<S>
where
    S: tower_service::Service<R, Response = Response<B>>,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let guard = ActiveGuard::new(self.conn.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            Ok(resp.map(|b| {
                Body::new(GuardedBody {
                    inner: b,
                    _guard: guard,
                })
            }))
        })
    }
}

/// A response body that keeps its request active until it is finished (or dropped, when the client goes away).
struct GuardedBody<B> {
    inner: B,
    _guard: ActiveGuard,
}

impl<B: HttpBody + Unpin> HttpBody for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_under_the_descriptor_limit() {
        assert_eq!(connection_cap(None, None), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(connection_cap(None, Some(1_048_576)), 1024);
        assert_eq!(connection_cap(Some(5000), Some(1024)), 960);
        assert_eq!(connection_cap(None, Some(128)), 64);
        assert_eq!(connection_cap(Some(10), Some(128)), 10);
        assert_eq!(connection_cap(None, Some(10)), 1);
        assert_eq!(connection_cap(Some(0), None), 1);
    }
}
