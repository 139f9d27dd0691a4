//! The agent's control socket: a Unix stream socket (mode 0600) that
//! takes one JSON request line per connection and answers in JSON lines.
//!
//! Requests and answers are the types of [`netvm_events::control`]:
//! `{"command":"status"}`, `{"command":"leases"}`,
//! `{"command":"events","last":N,"follow":BOOL,"security":BOOL}`,
//! `{"command":"reload"}`; `{"ok":true,…}` or `{"ok":false,"error":"…"}`;
//! `events` with `follow` then streams one event per line until the
//! client goes.
//!
//! Peers are checked twice: the file mode keeps other users from
//! connecting, and `SO_PEERCRED` refuses any peer that is neither root
//! nor the agent's own user (root ignores file modes; so might a socket
//! passed on by someone else). Requests are bounded in size and in
//! concurrent connections.

use crate::hub::Hub;
use netvm_events::control::{LeaseInfo, Request, Response, Status};
use netvm_events::Event;
use netvm_runtime::{Stop, Wake};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest request line.
const MAX_REQUEST: u64 = 4096;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 16;

/// What the control socket asks of the agent.
pub trait Handler: Send + Sync {
    /// `netvm status`, or why it cannot be read.
    fn status(&self) -> Result<Status, String>;
    /// `netvm leases`, or why they cannot be read.
    fn leases(&self) -> Result<Vec<LeaseInfo>, String>;
    /// Each uplink's state.
    fn uplinks(&self) -> Result<Vec<netvm_events::control::UplinkInfo>, String>;
    /// `netvm reload`: the `reloaded` event, or why nothing changed.
    fn reload(&self) -> Result<Event, String>;
    /// The Wi-Fi requests (`wifi_list`, `wifi_scan`, `wifi_connect`,
    /// `wifi_forget`): the answer, or why not.
    fn wifi(&self, request: &Request) -> Result<Response, String>;
    /// The event stream.
    fn hub(&self) -> &Hub;
}

/// Why the control socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another agent answers on it.
    #[error("control socket {path}: another agent is listening on it")]
    InUse {
        /// The path.
        path: String,
    },
    /// Binding or setting its mode failed.
    #[error("control socket {path}: cannot {action}")]
    Io {
        /// The path.
        path: String,
        /// What failed.
        action: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Binds the control socket at `path` with mode 0600, replacing a stale
/// one (a socket nobody answers on) but never another agent's.
pub fn listen(path: &Path) -> Result<UnixListener, ControlError> {
    let io_error = |action| {
        let path = path.display().to_string();
        move |source| ControlError::Io {
            path,
            action,
            source,
        }
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            if UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse {
                    path: path.display().to_string(),
                });
            }
            std::fs::remove_file(path).map_err(io_error("remove the stale socket"))?;
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_error("create its directory"))?;
    }
    // Bind, then narrow the mode before anyone is served. A peer that
    // connects in between still meets the SO_PEERCRED check in `serve`.
    let listener = UnixListener::bind(path).map_err(io_error("bind it"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_error("set its mode to 0600"))?;
    Ok(listener)
}

/// Serves connections until `stop` is stopped, asleep until a
/// connection comes or the stop; then ends the event streams it serves.
pub fn serve(listener: UnixListener, handler: Arc<dyn Handler>, stop: Stop) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let active = Arc::new(AtomicUsize::new(0));
    let served = loop {
        match stop.wait_for(listener.as_fd(), None) {
            Ok(Wake::Ready) => {}
            Ok(_) => break Ok(()),
            Err(e) => break Err(e),
        }
        // A connection that went before it was taken: wait again.
        let Ok((stream, _)) = listener.accept() else {
            continue;
        };
        let _ = stream.set_nonblocking(false);
        if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            let _ = answer(&stream, &refusal("too many control connections"));
            continue;
        }
        active.fetch_add(1, Ordering::Relaxed);
        let (handler, stop, active) = (Arc::clone(&handler), stop.clone(), Arc::clone(&active));
        std::thread::spawn(move || {
            connection(&stream, handler.as_ref(), &stop);
            active.fetch_sub(1, Ordering::Relaxed);
        });
    };
    handler.hub().close_followers();
    served
}

fn refusal(why: &str) -> Response {
    Response::refused(why)
}

fn answer<S>(mut stream: &S, response: &Response) -> io::Result<()>
where
    for<'a> &'a S: Write,
{
    let line = serde_json::to_string(response).map_err(io::Error::other)?;
    writeln!(stream, "{line}")?;
    stream.flush()
}

/// Whether the peer may use the socket: root, or the agent's own user.
fn peer_allowed(stream: &UnixStream) -> Result<(), String> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let creds = getsockopt(stream, PeerCredentials)
        .map_err(|e| format!("cannot read the peer's credentials: {e}"))?;
    let uid = creds.uid();
    if uid == 0 || uid == nix::unistd::geteuid().as_raw() {
        Ok(())
    } else {
        Err(format!(
            "refused: peer uid {uid} is neither root nor the agent's user"
        ))
    }
}

fn connection(stream: &UnixStream, handler: &dyn Handler, stop: &Stop) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    serve_one(
        stream,
        || peer_allowed(stream).map(|()| Access::All),
        handler,
        stop,
    );
}

