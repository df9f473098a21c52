//! A TCP proxy that puts distance between two processes on one machine: every byte is
//! released a fixed one-way delay after it arrived, in each direction, in order, with no
//! bandwidth limit. This kernel has no netem; the bench's scenario 8 (a buyer on another
//! continent) puts one of these on each link.
//!
//! Per accepted connection the proxy connects to the upstream and runs one pipe per
//! direction: a reader that stamps each chunk with its due time (arrival + one way) and
//! queues it, and a writer that waits for each chunk's due time and writes it. Chunks are
//! pipelined (a chunk read at t goes out at t + one way however many are in flight), not
//! read → sleep → write, which would add the delay once per chunk and throttle the link.
//!
//! - **Handshake.** The client's `connect` completes at once against the proxy's own
//!   listener, but over a real link it takes a round trip. So a connection's first bytes
//!   towards the upstream are held until `accepted + 3 × one way` (SYN, SYN-ACK, then the
//!   data), and towards the client until `accepted + 4 × one way`: a client opening a new
//!   connection per request pays the round trip it would pay on the wire.
//! - **Half-close.** EOF read on one side becomes `shutdown(Write)` on the other, one way
//!   later and after every queued byte.
//! - **Bounds.** At most [`QUEUE_BYTES_MAX`] queued per direction: when full, the reader
//!   stops reading, and TCP's own flow control pushes back on the sender. At most
//!   [`CONNECTIONS_MAX`] connections at once; more wait in the listener's backlog.
//! - **Timing.** Tokio's timer wheel has 1 ms resolution and rounds up: with it, a 40 ms
//!   round trip measured 42.6 ms at the median (up to 45 ms), outside a ±1 ms check. So due
//!   times are kept by one thread per proxy sleeping on a condition variable (futex
//!   timeouts), which wakes each writer's task: 40.6 ms (40.5–40.8 ms), debug build.
//! - **Lifetime.** Dropping the proxy (or [`DelayProxy::shutdown`]) aborts the accept
//!   task, and with it every connection's task (they live in its `JoinSet`), closing both
//!   ends of every connection, and stops the timer thread.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

