//! A TCP proxy between the provider and OpenBao that delays every answer,
//! so a test can act while a mount is in flight, and counts how many HTTP
//! requests were in flight at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy; stops when dropped.
pub struct SlowProxy {
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// Request bytes seen from clients, so tests can wait for a request.
    pub requests: Arc<AtomicUsize>,
    /// HTTP requests in flight through the proxy now, and the most ever.
    pub concurrency: Arc<Concurrency>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowProxy {
    /// Forwards to `upstream` (`host:port`), delaying each chunk of the answer by `delay`.
    pub async fn start(upstream: &str, delay: Duration) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.to_string();
        let requests = Arc::new(AtomicUsize::new(0));
        let concurrency = Arc::new(Concurrency::default());
        let seen = requests.clone();
        let counter = concurrency.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let seen = seen.clone();
                let (up_count, down_count) = (counter.clone(), counter.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    // HTTP/1.1: one request at a time per connection.  It is
                    // in flight from its first byte until the answer's
                    // first byte; counted before forwarding either way, so
                    // the count never exceeds what the client has open.
                    let busy = Arc::new(AtomicBool::new(false));
                    let (answered, closed) = (busy.clone(), busy.clone());
                    let end_count = up_count.clone();
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async move {
                        let mut buf = vec![0u8; 16384];
                        while let Ok(n) = cr.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            if !busy.swap(true, Ordering::SeqCst) {
                                up_count.started();
                            }
                            if sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            seen.fetch_add(n, Ordering::SeqCst);
                        }
                    };
                    let down = async move {
                        let mut buf = vec![0u8; 16384];
                        while let Ok(n) = sr.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            if answered.swap(false, Ordering::SeqCst) {
                                down_count.finished();
                            }
                            tokio::time::sleep(delay).await;
                            if cw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    tokio::join!(up, down);
                    // A request the connection closed on without an answer.
                    if closed.swap(false, Ordering::SeqCst) {
                        end_count.finished();
                    }
                });
            }
        });
        SlowProxy {
            addr,
            requests,
            concurrency,
            task,
        }
    }
}

/// Requests in flight through a proxy.
#[derive(Debug, Default)]
pub struct Concurrency {
    /// In flight now.
    now: AtomicUsize,
    /// The most in flight at once so far.
    max: AtomicUsize,
}

impl Concurrency {
    /// A request began.
    fn started(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }

    /// A request was answered.
    fn finished(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    /// The most requests that were in flight at once.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }

    /// Requests in flight now.
    pub fn now(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
