//! Crowds of idle TCP connections: what a client that opens connections and sends nothing
//! does to a server's file descriptors (issue 10, finding 2). Used by `tests/idle.rs` and
//! `ledger/tests/idle.rs`, so both tiers face the same crowd: loopback connections to one
//! port.
//!
//! A crowd of 20,000 does not fit one process where the open-file hard limit is 20,000 and
//! may not be raised (no CAP_SYS_RESOURCE), so a [`SplitCrowd`] is held by child processes,
//! [`SHARE_MAX`] connections each: the test binary runs itself again, each child running
//! only the test that calls [`hold_share`] (an `#[ignore]`d one, so a plain run skips it).
//! A child says it is ready on stdout, opens connections ([`IdleCrowd`]) and partitions
//! them as the parent asks on its stdin, and exits, closing them, when its stdin closes.
//! The parent opens the crowd in rounds paced by the server's accepted count, and from
//! many loopback source addresses (see [`QUEUE_ROOM`] and [`connect`]): 20,000 connections
//! in a few seconds.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

/// Connections one child process holds: with the few other descriptors it has (stdio,
/// the runtime's), far below 20,000, a usual open-file hard limit per process.
pub const SHARE_MAX: usize = 10_000;
/// Open files a child needs beside its share: stdio, the runtime's epoll and wakers, the
/// test harness's.
const SHARE_FILES_BESIDE: u64 = 256;
/// Connections opened but not yet accepted, at most: a listener's accept queue (128 on
/// the servers here, `listen`'s usual backlog). Past it the kernel drops the handshake's
/// last ACK; the client counts the connection open, the server accepts it only when a
/// retransmitted SYN-ACK (1, 2, 4 … 16 s apart) finds room. A crowd opened faster than
/// the server accepts would leave such stragglers for half a minute.
const QUEUE_ROOM: usize = 128;
/// Connections a [`SplitCrowd`] opens in one round (shared among its children); the next
/// round waits until this much room is free in the server's accept queue.
const ROUND_MAX: usize = 64;
const _: () = assert!(ROUND_MAX <= QUEUE_ROOM);
/// How often a [`SplitCrowd`] opening looks at the server's accepted count.
const PACE_POLL: Duration = Duration::from_millis(2);
/// Connections [`IdleCrowd::open`] opens at once: below [`QUEUE_ROOM`] (see there).
const CONNECTS_IN_FLIGHT_MAX: usize = 64;
/// Source addresses a crowd's connections to loopback come from, in turn (see
/// [`connect`]): 127.0.0.2 onwards, all of 127.0.0.0/8 being loopback, a few hundred
/// connections each for a crowd of 20,000.
const LOOPBACK_SOURCES: usize = 64;
const LOOPBACK_SOURCES_FROM: u32 = u32::from_be_bytes([127, 0, 0, 2]);
/// One connect; loopback answers in microseconds unless the backlog is full.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A child process starting (exec, the test harness, its open-file limit): a few
/// milliseconds, longer on a machine busy compiling.
const SHARE_START_MAX: Duration = Duration::from_secs(10);
/// A child's answer to a request, past the wait the request names.
const REPLY_MARGIN: Duration = Duration::from_secs(10);
/// A child exiting once its stdin is closed: closing its share takes milliseconds.
const SHARE_EXIT_MAX: Duration = Duration::from_secs(10);
/// Longest a child lives: far past any crowd test (< 40 s), so a parent that hangs
/// without closing the child's stdin does not leave the child holding its share.
const SHARE_LIFETIME_MAX: Duration = Duration::from_secs(120);
/// Where the child connects, and how many connections it will hold at most (its
/// open-file limit is raised for them at start).
const AUTHORITY_ENV: &str = "TESSERA_IDLE_CROWD_AUTHORITY";
const SHARE_ENV: &str = "TESSERA_IDLE_CROWD_SHARE";
/// Marks the child's replies on its stdout, among the test harness's lines (which may
/// share a line with a reply: the harness prints `test NAME ... ` before the test runs).
const REPLY: &str = "tessera-idle-crowd:";
/// The child's first reply, once it runs: `ready`.
const READY: &str = "ready";
/// Requests, each answered with its name and counts: `open COUNT` (open that many more,
/// answered `open COUNT`) and `partition WAIT_MS` (answered `partition OPEN CLOSED`).
const OPEN: &str = "open";
const PARTITION: &str = "partition";

