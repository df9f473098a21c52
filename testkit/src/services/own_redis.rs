//! A throwaway `redis-server` on its own port, for tests that stop and restart Redis (the
//! shared server must stay up for every other test).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password [`OwnRedis::restart_locked`] sets.
const LOCK_PASSWORD: &str = "tessera-test-lock";
/// How long a starting `redis-server` gets to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A `redis-server` on a free port, without persistence; killed when dropped.
pub struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start_on(port: u16, password: &str) -> Child {
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                password,
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install -y redis-server)")
    }

    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let redis = Self {
            port,
            child: Some(Self::start_on(port, "")),
        };
        redis.wait_until_up().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn wait_until_up(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops Redis and starts it again on the same port, empty: every client's
    /// connection and subscription is lost and has to be made again.
    pub async fn restart(&mut self) {
        self.stop();
        self.child = Some(Self::start_on(self.port, ""));
        self.wait_until_up().await;
    }

    /// Restarts Redis locked behind a password: the ledger's relay (no password) keeps
    /// failing until [`Self::unlock`], so a test can subscribe before anything is published.
    pub async fn restart_locked(&mut self) {
        self.stop();
        self.child = Some(Self::start_on(self.port, LOCK_PASSWORD));
        self.wait_until_up().await;
    }

    pub fn locked_url(&self) -> String {
        format!("redis://:{LOCK_PASSWORD}@127.0.0.1:{}", self.port)
    }

    pub async fn unlock(&self) {
        let client = redis::Client::open(self.locked_url()).expect("url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("admin connection");
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("requirepass")
            .arg("")
            .query_async(&mut conn)
            .await
            .expect("unlock");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
