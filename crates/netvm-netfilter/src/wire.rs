//! The netlink plumbing the other modules share: one `NETLINK_NETFILTER`
//! socket with a receive timeout, sending requests built with
//! `netlink-packet-netfilter`, and total parsers of what the kernel sends
//! back (netlink message headers, attributes). The parsers never panic:
//! malformed input is a [`Malformed`] error.

use crate::Error;
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::NetfilterMessage;
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;
use std::io;
use std::time::Duration;

/// `NLMSG_NOOP`.
pub(crate) const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR`: an error, or an ack when the code is 0.
pub(crate) const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
pub(crate) const NLMSG_DONE: u16 = 3;
/// `NLMSG_OVERRUN`.
pub(crate) const NLMSG_OVERRUN: u16 = 4;
/// Attribute type bits without `NLA_F_NESTED`/`NLA_F_NET_BYTEORDER`.
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HDRLEN: usize = 16;
const NLA_HDRLEN: usize = 4;

/// How long a request waits for the kernel's answer before giving up
/// (the kernel answers in microseconds; this only guards against a lost
/// reply hanging the caller forever).
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes the kernel sent that do not parse; says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// One netlink message inside a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Message<'a> {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// What follows the 16-byte header.
    pub payload: &'a [u8],
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

fn u16_ne(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_ne(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A big-endian u16 attribute value.
pub(crate) fn be16(v: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(v.get(..2)?.try_into().ok()?))
}

/// A big-endian u32 attribute value.
pub(crate) fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

/// A big-endian u64 attribute value.
pub(crate) fn be64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

/// A NUL-terminated (or unterminated) string attribute, lossily decoded.
pub(crate) fn string(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// Splits a datagram into netlink messages.
pub(crate) fn messages(mut buf: &[u8]) -> Result<Vec<Message<'_>>, Malformed> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_ne(buf, 0).ok_or(Malformed("netlink header"))? as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(Malformed("netlink message length"));
        }
        out.push(Message {
            ty: u16_ne(buf, 4).ok_or(Malformed("netlink header"))?,
            seq: u32_ne(buf, 8).ok_or(Malformed("netlink header"))?,
            payload: &buf[NLMSG_HDRLEN..len],
        });
        buf = buf.get(align4(len)..).unwrap_or(&[]);
    }
    if buf.is_empty() {
        Ok(out)
    } else {
        Err(Malformed("trailing bytes after the last netlink message"))
    }
}

/// The attributes in `buf`: (type without flags, value).
pub(crate) fn attributes(mut buf: &[u8]) -> Result<Vec<(u16, &[u8])>, Malformed> {
    let mut out = Vec::new();
    while buf.len() >= NLA_HDRLEN {
        let len = usize::from(u16_ne(buf, 0).ok_or(Malformed("attribute header"))?);
        let kind = u16_ne(buf, 2).ok_or(Malformed("attribute header"))? & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > buf.len() {
            return Err(Malformed("attribute length"));
        }
        out.push((kind, &buf[NLA_HDRLEN..len]));
        buf = buf.get(align4(len)..).unwrap_or(&[]);
    }
    if buf.is_empty() {
        Ok(out)
    } else {
        Err(Malformed("trailing bytes after the last attribute"))
    }
}

/// The first attribute of type `kind`.
pub(crate) fn find<'a>(attrs: &[(u16, &'a [u8])], kind: u16) -> Option<&'a [u8]> {
    attrs.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
}

/// What an `NLMSG_ERROR` message says: `Ok(())` for an ack, else the errno.
pub(crate) fn error_code(payload: &[u8]) -> Result<Result<(), Errno>, Malformed> {
    let code = payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_ne_bytes)
        .ok_or(Malformed("netlink error message"))?;
    Ok(if code == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw(code.saturating_neg()))
    })
}

/// Serializes a netfilter request with the given flags and sequence number.
pub(crate) fn encode(message: NetfilterMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

/// One `NETLINK_NETFILTER` socket, bound to an automatic port, talking to
/// the kernel of the network namespace it was opened in.
pub(crate) struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// Large enough for any datagram the kernel builds (dumps use at most
/// 32 KiB per datagram).
const RECEIVE_BUFFER: usize = 64 * 1024;

impl Netlink {
    /// Opens the socket; `timeout` bounds each receive (`None`: block).
    pub(crate) fn open(timeout: Option<Duration>) -> Result<Netlink, Error> {
        let io = |action| move |source| Error::Io { action, source };
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(io("open a netlink socket"))?;
        socket.bind_auto().map_err(io("bind the netlink socket"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(io("connect the netlink socket to the kernel"))?;
        if let Some(timeout) = timeout {
            let tv = TimeVal::new(
                i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
                i64::from(timeout.subsec_micros()),
            );
            setsockopt(&socket, sockopt::ReceiveTimeout, &tv).map_err(|e| Error::Io {
                action: "set the netlink receive timeout",
                source: io::Error::from(e),
            })?;
        }
        Ok(Netlink {
            socket,
            seq: 0,
            buf: vec![0; RECEIVE_BUFFER],
        })
    }

    /// The socket, for options and polling.
    pub(crate) fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Asks for a receive buffer of `bytes`: beyond `net.core.rmem_max`
    /// when allowed (`CAP_NET_ADMIN`), else as large as the limit lets.
    /// A smaller buffer only means more overflows, which callers handle,
    /// so failing to grow it is not an error.
    pub(crate) fn grow_receive_buffer(&self, bytes: usize) {
        if setsockopt(&self.socket, sockopt::RcvBufForce, &bytes).is_err() {
            let _ = setsockopt(&self.socket, sockopt::RcvBuf, &bytes);
        }
    }

    /// A fresh sequence number (never 0, which the kernel uses for
    /// unsolicited messages).
    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Sends one datagram.
    pub(crate) fn send(&self, bytes: &[u8]) -> Result<(), Error> {
        let sent = self.socket.send(bytes, 0).map_err(|source| Error::Io {
            action: "send to the kernel",
            source,
        })?;
        if sent == bytes.len() {
            Ok(())
        } else {
            Err(Error::Io {
                action: "send to the kernel",
                source: io::Error::new(io::ErrorKind::WriteZero, "short netlink send"),
            })
        }
    }

    /// Receives one datagram (raw `io::Error` so callers can tell
    /// `WouldBlock`, a timeout, and `ENOBUFS` apart).
    pub(crate) fn recv_raw(&mut self) -> io::Result<&[u8]> {
        let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
        if n > self.buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "netlink datagram larger than the receive buffer",
            ));
        }
        Ok(&self.buf[..n])
    }

    /// Receives one datagram, timeouts and all errors as [`Error::Io`].
    pub(crate) fn recv(&mut self) -> Result<&[u8], Error> {
        self.recv_raw().map_err(|source| Error::Io {
            action: "receive the kernel's answer",
            source,
        })
    }

    /// Sends a request that asked for an ack (`NLM_F_ACK`) and waits for
    /// it: `Ok(Ok(()))` acked, `Ok(Err(errno))` refused.
    pub(crate) fn ack(
        &mut self,
        request: &'static str,
        bytes: &[u8],
        seq: u32,
    ) -> Result<Result<(), Errno>, Error> {
        self.send(bytes)?;
        loop {
            let datagram = self.recv()?;
            for m in messages(datagram).map_err(|m| Error::malformed(request, m))? {
                if m.seq == seq && m.ty == NLMSG_ERROR {
                    return error_code(m.payload).map_err(|e| Error::malformed(request, e));
                }
            }
        }
    }

    /// Sends a dump request (`NLM_F_DUMP`) and hands every answer message
    /// (its type and payload) to `each` until the dump is done.
    pub(crate) fn dump(
        &mut self,
        request: &'static str,
        bytes: &[u8],
        seq: u32,
        mut each: impl FnMut(u16, &[u8]) -> Result<(), Malformed>,
    ) -> Result<(), Error> {
        self.send(bytes)?;
        loop {
            let datagram = self.recv()?;
            for m in messages(datagram).map_err(|m| Error::malformed(request, m))? {
                if m.seq != seq {
                    continue;
                }
                match m.ty {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let code =
                            error_code(m.payload).map_err(|e| Error::malformed(request, e))?;
                        if let Err(errno) = code {
                            return Err(Error::Refused { request, errno });
                        }
                    }
                    NLMSG_NOOP | NLMSG_OVERRUN => {}
                    _ => each(m.ty, m.payload).map_err(|e| Error::malformed(request, e))?,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_messages_and_attributes() {
        // Two messages: an ack (error 0) and a DONE.
        let mut d = Vec::new();
        for (ty, payload) in [(NLMSG_ERROR, vec![0u8; 20]), (NLMSG_DONE, vec![0u8; 4])] {
            d.extend_from_slice(&(16 + payload.len() as u32).to_ne_bytes());
            d.extend_from_slice(&ty.to_ne_bytes());
            d.extend_from_slice(&0u16.to_ne_bytes());
            d.extend_from_slice(&7u32.to_ne_bytes());
            d.extend_from_slice(&0u32.to_ne_bytes());
            d.extend_from_slice(&payload);
        }
        let m = messages(&d).expect("parses");
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].ty, m[0].seq), (NLMSG_ERROR, 7));
        assert_eq!(error_code(m[0].payload), Ok(Ok(())));
        // One 5-byte attribute (padded to 8) and one nested-flagged one.
        let a = [5, 0, 1, 0, 9, 0, 0, 0, 4, 0, 2, 0x80];
        let attrs = attributes(&a).expect("parses");
        assert_eq!(attrs, vec![(1, &[9u8][..]), (2, &[][..])]);
        assert!(attributes(&[8, 0, 1, 0, 1]).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(ms) = messages(&bytes) {
                for m in ms {
                    let _ = error_code(m.payload);
                    let _ = attributes(m.payload);
                }
            }
            let _ = attributes(&bytes);
        }
    }
}