/// Open connections that have sent nothing. Dropping the crowd closes them all.
pub struct IdleCrowd {
    streams: Vec<TcpStream>,
}

impl IdleCrowd {
    /// Opens `count` connections to `authority` from this process, at most
    /// [`CONNECTS_IN_FLIGHT_MAX`] at once. Panics if one fails or the whole takes longer
    /// than `limit`.
    pub async fn open(authority: &str, count: usize, limit: Duration) -> Self {
        let mut crowd = Self {
            streams: Vec::with_capacity(count),
        };
        crowd.open_more(authority, count, limit).await;
        crowd
    }

    /// [`IdleCrowd::open`], adding to this crowd.
    pub async fn open_more(&mut self, authority: &str, count: usize, limit: Duration) {
        let target: SocketAddr = authority
            .parse()
            .unwrap_or_else(|_| panic!("{authority:?} is an IP address and port"));
        let deadline = tokio::time::Instant::now() + limit;
        let gate = std::sync::Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT_MAX));
        let mut connecting = JoinSet::new();
        for i in self.streams.len()..self.streams.len() + count {
            let gate = gate.clone();
            connecting.spawn(async move {
                let _permit = gate.acquire_owned().await.expect("gate open");
                tokio::time::timeout(CONNECT_TIMEOUT, connect(target, i)).await
            });
        }
        let mut opened = 0;
        while let Some(joined) = tokio::time::timeout_at(deadline, connecting.join_next())
            .await
            .unwrap_or_else(|_| panic!("{opened} of {count} connections open after {limit:?}"))
        {
            let connected = joined.expect("connect task");
            let stream = connected
                .unwrap_or_else(|_| panic!("a connect took over {CONNECT_TIMEOUT:?}"))
                .unwrap_or_else(|e| panic!("connection {} of {count}: {e}", opened + 1));
            self.streams.push(stream);
            opened += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Waits up to `wait` (all at once) for the server to close each connection: the ones
    /// still open after it, and how many were closed (or reset). Anything the server sent
    /// before closing is ignored; an open connection that received bytes panics (an idle
    /// connection is never answered).
    pub async fn partition_closed(self, wait: Duration) -> (Self, usize) {
        let mut watching = JoinSet::new();
        for stream in self.streams {
            watching.spawn(async move {
                let mut stream = stream;
                let closed = closed_within(&mut stream, wait).await;
                (stream, closed)
            });
        }
        let (mut open, mut closed) = (Vec::new(), 0);
        while let Some(joined) = watching.join_next().await {
            let (stream, was_closed) = joined.expect("watch task");
            if was_closed {
                closed += 1;
            } else {
                open.push(stream);
            }
        }
        (Self { streams: open }, closed)
    }
}

/// Connection `index` of a crowd to `target`. To a loopback IPv4 address, from a source
/// address of its own among [`LOOPBACK_SOURCES`], bound before connecting: `connect`
/// searches one source address's ephemeral ports for one free towards the target, a
/// search that grows with the connections already open (milliseconds each past a few
/// thousand), while a bind finds a free port of a fresh address at once.
async fn connect(target: SocketAddr, index: usize) -> std::io::Result<TcpStream> {
    match target.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => {
            let socket = TcpSocket::new_v4()?;
            let source = LOOPBACK_SOURCES_FROM + (index % LOOPBACK_SOURCES) as u32;
            socket.bind(SocketAddr::new(Ipv4Addr::from(source).into(), 0))?;
            socket.connect(target).await
        }
        _ => TcpStream::connect(target).await,
    }
}

/// Whether the server closes (or resets) `stream` within `wait`, reading what it sends.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut received = Vec::new();
    match tokio::time::timeout(wait, stream.read_to_end(&mut received)).await {
        Ok(_) => true,
        Err(_) => {
            assert!(
                received.is_empty(),
                "an idle connection was sent {:?}",
                String::from_utf8_lossy(&received)
            );
            false
        }
    }
}

/// An idle crowd held by child processes (at most [`SHARE_MAX`] connections each), so no
/// process needs more open files than a usual hard limit allows. Opened in rounds of
/// [`ROUND_MAX`], each once the server's accept queue has room for it (see
/// [`QUEUE_ROOM`]). Each child is killed if this is dropped; [`SplitCrowd::close`] ends
/// them in order.
pub struct SplitCrowd {
    shares: Vec<Share>,
}

/// One child process and its share of the crowd.
struct Share {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Lines<BufReader<ChildStdout>>,
    /// Connections it is to hold once the crowd is open.
    size: usize,
    /// Connections it holds.
    open: usize,
}

