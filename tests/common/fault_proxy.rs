//! An HTTP/1.1 proxy that injects faults between a client and a real object-storage server
//! (moto, Azurite), for the retry and error-path tests.
//!
//! It listens on `127.0.0.1:0` and forwards each request verbatim, its `Host` header unchanged
//! (as a transparent proxy does: the client signs its requests for the address it talks to),
//! over one upstream connection per client connection. Keep-alive connections carrying many
//! requests are served in order. Bodies are framed by `Content-Length` or `Transfer-Encoding:
//! chunked` (`object_store` sends every request body whole, with `Content-Length`; Azurite
//! answers chunked); HEAD answers and 1xx/204/304 answers carry none; an answer framed by the
//! end of the connection is relayed and the client's connection closed after it. `Connection`
//! is hop-by-hop: moto answers in HTTP/1.0 and closes every connection, and its answers are
//! relayed as HTTP/1.1 without that header, the client's connection kept open as S3 and Azure
//! keep theirs, so that faults hit reused connections on both servers.
//!
//! Before forwarding, each request is offered to the [`Rule`]s in order; the first that
//! matches it and fires decides its [`Fault`]:
//! - an error answer (503 SlowDown, 500 InternalError, 429), the request not forwarded;
//! - the connection closed before forwarding (the request never reached the server);
//! - the request forwarded, then the connection closed instead of answering (the request took
//!   effect, its answer is lost);
//! - the request forwarded and its answer held back for a while (to exceed a client's request
//!   timeout).
//!
//! A rule fires on the `n`th request it matches, on the next `k`, on each with a seeded
//! probability, from the `n`th on, or on every one. Everything injected is counted by kind
//! and by direction (a read is GET or HEAD, a write anything else), and every request
//! received is logged, so that a test can prove the faults happened and were retried.
//!
//! Forwarding with the `Host` header rewritten to the server's address works too with both
//! servers (moto does not check SigV4 signatures, which cover `Host`; Azure's SharedKey
//! signature does not cover it), but real S3 would refuse it: the proxy stays transparent.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the proxy does to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Answers `503 Slow Down` (S3's throttling answer) without forwarding.
    SlowDown,
    /// Answers `500 Internal Server Error` without forwarding.
    InternalError,
    /// Answers `429 Too Many Requests` without forwarding.
    TooManyRequests,
    /// Closes the client's connection after reading the request, without forwarding it.
    DropBefore,
    /// Forwards the request, reads the server's answer, and closes the client's connection
    /// instead of relaying it: the request took effect, its answer is lost.
    LoseAnswer,
    /// Forwards the request and relays the answer this many milliseconds later.
    DelayMs(u64),
}

impl Fault {
    /// The fault's kind, delays of any length being one kind.
    pub fn kind(self) -> Fault {
        match self {
            Fault::DelayMs(_) => Fault::DelayMs(0),
            f => f,
        }
    }
}

/// A request as the rules see it.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The request target: path and query string.
    pub target: String,
    /// Header names in lower case, with their values.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `Range` header, if any.
    pub fn range(&self) -> Option<String> {
        self.header("range").map(str::to_string)
    }

    /// A GET or a HEAD.
    pub fn is_read(&self) -> bool {
        self.method == "GET" || self.method == "HEAD"
    }
}

/// When a matching rule fires.
#[derive(Clone, Copy, Debug)]
pub enum When {
    /// On the `n`th request it matches (1-based), once.
    Nth(u64),
    /// On the next `k` requests it matches.
    Next(u64),
    /// On each request it matches with probability `per_mille / 1000`, drawn from the
    /// proxy's seeded generator.
    PerMille(u64),
    /// On the `n`th request it matches and every one after (an outage).
    From(u64),
    /// On every request it matches.
    Always,
}

type Matcher = Box<dyn Fn(&Request) -> bool + Send>;

/// A fault, the requests it applies to, and when it fires.
pub struct Rule {
    fault: Fault,
    when: When,
    matches: Matcher,
    seen: u64,
    fired: u64,
}

impl Rule {
    /// `fault` on the requests `matches` accepts, when `when` says.
    pub fn new(
        fault: Fault,
        when: When,
        matches: impl Fn(&Request) -> bool + Send + 'static,
    ) -> Rule {
        Rule {
            fault,
            when,
            matches: Box::new(matches),
            seen: 0,
            fired: 0,
        }
    }