/// What a peer may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Every request.
    All,
    /// Only the requests that read ([`Request::changes`] is false).
    Read,
}

/// Serves one connection: reads the request line (at most 4096 bytes;
/// the caller sets the read timeout), asks `peer` what the peer may do,
/// and answers. `S` is a Unix or a TCP stream.
pub(crate) fn serve_one<S>(
    stream: &S,
    peer: impl FnOnce() -> Result<Access, String>,
    handler: &dyn Handler,
    stop: &Stop,
) where
    for<'a> &'a S: Read + Write,
{
    let mut line = String::new();
    let mut reader = BufReader::new(stream.take(MAX_REQUEST));
    let read = reader.read_line(&mut line);
    // The request is read (at most 4096 bytes, 5 s) before a stranger is
    // refused, so its client is not still writing when the answer comes
    // and reads the refusal instead of a broken pipe.
    let access = match peer() {
        Ok(access) => access,
        Err(why) => {
            let _ = answer(stream, &refusal(&why));
            return;
        }
    };
    if read.is_err() || !line.ends_with('\n') {
        let _ = answer(
            stream,
            &refusal("a request is one JSON line of at most 4096 bytes"),
        );
        return;
    }
    let request: Request = match serde_json::from_str(&line) {
        Ok(request) => request,
        Err(e) if e.is_data() => {
            let _ = answer(
                stream,
                &refusal(&format!(
                    "not a request ({e}): use status, leases, uplinks, events, reload or wifi_*"
                )),
            );
            return;
        }
        Err(e) => {
            let _ = answer(stream, &refusal(&format!("not JSON: {e}")));
            return;
        }
    };
    if access == Access::Read && request.changes() {
        let _ = answer(
            stream,
            &refusal("this peer may only read: status, leases, uplinks and events"),
        );
        return;
    }
    let reply = match request {
        Request::Status => handler
            .status()
            .map_or_else(|why| refusal(&why), Response::status),
        Request::Leases => handler
            .leases()
            .map_or_else(|why| refusal(&why), Response::leases),
        Request::Uplinks => handler
            .uplinks()
            .map_or_else(|why| refusal(&why), Response::uplinks),
        Request::Reload => handler
            .reload()
            .map_or_else(|why| refusal(&why), Response::reload),
        Request::WifiList
        | Request::WifiScan
        | Request::WifiConnect { .. }
        | Request::WifiForget { .. } => handler.wifi(&request).unwrap_or_else(|why| refusal(&why)),
        Request::Events {
            last,
            follow,
            security,
        } => {
            // Attach before taking the recent ones, so none falls between.
            let live = if follow { handler.hub().follow() } else { None };
            if follow && live.is_none() {
                let _ = answer(stream, &refusal("too many followers"));
                return;
            }
            let recent = if security {
                handler.hub().recent_security(last)
            } else {
                handler.hub().recent(last)
            };
            if answer(stream, &Response::events(recent)).is_err() {
                return;
            }
            if let Some(live) = live {
                stream_events(stream, &live, stop);
            }
            return;
        }
    };
    let _ = answer(stream, &reply);
}

/// Streams events as they come until the client goes or the agent stops
/// (the hub then closes the stream: [`Hub::close_followers`]).
fn stream_events<S>(mut stream: &S, live: &std::sync::mpsc::Receiver<String>, stop: &Stop)
where
    for<'a> &'a S: Write,
{
    while let Ok(line) = live.recv() {
        if stop.is_stopped() || writeln!(stream, "{line}").is_err() {
            return;
        }
    }
}

/// Sends `request` to the agent at `path`; the answer's lines, as read
/// (a [`Response`], then with `follow` one [`Event`] per line).
pub fn request(path: &Path, request: &Request) -> io::Result<BufReader<UnixStream>> {
    send(UnixStream::connect(path)?, request)
}

fn send<S: Read + Write>(mut stream: S, request: &Request) -> io::Result<BufReader<S>> {
    let line = serde_json::to_string(request).map_err(io::Error::other)?;
    writeln!(stream, "{line}")?;
    Ok(BufReader::new(stream))
}

/// Sends `request` and reads the agent's [`Response`] line; the rest of
/// the stream (followed events) stays in the reader.
pub fn ask(path: &Path, request: &Request) -> io::Result<(Response, BufReader<UnixStream>)> {
    response(self::request(path, request)?)
}

/// [`ask`] over the control service for VMs at `address` (from a VM
/// the description names in `control_allow` or `control_read`).
pub fn ask_remote(
    address: std::net::SocketAddr,
    request: &Request,
) -> io::Result<(Response, BufReader<std::net::TcpStream>)> {
    let stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (answer, reader) = response(send(stream, request)?)?;
    // Followed events may be minutes apart.
    reader.get_ref().set_read_timeout(None)?;
    Ok((answer, reader))
}

fn response<S: Read>(mut reader: BufReader<S>) -> io::Result<(Response, BufReader<S>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the agent closed the connection without an answer",
        ));
    }
    let response = serde_json::from_str(&line).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the agent answered something that is not a response: {e}"),
        )
    })?;
    Ok((response, reader))
}