impl SplitCrowd {
    /// Opens `count` connections to `authority` from child processes running this test
    /// binary's `child_test` (which calls [`hold_share`]), pacing them by `accepted`, the
    /// number of connections the server has accepted (held or closed at once). Panics
    /// unless all are open within `limit` (after the children's start,
    /// [`SHARE_START_MAX`]).
    pub async fn open<F, Fut>(
        child_test: &str,
        authority: &str,
        count: usize,
        limit: Duration,
        mut accepted: F,
    ) -> Self
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = usize>,
    {
        let mut crowd = Self {
            shares: share_sizes(count)
                .map(|size| Share::spawn(child_test, authority, size))
                .collect(),
        };
        let started = Instant::now() + SHARE_START_MAX;
        for share in &mut crowd.shares {
            share.reply(READY, started).await;
        }
        let deadline = Instant::now() + limit;
        while crowd.len() < count {
            crowd.open_round(deadline).await;
            // Room in the accept queue for the next round.
            let accepted_min = crowd.len().saturating_sub(QUEUE_ROOM - ROUND_MAX);
            while accepted().await < accepted_min {
                assert!(
                    Instant::now() < deadline,
                    "{} of {count} connections open after {limit:?}, the server behind",
                    crowd.len()
                );
                tokio::time::sleep(PACE_POLL).await;
            }
        }
        crowd
    }

    /// One round: up to [`ROUND_MAX`] more connections, shared among the children that
    /// have room.
    async fn open_round(&mut self, deadline: Instant) {
        let per_share = ROUND_MAX / self.shares.len();
        let mut asked = Vec::with_capacity(self.shares.len());
        for share in &mut self.shares {
            let more = per_share.min(share.size - share.open);
            if more > 0 {
                share.request(&format!("{OPEN} {more}")).await;
            }
            asked.push(more);
        }
        for (share, more) in self.shares.iter_mut().zip(asked) {
            if more > 0 {
                let opened = share.reply(OPEN, deadline).await;
                assert_eq!(opened, [more], "connections a child opened");
                share.open += more;
            }
        }
    }

    /// Connections the children hold.
    pub fn len(&self) -> usize {
        self.shares.iter().map(|share| share.open).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`IdleCrowd::partition_closed`] in every child at once: waits up to `wait` for the
    /// server to close each connection, keeps the ones still open. Returns how many are
    /// still open and how many were closed, over the whole crowd.
    pub async fn partition_closed(&mut self, wait: Duration) -> (usize, usize) {
        let request = format!("{PARTITION} {}", wait.as_millis());
        for share in &mut self.shares {
            share.request(&request).await;
        }
        let deadline = Instant::now() + wait + REPLY_MARGIN;
        let (mut open, mut closed) = (0, 0);
        for share in &mut self.shares {
            let counts = share.reply(PARTITION, deadline).await;
            let [still_open, were_closed] = counts[..] else {
                panic!("a child's partition reply has two counts: {counts:?}");
            };
            share.open = still_open;
            (open, closed) = (open + still_open, closed + were_closed);
        }
        (open, closed)
    }

    /// Closes every child's stdin: each closes its share and exits, which this checks.
    pub async fn close(mut self) {
        for share in &mut self.shares {
            share.stdin = None;
        }
        for share in &mut self.shares {
            let status = tokio::time::timeout(SHARE_EXIT_MAX, share.child.wait())
                .await
                .unwrap_or_else(|_| {
                    panic!("a crowd child still runs {SHARE_EXIT_MAX:?} after its stdin closed")
                })
                .expect("waiting for a crowd child");
            assert!(
                status.success(),
                "a crowd child failed ({status}): see its output"
            );
        }
    }
}

/// `count` in shares of at most [`SHARE_MAX`], as even as they come.
fn share_sizes(count: usize) -> impl Iterator<Item = usize> {
    let children = count.div_ceil(SHARE_MAX).max(1);
    (0..children).map(move |i| count / children + usize::from(i < count % children))
}