    /// `fault` on any request, when `when` says.
    pub fn any(fault: Fault, when: When) -> Rule {
        Rule::new(fault, when, |_| true)
    }
}

/// One fault injected.
#[derive(Clone, Debug)]
pub struct Injection {
    pub fault: Fault,
    pub method: String,
    pub target: String,
    /// The request's `Range` header, if any.
    pub range: Option<String>,
}

/// How many faults of each kind were injected, on reads and on writes.
#[derive(Clone, Debug, Default)]
pub struct Injected {
    /// By fault kind: (on reads, on writes).
    pub by_kind: HashMap<Fault, (u64, u64)>,
    /// Every injection, in order.
    pub log: Vec<Injection>,
}

impl Injected {
    /// Faults of `kind` injected on (reads, writes).
    pub fn of(&self, kind: Fault) -> (u64, u64) {
        self.by_kind.get(&kind.kind()).copied().unwrap_or((0, 0))
    }

    /// All faults injected.
    pub fn total(&self) -> u64 {
        self.by_kind.values().map(|(r, w)| r + w).sum()
    }
}

struct State {
    upstream: SocketAddr,
    rules: Mutex<Vec<Rule>>,
    rng: Mutex<u64>,
    injected: Mutex<Injected>,
    /// Requests received (faulted or not).
    requests: AtomicU64,
    /// Every request received: method, target and range, in order.
    received: Mutex<Vec<(String, String, Option<String>)>>,
    /// Requests forwarded to the server.
    forwarded: AtomicU64,
    /// Client connections accepted.
    connections: AtomicU64,
    stop: AtomicBool,
}

impl State {
    /// The fault for `req`, if a rule fires (counted).
    fn decide(&self, req: &Request) -> Option<Fault> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.received
            .lock()
            .unwrap()
            .push((req.method.clone(), req.target.clone(), req.range()));
        let mut rules = self.rules.lock().unwrap();
        for rule in rules.iter_mut() {
            if !(rule.matches)(req) {
                continue;
            }
            rule.seen += 1;
            let fire = match rule.when {
                When::Nth(n) => rule.seen == n,
                When::Next(k) => rule.fired < k,
                When::PerMille(p) => {
                    let mut x = self.rng.lock().unwrap();
                    // xorshift64*
                    *x ^= *x >> 12;
                    *x ^= *x << 25;
                    *x ^= *x >> 27;
                    (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) % 1000 < p
                }
                When::From(n) => rule.seen >= n,
                When::Always => true,
            };
            if fire {
                rule.fired += 1;
                let mut inj = self.injected.lock().unwrap();
                let e = inj.by_kind.entry(rule.fault.kind()).or_default();
                if req.is_read() {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
                inj.log.push(Injection {
                    fault: rule.fault,
                    method: req.method.clone(),
                    target: req.target.clone(),
                    range: req.range(),
                });
                return Some(rule.fault);
            }
        }
        None
    }
}

/// The proxy. Dropping it stops accepting connections; connections being served end when
/// their client closes them.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
}