/// Bytes queued per direction of a connection before its reader stops reading: the
/// link's bandwidth-delay product, 100 MB/s at a 40 ms one-way delay. More than the
/// bench's links carry; a bound on memory, not a bandwidth limit.
pub const QUEUE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Bytes one read takes at most (one queued chunk).
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Connections served at once; further ones wait in the listener's backlog.
pub const CONNECTIONS_MAX: usize = 4_096;
/// Round trips a new connection's handshake costs before the client can send (one), as
/// one-way delays until the first bytes reach the upstream (that one, plus their own).
const HANDSHAKE_ONE_WAYS_TO_UPSTREAM: u32 = 3;
/// The upstream can answer once the handshake's last ACK reached it: one more one-way.
const HANDSHAKE_ONE_WAYS_TO_CLIENT: u32 = 4;

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on 127.0.0.1:0")]
    Bind(#[source] io::Error),
    #[error("cannot read the listener's address")]
    LocalAddr(#[source] io::Error),
    #[error("cannot start the proxy's timer thread")]
    Timer(#[source] io::Error),
}

/// A running proxy: connections to [`DelayProxy::addr`] reach `upstream`, `one_way` later
/// in each direction. Stops when dropped.
pub struct DelayProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    one_way: Duration,
    accepted: Arc<AtomicU64>,
    accept_task: JoinHandle<()>,
    timer: Timer,
}

impl DelayProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream`, delaying each
    /// direction by `one_way`.
    pub async fn start(upstream: SocketAddr, one_way: Duration) -> Result<Self, ProxyError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(ProxyError::Bind)?;
        let addr = listener.local_addr().map_err(ProxyError::LocalAddr)?;
        let timer = Timer::start().map_err(ProxyError::Timer)?;
        let accepted = Arc::new(AtomicU64::new(0));
        let link = Link {
            upstream,
            one_way,
            timer: timer.handle(),
        };
        let accept_task = tokio::spawn(accept_loop(listener, link, accepted.clone()));
        Ok(Self {
            addr,
            upstream,
            one_way,
            accepted,
            accept_task,
            timer,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    pub fn one_way(&self) -> Duration {
        self.one_way
    }

    /// The round trip the proxy adds: twice the one-way delay.
    pub fn rtt(&self) -> Duration {
        self.one_way * 2
    }

    /// Connections accepted so far (tests of connection reuse count these).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes every connection (as dropping does), once the accept
    /// task has ended.
    pub async fn shutdown(mut self) {
        self.accept_task.abort();
        let _ = (&mut self.accept_task).await;
        self.timer.stop();
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.timer.stop();
    }
}

/// What every connection of one proxy shares.
#[derive(Clone)]
struct Link {
    upstream: SocketAddr,
    one_way: Duration,
    timer: TimerHandle,
}

/// Accepts connections (at most `CONNECTIONS_MAX` at once), each served by a task in a
/// `JoinSet` this task owns: aborting it aborts them all.
async fn accept_loop(listener: TcpListener, link: Link, accepted: Arc<AtomicU64>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.len() >= CONNECTIONS_MAX {
            connections.join_next().await;
        }
        tokio::select! {
            incoming = listener.accept() => {
                // An accept error (e.g. out of descriptors) is the client's failure; the
                // proxy keeps serving the others.
                let Ok((client, _)) = incoming else { continue };
                accepted.fetch_add(1, Ordering::Relaxed);
                connections.spawn(serve(client, link.clone(), Instant::now()));
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

/// One connection: connects upstream (closing the client's connection if that fails, as
/// an unreachable host would) and runs both directions until each has seen EOF.
async fn serve(client: TcpStream, link: Link, accepted_at: Instant) {
    let Ok(upstream) = TcpStream::connect(link.upstream).await else {
        return;
    };
    // Every chunk is written when due: Nagle's algorithm would hold small ones back.
    if client.set_nodelay(true).is_err() || upstream.set_nodelay(true).is_err() {
        return;
    }
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let one_way = link.one_way;
    let to_upstream = pipe(
        client_read,
        upstream_write,
        &link,
        accepted_at + one_way * HANDSHAKE_ONE_WAYS_TO_UPSTREAM,
    );
    let to_client = pipe(
        upstream_read,
        client_write,
        &link,
        accepted_at + one_way * HANDSHAKE_ONE_WAYS_TO_CLIENT,
    );
    tokio::join!(to_upstream, to_client);
}

/// A queued chunk: its bytes (`None`: the EOF) and when they are due at the other side.
type Chunk = (Instant, Option<Bytes>);

/// One direction: the reader and the writer, joined (they run concurrently in the
/// connection's task). Nothing is released before `not_before` (the handshake).
async fn pipe(from: OwnedReadHalf, to: OwnedWriteHalf, link: &Link, not_before: Instant) {
    // The chunks are counted in bytes by `room` (the queue's bound); the channel itself
    // is unbounded only in name.
    let room = Arc::new(Semaphore::new(QUEUE_BYTES_MAX));
    let (queue, queued) = mpsc::unbounded_channel::<Chunk>();
    let reader = read_side(from, queue, room.clone(), link.one_way, not_before);
    let writer = write_side(to, queued, room, &link.timer);
    tokio::join!(reader, writer);
}

/// Reads chunks while there is room in the queue, stamping each with its due time; at EOF
/// (or a read error, as the link going down) queues the EOF.
async fn read_side(
    mut from: OwnedReadHalf,
    queue: mpsc::UnboundedSender<Chunk>,
    room: Arc<Semaphore>,
    one_way: Duration,
    not_before: Instant,
) {
    let mut buffer = vec![0u8; READ_CHUNK_BYTES];
    loop {
        // Room for a whole read first: a full queue stops the reading (backpressure).
        let Ok(permit) = room.acquire_many(READ_CHUNK_BYTES as u32).await else {
            return; // the writer failed: nobody to deliver to
        };
        permit.forget();
        let read = from.read(&mut buffer).await.unwrap_or(0);
        room.add_permits(READ_CHUNK_BYTES - read);
        let due = (Instant::now() + one_way).max(not_before);
        let chunk = (read > 0).then(|| Bytes::copy_from_slice(&buffer[..read]));
        let eof = chunk.is_none();
        if queue.send((due, chunk)).is_err() || eof {
            return;
        }
    }
}

/// Writes each chunk when due, giving its room back; the EOF becomes `shutdown(Write)`.
/// On a write error it closes the queue's room, which stops the reader.
async fn write_side(
    mut to: OwnedWriteHalf,
    mut queued: mpsc::UnboundedReceiver<Chunk>,
    room: Arc<Semaphore>,
    timer: &TimerHandle,
) {
    while let Some((due, chunk)) = queued.recv().await {
        timer.sleep_until(due).await;
        let Some(bytes) = chunk else {
            break;
        };
        if to.write_all(&bytes).await.is_err() {
            room.close();
            return;
        }
        room.add_permits(bytes.len());
    }
    let _ = to.shutdown().await;
}

/// The precise clock of one proxy: a thread that fires each registered wake-up at its
/// instant. At most one wake-up per direction of a connection is pending (a writer
/// waits for one chunk at a time), so the heap is bounded by the connections.
struct Timer {
    shared: Arc<TimerShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone)]
struct TimerHandle(Arc<TimerShared>);

/// A std `Mutex`, not a Tokio one: no `.await` happens while it is held.
struct TimerShared {
    state: Mutex<TimerState>,
    changed: Condvar,
}

#[derive(Default)]
struct TimerState {
    wakeups: BinaryHeap<Reverse<Wakeup>>,
    /// Orders wake-ups of the same instant (and makes them distinct in the heap).
    next_id: u64,
    stopped: bool,
}

struct Wakeup {
    at: Instant,
    id: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Wakeup {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.id) == (other.at, other.id)
    }
}
impl Eq for Wakeup {}
impl PartialOrd for Wakeup {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Wakeup {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.id).cmp(&(other.at, other.id))
    }
}

impl TimerShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, TimerState> {
        // A panic while holding it cannot leave the heap half-updated in a way that
        // matters here: keep going with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Timer {
    fn start() -> io::Result<Self> {
        let shared = Arc::new(TimerShared {
            state: Mutex::new(TimerState::default()),
            changed: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("delay-proxy-timer".to_owned())
            .spawn({
                let shared = shared.clone();
                move || run_timer(&shared)
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    fn handle(&self) -> TimerHandle {
        TimerHandle(self.shared.clone())
    }

    /// Stops the thread (pending wake-ups are dropped: their sleepers never return) and waits
    /// for it; it holds the lock only for moments, so this does not block for long.
    fn stop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The timer thread: fires every due wake-up, then sleeps until the next one or a change.
fn run_timer(shared: &TimerShared) {
    let mut state = shared.lock();
    while !state.stopped {
        let now = Instant::now();
        while state.wakeups.peek().is_some_and(|first| first.0.at <= now) {
            if let Some(Reverse(due)) = state.wakeups.pop() {
                let _ = due.wake.send(());
            }
        }
        state = match state.wakeups.peek().map(|first| first.0.at - now) {
            Some(wait) => {
                shared
                    .changed
                    .wait_timeout(state, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
    state.wakeups.clear();
}

impl TimerHandle {
    /// Returns at `at` (within the thread's wake-up latency), at once if it has passed.
    /// Once the timer has stopped it never returns: the proxy is going away, and no byte
    /// may leave early meanwhile.
    async fn sleep_until(&self, at: Instant) {
        if at <= Instant::now() {
            return;
        }
        let (wake, woken) = oneshot::channel();
        let registered = {
            let mut state = self.0.lock();
            let id = state.next_id;
            state.next_id += 1;
            state.wakeups.push(Reverse(Wakeup { at, id, wake }));
            !state.stopped
        };
        self.0.changed.notify_one();
        if !registered || woken.await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-way delay of the timing test: quick, and well above the timer's precision.
    const ONE_WAY: Duration = Duration::from_millis(20);
    const TOLERANCE: Duration = Duration::from_millis(1);
    /// Round trips measured in the timing test.
    const ROUND_TRIPS: usize = 20;
    const CONNECTIONS: usize = 16;
    const PAYLOAD_BYTES: usize = 1024 * 1024;
    /// No test may hang: every exchange is bounded by this.
    const TEST_LIMIT: Duration = Duration::from_secs(30);

    /// An echo server on `127.0.0.1:0` that echoes until EOF, then closes its side.
    async fn echo_server() -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(async move {
                    // Errors end the echo: a test that sees no echo fails on its own.
                    let _ = stream.set_nodelay(true);
                    let (mut read, mut write) = stream.into_split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                    let _ = write.shutdown().await;
                });
            }
        });
        (addr, task)
    }

    async fn connect(proxy: &DelayProxy) -> TcpStream {
        let stream = TcpStream::connect(proxy.addr()).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Duration {
        let started = Instant::now();
        stream.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        stream.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, message);
        started.elapsed()
    }

    #[tokio::test]
    async fn a_round_trip_takes_twice_the_one_way_delay() {
        let (echo, _server) = echo_server().await;
        let proxy = DelayProxy::start(echo, ONE_WAY).await.unwrap();
        let mut stream = connect(&proxy).await;
        // The first exchange on a new connection also pays the handshake's round trip.
        let first = round_trip(&mut stream, b"hello").await;
        assert!(
            first >= proxy.rtt() * 2 - TOLERANCE,
            "first round trip took {first:?}"
        );
        let samples = round_trips(&mut stream).await;
        assert!(
            samples[0] >= proxy.rtt(),
            "a sample below the RTT: {samples:?}"
        );
        // What the proxy adds is judged against the same exchange without it, measured in
        // the same run: on a loaded machine the echo and the wake-ups cost a fraction of a
        // millisecond that is not the proxy's delay.
        let mut direct = TcpStream::connect(echo).await.unwrap();
        direct.set_nodelay(true).unwrap();
        let baseline = round_trips(&mut direct).await;
        let added = median(&samples).saturating_sub(median(&baseline));
        assert!(
            added.abs_diff(proxy.rtt()) <= TOLERANCE,
            "the proxy added {added:?}, configured {:?}: {samples:?}, without it {baseline:?}",
            proxy.rtt()
        );
    }

    /// `ROUND_TRIPS` pings on `stream`, sorted.
    async fn round_trips(stream: &mut TcpStream) -> Vec<Duration> {
        let mut samples = Vec::with_capacity(ROUND_TRIPS);
        for i in 0..ROUND_TRIPS {
            samples.push(round_trip(stream, format!("ping {i}").as_bytes()).await);
        }
        samples.sort();
        samples
    }

    fn median(sorted: &[Duration]) -> Duration {
        sorted[sorted.len() / 2]
    }

    #[tokio::test]
    async fn chunks_are_pipelined_not_delayed_one_after_another() {
        const MESSAGES: usize = 50;
        const GAP: Duration = Duration::from_millis(2);
        let (echo, _server) = echo_server().await;
        let proxy = DelayProxy::start(echo, ONE_WAY).await.unwrap();
        let mut stream = connect(&proxy).await;
        round_trip(&mut stream, b"open").await; // past the handshake
        let (mut read, mut write) = stream.into_split();
        let started = Instant::now();
        let sender = tokio::spawn(async move {
            for _ in 0..MESSAGES {
                write.write_all(b"x").await.unwrap();
                tokio::time::sleep(GAP).await;
            }
            write
        });
        let mut echoed = vec![0u8; MESSAGES];
        read.read_exact(&mut echoed).await.unwrap();
        let elapsed = started.elapsed();
        let sent_within = sender.await.map(|_| started.elapsed()).unwrap();
        // Delayed one after another, 50 separate writes would take 50 one-way delays.
        assert!(
            elapsed <= sent_within + proxy.rtt() + Duration::from_millis(10),
            "{MESSAGES} messages sent within {sent_within:?} came back after {elapsed:?}"
        );
    }

    /// A pattern that differs per connection, so crossed streams would show.
    fn pattern(connection: usize) -> Vec<u8> {
        (0..PAYLOAD_BYTES)
            .map(|i| ((i * 31 + connection * 7) % 251) as u8)
            .collect()
    }

    /// Sends `payload` through the proxy to the echo server, half-closes, and reads back
    /// everything until the echo's EOF.
    async fn echo_through(proxy: &DelayProxy, payload: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
        let (mut read, mut write) = connect(proxy).await.into_split();
        let sender = tokio::spawn(async move {
            write.write_all(&payload).await.unwrap();
            write.shutdown().await.unwrap();
            payload
        });
        let mut echoed = Vec::with_capacity(PAYLOAD_BYTES);
        read.read_to_end(&mut echoed).await.unwrap();
        (sender.await.unwrap(), echoed)
    }

    #[tokio::test]
    async fn bytes_arrive_complete_and_in_order_on_concurrent_connections() {
        let (echo, _server) = echo_server().await;
        let proxy = Arc::new(DelayProxy::start(echo, ONE_WAY).await.unwrap());
        let mut exchanges = JoinSet::new();
        for connection in 0..CONNECTIONS {
            let proxy = proxy.clone();
            exchanges.spawn(async move { echo_through(&proxy, pattern(connection)).await });
        }
        let all = tokio::time::timeout(TEST_LIMIT, exchanges.join_all())
            .await
            .expect("the exchanges finish");
        for (sent, echoed) in all {
            assert_eq!(echoed.len(), PAYLOAD_BYTES);
            // Byte by byte (a mismatch names its offset).
            let first_difference = sent.iter().zip(&echoed).position(|(a, b)| a != b);
            assert_eq!(first_difference, None);
        }
        assert_eq!(proxy.accepted(), CONNECTIONS as u64);
    }

    #[tokio::test]
    async fn counts_accepted_connections() {
        let (echo, _server) = echo_server().await;
        let proxy = DelayProxy::start(echo, ONE_WAY).await.unwrap();
        assert_eq!(proxy.accepted(), 0);
        let mut streams = Vec::new();
        for expected in 1..=3u64 {
            streams.push(connect(&proxy).await);
            crate::wait_until("the proxy accepted the connection", TEST_LIMIT, || async {
                proxy.accepted() == expected
            })
            .await;
        }
        // Reusing a connection is not a new one.
        for _ in 0..2 {
            round_trip(&mut streams[0], b"again").await;
        }
        assert_eq!(proxy.accepted(), 3);
    }

    #[tokio::test]
    async fn a_full_queue_stops_reading() {
        // An upstream that accepts and never reads: only the kernel's buffers and the
        // proxy's bounded queue can take bytes, so a large write must stall.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        let _silent = tokio::spawn(async move {
            let (_stream, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
        });
        let proxy = DelayProxy::start(upstream, Duration::from_millis(1))
            .await
            .unwrap();
        let mut stream = connect(&proxy).await;
        let flood = vec![7u8; 16 * QUEUE_BYTES_MAX];
        let stalled = tokio::time::timeout(Duration::from_secs(2), stream.write_all(&flood)).await;
        assert!(stalled.is_err(), "{} bytes were taken", flood.len());
    }

    #[tokio::test]
    async fn shutdown_closes_connections() {
        let (echo, _server) = echo_server().await;
        let proxy = DelayProxy::start(echo, ONE_WAY).await.unwrap();
        let mut stream = connect(&proxy).await;
        round_trip(&mut stream, b"before").await;
        proxy.shutdown().await;
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(TEST_LIMIT, stream.read_to_end(&mut rest)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "the connection stayed open"
        );
    }
}