impl Share {
    fn spawn(child_test: &str, authority: &str, size: usize) -> Self {
        let exe = std::env::current_exe().expect("this test binary's path");
        let mut child = Command::new(exe)
            .args(["--exact", child_test, "--ignored", "--nocapture"])
            .env(AUTHORITY_ENV, authority)
            .env(SHARE_ENV, size.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting a crowd child (this test binary again)");
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .expect("a crowd child's stdout is piped");
        Self {
            child,
            stdin,
            replies: BufReader::new(stdout).lines(),
            size,
            open: 0,
        }
    }

    async fn request(&mut self, request: &str) {
        let stdin = self
            .stdin
            .as_mut()
            .expect("a child's stdin is open until close");
        stdin
            .write_all(format!("{request}\n").as_bytes())
            .await
            .expect("a crowd child reads its requests");
    }

    /// The numbers of the child's next `kind` reply, by `deadline`; the harness's lines
    /// before it are skipped.
    async fn reply(&mut self, kind: &str, deadline: Instant) -> Vec<usize> {
        let deadline = tokio::time::Instant::from_std(deadline);
        loop {
            let line = tokio::time::timeout_at(deadline, self.replies.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {kind:?} reply from a crowd child in time"))
                .expect("reading a crowd child's stdout")
                .unwrap_or_else(|| {
                    panic!("a crowd child exited before its {kind:?} reply (its test named right?)")
                });
            let Some((_, reply)) = line.split_once(REPLY) else {
                continue;
            };
            let mut words = reply.split_whitespace();
            assert_eq!(words.next(), Some(kind), "a crowd child's reply: {line}");
            return words
                .map(|n| n.parse().expect("a crowd child's count"))
                .collect();
        }
    }
}

/// The child's side of a [`SplitCrowd`], for the `#[ignore]`d test it runs: says it is
/// ready, answers `open` and `partition` requests, and returns (closing its connections)
/// when its stdin closes. Run without an order (a plain `--ignored` run), it returns at
/// once. Panics after [`SHARE_LIFETIME_MAX`].
pub async fn hold_share() {
    let Ok(authority) = std::env::var(AUTHORITY_ENV) else {
        eprintln!("no {AUTHORITY_ENV}: this test only holds a crowd test's connections");
        return;
    };
    let deadline = tokio::time::Instant::now() + SHARE_LIFETIME_MAX;
    let size: u64 = std::env::var(SHARE_ENV)
        .ok()
        .and_then(|size| size.parse().ok())
        .unwrap_or_else(|| panic!("{SHARE_ENV} names the share's size"));
    raise_open_files(size + SHARE_FILES_BESIDE);
    println!("{REPLY} {READY}");
    let mut crowd = IdleCrowd::open(&authority, 0, CONNECT_TIMEOUT).await;
    let mut requests = stdin_lines();
    while let Some(line) = tokio::time::timeout_at(deadline, requests.recv())
        .await
        .unwrap_or_else(|_| {
            panic!("the crowd test did not close this child's stdin within {SHARE_LIFETIME_MAX:?}")
        })
    {
        let (kind, number) = line.split_once(' ').unwrap_or((&line, ""));
        let number: u64 = number
            .parse()
            .unwrap_or_else(|_| panic!("a request's number: {line:?}"));
        if kind == OPEN {
            let count = usize::try_from(number).expect("a count fits usize");
            crowd.open_more(&authority, count, CONNECT_TIMEOUT).await;
            println!("{REPLY} {OPEN} {count}");
        } else if kind == PARTITION {
            let (open, closed) = crowd.partition_closed(Duration::from_millis(number)).await;
            println!("{REPLY} {PARTITION} {} {closed}", open.len());
            crowd = open;
        } else {
            panic!("unknown request {line:?}");
        }
    }
}

/// Lines of stdin, read by a thread of their own (tokio's stdin would keep the runtime
/// from shutting down while a read is pending). The channel closes at end of input.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (lines, receiver) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Raises this process's open-file soft limit to `needed` unless it is there already (up
/// to the hard limit, which needs no privilege; past it, the hard limit too, which needs
/// root or CAP_SYS_RESOURCE: without it this panics, saying so). A crowd test does not
/// skip instead: it would let the suite pass without its proof.
pub fn raise_open_files(needed: u64) {
    use rlimit::Resource;
    let (soft, hard) = rlimit::getrlimit(Resource::NOFILE).expect("reading the open-file limit");
    if soft >= needed {
        return;
    }
    if let Err(e) = rlimit::setrlimit(Resource::NOFILE, needed, hard.max(needed)) {
        panic!(
            "this test needs {needed} open files (limit {soft}, hard {hard}) and may not raise \
             its limit ({e}): run it as root, or after `ulimit -Hn {needed} && ulimit -n {needed}`"
        );
    }
}