impl FaultProxy {
    /// A proxy to the server at `upstream` (`http://host:port`, any path ignored), its
    /// probabilistic rules drawing from `seed`.
    pub fn start(upstream: &str, seed: u64) -> FaultProxy {
        let hostport = upstream
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("the proxy forwards to http:// only, not {upstream}"));
        let hostport = hostport.split('/').next().unwrap();
        let upstream = std::net::ToSocketAddrs::to_socket_addrs(hostport)
            .unwrap()
            .next()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            upstream,
            rules: Mutex::new(Vec::new()),
            rng: Mutex::new(seed | 1),
            injected: Mutex::new(Injected::default()),
            requests: AtomicU64::new(0),
            received: Mutex::new(Vec::new()),
            forwarded: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let st = state.clone();
        thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if st.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    st.connections.fetch_add(1, Ordering::Relaxed);
                    let st = st.clone();
                    thread::spawn(move || {
                        let _ = serve(&st, conn);
                    });
                }
            })
            .unwrap();
        FaultProxy { addr, state }
    }

    /// `http://127.0.0.1:<port>`: where clients connect.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the rules (counts of what was injected are kept).
    pub fn set_rules(&self, rules: Vec<Rule>) {
        *self.state.rules.lock().unwrap() = rules;
    }

    /// Adds a rule after the others.
    pub fn add_rule(&self, rule: Rule) {
        self.state.rules.lock().unwrap().push(rule);
    }

    /// Removes every rule: requests pass unharmed from now on.
    pub fn clear_rules(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// What was injected so far.
    pub fn injected(&self) -> Injected {
        self.state.injected.lock().unwrap().clone()
    }

    /// How many times the request of `inj` (its method, target and range) was received:
    /// first attempts and retries.
    pub fn received(&self, inj: &Injection) -> usize {
        self.state
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, t, r)| *m == inj.method && *t == inj.target && *r == inj.range)
            .count()
    }

    /// How many distinct requests (method, target, range) `pick` accepts were received.
    pub fn distinct_received(&self, pick: impl Fn(&str, &str) -> bool) -> usize {
        let received = self.state.received.lock().unwrap();
        received
            .iter()
            .filter(|(m, t, _)| pick(m, t))
            .collect::<std::collections::HashSet<_>>()
            .len()
    }

    /// Client connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Requests received so far (faulted or not), and of those forwarded to the server.
    pub fn requests(&self) -> (u64, u64) {
        (
            self.state.requests.load(Ordering::Relaxed),
            self.state.forwarded.load(Ordering::Relaxed),
        )
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        // Wake the accepting thread so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// A message's head: its first line and headers, raw (to forward verbatim) and parsed.
struct Head {
    raw: Vec<u8>,
    first: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, v)| k == name && v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
}

/// How a message's body is delimited.
enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (a response only).
    Close,
}

/// Reads a head; `None` at a clean end of the connection before its first byte.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut raw = Vec::new();
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a head",
            ));
        }
        raw.extend_from_slice(&line);
        if raw.len() > 1 << 20 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if text.is_empty() {
            if lines.is_empty() {
                // Tolerate a stray empty line between messages.
                raw.clear();
                continue;
            }
            break;
        }
        lines.push(text);
    }
    let first = lines.remove(0);
    let headers = lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Some(Head {
        raw,
        first,
        headers,
    }))
}

fn framing(head: &Head, is_response: bool, no_body: bool) -> io::Result<Framing> {
    if no_body {
        return Ok(Framing::None);
    }
    if head.has_token("transfer-encoding", "chunked") {
        return Ok(Framing::Chunked);
    }
    if let Some(v) = head.header("content-length") {
        let n = v
            .parse::<u64>()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length"))?;
        return Ok(Framing::Length(n));
    }
    Ok(if is_response {
        Framing::Close
    } else {
        Framing::None
    })
}

/// Reads a body framed by `f`, raw (chunk sizes and trailers included for a chunked one).
fn read_body(r: &mut impl BufRead, f: &Framing) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match f {
        Framing::None => {}
        Framing::Length(n) => {
            out.resize(*n as usize, 0);
            r.read_exact(&mut out)?;
        }
        Framing::Close => {
            r.read_to_end(&mut out)?;
        }
        Framing::Chunked => loop {
            let mut line = Vec::new();
            if r.read_until(b'\n', &mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunked body",
                ));
            }
            out.extend_from_slice(&line);
            let text = String::from_utf8_lossy(&line);
            let size = text.trim().split(';').next().unwrap_or("");
            let size = u64::from_str_radix(size.trim(), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers, up to an empty line.
                loop {
                    let mut t = Vec::new();
                    if r.read_until(b'\n', &mut t)? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "connection closed inside trailers",
                        ));
                    }
                    out.extend_from_slice(&t);
                    if t == b"\r\n" || t == b"\n" {
                        return Ok(out);
                    }
                }
            }
            let at = out.len();
            out.resize(at + size as usize + 2, 0);
            r.read_exact(&mut out[at..])?;
        },
    }
    Ok(out)
}

