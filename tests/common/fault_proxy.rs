//! A fault-injecting HTTP proxy between the provider and OpenBao, for the
//! failures OpenBao cannot be made to produce: a chosen status, a server
//! that never answers, an answer cut off mid-body, a body that is not
//! JSON, a redirect.  Requests whose path matches no rule pass through to
//! OpenBao.  Every request is recorded (method, path, whether it carried a
//! Vault token), so tests can count retries and prove a request was sent
//! exactly once — or never reached a host.
//!
//! Each request is forwarded with `Connection: close`, so every request
//! arrives on a new connection and is seen here: the provider's pooled
//! client cannot slip a request past the rules on a kept-alive connection.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with a request a rule matches.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Read the request and never answer; the connection stays open until
    /// the client gives up.
    Hang,
    /// Answer with a status, extra headers and a body (with its true
    /// `Content-Length`).
    Answer {
        /// The HTTP status.
        status: u16,
        /// Extra headers, such as `Location`.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    },
    /// Answer 200 declaring a `Content-Length` of `declared` bytes, send
    /// `body` (fewer bytes), and close the connection.
    CutOff {
        /// The length announced.
        declared: usize,
        /// What is actually sent.
        body: Vec<u8>,
    },
}

impl Fault {
    /// An answer with `status` and a JSON body.
    pub fn status(status: u16, body: &str) -> Fault {
        Fault::Answer {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    /// A redirect with `status` to `location`.
    pub fn redirect(status: u16, location: &str) -> Fault {
        Fault::Answer {
            status,
            headers: vec![("Location".into(), location.into())],
            body: vec![],
        }
    }
}

/// One request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `GET`, `PUT`, …
    pub method: String,
    /// The request target (`/v1/secret/data/x?version=1`).
    pub path: String,
    /// Whether it carried an `X-Vault-Token` header.
    pub token: bool,
}

/// Rules and the record, shared with the connection tasks.
#[derive(Default)]
struct State {
    /// (path prefix, fault), first match wins.
    rules: Vec<(String, Fault)>,
    /// Every request received, in order.
    seen: Vec<Seen>,
}

/// A running proxy; stops accepting when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// `127.0.0.1:PORT`, as `--vault-redirect-hosts` names it.
    pub authority: String,
    /// Rules and the record.
    state: Arc<Mutex<State>>,
    /// The accept loop.
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy forwarding unmatched requests to `upstream` (an
    /// `http://host:port` address).  Without an upstream, unmatched requests
    /// are answered 502: a listener that only records.
    pub async fn start(upstream: Option<&str>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let upstream = upstream.map(|u| u.trim_start_matches("http://").to_string());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (state, upstream) = (shared.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &state, upstream.as_deref()).await;
                });
            }
        });
        FaultProxy {
            addr: format!("http://{authority}"),
            authority,
            state,
            task,
        }
    }

    /// Applies `fault` to requests whose path starts with `path_prefix`
    /// (`/v1/secret/data/app`), ahead of earlier rules.
    pub fn inject(&self, path_prefix: &str, fault: Fault) {
        let mut state = self.state.lock().unwrap();
        state.rules.insert(0, (path_prefix.to_string(), fault));
    }

    /// Removes every rule: everything passes through again.
    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// How many `method` requests to paths starting with `path_prefix` were received.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path.starts_with(path_prefix))
            .count()
    }

    /// Forgets the requests received so far.
    pub fn forget(&self) {
        self.state.lock().unwrap().seen.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Most bytes of request headers read.
const MAX_HEAD: usize = 64 * 1024;

/// One connection: read one request, record it, apply the first matching
/// rule or pass it through.
async fn serve(
    mut client: TcpStream,
    state: &Mutex<State>,
    upstream: Option<&str>,
) -> std::io::Result<()> {
    let Some((head, body)) = read_request(&mut client).await? else {
        return Ok(());
    };
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let token = headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("x-vault-token:"));
    let fault = {
        let mut state = state.lock().unwrap();
        state.seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            token,
        });
        state
            .rules
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|(_, fault)| fault.clone())
    };
    match (fault, upstream) {
        (Some(Fault::Hang), _) => {
            // Hold the connection until the client closes it.
            let mut buf = [0u8; 1024];
            while client.read(&mut buf).await? > 0 {}
            Ok(())
        }
        (
            Some(Fault::Answer {
                status,
                headers,
                body,
            }),
            _,
        ) => answer(&mut client, status, &headers, body.len(), &body).await,
        (Some(Fault::CutOff { declared, body }), _) => {
            answer(&mut client, 200, &[], declared, &body).await
        }
        (None, Some(upstream)) => {
            let mut server = TcpStream::connect(upstream).await?;
            let mut forwarded = format!("{method} {path} HTTP/1.1\r\n");
            for header in &headers {
                if !header.to_ascii_lowercase().starts_with("connection:") {
                    forwarded.push_str(header);
                    forwarded.push_str("\r\n");
                }
            }
            forwarded.push_str("Connection: close\r\n\r\n");
            server.write_all(forwarded.as_bytes()).await?;
            server.write_all(&body).await?;
            tokio::io::copy(&mut server, &mut client).await?;
            client.shutdown().await
        }
        (None, None) => {
            let body = br#"{"errors":["this listener forwards nowhere"]}"#;
            answer(&mut client, 502, &[], body.len(), body).await
        }
    }
}

/// Reads one request's head and its `Content-Length` body; `None` if the
/// client closed the connection first.
async fn read_request(client: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length: usize = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    while body.len() < length {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some((head, body)))
}

/// Writes an answer declaring `declared` body bytes and sending `body`,
/// then closes the connection.
async fn answer(
    client: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    declared: usize,
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} Fault\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    client.write_all(head.as_bytes()).await?;
    client.write_all(body).await?;
    client.shutdown().await
}