/// `head` as an HTTP/1.1 answer without `Connection` headers (which the client would obey).
fn keep_alive_head(head: &Head) -> Vec<u8> {
    let text = String::from_utf8_lossy(&head.raw);
    let mut out = String::new();
    for (i, line) in text.split("\r\n").enumerate() {
        if i == 0 {
            out.push_str(&line.replacen("HTTP/1.0", "HTTP/1.1", 1));
            out.push_str("\r\n");
            continue;
        }
        let name = line.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive") {
            continue;
        }
        if line.is_empty() {
            break;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// An error answer, as S3 and Azure shape them (object_store looks only at the status).
fn error_answer(fault: Fault) -> Vec<u8> {
    let (status, reason, code) = match fault {
        Fault::SlowDown => (503, "Slow Down", "SlowDown"),
        Fault::InternalError => (500, "Internal Server Error", "InternalError"),
        _ => (429, "Too Many Requests", "TooManyRequests"),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>\
         <Message>injected by the test proxy</Message></Error>"
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n\
         Content-Length: {}\r\nRetry-After: 0\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The upstream side of one client connection.
struct Upstream {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Upstream {
    fn connect(addr: SocketAddr) -> io::Result<Upstream> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Upstream {
            r: BufReader::with_capacity(1 << 16, s.try_clone()?),
            w: s,
        })
    }
}

/// Serves one client connection: its requests one after another.
fn serve(st: &State, client: TcpStream) -> io::Result<()> {
    if st.stop.load(Ordering::Relaxed) {
        return Ok(());
    }
    client.set_nodelay(true)?;
    client.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut cr = BufReader::with_capacity(1 << 16, client.try_clone()?);
    let mut cw = client;
    let mut up: Option<Upstream> = None;
    loop {
        let Some(head) = read_head(&mut cr)? else {
            return Ok(());
        };
        let mut parts = head.first.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let body = read_body(&mut cr, &framing(&head, false, false)?)?;
        let client_close = head.has_token("connection", "close");
        let req = Request {
            method: method.clone(),
            target,
            headers: head.headers.clone(),
        };
        let fault = st.decide(&req);
        match fault {
            Some(f @ (Fault::SlowDown | Fault::InternalError | Fault::TooManyRequests)) => {
                cw.write_all(&error_answer(f))?;
                cw.flush()?;
                if client_close {
                    return Ok(());
                }
                continue;
            }
            Some(Fault::DropBefore) => {
                let _ = cw.shutdown(Shutdown::Both);
                return Ok(());
            }
            _ => {}
        }
        // Forward (over a new upstream connection if the last one was closed).
        st.forwarded.fetch_add(1, Ordering::Relaxed);
        let mut u = match up.take() {
            Some(u) => u,
            None => Upstream::connect(st.upstream)?,
        };
        let sent =
            u.w.write_all(&head.raw)
                .and_then(|()| u.w.write_all(&body))
                .and_then(|()| u.w.flush());
        if sent.is_err() {
            // A kept-alive upstream connection the server had closed: once more, afresh.
            u = Upstream::connect(st.upstream)?;
            u.w.write_all(&head.raw)?;
            u.w.write_all(&body)?;
            u.w.flush()?;
        }
        let (rhead, rbody, up_close, answer_closes) = loop {
            let rhead = match read_head(&mut u.r)? {
                Some(h) => h,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection without answering",
                    ))
                }
            };
            let status: u16 = rhead
                .first
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if (100..200).contains(&status) && status != 101 {
                // An interim answer: relay it, the final one follows.
                if fault != Some(Fault::LoseAnswer) {
                    cw.write_all(&rhead.raw)?;
                }
                continue;
            }
            let no_body = method == "HEAD" || status == 204 || status == 304;
            let f = framing(&rhead, true, no_body)?;
            // The server ends this connection after the answer: after a body framed by its end,
            // or as it says (moto answers in HTTP/1.0 and closes every connection).
            let up_close = matches!(f, Framing::Close)
                || rhead.has_token("connection", "close")
                || (rhead.first.starts_with("HTTP/1.0")
                    && !rhead.has_token("connection", "keep-alive"));
            let rbody = read_body(&mut u.r, &f)?;
            // `Connection` is hop-by-hop: the client's connection stays open (as with S3 and
            // Azure, which keep connections alive) unless the body is framed by its end.
            let keep_client = !matches!(f, Framing::Close);
            let rhead = if up_close && keep_client {
                keep_alive_head(&rhead)
            } else {
                rhead.raw
            };
            break (rhead, rbody, up_close, !keep_client);
        };
        match fault {
            Some(Fault::LoseAnswer) => {
                let _ = cw.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some(Fault::DelayMs(ms)) => thread::sleep(Duration::from_millis(ms)),
            _ => {}
        }
        cw.write_all(&rhead)?;
        cw.write_all(&rbody)?;
        cw.flush()?;
        if answer_closes || client_close {
            let _ = cw.shutdown(Shutdown::Both);
            return Ok(());
        }
        if !up_close {
            up = Some(u);
        }
    }
}
